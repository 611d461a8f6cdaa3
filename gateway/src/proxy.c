/*
 * proxy.c - the request pipeline of one client connection.
 *
 * States: HEAD (waiting for or reading a request head), PROXY (request
 * forwarded; its body and the response stream), TUNNEL (after 101), CLOSING
 * (flushing the last bytes), LINGER (write side shut, discarding what the
 * client still sends so our last answer is not lost to a reset).
 *
 * Backpressure, both directions: when the output of one side holds more
 * than PROXY_HIGH bytes, reading from the other side stops; a drain
 * notification at PROXY_HIGH / 2 resumes it. Inputs are capped too
 * (conn_read_limit): an upstream's at PROXY_MAX_RESPONSE_HEAD until its
 * head is read, then at PROXY_BODY_READ, so what one read adds past the
 * mark is small. A download the client has stopped taking then holds at
 * most PROXY_HIGH + PROXY_BODY_READ in the gateway (the kernel's socket
 * buffers aside), whatever the body size: about 48 KiB.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "auth.h"
#include "conn.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "overload.h"
#include "ratelimit.h"
#include "realip.h"
#include "rewrite.h"
#include "router.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

#define PROXY_HIGH (16 * 1024)
#define PROXY_BODY_READ (16 * 1024) /* an upstream's input, body bytes */
#define PROXY_LINGER_MS 2000
#define PROXY_TUNNEL_IDLE_S 3600

/* S_AUTH: the request head is parsed and its upstream head built; a
 * password check runs on the verifier pool (for auth.check_timeout at
 * most) and the client's further bytes wait unread. */
enum session_state { S_HEAD, S_AUTH, S_PROXY, S_TUNNEL, S_CLOSING, S_LINGER };

struct session {
	TAILQ_ENTRY(session) s_entry;
	struct worker *s_w;
	unsigned s_lidx;
	struct conn *s_c;      /* the client */
	struct event *s_timer; /* head/idle timeout, linger; see timer_arm() */
	uint64_t s_deadline;   /* conn_now_ms() when it is due; 0: none */
	uint64_t s_fires_at;   /* when the pending event fires */
	struct event *s_kick;  /* next pipelined request */
	enum session_state s_state;
	/* The peer of the connection; a trusted proxy's requests each name
	 * their own client (realip.h), which the s_client fields then hold
	 * until request_reset(). */
	char s_conn_client[INET6_ADDRSTRLEN];
	uint8_t s_conn_addr16[16];
	uint64_t s_conn_peer;
	char s_client[INET6_ADDRSTRLEN];
	uint8_t s_addr16[16];	 /* the client's address (config_addr16) */
	uint64_t s_peer;	 /* guard_key() of the client's address */
	bool s_via_proxy;	 /* the client is one a trusted proxy named */
	struct realip s_realip;	 /* then: who, and the chain */
	struct evbuffer *s_head; /* upstream request head, kept for a retry */
	size_t s_consume; /* bytes of the request head still at the front of
			     the input: what was parsed points into them */

	/* The current request; reset by request_reset(). Everything it reads
	 * of the config comes from s_gen, taken when its first byte arrived,
	 * so a reload never mixes two configs in one request. */
	struct wgen *s_gen;
	const struct config_listener *s_lc; /* in s_gen */
	const struct config_route *s_route;
	struct upstream *s_up;
	struct upstream_conn *s_uc;
	struct timespec s_t0, s_tup;
	bool s_started;	   /* a byte of this request's head arrived */
	bool s_keepalive;  /* the client connection may serve another */
	bool s_http10;	   /* the client spoke HTTP/1.0 */
	bool s_is_head;	   /* HEAD request: no response body */
	bool s_tunnel_req; /* asked for a WebSocket upgrade */
	bool s_retryable;  /* idempotent with no body: may retry once */
	bool s_retried;
	bool s_req_done; /* the request body has been forwarded */
	struct rewrite_body s_req;
	bool s_resp_head;  /* the response head has been forwarded */
	bool s_resp_bytes; /* a byte of the response arrived from upstream */
	struct rewrite_body s_resp;
	bool s_up_keepalive;
	int s_status;
	enum metrics_cut s_cut; /* why it ended incomplete; NONE: it did not */
	double s_up_seconds;	/* -1: no upstream took part */
	uint64_t s_bytes_in, s_bytes_out;
	enum metrics_method s_method;
	char s_method_str[16];
	char s_path[512];
	char s_reqid[129];
	char s_server[64]; /* the upstream server tried last, "" if none: the
			      access log names it even when it failed */
	struct auth_request s_auth; /* s_auth.wait: a check in flight */
	bool s_authed;		    /* s_auth.user is the verified user */
};

static void client_read(struct conn *c, void *arg);
static void client_drained(struct conn *c, void *arg);
static void client_event(struct conn *c, int what, void *arg);
static void up_read(struct conn *c, void *arg);
static void up_drained(struct conn *c, void *arg);
static void up_event(struct conn *c, int what, void *arg);
static void process_input(struct session *s);
static void request_finish(struct session *s);

static void
ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static double
since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	       (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static const struct config_listener *
current_listener(struct session *s)
{
	return &s->s_w->w_gen->g_cfg->listeners[s->s_lidx];
}

/* The one teardown: unlinks, frees both connections, logs why. */
static void
session_free(struct session *s, const char *why)
{
	struct worker *w = s->s_w;

	if (why != NULL)
		log_msg(LOG_DEBUG, "client %s: closed: %s", s->s_client, why);
	auth_cancel(s->s_auth.wait);
	s->s_auth.wait = NULL;
	upstream_close(s->s_uc);
	s->s_uc = NULL;
	if (s->s_gen != NULL)
		wgen_release(s->s_gen);
	metrics_connection(w->w_metrics, s->s_lidx, -1, false);
	TAILQ_REMOVE(&w->w_sessions, s, s_entry);
	w->w_nsessions--;
	conn_free(s->s_c);
	event_free(s->s_timer);
	event_free(s->s_kick);
	evbuffer_free(s->s_head);
	free(s);
	worker_session_gone(w);
}

/*
 * Client reads stay enabled for the life of the connection; what bounds the
 * input is this limit: reading pauses once the input holds a whole head
 * (or PROXY_HIGH of body), which is where pipelined requests wait.
 */
static void
read_limit(struct session *s)
{
	size_t high = current_listener(s)->max_header_size + 1;

	conn_read_limit(s->s_c, high > PROXY_HIGH ? high : PROXY_HIGH);
}

/*
 * The session timer is lazy like conn's: arming records a deadline and only
 * touches the event when the new deadline is earlier than the pending one;
 * an early firing re-arms for what is left. Two requests on a keep-alive
 * connection then cost no timer operation at all most of the time.
 */
static void
timer_arm(struct session *s, uint64_t ms)
{
	uint64_t now = conn_now_ms();
	struct timeval tv;

	s->s_deadline = now + ms;
	if (evtimer_pending(s->s_timer, NULL) && s->s_fires_at <= s->s_deadline)
		return;
	s->s_fires_at = s->s_deadline;
	ms_to_tv(ms, &tv);
	evtimer_add(s->s_timer, &tv);
}

/* No deadline; a pending firing finds none and does nothing. */
static void
timer_off(struct session *s)
{
	s->s_deadline = 0;
}

/* Shut our write side and discard input for a while, then close. */
static void
session_linger(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_c);

	s->s_state = S_LINGER;
	conn_shutdown_write(s->s_c);
	evbuffer_drain(in, evbuffer_get_length(in));
	conn_timeout(s->s_c, 0);
	conn_read_limit(s->s_c, 0);
	conn_read(s->s_c, true);
	timer_arm(s, PROXY_LINGER_MS);
}

/* Close once the output is flushed. */
static void
session_close_after_flush(struct session *s)
{
	s->s_state = S_CLOSING;
	conn_read(s->s_c, false);
	timer_off(s);
	conn_flush(s->s_c);
	if (evbuffer_get_length(conn_out(s->s_c)) == 0)
		session_linger(s);
	else
		conn_notify_drain(s->s_c, 0); /* client_drained() lingers */
}

/* A client's request id is kept if it is 1..128 of [A-Za-z0-9._-]. */
static bool
request_id_valid(const char *v, size_t len)
{
	size_t i;

	if (len == 0 || len > 128)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* 32 hex digits: the worker's random prefix, then its request counter. */
static void
request_id_generate(struct worker *w, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t n = ++w->w_idseq;
	int i;

	memcpy(out, w->w_idprefix, 16);
	for (i = 15; i >= 0; i--, n >>= 4)
		out[16 + i] = hex[n & 15];
	out[32] = '\0';
}

static void
request_id_make(struct session *s, const struct http_request *req)
{
	const struct http_header *h =
	    http_find(req->headers, req->nheaders, "x-request-id");

	if (h != NULL && request_id_valid(h->value, h->value_len)) {
		memcpy(s->s_reqid, h->value, h->value_len);
		s->s_reqid[h->value_len] = '\0';
		return;
	}
	request_id_generate(s->s_w, s->s_reqid);
}

/* The client is the connection's peer again. */
static void
client_reset(struct session *s)
{
	memcpy(s->s_client, s->s_conn_client, sizeof(s->s_client));
	memcpy(s->s_addr16, s->s_conn_addr16, sizeof(s->s_addr16));
	s->s_peer = s->s_conn_peer;
	s->s_via_proxy = false;
}

static void
request_reset(struct session *s)
{
	if (s->s_via_proxy)
		client_reset(s);
	if (s->s_gen != NULL)
		wgen_release(s->s_gen);
	s->s_gen = NULL;
	s->s_lc = NULL;
	s->s_route = NULL;
	s->s_up = NULL;
	s->s_started = false;
	s->s_retried = false;
	s->s_retryable = false;
	s->s_tunnel_req = false;
	s->s_is_head = false;
	s->s_req_done = false;
	s->s_req.kind = HTTP_BODY_NONE;
	s->s_resp_head = false;
	s->s_resp_bytes = false;
	s->s_status = 0;
	s->s_cut = METRICS_CUT_NONE;
	s->s_up_seconds = -1;
	s->s_bytes_in = s->s_bytes_out = 0;
	s->s_method = METRICS_OTHER;
	s->s_method_str[0] = '\0';
	s->s_path[0] = '\0';
	s->s_reqid[0] = '\0';
	s->s_server[0] = '\0';
	s->s_authed = false;
	if (s->s_auth.user[0] != '\0')
		OPENSSL_cleanse(s->s_auth.user, sizeof(s->s_auth.user));
	evbuffer_drain(s->s_head, evbuffer_get_length(s->s_head));
}

/* Log and count a finished request (answered by us or the upstream). */
static void
request_account(struct session *s)
{
	const struct config *cfg = s->s_gen->g_cfg;
	unsigned id =
	    s->s_route != NULL ? s->s_route->metric_id : METRICS_NO_ROUTE;
	double secs;

	if (!cfg->metrics && !cfg->access_log)
		return;
	secs = s->s_started ? since(&s->s_t0) : 0;
	if (cfg->metrics) {
		metrics_request(s->s_w->w_metrics, id, s->s_method, s->s_status,
				secs, s->s_up_seconds, s->s_bytes_in,
				s->s_bytes_out);
		if (s->s_cut != METRICS_CUT_NONE)
			metrics_incomplete(s->s_w->w_metrics, id, s->s_cut);
	}
	if (!cfg->access_log)
		return;
	accesslog_write(&(struct accesslog_entry){
	    .request_id = s->s_reqid,
	    .client = s->s_client,
	    .proxy = s->s_via_proxy ? s->s_conn_client : NULL,
	    .method = s->s_method_str,
	    .path = s->s_path,
	    .status = s->s_status,
	    .reason = metrics_cut_name(s->s_cut),
	    .bytes_in = s->s_bytes_in,
	    .bytes_out = s->s_bytes_out,
	    .duration = secs,
	    .upstream_duration = s->s_up_seconds,
	    .route = s->s_route != NULL ? s->s_route->name : NULL,
	    .upstream = s->s_server[0] != '\0' ? s->s_server : NULL,
	    .tls = conn_tls_version(s->s_c),
	    .user = s->s_authed ? s->s_auth.user : NULL,
	});
}

/*
 * A request that ends here, before its response was whole, is counted and
 * logged like any other, with the reason. Its status: the one whose head
 * was sent, but 502 when the upstream broke the response (the client's
 * response is broken: the SLI counts it), and 499 when the client left
 * before any head (nginx's code). Only for a request under way (S_AUTH,
 * S_PROXY); call it before session_free().
 */
static void
request_cut(struct session *s, enum metrics_cut why)
{
	bool upstream = why == METRICS_CUT_UPSTREAM_TRUNCATED ||
			why == METRICS_CUT_UPSTREAM_RESET ||
			why == METRICS_CUT_UPSTREAM_TIMEOUT ||
			why == METRICS_CUT_UPSTREAM_FRAMING;

	if (s->s_gen == NULL || (s->s_state != S_PROXY && s->s_state != S_AUTH))
		return;
	if (upstream)
		s->s_status = 502;
	else if (!s->s_resp_head)
		s->s_status = 499;
	s->s_cut = why;
	if (s->s_uc != NULL && s->s_up_seconds < 0)
		s->s_up_seconds = since(&s->s_tup);
	request_account(s);
	s->s_state = S_CLOSING; /* counted: never again */
}

/* The response policy ("headers"): the route's, else the listener's. */
static const struct rewrite_headers *
response_policy(const struct session *s)
{
	if (s->s_route != NULL && s->s_route->headers != NULL)
		return s->s_route->headers;
	return s->s_lc != NULL ? s->s_lc->headers : NULL;
}

/* Strict-Transport-Security max-age for this request's answers on a TLS
 * listener (RFC 6797); 0: none. */
static uint64_t
hsts_max_age(struct session *s)
{
	return s->s_lc->tls ? s->s_gen->g_cfg->tls.hsts_max_age_s : 0;
}

/*
 * Adds a head (or a whole answer) to b: reserves `bound` bytes and lets
 * write(arg, buf, cap) fill them; when the head needs more than the bound
 * said, reserves what it asked for and writes again. 0, or -1 when out of
 * memory, with nothing added to b: a head is written whole or not at all.
 */
static int
head_put(struct evbuffer *b, size_t bound,
	 size_t (*write)(const void *arg, char *buf, size_t cap),
	 const void *arg, size_t *len)
{
	struct evbuffer_iovec v;
	size_t need;

	if (evbuffer_reserve_space(b, (ev_ssize_t)bound, &v, 1) != 1)
		return -1;
	need = write(arg, v.iov_base, v.iov_len);
	if (need > v.iov_len) {
		if (evbuffer_reserve_space(b, (ev_ssize_t)need, &v, 1) != 1 ||
		    write(arg, v.iov_base, v.iov_len) != need)
			return -1;
	}
	v.iov_len = need;
	if (evbuffer_commit_space(b, &v, 1) == -1)
		return -1;
	if (len != NULL)
		*len = need;
	return 0;
}

static size_t
write_answer(const void *arg, char *buf, size_t cap)
{
	return rewrite_answer(arg, buf, cap);
}

static size_t
write_request(const void *arg, char *buf, size_t cap)
{
	return rewrite_request_head(arg, buf, cap);
}

static size_t
write_response(const void *arg, char *buf, size_t cap)
{
	return rewrite_response_head(arg, buf, cap);
}

/*
 * Once a minute per client address at most, whichever worker sees it: a
 * scanner or a broken client must not flood the log with a line per
 * attempt. A slot holds a 24-bit tag of the address and the second it was
 * last logged; two addresses sharing a slot only cost an extra line.
 */
static _Atomic uint64_t tls_logged[4096];

static bool
tls_log_allowed(struct session *s)
{
	uint64_t h = 1469598103934665603ull, now = conn_now_ms() / 1000, old,
		 tag, want;
	_Atomic uint64_t *slot;
	const char *p;

	for (p = s->s_client; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	slot = &tls_logged[h & 4095];
	tag = (h >> 12) & 0xffffff;
	want = tag << 40 | (now & 0xffffffffffull);
	old = atomic_load_explicit(slot, memory_order_relaxed);
	do {
		if (old != 0 && old >> 40 == tag &&
		    now - (old & 0xffffffffffull) < 60)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    slot, &old, want, memory_order_relaxed, memory_order_relaxed));
	return true;
}

/* The parsed head is done with: drop its bytes from the input. */
static void
consume_head(struct session *s)
{
	evbuffer_drain(conn_in(s->s_c), s->s_consume);
	s->s_consume = 0;
}

/*
 * Answers a request ourselves, with a body of "STATUS REASON[: detail]"
 * and the extra fields given. `close` ends the connection after the
 * answer; it is forced when the request's body has not been read.
 */
static void
answer_fields(struct session *s, int status, const struct rewrite_field *fields,
	      size_t nfields, const char *detail, bool close)
{
	struct rewrite_answer a;
	size_t len;

	/* The answer says what happens next: a connection that will not
	 * serve another request says "close" (a 1.0 client would otherwise
	 * read "keep-alive" and wait). */
	if ((!s->s_req_done && s->s_req.kind != HTTP_BODY_NONE) ||
	    s->s_w->w_draining || !s->s_keepalive)
		close = true;
	a = (struct rewrite_answer){
	    .headers = response_policy(s),
	    .status = status,
	    .close = close,
	    .http10_keep = !close && s->s_http10,
	    .head = s->s_is_head,
	    .hsts_max_age = hsts_max_age(s),
	    .fields = fields,
	    .nfields = nfields,
	    .detail = {detail, detail != NULL ? strlen(detail) : 0},
	};
	if (head_put(conn_out(s->s_c), 512, write_answer, &a, &len) == -1) {
		session_free(s, "out of memory writing an answer");
		return;
	}
	consume_head(s);
	s->s_status = status;
	s->s_bytes_out += len;
	s->s_resp_head = true;
	s->s_keepalive = s->s_keepalive && !close;
	request_finish(s);
}

static void
answer(struct session *s, int status, bool close)
{
	answer_fields(s, status, NULL, 0, NULL, close);
}

/* An answer with one extra field whose value is up to four pieces. */
static void
answer_with(struct session *s, int status, const char *name,
	    struct rewrite_str v0, struct rewrite_str v1, struct rewrite_str v2,
	    struct rewrite_str v3, bool close)
{
	struct rewrite_field f = {name, {v0, v1, v2, v3}};

	answer_fields(s, status, &f, 1, NULL, close);
}

#define STR(lit)                                                               \
	(struct rewrite_str)                                                   \
	{                                                                      \
		lit, sizeof(lit) - 1                                           \
	}
#define NOSTR                                                                  \
	(struct rewrite_str)                                                   \
	{                                                                      \
		NULL, 0                                                        \
	}

/* Where an upstream failure maps to: 504 for time, 503 when no server
 * is healthy (HAProxy's answer), 502 for the rest. */
static void
answer_upstream_error(struct session *s, enum metrics_upstream_error why)
{
	metrics_upstream_error(s->s_w->w_metrics, s->s_route->metric_id, why);
	upstream_close(s->s_uc);
	s->s_uc = NULL;
	answer(s,
	       why == METRICS_UPERR_TIMEOUT	? 504
	       : why == METRICS_UPERR_UNHEALTHY ? 503
						: 502,
	       false);
}

static bool
method_idempotent(const char *m, size_t len)
{
	static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "DELETE",
					   "PUT"};
	size_t i;

	for (i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (strlen(idem[i]) == len && memcmp(idem[i], m, len) == 0)
			return true;
	return false;
}

static void
copy_trunc(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Hands the prepared head (and whatever body follows) to s->s_uc. */
static void
upstream_send(struct session *s)
{
	struct conn *uc = s->s_uc->uc_conn;
	const struct config_upstream *cu = upstream_config(s->s_up);

	conn_setcb(uc, up_read, up_drained, up_event, s);
	conn_read_limit(uc, PROXY_MAX_RESPONSE_HEAD);
	conn_read(uc, true);
	/* Until the connect finishes, the connect timeout applies. */
	conn_timeout(uc, s->s_uc->uc_connected ? cu->read_timeout_ms
					       : cu->connect_timeout_ms);
	if (s->s_retryable)
		evbuffer_add(conn_out(uc), evbuffer_pullup(s->s_head, -1),
			     evbuffer_get_length(s->s_head));
	else
		evbuffer_add_buffer(conn_out(uc), s->s_head);
	clock_gettime(CLOCK_MONOTONIC, &s->s_tup);
	if (s->s_req_done)
		conn_flush(uc); /* else forward_request_body() flushes */
}

static void forward_request_body(struct session *s);
static void request_forward(struct session *s);

/*
 * A contiguous view of the front of `in` for the head parser: at most
 * `limit` + 1 bytes (so the parser can tell a head is too long). Usually
 * the first chain holds it all and nothing is copied; otherwise the head is
 * made contiguous, up to its blank line if there is one, so a body behind
 * it is not copied along.
 */
static const char *
pullup_head(struct evbuffer *in, size_t limit, size_t *n)
{
	struct evbuffer_iovec v;
	struct evbuffer_ptr end;
	size_t avail = evbuffer_get_length(in);
	size_t want = avail < limit + 1 ? avail : limit + 1;

	if (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len >= want) {
		*n = want;
		return v.iov_base;
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos != -1 && (size_t)end.pos + 4 <= limit + 1)
		*n = (size_t)end.pos + 4;
	else
		*n = want;
	return (const char *)evbuffer_pullup(in, (ssize_t)*n);
}

/*
 * A redirect_https listener: 308 to the same host and path over https
 * (RFC 9110 section 15.4.9: the method and body are kept), except
 * /healthz, answered here with 200 for load balancers' checks. The
 * Location is written from pieces of the parsed head, whatever their size.
 */
static void
redirect_https(struct session *s, const struct http_request *req)
{
	size_t hlen = req->host_len;
	const char *host = req->host, *colon;
	char port[16];
	int plen = 0;

	if (req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) {
		answer(s, 200, false);
		return;
	}
	if (host == NULL || hlen == 0) {
		answer(s, 400, true);
		return;
	}
	/* Drop the port: after "]" for an IPv6 literal, else after the last
	 * ":". */
	if (host[0] == '[') {
		const char *end = memchr(host, ']', hlen);

		if (end != NULL)
			hlen = (size_t)(end - host) + 1;
	} else if ((colon = memrchr(host, ':', hlen)) != NULL) {
		hlen = (size_t)(colon - host);
	}
	if (s->s_lc->https_port != 443)
		plen = snprintf(port, sizeof(port), ":%u", s->s_lc->https_port);
	answer_with(s, 308, "Location", STR("https://"),
		    (struct rewrite_str){host, hlen},
		    (struct rewrite_str){port, (size_t)plen},
		    (struct rewrite_str){req->path, req->path_len},
		    s->s_req.kind != HTTP_BODY_NONE);
}

/* The name of the route's upstream, for log lines. */
static const char *
up_name(const struct session *s)
{
	return s->s_gen->g_cfg->upstreams[s->s_route->upstream].name;
}

static const struct config_realm *
route_realm(struct session *s)
{
	return &s->s_gen->g_cfg->realms[s->s_route->realm];
}

/* Counts an auth result and remembers a verified user for the log. */
static void
auth_account(struct session *s, enum auth_result r)
{
	metrics_auth(s->s_w->w_metrics, route_realm(s)->metric_id, (unsigned)r);
	s->s_authed = r == AUTH_OK || r == AUTH_CACHED;
}

/* 401, 429 or 503 for a request that may not pass. */
static void
auth_refuse(struct session *s, enum auth_result r, const char *why)
{
	const struct config_realm *cr = route_realm(s);
	char secs[24];
	int n;

	OPENSSL_cleanse(s->s_auth.user, sizeof(s->s_auth.user));
	switch (r) {
	case AUTH_THROTTLED:
		n = snprintf(secs, sizeof(secs), "%u",
			     (unsigned)s->s_auth.retry_after);
		answer_with(s, 429, "Retry-After",
			    (struct rewrite_str){secs, (size_t)n}, NOSTR, NOSTR,
			    NOSTR, false);
		return;
	case AUTH_UNAVAILABLE: {
		struct rewrite_field f = {"Retry-After", {STR("1")}};
		char detail[CONFIG_NAME_MAX + 64];

		if (why == NULL && auth_realm_users(cr->auth) == 0) {
			snprintf(detail, sizeof(detail),
				 "realm \"%s\" has no credentials", cr->name);
			why = detail;
		}
		answer_fields(s, 503, &f, 1,
			      why != NULL ? why
					  : "too many password checks waiting",
			      false);
		return;
	}
	default:
		/* RFC 7617 section 2.1: the charset parameter. */
		answer_with(s, 401, "WWW-Authenticate", STR("Basic realm=\""),
			    (struct rewrite_str){cr->name, strlen(cr->name)},
			    STR("\", charset=\"UTF-8\""), NOSTR, false);
		return;
	}
}

/* A check from the verifier pool came back (this worker's loop). */
static void
auth_done(void *arg, enum auth_result r)
{
	struct session *s = arg;

	s->s_auth.wait = NULL;
	timer_off(s);
	auth_account(s, r);
	if (r != AUTH_OK) {
		evbuffer_drain(s->s_head, evbuffer_get_length(s->s_head));
		auth_refuse(s, r, NULL);
		return;
	}
	request_forward(s);
}

/* Runs the route's realm check; counts whatever is known now. */
static enum auth_result
request_auth(struct session *s, const struct http_request *req)
{
	const struct http_header *h =
	    http_find(req->headers, req->nheaders, "authorization");
	enum auth_result r;

	s->s_auth.authz = h != NULL ? h->value : NULL;
	s->s_auth.authz_len = h != NULL ? h->value_len : 0;
	s->s_auth.peer = s->s_peer;
	r = auth_check(s->s_w, route_realm(s), &s->s_auth, auth_done, s);
	s->s_auth.authz = NULL;
	if (r != AUTH_PENDING)
		auth_account(s, r);
	return r;
}

/* Writes the head the upstream gets into s->s_head; 0, or -1 when out
 * of memory. */
static int
upstream_head(struct session *s, const struct http_request *req,
	      const struct rewrite_conn *conn,
	      const struct http_header *upgrade)
{
	const struct config_route *r = s->s_route;
	struct rewrite_request rr = {
	    .req = req,
	    .conn = conn,
	    .strip = r->strip_prefix ? r->path_len : 0,
	    .client = {s->s_client, strlen(s->s_client)},
	    .forwarded_for = {s->s_via_proxy ? s->s_realip.chain : NULL,
			      s->s_via_proxy ? s->s_realip.chain_len : 0},
	    .tls = s->s_lc->tls,
	    .request_id = {s->s_reqid, strlen(s->s_reqid)},
	    .drop = s->s_gen->g_cfg->user_headers,
	    .ndrop = s->s_gen->g_cfg->nuser_headers,
	    .user_header = {r->user_header, r->user_header_len},
	    .drop_authorization =
		r->realm != CONFIG_NO_REALM && !r->pass_authorization,
	    .upgrade = upgrade,
	};

	if (s->s_authed || s->s_auth.wait != NULL) {
		/* The name is sent only once the password is verified: a
		 * pending check's head waits in s_head until auth_done(). */
		rr.user.p = s->s_auth.user;
		rr.user.n = strlen(s->s_auth.user);
	}
	return head_put(s->s_head, rewrite_request_bound(&rr, s->s_consume),
			write_request, &rr, NULL);
}

/*
 * The listener's address lists, then the route's (`route` NULL: none
 * matched): a refused address gets 403, counted by route and reason.
 * Returns true when it was refused (and answered).
 */
static bool
address_refused(struct session *s, const struct config_route *route)
{
	enum config_access_verdict v =
	    config_access_check(&s->s_lc->access, s->s_addr16);

	if (v == CONFIG_ACCESS_OK && route != NULL)
		v = config_access_check(&route->access, s->s_addr16);
	if (v == CONFIG_ACCESS_OK)
		return false;
	s->s_route = route; /* its label on the 403 */
	metrics_denied(s->s_w->w_metrics,
		       route != NULL ? route->metric_id : METRICS_NO_ROUTE,
		       v == CONFIG_ACCESS_DENIED ? METRICS_DENIED_LIST
						 : METRICS_NOT_ALLOWED);
	answer_fields(s, 403, NULL, 0, "address not allowed", false);
	return true;
}

/*
 * From a trusted proxy, the client its X-Forwarded-For names becomes this
 * request's client: for the address lists, the guard, the logs and
 * X-Real-IP. 0, or -1 when the field was bad (answered 400).
 */
static int
real_client(struct session *s, const struct http_request *req)
{
	const char *why = NULL;
	struct sockaddr_in6 sin6;

	switch (realip_find(s->s_lc->trusted, s->s_lc->ntrusted,
			    s->s_conn_addr16, s->s_conn_client, req->headers,
			    req->nheaders, &s->s_realip, &why)) {
	case REALIP_PEER:
		return 0;
	case REALIP_BAD:
		log_req(LOG_INFO, s->s_reqid, "client %s: bad request: %s",
			s->s_client, why);
		answer(s, 400, true);
		return -1;
	case REALIP_FOUND:
		break;
	}
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, s->s_realip.addr, 16);
	memcpy(s->s_client, s->s_realip.text, sizeof(s->s_client));
	memcpy(s->s_addr16, s->s_realip.addr, sizeof(s->s_addr16));
	s->s_peer = guard_key((const struct sockaddr *)&sin6);
	s->s_via_proxy = true;
	return 0;
}

/*
 * The route's rate limit, for `key` (the client's address, or the verified
 * user): true when the request was refused (429 with Retry-After).
 */
static bool
rate_limited(struct session *s, const void *key, size_t len)
{
	unsigned wait =
	    ratelimit_take(s->s_route->limiter, key, len, ratelimit_now_us());
	char secs[24];
	struct rewrite_field f = {"Retry-After", {{secs, 0}}};
	int n;

	if (wait == 0)
		return false;
	metrics_limited(s->s_w->w_metrics, s->s_route->metric_id);
	n = snprintf(secs, sizeof(secs), "%u", wait);
	f.v[0].n = (size_t)n;
	evbuffer_drain(s->s_head, evbuffer_get_length(s->s_head));
	answer_fields(s, 429, &f, 1, "rate limit", false);
	return true;
}

/* Is the request for "/" itself (with or without a query)? */
static bool
is_root(const struct http_request *req)
{
	return req->path_len >= 1 && req->path[0] == '/' &&
	       (req->path_len == 1 || req->path[1] == '?');
}

/* The trailing-slash redirect: /x (and its query) to /x/. */
static void
redirect_slash(struct session *s, const struct http_request *req)
{
	const char *q = memchr(req->path, '?', req->path_len);

	answer_with(
	    s, 301, "Location",
	    (struct rewrite_str){s->s_route->path, s->s_route->path_len},
	    (struct rewrite_str){
		q, q != NULL ? req->path_len - (size_t)(q - req->path) : 0},
	    NOSTR, NOSTR, false);
}

/*
 * A complete request head of `len` bytes is at the front of the input;
 * req points into it. Decides, in this order, what becomes of it: what the
 * head may not say (400 for its Connection options), the gateway's own
 * answers (405, 308, 404, 301), 413, then the realm, then the head the
 * upstream gets.
 */
static void
request_start(struct session *s, struct http_request *req, size_t len)
{
	const struct http_header *upgrade = NULL;
	const struct config_route *route = NULL;
	enum router_result match;
	enum auth_result auth = AUTH_OK;
	struct rewrite_conn conn;
	const char *why;

	timer_off(s);
	s->s_consume = len;
	s->s_http10 = req->minor == 0;
	s->s_keepalive = req->keep_alive && !s->s_w->w_draining;
	s->s_is_head =
	    req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	s->s_method = metrics_method(req->method, req->method_len);
	copy_trunc(s->s_method_str, sizeof(s->s_method_str), req->method,
		   req->method_len);
	copy_trunc(s->s_path, sizeof(s->s_path), req->path, req->path_len);
	s->s_req_done =
	    req->body == HTTP_BODY_NONE ||
	    (req->body == HTTP_BODY_LENGTH && req->content_length == 0);
	rewrite_body_init(&s->s_req, req->body, req->content_length, true,
			  UINT64_MAX);
	s->s_bytes_in = len;
	request_id_make(s, req);

	if (rewrite_connection(
		req->headers, req->nheaders, s->s_gen->g_cfg->user_headers,
		s->s_gen->g_cfg->nuser_headers, &conn, &why) == -1) {
		log_req(LOG_INFO, s->s_reqid, "client %s: bad request: %s",
			s->s_client, why);
		answer(s, 400, true);
		return;
	}
	if (real_client(s, req) == -1)
		return;
	/* The address lists first: a refused address learns nothing of the
	 * routes and never costs a password hash. */
	match = router_match(s->s_lc, req->path, req->path_len, &route);
	if (address_refused(s, match != ROUTER_NONE ? route : NULL))
		return;
	/* TRACE would echo the request, credentials included, back to
	 * whatever script can make the browser send one (nginx: 405 too). */
	if (req->method_len == 5 && memcmp(req->method, "TRACE", 5) == 0) {
		answer_with(s, 405, "Allow",
			    STR("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
			    NOSTR, NOSTR, NOSTR, false);
		return;
	}
	if (s->s_lc->redirect_https) {
		redirect_https(s, req);
		return;
	}
	if (s->s_lc->root_redirect != NULL && is_root(req) &&
	    (s->s_is_head ||
	     (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0))) {
		answer_with(s, 302, "Location",
			    (struct rewrite_str){s->s_lc->root_redirect,
						 s->s_lc->root_redirect_len},
			    NOSTR, NOSTR, NOSTR,
			    s->s_req.kind != HTTP_BODY_NONE);
		return;
	}
	switch (match) {
	case ROUTER_NONE:
		answer(s, 404, false);
		return;
	case ROUTER_REDIRECT:
		s->s_route = route;
		redirect_slash(s, req);
		return;
	case ROUTER_MATCH:
		break;
	}
	s->s_route = route;
	/* Before the realm: a client over its limit costs no hash. */
	if (route->limiter != NULL && !route->rate.by_user &&
	    rate_limited(s, s->s_addr16, sizeof(s->s_addr16)))
		return;
	if (req->body == HTTP_BODY_LENGTH &&
	    req->content_length > route->max_body) {
		answer(s, 413, true);
		return;
	}
	s->s_req.limit = route->max_body;
	if (req->upgrade) {
		upgrade = http_find(req->headers, req->nheaders, "upgrade");
		/* Only WebSocket becomes a tunnel; h2c and the rest are refused
		 * by not forwarding them (RFC 9110 section 7.8). */
		if (upgrade != NULL &&
		    !http_list_has(upgrade->value, upgrade->value_len,
				   "websocket"))
			upgrade = NULL;
		s->s_tunnel_req = upgrade != NULL;
	}
	s->s_retryable = s->s_req_done && !s->s_tunnel_req &&
			 method_idempotent(req->method, req->method_len);
	if (route->realm != CONFIG_NO_REALM) {
		auth = request_auth(s, req);
		if (auth != AUTH_OK && auth != AUTH_CACHED &&
		    auth != AUTH_PENDING) {
			auth_refuse(s, auth, NULL);
			return;
		}
	}
	if (upstream_head(s, req, &conn, upgrade) == -1) {
		auth_cancel(s->s_auth.wait);
		s->s_auth.wait = NULL;
		answer(s, 500, true);
		return;
	}
	consume_head(s);
	if (auth == AUTH_PENDING) {
		/* auth_done() goes on, or timer_fired() gives up. */
		s->s_state = S_AUTH;
		timer_arm(s, s->s_gen->g_cfg->auth.check_timeout_ms);
		return;
	}
	request_forward(s);
}

/* The request is admitted: connect upstream and send it. */
static void
request_forward(struct session *s)
{
	enum metrics_upstream_error why;

	/* Keyed by user: known only now that the password was checked. */
	if (s->s_route->limiter != NULL && s->s_route->rate.by_user &&
	    s->s_authed &&
	    rate_limited(s, s->s_auth.user, strlen(s->s_auth.user)))
		return;
	s->s_up = s->s_gen->g_up[s->s_route->upstream];
	s->s_uc = upstream_get(s->s_up, NULL, s->s_reqid, &why);
	if (s->s_uc == NULL) {
		answer_upstream_error(s, why);
		return;
	}
	snprintf(s->s_server, sizeof(s->s_server), "%s", s->s_uc->uc_addr);
	s->s_state = S_PROXY;
	upstream_send(s);
	if (s->s_req_done)
		return; /* pipelined bytes wait in the input; see read_limit()
			 */
	conn_timeout(s->s_c, s->s_lc->body_timeout_ms);
	forward_request_body(s);
}

static void
forward_request_body(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_c),
			*out = conn_out(s->s_uc->uc_conn);
	size_t before = evbuffer_get_length(in);
	int r;

	r = rewrite_body_move(&s->s_req, in, out);
	s->s_bytes_in += before - evbuffer_get_length(in);
	conn_flush(s->s_uc->uc_conn);
	if (r < 0) {
		/* A chunk over max_body_size is refused before any of it
		 * went upstream; the upstream never sees the body end. */
		upstream_close(s->s_uc);
		s->s_uc = NULL;
		if (s->s_resp_head) {
			request_cut(s, METRICS_CUT_CLIENT_BODY);
			session_free(s, "bad request body mid-response");
			return;
		}
		s->s_keepalive = false;
		answer(s, r == -1 ? 400 : 413, true);
		return;
	}
	if (r == 1) {
		s->s_req_done = true;
		conn_timeout(s->s_c, 0);
		return;
	}
	if (evbuffer_get_length(out) >= PROXY_HIGH) {
		conn_read(s->s_c, false);
		conn_notify_drain(s->s_uc->uc_conn, PROXY_HIGH / 2);
	} else {
		conn_read(s->s_c, true); /* we took input: read on */
	}
}

/*
 * Writes the head the client gets for `res` into the client's output. -1
 * when out of memory: nothing was written, and the caller ends the session
 * rather than send a body without a head.
 */
static int
write_response_head(struct session *s, const struct http_response *res,
		    const struct rewrite_conn *conn, size_t len, bool tunnel)
{
	struct rewrite_response rw = {
	    .res = res,
	    .conn = conn,
	    .tunnel = tunnel,
	    .client_http10 = s->s_http10,
	    .keep_alive = s->s_keepalive,
	    .hsts_max_age = hsts_max_age(s),
	    .headers = response_policy(s),
	};
	size_t n;

	if (head_put(conn_out(s->s_c), rewrite_response_bound(&rw, len),
		     write_response, &rw, &n) == -1)
		return -1;
	s->s_bytes_out += n;
	return 0;
}

/* Moves what `from` received to `to`, with the same backpressure as
 * bodies: `from` stops reading while `to` holds PROXY_HIGH unsent bytes. */
static void
tunnel_pump(struct conn *from, struct conn *to)
{
	evbuffer_add_buffer(conn_out(to), conn_in(from));
	conn_flush(to);
	if (evbuffer_get_length(conn_out(to)) >= PROXY_HIGH) {
		conn_read(from, false);
		conn_notify_drain(to, PROXY_HIGH / 2);
	} else {
		conn_read(from, true);
	}
}

static void
tunnel_start(struct session *s)
{
	s->s_state = S_TUNNEL;
	s->s_keepalive = false;
	s->s_up_seconds = since(&s->s_tup);
	/* Account the handshake now; the tunnel's bytes are not a request. */
	request_account(s);
	conn_timeout(s->s_c, PROXY_TUNNEL_IDLE_S * 1000);
	conn_timeout(s->s_uc->uc_conn, PROXY_TUNNEL_IDLE_S * 1000);
	conn_read_limit(s->s_c, PROXY_HIGH);
	conn_read(s->s_c, true);
	tunnel_pump(s->s_uc->uc_conn, s->s_c);
	tunnel_pump(s->s_c, s->s_uc->uc_conn);
}

/* The upstream's answer cannot be passed on: 502, and its connection
 * closed. */
static void
response_refuse(struct session *s, const char *why)
{
	log_req(LOG_WARN, s->s_reqid,
		"upstream %s server %s: bad response to %s %s: %s", up_name(s),
		s->s_uc->uc_addr, s->s_method_str, s->s_path, why);
	upstream_failed(s->s_uc, METRICS_UPERR_INVALID);
	answer_upstream_error(s, METRICS_UPERR_INVALID);
}

/* Parses response heads at the front of the upstream input. Returns 1
 * when the final head was forwarded, 0 if more is needed, -1 if it ended
 * the request (answered, tunnel, or session gone). */
static int
response_head(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_uc->uc_conn);
	struct http_limits lim = {PROXY_MAX_RESPONSE_HEAD, 0,
				  PROXY_MAX_RESPONSE_FIELDS};
	struct http_response res = {.headers = s->s_w->w_fields};
	struct rewrite_conn conn;
	const char *why;

	for (;;) {
		const char *p;
		size_t n;
		int rc;
		bool tunnel = false;

		if (evbuffer_get_length(in) == 0)
			return 0;
		p = pullup_head(in, PROXY_MAX_RESPONSE_HEAD, &n);
		rc = http_parse_response(p, n, &lim, s->s_is_head, &res);
		if (rc == -2)
			return 0;
		if (rc == -1) {
			response_refuse(s, res.error);
			return -1;
		}
		if (rewrite_connection(res.headers, res.nheaders, NULL, 0,
				       &conn, &why) == -1) {
			response_refuse(s, why);
			return -1;
		}
		if (res.status == 101) {
			if (!s->s_tunnel_req) {
				response_refuse(s, "101 to a request that "
						   "asked for no upgrade");
				return -1;
			}
			tunnel = true;
		} else if (res.status < 200) {
			/* 100 Continue, 103 Early Hints: pass on to 1.1
			 * clients; the client may be waiting on it. */
			if (!s->s_http10) {
				if (write_response_head(s, &res, &conn,
							(size_t)rc,
							false) == -1)
					goto nomem;
				conn_flush(s->s_c);
			}
			evbuffer_drain(in, (size_t)rc);
			continue;
		} else {
			s->s_up_keepalive = res.keep_alive;
			rewrite_body_init(&s->s_resp, res.body,
					  res.content_length, !s->s_http10,
					  UINT64_MAX);
			/* A 1.1 client gets a close-delimited body chunked; a
			 * 1.0 client gets it, and a chunked one (we asked
			 * 1.0: it should not come), as bare data, ended by
			 * closing. */
			if (s->s_http10 && (res.body == HTTP_BODY_CLOSE ||
					    res.body == HTTP_BODY_CHUNKED))
				s->s_keepalive = false;
			if (!s->s_req_done)
				s->s_keepalive = false;
		}
		s->s_status = res.status;
		if (write_response_head(s, &res, &conn, (size_t)rc, tunnel) ==
		    -1)
			goto nomem;
		evbuffer_drain(in, (size_t)rc);
		s->s_resp_head = true;
		if (tunnel) {
			tunnel_start(s);
			return -1;
		}
		conn_read_limit(s->s_uc->uc_conn, PROXY_BODY_READ);
		return 1;
	}
nomem:
	request_cut(s, METRICS_CUT_INTERNAL);
	session_free(s, "out of memory writing a response head");
	return -1;
}

static void
forward_response_body(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_uc->uc_conn);
	struct evbuffer *out = conn_out(s->s_c);
	size_t before = evbuffer_get_length(out);
	int r;

	r = rewrite_body_move(&s->s_resp, in, out);
	s->s_bytes_out += evbuffer_get_length(out) - before;
	if (r == 1) {
		/* Counted and logged before its last bytes go: a client that
		 * has the whole response finds it in /metrics. */
		request_finish(s); /* flushes */
		return;
	}
	conn_flush(s->s_c);
	if (r == -1) {
		log_req(LOG_WARN, s->s_reqid,
			"upstream %s server %s: bad chunked framing in "
			"response to %s "
			"%s",
			up_name(s), s->s_uc->uc_addr, s->s_method_str,
			s->s_path);
		request_cut(s, METRICS_CUT_UPSTREAM_FRAMING);
		session_free(s, "upstream framing error");
		return;
	}
	if (evbuffer_get_length(out) >= PROXY_HIGH) {
		conn_read(s->s_uc->uc_conn,
			  false); /* see the top of the file */
		conn_notify_drain(s->s_c, PROXY_HIGH / 2);
		/* A client that stops reading must not hold the session and
		 * an upstream connection forever: timeouts.body, between two
		 * writes that make progress (nginx's send_timeout). */
		conn_timeout(s->s_c, s->s_lc->body_timeout_ms);
	} else {
		conn_read(s->s_uc->uc_conn, true); /* we took input: read on */
	}
}

/* The response is complete (or we answered): account, recycle, go on. */
static void
request_finish(struct session *s)
{
	if (s->s_uc != NULL) {
		if (s->s_up_seconds < 0)
			s->s_up_seconds = since(&s->s_tup);
		request_account(s);
		if (s->s_up_keepalive && s->s_req_done &&
		    evbuffer_get_length(conn_out(s->s_uc->uc_conn)) == 0)
			upstream_put(s->s_uc);
		else
			upstream_close(s->s_uc);
		s->s_uc = NULL;
	} else {
		request_account(s);
	}
	if (!s->s_keepalive || s->s_w->w_draining) {
		request_reset(s);
		session_close_after_flush(s);
		return;
	}
	request_reset(s);
	s->s_state = S_HEAD;
	conn_flush(s->s_c);
	conn_timeout(s->s_c, 0);
	timer_arm(s, current_listener(s)->keepalive_timeout_ms);
	read_limit(s);
	conn_read(s->s_c, true);
	if (evbuffer_get_length(conn_in(s->s_c)) > 0)
		event_active(s->s_kick, EV_TIMEOUT, 0);
}

static void
process_input(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_c);

	while (s->s_state == S_HEAD && evbuffer_get_length(in) > 0) {
		const struct config_listener *lc;
		struct http_limits lim;
		struct http_request req;
		const char *p;
		size_t n;
		int rc;

		if (!s->s_started) {
			/* The request's config, from its first byte on. */
			s->s_started = true;
			s->s_gen = wgen_acquire(s->s_w);
			s->s_lc = &s->s_gen->g_cfg->listeners[s->s_lidx];
			clock_gettime(CLOCK_MONOTONIC, &s->s_t0);
			timer_arm(s, s->s_lc->header_timeout_ms);
		}
		lc = s->s_lc;
		lim = (struct http_limits){lc->max_header_size,
					   lc->max_uri_size, HTTP_MAX_HEADERS};
		p = pullup_head(in, lc->max_header_size, &n);
		rc = http_parse_request(p, n, &lim, &req);
		if (rc == -2)
			return;
		if (rc == -1) {
			log_req(LOG_INFO, s->s_reqid,
				"client %s: bad request: %s", s->s_client,
				req.error);
			s->s_bytes_in = n;
			answer(s, req.status, true);
			return;
		}
		request_start(s, &req, (size_t)rc);
	}
}

static void
kick(evutil_socket_t fd, short what, void *arg)
{
	process_input(arg);
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	uint64_t now = conn_now_ms();

	if (s->s_deadline == 0)
		return;
	if (now < s->s_deadline) {
		struct timeval tv;

		s->s_fires_at = s->s_deadline;
		ms_to_tv(s->s_deadline - now, &tv);
		evtimer_add(s->s_timer, &tv);
		return;
	}
	s->s_deadline = 0;
	if (s->s_state == S_LINGER) {
		session_free(s, "linger done");
		return;
	}
	if (s->s_state == S_AUTH) {
		/* The verifier pool did not answer in auth.check_timeout; its
		 * late answer will be dropped. */
		log_req(LOG_WARN, s->s_reqid,
			"client %s: password check for %s %s timed out",
			s->s_client, s->s_method_str, s->s_path);
		auth_cancel(s->s_auth.wait);
		s->s_auth.wait = NULL;
		evbuffer_drain(s->s_head, evbuffer_get_length(s->s_head));
		auth_account(s, AUTH_UNAVAILABLE);
		auth_refuse(s, AUTH_UNAVAILABLE, "password check timed out");
		return;
	}
	if (s->s_state != S_HEAD)
		return;
	if (!s->s_started) {
		if (conn_tls_handshaking(s->s_c)) {
			metrics_tls_handshake(s->s_w->w_metrics, s->s_lidx,
					      METRICS_TLS_TIMEOUT);
			if (tls_log_allowed(s))
				log_info("client %s: TLS handshake timed out "
					 "on %s (logged once a minute per "
					 "client)",
					 s->s_client,
					 current_listener(s)->listen);
		}
		session_free(s, "idle timeout");
		return;
	}
	s->s_bytes_in = evbuffer_get_length(conn_in(s->s_c));
	answer(s, 408, true);
}

static void
client_read(struct conn *c, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = conn_in(c);

	switch (s->s_state) {
	case S_HEAD:
		process_input(s);
		break;
	case S_PROXY:
		if (!s->s_req_done && s->s_uc != NULL)
			forward_request_body(s);
		break; /* else pipelined bytes wait; see read_limit() */
	case S_TUNNEL:
		tunnel_pump(c, s->s_uc->uc_conn);
		break;
	case S_AUTH: /* bytes wait for the verdict; see read_limit() */
	case S_CLOSING:
		break;
	case S_LINGER:
		evbuffer_drain(in, evbuffer_get_length(in));
		break;
	}
}

/* The client's output drained to the mark we asked for. */
static void
client_drained(struct conn *c, void *arg)
{
	struct session *s = arg;

	switch (s->s_state) {
	case S_CLOSING:
		if (evbuffer_get_length(conn_out(c)) == 0)
			session_linger(s);
		else
			conn_notify_drain(c, 0);
		break;
	case S_PROXY:
		/* Take more of the response. */
		conn_timeout(c, 0);
		if (s->s_uc != NULL)
			conn_read(s->s_uc->uc_conn, true);
		break;
	case S_TUNNEL:
		conn_read(s->s_uc->uc_conn, true);
		break;
	default:
		break;
	}
}

static void
client_event(struct conn *c, int what, void *arg)
{
	struct session *s = arg;

	if (what & CONN_HANDSHAKE) {
		metrics_tls_handshake(s->s_w->w_metrics, s->s_lidx,
				      METRICS_TLS_OK);
		return;
	}
	if ((what & CONN_ERROR) && conn_tls_error(c) != NULL &&
	    conn_tls_handshaking(c)) {
		metrics_tls_handshake(s->s_w->w_metrics, s->s_lidx,
				      METRICS_TLS_FAILED);
		if (tls_log_allowed(s))
			log_info("client %s: TLS handshake failed on %s: %s "
				 "(logged once a minute per client)",
				 s->s_client, current_listener(s)->listen,
				 conn_tls_error(c));
		session_free(s, "TLS handshake failed");
		return;
	}
	if ((what & CONN_ERROR) && conn_tls_error(c) != NULL) {
		/* The handshake succeeded (and was counted); this is a
		 * protocol error on the established connection. */
		metrics_tls_error(s->s_w->w_metrics, s->s_lidx);
		if (tls_log_allowed(s))
			log_info("client %s: TLS error after the handshake on "
				 "%s: %s (logged once a minute per client)",
				 s->s_client, current_listener(s)->listen,
				 conn_tls_error(c));
		request_cut(s, METRICS_CUT_CLIENT_ABORTED);
		session_free(s, "TLS error");
		return;
	}
	if (s->s_state == S_PROXY && (what & CONN_TIMEOUT) && !s->s_req_done &&
	    !s->s_resp_head) {
		/* The body stalled longer than timeouts.body. */
		upstream_close(s->s_uc);
		s->s_uc = NULL;
		answer(s, 408, true);
		return;
	}
	if ((s->s_state == S_PROXY || s->s_state == S_AUTH) &&
	    (what & CONN_EOF) && s->s_req_done) {
		/* Half-close after a complete request: still answer it. */
		s->s_keepalive = false;
		return;
	}
	if (s->s_state == S_TUNNEL && (what & CONN_EOF)) {
		/* Pass the half-close on; the upstream's EOF ends the tunnel.
		 */
		conn_shutdown_write(s->s_uc->uc_conn);
		return;
	}
	if (s->s_state == S_PROXY && (what & CONN_TIMEOUT))
		log_req(LOG_INFO, s->s_reqid,
			"client %s: stopped reading the response to %s %s; "
			"closed after timeouts.body",
			s->s_client, s->s_method_str, s->s_path);
	request_cut(s, (what & CONN_TIMEOUT) ? METRICS_CUT_SEND_TIMEOUT
					     : METRICS_CUT_CLIENT_ABORTED);
	session_free(s, (what & CONN_TIMEOUT) ? "client timeout"
			: (what & CONN_EOF)   ? "client closed"
					      : "client error");
}

static void
up_read(struct conn *c, void *arg)
{
	struct session *s = arg;

	if (evbuffer_get_length(conn_in(c)) > 0)
		s->s_resp_bytes = true;
	if (s->s_state == S_TUNNEL) {
		tunnel_pump(c, s->s_c);
		return;
	}
	if (s->s_state != S_PROXY)
		return;
	if (!s->s_resp_head && response_head(s) != 1)
		return;
	forward_response_body(s);
}

/* The upstream took our bytes down to the mark: read more of the
 * request (or of the client's side of a tunnel). */
static void
up_drained(struct conn *c, void *arg)
{
	struct session *s = arg;

	if ((s->s_state == S_PROXY && !s->s_req_done) || s->s_state == S_TUNNEL)
		conn_read(s->s_c, true);
}

/* Retry a request that a reused connection dropped before answering, or
 * whose connect failed (it never left), once, on a fresh connection to
 * another server when there is one. False: not retried, s_uc unchanged. */
static bool
retry(struct session *s)
{
	struct upstream_conn *prev = s->s_uc;
	enum metrics_upstream_error why;

	if ((!prev->uc_reused && prev->uc_connected) || !s->s_retryable ||
	    s->s_retried || s->s_resp_bytes)
		return false;
	s->s_retried = true;
	s->s_uc = upstream_get(s->s_up, prev, s->s_reqid, &why);
	if (s->s_uc == NULL && why == METRICS_UPERR_UNHEALTHY) {
		s->s_uc = prev; /* no other server: the first failure stands */
		return false;
	}
	upstream_close(prev);
	if (s->s_uc == NULL) {
		answer_upstream_error(s, why);
		return true;
	}
	snprintf(s->s_server, sizeof(s->s_server), "%s", s->s_uc->uc_addr);
	upstream_send(s);
	return true;
}

static void
up_event(struct conn *c, int what, void *arg)
{
	struct session *s = arg;
	enum metrics_upstream_error why;

	if (what & CONN_CONNECTED) {
		upstream_connected(s->s_uc);
		conn_timeout(c, upstream_config(s->s_up)->read_timeout_ms);
		return;
	}
	if (s->s_state == S_TUNNEL) {
		upstream_close(s->s_uc);
		s->s_uc = NULL;
		session_close_after_flush(s);
		return;
	}
	if (s->s_resp_head) {
		if ((what & CONN_EOF) && s->s_resp.kind == HTTP_BODY_CLOSE) {
			struct evbuffer *out = conn_out(s->s_c);
			size_t before = evbuffer_get_length(out);

			rewrite_body_close(&s->s_resp, out);
			s->s_bytes_out += evbuffer_get_length(out) - before;
			s->s_up_keepalive = false;
			request_finish(s);
			return;
		}
		upstream_failed(s->s_uc, (what & CONN_TIMEOUT)
					     ? METRICS_UPERR_TIMEOUT
					     : METRICS_UPERR_RESET);
		log_req(LOG_WARN, s->s_reqid,
			"upstream %s server %s: %s in the middle of the "
			"response to %s "
			"%s",
			up_name(s), s->s_uc->uc_addr,
			(what & CONN_TIMEOUT) ? "timeout" : "closed",
			s->s_method_str, s->s_path);
		request_cut(s,
			    (what & CONN_TIMEOUT) ? METRICS_CUT_UPSTREAM_TIMEOUT
			    : (what & CONN_EOF) ? METRICS_CUT_UPSTREAM_TRUNCATED
						: METRICS_CUT_UPSTREAM_RESET);
		session_free(s, "upstream failed mid-response");
		return;
	}
	/* Bytes that never made a head, then the end: not HTTP. */
	why = (what & CONN_TIMEOUT)		     ? METRICS_UPERR_TIMEOUT
	      : !s->s_uc->uc_connected		     ? METRICS_UPERR_CONNECT
	      : s->s_resp_bytes && (what & CONN_EOF) ? METRICS_UPERR_INVALID
						     : METRICS_UPERR_RESET;
	/* A pooled connection closed before it answered is the keep-alive
	 * race (the server's own idle timeout), not the server failing. */
	if (!s->s_uc->uc_reused || why != METRICS_UPERR_RESET)
		upstream_failed(s->s_uc, why);
	if ((!(what & CONN_TIMEOUT) || !s->s_uc->uc_connected) && retry(s))
		return;
	log_req(
	    LOG_WARN, s->s_reqid,
	    "upstream %s server %s: %s before answering %s %s", up_name(s),
	    s->s_uc->uc_addr,
	    (what & CONN_TIMEOUT)
		? (s->s_uc->uc_connected ? "read timeout" : "connect timeout")
	    : !s->s_uc->uc_connected ? "connection refused"
	    : (what & CONN_EOF)	     ? "connection closed"
				     : "connection error",
	    s->s_method_str, s->s_path);
	answer_upstream_error(s, why);
}

int
proxy_accept(struct worker *w, unsigned lidx, evutil_socket_t fd,
	     const struct sockaddr *peer, socklen_t peerlen)
{
	struct session *s;
	int one = 1;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->s_w = w;
	s->s_lidx = lidx;
	s->s_up_seconds = -1;
	s->s_cut = METRICS_CUT_NONE;
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)peer)->sin_addr,
			  s->s_conn_client, sizeof(s->s_conn_client));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)peer)->sin6_addr,
			  s->s_conn_client, sizeof(s->s_conn_client));
	else
		strcpy(s->s_conn_client, "unknown");
	/* An address of no known family matches no list: a listener with
	 * an allow list refuses it. */
	if (config_addr16(peer, s->s_conn_addr16) == -1)
		memset(s->s_conn_addr16, 0xff, sizeof(s->s_conn_addr16));
	s->s_conn_peer = guard_key(peer);
	client_reset(s);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (current_listener(s)->tls) {
		SSL *ssl = tls_context_new_ssl(w->w_gen->g_cfg->tls_ctx);

		s->s_c =
		    ssl != NULL ? conn_accepted_tls(w->w_base, fd, ssl) : NULL;
	} else {
		s->s_c = conn_accepted(w->w_base, fd);
	}
	s->s_timer = evtimer_new(w->w_base, timer_fired, s);
	s->s_kick = event_new(w->w_base, -1, 0, kick, s);
	s->s_head = evbuffer_new();
	if (s->s_c == NULL || s->s_timer == NULL || s->s_kick == NULL ||
	    s->s_head == NULL) {
		if (s->s_c != NULL)
			conn_free(s->s_c);
		else
			close(fd);
		if (s->s_timer != NULL)
			event_free(s->s_timer);
		if (s->s_kick != NULL)
			event_free(s->s_kick);
		if (s->s_head != NULL)
			evbuffer_free(s->s_head);
		free(s);
		return -1;
	}
	TAILQ_INSERT_TAIL(&w->w_sessions, s, s_entry);
	w->w_nsessions++;
	metrics_connection(w->w_metrics, lidx, 1, true);
	conn_setcb(s->s_c, client_read, client_drained, client_event, s);
	s->s_state = S_HEAD;
	/* The first request's head is due within the header timeout of the
	 * accept; keepalive_timeout only spaces requests on a used connection.
	 */
	timer_arm(s, current_listener(s)->header_timeout_ms);
	read_limit(s);
	conn_read(s->s_c, true);
	return 0;
fail:
	close(fd);
	return -1;
}

void
proxy_drain_all(struct worker *w)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&w->w_sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, s_entry);
		if (s->s_state == S_HEAD && !s->s_started)
			session_free(s, "draining");
		else
			s->s_keepalive = false;
	}
}

/* After the 503: discard what the client sent (so closing does not reset
 * the connection before the answer is read), then close. */
static void
refuse_done(evutil_socket_t fd, short what, void *arg)
{
	char sink[4096];

	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	close(fd);
}

void
proxy_refuse(struct worker *w, evutil_socket_t fd)
{
	struct timeval tv = {1, 0};

	/* A fresh socket's send buffer takes this whole; never blocks. */
	if (send(fd, overload_busy, overload_busy_len,
		 MSG_DONTWAIT | MSG_NOSIGNAL) == -1 ||
	    shutdown(fd, SHUT_WR) == -1 ||
	    event_base_once(w->w_base, fd, EV_READ, refuse_done, NULL, &tv) ==
		-1)
		close(fd);
}
