/*
 * fetch.h - HTTP(S) requests on a libevent loop through a curl multi
 * handle (the shape of curl's docs/examples/multi-event.c), for the main
 * thread's background work: the AWS client (aws.c) and OCSP responses
 * (ocsp.c). Nothing here blocks the loop: sockets and timers are the loop's
 * events, names are resolved by libcurl's threaded resolver.
 *
 * Bodies may hold secrets (credentials from IMDS, secret values): both
 * directions are cleansed before they are freed.
 */
#ifndef PORTCULLIS_FETCH_H
#define PORTCULLIS_FETCH_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct fetch;
struct fetch_req;

/* The outcome of a request; valid during the callback only. */
struct fetch_result {
	bool ok;	   /* an answer came whole (any status) */
	long status;	   /* the HTTP status, 0 without an answer */
	const char *body;  /* the answer's body, NUL-terminated; "" unless
			      ok */
	size_t len;	   /* at most the max_body given */
	const char *error; /* why not ok, for a log line; "" when ok */
};

/* A client on base (whose loop must run). NULL when libcurl cannot start
 * (logged). */
struct fetch *fetch_new(struct event_base *base);

/* Cancels every request without calling back and frees f. NULL is fine. */
void fetch_free(struct fetch *f);

/*
 * A request for url (http:// or https:// only), a GET until a body is
 * given, not started yet. Redirects are not followed; an answer over
 * max_body bytes, or none within timeout_ms, is a failure. done(arg, r) is
 * called later from the loop, exactly once, once the request is started
 * with fetch_req_go(), unless it is cancelled first. NULL: out of memory.
 */
struct fetch_req *
fetch_req_new(struct fetch *f, const char *url, long timeout_ms,
	      size_t max_body,
	      void (*done)(void *arg, const struct fetch_result *r), void *arg);

/* The request's easy handle, for options of the caller's own (a method,
 * SigV4 signing) before fetch_req_go(). */
CURL *fetch_req_curl(struct fetch_req *r);

/* Adds "name: value" to the request header. 0, or -1 (no memory). */
int fetch_req_header(struct fetch_req *r, const char *name, const char *v);

/* Makes it a POST of body (len bytes, copied), with a Content-Type header
 * unless content_type is NULL. 0, or -1 (no memory). */
int fetch_req_body(struct fetch_req *r, const char *content_type,
		   const void *body, size_t len);

/* Starts r. 0, or -1 when it cannot start: then r is freed (no callback). */
int fetch_req_go(struct fetch_req *r);

/* Frees a request never started. NULL is fine. */
void fetch_req_drop(struct fetch_req *r);

/* fetch_req_new, then a POST of body with content_type (or a GET when
 * body is NULL), started. NULL when it could not start (no callback). */
struct fetch_req *
fetch_start(struct fetch *f, const char *url, const char *content_type,
	    const void *body, size_t len, long timeout_ms, size_t max_body,
	    void (*done)(void *arg, const struct fetch_result *r), void *arg);

/* Stops a request that has not called back yet; r is freed. NULL ok. */
void fetch_cancel(struct fetch_req *r);

#endif
