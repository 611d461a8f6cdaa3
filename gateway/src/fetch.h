/*
 * fetch.h - plain HTTP(S) requests on a libevent loop through a curl multi
 * handle, for the main thread's background work (OCSP responses). Nothing
 * here blocks the loop: sockets and timers are the loop's events, names are
 * resolved by libcurl's threaded resolver.
 *
 * aws.c runs its own multi handle of the same shape (curl's
 * docs/examples/multi-event.c); it predates this file.
 */
#ifndef PORTCULLIS_FETCH_H
#define PORTCULLIS_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct fetch;
struct fetch_req;

/* The outcome of a request; valid during the callback only. */
struct fetch_result {
	bool ok;	   /* an answer came whole (any status) */
	long status;	   /* the HTTP status, 0 without an answer */
	const void *body;  /* the answer's body (ok only) */
	size_t len;	   /* at most the max_body given */
	const char *error; /* why not ok, for a log line; "" when ok */
};

/* A client on base (whose loop must run). NULL when libcurl cannot start
 * (logged). */
struct fetch *fetch_new(struct event_base *base);

/* Cancels every request without calling back and frees f. NULL is fine. */
void fetch_free(struct fetch *f);

/*
 * Starts a POST of body (len bytes, copied) with content_type, or a GET
 * when body is NULL, to an http:// or https:// url. Redirects are not
 * followed; an answer over max_body bytes is a failure. done(arg, r) is
 * called later from the loop, exactly once, unless the request is
 * cancelled first. Returns the request (the caller's handle until done or
 * fetch_cancel), or NULL when it could not start (then no callback).
 */
struct fetch_req *
fetch_start(struct fetch *f, const char *url, const char *content_type,
	    const void *body, size_t len, long timeout_ms, size_t max_body,
	    void (*done)(void *arg, const struct fetch_result *r), void *arg);

/* Stops a request that has not called back yet; r is freed. NULL ok. */
void fetch_cancel(struct fetch_req *r);

#endif
