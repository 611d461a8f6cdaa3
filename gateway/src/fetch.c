/*
 * fetch.c - HTTP requests on a libevent loop (see fetch.h).
 *
 * Shape: curl's socket callback makes one persistent event per socket it
 * watches, its timer callback arms one timer, and every event hands
 * control back with curl_multi_socket_action; finished transfers are read
 * from curl_multi_info_read and called back after curl is done with them.
 */
#include "fetch.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"

#define FETCH_CONNECT_TIMEOUT_MS 3000

struct fetch_req {
	TAILQ_ENTRY(fetch_req) r_entry;
	struct fetch *r_fetch;
	CURL *r_easy;
	struct curl_slist *r_headers;
	unsigned char *r_out; /* the request body, owned */
	size_t r_out_len;
	char *r_body; /* what came back, NUL-terminated */
	size_t r_len, r_cap, r_max;
	bool r_too_big;
	char r_err[CURL_ERROR_SIZE];
	void (*r_done)(void *arg, const struct fetch_result *r);
	void *r_arg;
};

struct fetch {
	struct event_base *f_base;
	CURLM *f_multi;
	struct event *f_timer;
	TAILQ_HEAD(, fetch_req) f_reqs;
};

/* One libevent event per socket curl watches. */
struct fetch_sock {
	struct event *fs_ev;
	struct fetch *fs_fetch;
};

static void
fetch_req_free(struct fetch_req *r)
{
	curl_slist_free_all(r->r_headers);
	curl_easy_cleanup(r->r_easy);
	if (r->r_out != NULL)
		OPENSSL_cleanse(r->r_out, r->r_out_len);
	free(r->r_out);
	if (r->r_body != NULL)
		OPENSSL_cleanse(r->r_body, r->r_cap);
	free(r->r_body);
	free(r);
}

static void
fetch_check_done(struct fetch *f)
{
	struct fetch_result res;
	struct fetch_req *r;
	CURLMsg *m;
	CURLcode rc;
	int left;

	while ((m = curl_multi_info_read(f->f_multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&r);
		rc = m->data.result;
		memset(&res, 0, sizeof(res));
		curl_easy_getinfo(r->r_easy, CURLINFO_RESPONSE_CODE,
				  &res.status);
		if (r->r_too_big)
			res.error = "the answer is too large";
		else if (rc != CURLE_OK)
			res.error = r->r_err[0] != '\0'
					? r->r_err
					: curl_easy_strerror(rc);
		else
			res.error = "";
		res.ok = rc == CURLE_OK && !r->r_too_big;
		res.body = res.ok && r->r_body != NULL ? r->r_body : "";
		res.len = res.ok ? r->r_len : 0;
		curl_multi_remove_handle(f->f_multi, r->r_easy);
		TAILQ_REMOVE(&f->f_reqs, r, r_entry);
		r->r_done(r->r_arg, &res);
		fetch_req_free(r);
	}
}

static void
fetch_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetch_sock *s = arg;
	struct fetch *f = s->fs_fetch; /* s may be freed by the action */
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(f->f_multi, fd, flags, &running);
	fetch_check_done(f);
}

static int
fetch_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct fetch *f = userp;
	struct fetch_sock *s = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->fs_ev);
			free(s);
			curl_multi_assign(f->f_multi, fd, NULL);
		}
		return 0;
	}
	kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	       (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->fs_fetch = f;
		curl_multi_assign(f->f_multi, fd, s);
	} else {
		event_free(s->fs_ev);
	}
	s->fs_ev = event_new(f->f_base, fd, kind, fetch_sock_event, s);
	if (s->fs_ev == NULL || event_add(s->fs_ev, NULL) == -1)
		return -1;
	return 0;
}

static void
fetch_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;
	int running;

	curl_multi_socket_action(f->f_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetch_check_done(f);
}

static int
fetch_timer_cb(CURLM *multi, long ms, void *userp)
{
	struct fetch *f = userp;
	struct timeval tv;

	if (ms < 0) {
		evtimer_del(f->f_timer);
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(f->f_timer, &tv);
	return 0;
}

static size_t
fetch_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct fetch_req *r = arg;
	size_t len = size * n, cap;
	char *nb;

	if (len > r->r_max - r->r_len) {
		r->r_too_big = true;
		return 0;
	}
	if (r->r_len + len + 1 > r->r_cap) {
		cap = r->r_cap > 0 ? r->r_cap : 4096;
		while (cap < r->r_len + len + 1)
			cap *= 2;
		/* Not realloc: the old buffer is cleansed before it goes. */
		if ((nb = malloc(cap)) == NULL)
			return 0;
		if (r->r_body != NULL) {
			memcpy(nb, r->r_body, r->r_len);
			OPENSSL_cleanse(r->r_body, r->r_cap);
			free(r->r_body);
		}
		r->r_body = nb;
		r->r_cap = cap;
	}
	memcpy(r->r_body + r->r_len, p, len);
	r->r_len += len;
	r->r_body[r->r_len] = '\0';
	return len;
}

struct fetch_req *
fetch_req_new(struct fetch *f, const char *url, long timeout_ms,
	      size_t max_body,
	      void (*done)(void *arg, const struct fetch_result *r), void *arg)
{
	struct fetch_req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->r_easy = curl_easy_init()) == NULL) {
		free(r);
		return NULL;
	}
	r->r_fetch = f;
	r->r_max = max_body;
	r->r_done = done;
	r->r_arg = arg;
	curl_easy_setopt(r->r_easy, CURLOPT_URL, url);
	curl_easy_setopt(r->r_easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->r_easy, CURLOPT_WRITEFUNCTION, fetch_write_cb);
	curl_easy_setopt(r->r_easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->r_easy, CURLOPT_ERRORBUFFER, r->r_err);
	curl_easy_setopt(r->r_easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->r_easy, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < FETCH_CONNECT_TIMEOUT_MS
			     ? timeout_ms
			     : (long)FETCH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(r->r_easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(r->r_easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->r_easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->r_easy, CURLOPT_USERAGENT,
			 "portcullis/" PORTCULLIS_VERSION);
	return r;
}

CURL *
fetch_req_curl(struct fetch_req *r)
{
	return r->r_easy;
}

int
fetch_req_header(struct fetch_req *r, const char *name, const char *v)
{
	char line[4300];
	struct curl_slist *l;

	snprintf(line, sizeof(line), "%s: %s", name, v);
	l = curl_slist_append(r->r_headers, line);
	OPENSSL_cleanse(line, sizeof(line)); /* may be a token */
	if (l == NULL)
		return -1;
	r->r_headers = l;
	return 0;
}

int
fetch_req_body(struct fetch_req *r, const char *content_type, const void *body,
	       size_t len)
{
	/* Copied: curl reads POSTFIELDS while the transfer runs. */
	if ((r->r_out = malloc(len > 0 ? len : 1)) == NULL)
		return -1;
	memcpy(r->r_out, body, len);
	r->r_out_len = len;
	curl_easy_setopt(r->r_easy, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)len);
	curl_easy_setopt(r->r_easy, CURLOPT_POSTFIELDS, r->r_out);
	if (content_type != NULL &&
	    fetch_req_header(r, "Content-Type", content_type) == -1)
		return -1;
	return 0;
}

int
fetch_req_go(struct fetch_req *r)
{
	struct fetch *f = r->r_fetch;

	curl_easy_setopt(r->r_easy, CURLOPT_HTTPHEADER, r->r_headers);
	if (curl_multi_add_handle(f->f_multi, r->r_easy) != CURLM_OK) {
		fetch_req_free(r);
		return -1;
	}
	TAILQ_INSERT_TAIL(&f->f_reqs, r, r_entry);
	return 0;
}

void
fetch_req_drop(struct fetch_req *r)
{
	if (r != NULL)
		fetch_req_free(r);
}

struct fetch_req *
fetch_start(struct fetch *f, const char *url, const char *content_type,
	    const void *body, size_t len, long timeout_ms, size_t max_body,
	    void (*done)(void *arg, const struct fetch_result *r), void *arg)
{
	struct fetch_req *r;

	if ((r = fetch_req_new(f, url, timeout_ms, max_body, done, arg)) ==
	    NULL)
		return NULL;
	if (body != NULL && fetch_req_body(r, content_type, body, len) == -1) {
		fetch_req_drop(r);
		return NULL;
	}
	return fetch_req_go(r) == 0 ? r : NULL;
}

void
fetch_cancel(struct fetch_req *r)
{
	struct fetch *f;

	if (r == NULL)
		return;
	f = r->r_fetch;
	curl_multi_remove_handle(f->f_multi, r->r_easy);
	TAILQ_REMOVE(&f->f_reqs, r, r_entry);
	fetch_req_free(r);
}

struct fetch *
fetch_new(struct event_base *base)
{
	struct fetch *f;

	/* Reference counted by libcurl: aws.c may have done it too. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("fetch: libcurl cannot start");
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->f_base = base;
	TAILQ_INIT(&f->f_reqs);
	f->f_multi = curl_multi_init();
	f->f_timer = evtimer_new(base, fetch_timer_event, f);
	if (f->f_multi == NULL || f->f_timer == NULL) {
		log_error("fetch: cannot set up the HTTP client");
		if (f->f_multi != NULL)
			curl_multi_cleanup(f->f_multi);
		if (f->f_timer != NULL)
			event_free(f->f_timer);
		free(f);
		return NULL;
	}
	curl_multi_setopt(f->f_multi, CURLMOPT_SOCKETFUNCTION, fetch_sock_cb);
	curl_multi_setopt(f->f_multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->f_multi, CURLMOPT_TIMERFUNCTION, fetch_timer_cb);
	curl_multi_setopt(f->f_multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void
fetch_free(struct fetch *f)
{
	struct fetch_req *r, *next;

	if (f == NULL)
		return;
	/* The whole list goes: no unlinking one by one. */
	for (r = TAILQ_FIRST(&f->f_reqs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, r_entry);
		curl_multi_remove_handle(f->f_multi, r->r_easy);
		fetch_req_free(r);
	}
	TAILQ_INIT(&f->f_reqs);
	if (f->f_multi != NULL)
		curl_multi_cleanup(f->f_multi);
	if (f->f_timer != NULL)
		event_free(f->f_timer);
	free(f);
}
