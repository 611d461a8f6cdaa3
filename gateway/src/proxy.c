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
 * notification at PROXY_HIGH / 2 resumes it. Inputs are capped at
 * PROXY_HIGH too (conn_read_limit), so about 2 * PROXY_HIGH sits in memory
 * per direction, whatever the body size.
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
#include "router.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

#define PROXY_HIGH (64 * 1024)
#define PROXY_MAX_RESPONSE_HEAD (64 * 1024)
#define PROXY_LINGER_MS 2000
#define PROXY_TUNNEL_IDLE_S 3600

/* S_AUTH: the request head is parsed and its upstream head built; a
 * password check runs on the verifier pool and the client's further bytes
 * wait unread. */
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
	char s_client[INET6_ADDRSTRLEN];
	uint64_t s_peer;	 /* guard_key() of the client's address */
	struct evbuffer *s_head; /* upstream request head, kept for a retry */

	/* The current request; reset by request_reset(). */
	struct wgen *s_gen;
	const struct config_listener *s_lc;
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
	enum http_body s_req_body;
	uint64_t s_req_left;
	struct http_chunked s_req_chunk;
	bool s_resp_head;  /* the response head has been forwarded */
	bool s_resp_bytes; /* a byte of the response arrived from upstream */
	enum http_body s_resp_body;
	uint64_t s_resp_left;
	struct http_chunked s_resp_chunk;
	bool s_up_keepalive;
	int s_status;
	double s_up_seconds; /* -1: no upstream took part */
	uint64_t s_bytes_in, s_bytes_out;
	enum metrics_method s_method;
	char s_method_str[16];
	char s_path[512];
	char s_reqid[129];
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

static void
request_reset(struct session *s)
{
	if (s->s_gen != NULL)
		wgen_release(s->s_gen);
	s->s_gen = NULL;
	s->s_route = NULL;
	s->s_up = NULL;
	s->s_started = false;
	s->s_retried = false;
	s->s_retryable = false;
	s->s_tunnel_req = false;
	s->s_is_head = false;
	s->s_req_done = false;
	s->s_req_body = HTTP_BODY_NONE;
	s->s_resp_head = false;
	s->s_resp_bytes = false;
	s->s_status = 0;
	s->s_up_seconds = -1;
	s->s_bytes_in = s->s_bytes_out = 0;
	s->s_method = METRICS_OTHER;
	s->s_method_str[0] = '\0';
	s->s_path[0] = '\0';
	s->s_reqid[0] = '\0';
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
	if (cfg->metrics)
		metrics_request(s->s_w->w_metrics, id, s->s_method, s->s_status,
				secs, s->s_up_seconds, s->s_bytes_in,
				s->s_bytes_out);
	if (!cfg->access_log)
		return;
	accesslog_write(&(struct accesslog_entry){
	    .request_id = s->s_reqid,
	    .client = s->s_client,
	    .method = s->s_method_str,
	    .path = s->s_path,
	    .status = s->s_status,
	    .bytes_in = s->s_bytes_in,
	    .bytes_out = s->s_bytes_out,
	    .duration = secs,
	    .upstream_duration = s->s_up_seconds,
	    .route = s->s_route != NULL ? s->s_route->name : NULL,
	    .upstream = s->s_uc != NULL ? s->s_uc->uc_addr : NULL,
	    .tls = conn_tls_version(s->s_c),
	    .user = s->s_authed ? s->s_auth.user : NULL,
	});
}

/* The Strict-Transport-Security field for TLS listeners when configured
 * (RFC 6797); "" otherwise. */
static const char *
hsts_field(struct session *s, char *buf, size_t len)
{
	const struct config *cfg = s->s_w->w_gen->g_cfg;

	if (!current_listener(s)->tls || cfg->tls.hsts_max_age_s == 0)
		return "";
	snprintf(buf, len, "Strict-Transport-Security: max-age=%llu\r\n",
		 (unsigned long long)cfg->tls.hsts_max_age_s);
	return buf;
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

/* Answers with a body of "STATUS REASON: detail" (detail may be NULL). */
static void
answer_body(struct session *s, int status, const char *extra,
	    const char *detail, bool close)
{
	struct evbuffer *out = conn_out(s->s_c);
	char body[256], hsts[80];
	int blen;
	size_t before = evbuffer_get_length(out);

	if (!s->s_req_done && s->s_req_body != HTTP_BODY_NONE)
		close = true;
	if (s->s_w->w_draining)
		close = true;
	blen = snprintf(body, sizeof(body), "%d %s%s%s\n", status,
			http_reason(status), detail != NULL ? ": " : "",
			detail != NULL ? detail : "");
	if (blen >= (int)sizeof(body))
		blen = (int)sizeof(body) - 1;
	evbuffer_add_printf(
	    out,
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: %d\r\n%s%s%s\r\n",
	    status, http_reason(status), blen,
	    close ? "Connection: close\r\n"
		  : (s->s_http10 ? "Connection: keep-alive\r\n" : ""),
	    hsts_field(s, hsts, sizeof(hsts)), extra != NULL ? extra : "");
	if (!s->s_is_head)
		evbuffer_add(out, body, (size_t)blen);
	s->s_status = status;
	s->s_bytes_out += evbuffer_get_length(out) - before;
	s->s_resp_head = true;
	s->s_keepalive = s->s_keepalive && !close;
	request_finish(s);
}

/*
 * Answers a request ourselves. `close` ends the connection after the
 * answer; it is forced when the request's body has not been read.
 */
static void
answer(struct session *s, int status, const char *extra, bool close)
{
	answer_body(s, status, extra, NULL, close);
}

/* Where an upstream failure maps to: 504 for time, 502 for the rest. */
static void
answer_upstream_error(struct session *s, enum metrics_upstream_error why)
{
	metrics_upstream_error(s->s_w->w_metrics, s->s_route->metric_id, why);
	upstream_close(s->s_uc);
	s->s_uc = NULL;
	answer(s, why == METRICS_UPERR_TIMEOUT ? 504 : 502, NULL, false);
}

static bool
method_idempotent(const char *m, size_t len)
{
	static const char *const idem[] = {"GET",    "HEAD",  "OPTIONS",
					   "DELETE", "TRACE", "PUT"};
	size_t i;

	for (i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
		if (strlen(idem[i]) == len && memcmp(idem[i], m, len) == 0)
			return true;
	return false;
}

/*
 * Head writer: a head is written into space reserved in an evbuffer and
 * committed once, instead of an evbuffer_add per piece. `cap` is an upper
 * bound of the head's size computed by the caller.
 */
struct headw {
	struct evbuffer *hw_b;
	struct evbuffer_iovec hw_v;
	size_t hw_len;
};

static int
headw_begin(struct headw *w, struct evbuffer *b, size_t cap)
{
	w->hw_b = b;
	w->hw_len = 0;
	return evbuffer_reserve_space(b, (ev_ssize_t)cap, &w->hw_v, 1) == 1
		   ? 0
		   : -1;
}

static void
headw_put(struct headw *w, const void *p, size_t n)
{
	if (n > w->hw_v.iov_len - w->hw_len)
		n = w->hw_v.iov_len - w->hw_len; /* cannot happen: cap holds */
	memcpy((char *)w->hw_v.iov_base + w->hw_len, p, n);
	w->hw_len += n;
}

#define headw_lit(w, lit) headw_put((w), (lit), sizeof(lit) - 1)

static void
headw_field(struct headw *w, const char *name, size_t nlen, const char *v,
	    size_t vlen)
{
	headw_put(w, name, nlen);
	headw_lit(w, ": ");
	headw_put(w, v, vlen);
	headw_lit(w, "\r\n");
}

static void
headw_end(struct headw *w)
{
	w->hw_v.iov_len = w->hw_len;
	evbuffer_commit_space(w->hw_b, &w->hw_v, 1);
}

struct name {
	const char *n_str;
	size_t n_len;
};
#define NAME(lit)                                                              \
	{                                                                      \
		lit, sizeof(lit) - 1                                           \
	}

static bool
name_in(const struct http_header *h, const struct name *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (set[i].n_len == h->name_len &&
		    strncasecmp(set[i].n_str, h->name, h->name_len) == 0)
			return true;
	return false;
}

/* Hop-by-hop (RFC 9110 section 7.6.1) and the ones the gateway sets. */
static const struct name request_drop[] = {
    NAME("connection"),		NAME("keep-alive"),
    NAME("proxy-connection"),	NAME("te"),
    NAME("transfer-encoding"),	NAME("upgrade"),
    NAME("http2-settings"),	NAME("x-forwarded-for"),
    NAME("x-forwarded-proto"),	NAME("x-forwarded-host"),
    NAME("x-real-ip"),		NAME("x-request-id"),
    NAME("proxy-authorization")};

/* Hop-by-hop in a response; a tunnel keeps Connection and Upgrade. */
static const struct name response_drop[] = {
    NAME("keep-alive"), NAME("proxy-connection"), NAME("te"),
    NAME("transfer-encoding")};
static const struct name response_drop_unless_tunnel[] = {NAME("connection"),
							  NAME("upgrade")};

/*
 * Whether a Connection field names options beyond close, keep-alive and
 * upgrade (whose fields are dropped anyway): only then must every other
 * field be looked up in it (RFC 9110 section 7.6.1).
 */
static bool
connection_names_more(const struct http_header *conn)
{
	const char *p, *end;

	if (conn == NULL)
		return false;
	p = conn->value;
	end = p + conn->value_len;
	while (p < end) {
		const char *tok, *q;
		size_t n;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		tok = p;
		while (p < end && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		n = (size_t)(p - tok);
		for (q = p; q < end && (*q == ' ' || *q == '\t'); q++)
			;
		if (n == 0)
			continue;
		if (!((n == 5 && strncasecmp(tok, "close", 5) == 0) ||
		      (n == 10 && strncasecmp(tok, "keep-alive", 10) == 0) ||
		      (n == 7 && strncasecmp(tok, "upgrade", 7) == 0)))
			return true;
	}
	return false;
}

static bool
named_by_connection(const struct http_header *h, const struct http_header *conn)
{
	char name[128];

	if (h->name_len >= sizeof(name))
		return false;
	memcpy(name, h->name, h->name_len);
	name[h->name_len] = '\0';
	return http_list_has(conn->value, conn->value_len, name);
}

/*
 * Writes the request head as the upstream gets it into s->s_head. `len` is
 * the size of the client's head: every forwarded piece comes from it, and
 * what the gateway adds is bounded by the extra room.
 */
static int
build_upstream_head(struct session *s, const struct http_request *req,
		    size_t len, const struct http_header *upgrade)
{
	const struct http_header *conn =
	    http_find(req->headers, req->nheaders, "connection");
	bool conn_more = connection_names_more(conn);
	const struct config_route *r = s->s_route;
	size_t client_len = strlen(s->s_client);
	const char *path = req->path;
	size_t plen = req->path_len, i;
	bool drop_authz = r->realm != CONFIG_NO_REALM && !r->pass_authorization;
	struct headw w;

	if (headw_begin(&w, s->s_head,
			len + 512 + 2 * client_len + sizeof(s->s_reqid) +
			    req->host_len + r->user_header_len +
			    sizeof(s->s_auth.user) +
			    (upgrade != NULL ? upgrade->value_len : 0)) == -1)
		return -1;
	headw_put(&w, req->method, req->method_len);
	headw_lit(&w, " ");
	if (s->s_route->strip_prefix) {
		size_t cut = s->s_route->path_len;

		/* Keep the '/' that ends the prefix, or add one. */
		if (cut > 0 && s->s_route->path[cut - 1] == '/')
			cut--;
		path += cut;
		plen -= cut;
		if (plen == 0 || path[0] != '/')
			headw_lit(&w, "/");
	}
	headw_put(&w, path, plen);
	if (req->minor == 0)
		headw_lit(&w, " HTTP/1.0\r\n");
	else
		headw_lit(&w, " HTTP/1.1\r\n");
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (name_in(h, request_drop,
			    sizeof(request_drop) / sizeof(request_drop[0])) ||
		    (conn_more && named_by_connection(h, conn)))
			continue;
		/* Credentials stay here; the user header is only ever ours. */
		if ((drop_authz && h->name_len == 13 &&
		     strncasecmp(h->name, "authorization", 13) == 0) ||
		    (r->user_header != NULL &&
		     h->name_len == r->user_header_len &&
		     strncasecmp(h->name, r->user_header, h->name_len) == 0))
			continue;
		headw_field(&w, h->name, h->name_len, h->value, h->value_len);
	}
	headw_field(&w, "X-Forwarded-For", 15, s->s_client, client_len);
	headw_field(&w, "X-Real-IP", 9, s->s_client, client_len);
	if (s->s_lc->tls)
		headw_lit(&w, "X-Forwarded-Proto: https\r\n");
	else
		headw_lit(&w, "X-Forwarded-Proto: http\r\n");
	if (req->host != NULL)
		headw_field(&w, "X-Forwarded-Host", 16, req->host,
			    req->host_len);
	headw_field(&w, "X-Request-Id", 12, s->s_reqid, strlen(s->s_reqid));
	if (r->user_header != NULL && s->s_auth.user[0] != '\0')
		headw_field(&w, r->user_header, r->user_header_len,
			    s->s_auth.user, strlen(s->s_auth.user));
	if (req->body == HTTP_BODY_CHUNKED)
		headw_lit(&w, "Transfer-Encoding: chunked\r\n");
	if (upgrade != NULL) {
		headw_lit(&w, "Connection: upgrade\r\n");
		headw_field(&w, "Upgrade", 7, upgrade->value,
			    upgrade->value_len);
	} else if (req->minor == 0) {
		headw_lit(&w, "Connection: keep-alive\r\n");
	}
	headw_lit(&w, "\r\n");
	headw_end(&w);
	return 0;
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
	conn_read_limit(uc, PROXY_HIGH);
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
 * /healthz, answered here with 200 for load balancers' checks.
 */
static void
redirect_https(struct session *s, const struct http_request *req, size_t len)
{
	char loc[9000];
	size_t hlen = req->host_len;
	const char *host = req->host, *colon;
	bool healthz =
	    req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0;

	/* req points into the input: everything is read before the drain. */
	if (!healthz && host != NULL && hlen > 0) {
		/* Drop the port: after "]" for an IPv6 literal, else after
		 * the last ":". */
		if (host[0] == '[') {
			const char *end = memchr(host, ']', hlen);

			if (end != NULL)
				hlen = (size_t)(end - host) + 1;
		} else if ((colon = memrchr(host, ':', hlen)) != NULL) {
			hlen = (size_t)(colon - host);
		}
		if (s->s_lc->https_port == 443)
			snprintf(loc, sizeof(loc),
				 "Location: https://%.*s%.*s\r\n", (int)hlen,
				 host, (int)req->path_len, req->path);
		else
			snprintf(loc, sizeof(loc),
				 "Location: https://%.*s:%u%.*s\r\n", (int)hlen,
				 host, s->s_lc->https_port, (int)req->path_len,
				 req->path);
	}
	evbuffer_drain(conn_in(s->s_c), len);
	if (healthz)
		answer(s, 200, NULL, false);
	else if (host == NULL || req->host_len == 0)
		answer(s, 400, NULL, true);
	else
		answer(s, 308, loc, s->s_req_body != HTTP_BODY_NONE);
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
auth_refuse(struct session *s, enum auth_result r)
{
	const struct config_realm *cr = route_realm(s);
	char extra[128], detail[128];

	OPENSSL_cleanse(s->s_auth.user, sizeof(s->s_auth.user));
	switch (r) {
	case AUTH_THROTTLED:
		snprintf(extra, sizeof(extra), "Retry-After: %u\r\n",
			 (unsigned)s->s_auth.retry_after);
		answer(s, 429, extra, false);
		return;
	case AUTH_UNAVAILABLE:
		if (auth_realm_users(cr->auth) == 0)
			snprintf(detail, sizeof(detail),
				 "realm \"%s\" has no credentials", cr->name);
		else
			snprintf(detail, sizeof(detail),
				 "too many password checks waiting");
		answer_body(s, 503, "Retry-After: 1\r\n", detail, false);
		return;
	default:
		/* RFC 7617 section 2.1: the charset parameter. */
		snprintf(extra, sizeof(extra),
			 "WWW-Authenticate: Basic realm=\"%s\", "
			 "charset=\"UTF-8\"\r\n",
			 cr->name);
		answer(s, 401, extra, false);
		return;
	}
}

/* A check from the verifier pool came back (this worker's loop). */
static void
auth_done(void *arg, enum auth_result r)
{
	struct session *s = arg;

	s->s_auth.wait = NULL;
	auth_account(s, r);
	if (r != AUTH_OK) {
		evbuffer_drain(s->s_head, evbuffer_get_length(s->s_head));
		auth_refuse(s, r);
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

/* A complete request head of `len` bytes is at the front of the input. */
static void
request_start(struct session *s, struct http_request *req, size_t len)
{
	struct evbuffer *in = conn_in(s->s_c);
	const struct http_header *upgrade = NULL;
	const struct config_route *route;
	enum auth_result auth = AUTH_OK;
	char loc[600];

	timer_off(s);
	s->s_gen = wgen_acquire(s->s_w);
	s->s_lc = &s->s_gen->g_cfg->listeners[s->s_lidx];
	s->s_http10 = req->minor == 0;
	s->s_keepalive = req->keep_alive && !s->s_w->w_draining;
	s->s_is_head =
	    req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	s->s_method = metrics_method(req->method, req->method_len);
	copy_trunc(s->s_method_str, sizeof(s->s_method_str), req->method,
		   req->method_len);
	copy_trunc(s->s_path, sizeof(s->s_path), req->path, req->path_len);
	s->s_req_body = req->body;
	s->s_req_left = req->content_length;
	s->s_req_done =
	    req->body == HTTP_BODY_NONE ||
	    (req->body == HTTP_BODY_LENGTH && req->content_length == 0);
	http_chunked_init(&s->s_req_chunk);
	s->s_bytes_in = len;
	request_id_make(s, req);

	if (s->s_lc->redirect_https) {
		redirect_https(s, req, len);
		return;
	}
	switch (router_match(s->s_lc, req->path, req->path_len, &route)) {
	case ROUTER_NONE:
		evbuffer_drain(in, len);
		answer(s, 404, NULL, false);
		return;
	case ROUTER_REDIRECT: {
		const char *q = memchr(req->path, '?', req->path_len);

		s->s_route = route;
		snprintf(loc, sizeof(loc), "Location: %s%.*s\r\n", route->path,
			 q != NULL
			     ? (int)(req->path_len - (size_t)(q - req->path))
			     : 0,
			 q != NULL ? q : "");
		evbuffer_drain(in, len);
		answer(s, 301, loc, false);
		return;
	}
	case ROUTER_MATCH:
		break;
	}
	s->s_route = route;
	if (req->body == HTTP_BODY_LENGTH &&
	    req->content_length > route->max_body) {
		evbuffer_drain(in, len);
		answer(s, 413, NULL, true);
		return;
	}
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
			evbuffer_drain(in, len);
			auth_refuse(s, auth);
			return;
		}
	}
	if (build_upstream_head(s, req, len, upgrade) == -1) {
		evbuffer_drain(in, len);
		auth_cancel(s->s_auth.wait);
		s->s_auth.wait = NULL;
		answer(s, 500, NULL, true);
		return;
	}
	evbuffer_drain(in, len);
	if (auth == AUTH_PENDING) {
		s->s_state = S_AUTH; /* auth_done() goes on */
		return;
	}
	request_forward(s);
}

/* The request is admitted: connect upstream and send it. */
static void
request_forward(struct session *s)
{
	enum metrics_upstream_error why;

	s->s_up = s->s_gen->g_up[s->s_route->upstream];
	s->s_uc = upstream_get(s->s_up, false, &why);
	if (s->s_uc == NULL) {
		answer_upstream_error(s, why);
		return;
	}
	s->s_state = S_PROXY;
	upstream_send(s);
	if (s->s_req_done)
		return; /* pipelined bytes wait in the input; see read_limit()
			 */
	conn_timeout(s->s_c, s->s_lc->body_timeout_ms);
	forward_request_body(s);
}

/*
 * Moves body bytes from `in` to `out` per the framing; returns 1 when the
 * body is complete, 0 when more is needed, -1 on a framing error.
 */
static int
move_body(struct evbuffer *in, struct evbuffer *out, enum http_body kind,
	  uint64_t *left, struct http_chunked *ch, uint64_t *moved)
{
	size_t avail;

	while ((avail = evbuffer_get_length(in)) > 0) {
		if (kind == HTTP_BODY_LENGTH) {
			size_t n = avail < *left ? avail : (size_t)*left;

			evbuffer_remove_buffer(in, out, n);
			*moved += n;
			*left -= n;
			return *left == 0;
		}
		if (kind == HTTP_BODY_CLOSE) {
			evbuffer_add_buffer(out, in);
			*moved += avail;
			return 0;
		}
		if (ch->remaining > 0) {
			size_t n = avail < ch->remaining
				       ? avail
				       : (size_t)ch->remaining;

			evbuffer_remove_buffer(in, out, n);
			http_chunked_skip(ch, n);
			*moved += n;
		} else {
			struct evbuffer_iovec v;
			ssize_t r;

			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return 0;
			r = http_chunked_scan(ch, v.iov_base, v.iov_len);
			if (r == -1)
				return -1;
			evbuffer_remove_buffer(in, out, (size_t)r);
			*moved += (size_t)r;
		}
		if (ch->done)
			return 1;
	}
	return kind == HTTP_BODY_LENGTH && *left == 0;
}

static void
forward_request_body(struct session *s)
{
	struct evbuffer *out = conn_out(s->s_uc->uc_conn);
	int r;

	r = move_body(conn_in(s->s_c), out, s->s_req_body, &s->s_req_left,
		      &s->s_req_chunk, &s->s_bytes_in);
	conn_flush(s->s_uc->uc_conn);
	if (r == -1 || (s->s_req_body == HTTP_BODY_CHUNKED &&
			s->s_req_chunk.total > s->s_route->max_body)) {
		upstream_close(s->s_uc);
		s->s_uc = NULL;
		if (s->s_resp_head) {
			session_free(s, "bad request body mid-response");
			return;
		}
		s->s_keepalive = false;
		answer(s, r == -1 ? 400 : 413, NULL, true);
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

/* Writes the head the client gets for `res` (whose own head took `len`
 * bytes upstream) into the client's output. */
static void
write_response_head(struct session *s, const struct http_response *res,
		    size_t len, bool tunnel)
{
	const struct http_header *conn =
	    http_find(res->headers, res->nheaders, "connection");
	bool conn_more = !tunnel && connection_names_more(conn);
	char status[4] = {(char)('0' + res->status / 100),
			  (char)('0' + res->status / 10 % 10),
			  (char)('0' + res->status % 10), ' '};
	struct headw w;
	size_t i;

	if (headw_begin(&w, conn_out(s->s_c), len + 128) == -1)
		return; /* out of memory: the client sees a truncated answer */
	headw_lit(&w, "HTTP/1.1 ");
	headw_put(&w, status, 4);
	headw_put(&w, res->reason, res->reason_len);
	headw_lit(&w, "\r\n");
	for (i = 0; i < res->nheaders; i++) {
		const struct http_header *h = &res->headers[i];

		if (name_in(h, response_drop,
			    sizeof(response_drop) / sizeof(response_drop[0])) ||
		    (!tunnel &&
		     name_in(h, response_drop_unless_tunnel,
			     sizeof(response_drop_unless_tunnel) /
				 sizeof(response_drop_unless_tunnel[0]))) ||
		    (conn_more && named_by_connection(h, conn)))
			continue;
		headw_field(&w, h->name, h->name_len, h->value, h->value_len);
	}
	if (!tunnel && res->status >= 200) {
		char hsts[80];
		const char *f = hsts_field(s, hsts, sizeof(hsts));

		headw_put(&w, f, strlen(f));
		if (res->body == HTTP_BODY_CHUNKED)
			headw_lit(&w, "Transfer-Encoding: chunked\r\n");
		if (!s->s_keepalive)
			headw_lit(&w, "Connection: close\r\n");
		else if (s->s_http10)
			headw_lit(&w, "Connection: keep-alive\r\n");
	}
	headw_lit(&w, "\r\n");
	s->s_bytes_out += w.hw_len;
	headw_end(&w);
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

/* Parses response heads at the front of the upstream input. Returns 1
 * when the final head was forwarded, 0 if more is needed, -1 if it ended
 * the request (answered or tunnel). */
static int
response_head(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_uc->uc_conn);
	struct http_limits lim = {PROXY_MAX_RESPONSE_HEAD, 0, HTTP_MAX_HEADERS};
	struct http_response res;

	for (;;) {
		const char *p;
		size_t n;
		int rc;

		if (evbuffer_get_length(in) == 0)
			return 0;
		p = pullup_head(in, PROXY_MAX_RESPONSE_HEAD, &n);
		rc = http_parse_response(p, n, &lim, s->s_is_head, &res);
		if (rc == -2)
			return 0;
		if (rc == -1) {
			log_warn("upstream %s: bad response to %s %s: %s",
				 s->s_uc->uc_addr, s->s_method_str, s->s_path,
				 res.error);
			upstream_close(s->s_uc);
			s->s_uc = NULL;
			answer(s, 502, NULL, false);
			return -1;
		}
		if (res.status == 101) {
			if (!s->s_tunnel_req) {
				upstream_close(s->s_uc);
				s->s_uc = NULL;
				answer(s, 502, NULL, false);
				return -1;
			}
			s->s_status = 101;
			write_response_head(s, &res, (size_t)rc, true);
			evbuffer_drain(in, (size_t)rc);
			s->s_resp_head = true;
			tunnel_start(s);
			return -1;
		}
		if (res.status < 200) {
			/* 100 Continue, 103 Early Hints: pass on to 1.1 clients
			 */
			if (!s->s_http10) {
				write_response_head(s, &res, (size_t)rc, false);
				conn_flush(
				    s->s_c); /* the client may wait on it */
			}
			evbuffer_drain(in, (size_t)rc);
			continue;
		}
		s->s_status = res.status;
		s->s_resp_body = res.body;
		s->s_resp_left = res.content_length;
		http_chunked_init(&s->s_resp_chunk);
		s->s_up_keepalive = res.keep_alive;
		/* A close-delimited body can only end by closing; a 1.0 client
		 * cannot read chunked (we asked 1.0, so it should not come). */
		if (res.body == HTTP_BODY_CLOSE ||
		    (s->s_http10 && res.body == HTTP_BODY_CHUNKED))
			s->s_keepalive = false;
		if (!s->s_req_done)
			s->s_keepalive = false;
		write_response_head(s, &res, (size_t)rc, false);
		evbuffer_drain(in, (size_t)rc);
		s->s_resp_head = true;
		return 1;
	}
}

static void
forward_response_body(struct session *s)
{
	struct evbuffer *in = conn_in(s->s_uc->uc_conn);
	struct evbuffer *out = conn_out(s->s_c);
	int r;

	if (s->s_resp_body == HTTP_BODY_NONE) {
		request_finish(s);
		return;
	}
	r = move_body(in, out, s->s_resp_body, &s->s_resp_left,
		      &s->s_resp_chunk, &s->s_bytes_out);
	conn_flush(s->s_c);
	if (r == -1) {
		log_warn("upstream %s: bad chunked framing in response to %s "
			 "%s",
			 s->s_uc->uc_addr, s->s_method_str, s->s_path);
		session_free(s, "upstream framing error");
		return;
	}
	if (r == 1) {
		request_finish(s);
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
		const struct config_listener *lc = current_listener(s);
		struct http_limits lim = {lc->max_header_size, lc->max_uri_size,
					  HTTP_MAX_HEADERS};
		struct http_request req;
		const char *p;
		size_t n;
		int rc;

		if (!s->s_started) {
			s->s_started = true;
			clock_gettime(CLOCK_MONOTONIC, &s->s_t0);
			timer_arm(s, lc->header_timeout_ms);
		}
		p = pullup_head(in, lc->max_header_size, &n);
		rc = http_parse_request(p, n, &lim, &req);
		if (rc == -2)
			return;
		if (rc == -1) {
			log_msg(LOG_INFO, "client %s: bad request: %s",
				s->s_client, req.error);
			s->s_gen = wgen_acquire(s->s_w);
			s->s_bytes_in = n;
			answer(s, req.status, NULL, true);
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
	s->s_gen = wgen_acquire(s->s_w);
	s->s_bytes_in = evbuffer_get_length(conn_in(s->s_c));
	answer(s, 408, NULL, true);
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
	if ((what & CONN_ERROR) && conn_tls_error(c) != NULL) {
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
	if (s->s_state == S_PROXY && (what & CONN_TIMEOUT) && !s->s_req_done &&
	    !s->s_resp_head) {
		/* The body stalled longer than timeouts.body. */
		upstream_close(s->s_uc);
		s->s_uc = NULL;
		answer(s, 408, NULL, true);
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
		log_info("client %s: stopped reading the response to %s %s; "
			 "closed after timeouts.body",
			 s->s_client, s->s_method_str, s->s_path);
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

/* Retry a request that a reused connection dropped before answering. */
static bool
retry(struct session *s)
{
	enum metrics_upstream_error why;

	if (!s->s_uc->uc_reused || !s->s_retryable || s->s_retried ||
	    s->s_resp_bytes)
		return false;
	s->s_retried = true;
	upstream_close(s->s_uc);
	s->s_uc = upstream_get(s->s_up, true, &why);
	if (s->s_uc == NULL) {
		answer_upstream_error(s, why);
		return true;
	}
	upstream_send(s);
	return true;
}

static void
up_event(struct conn *c, int what, void *arg)
{
	struct session *s = arg;

	if (what & CONN_CONNECTED) {
		s->s_uc->uc_connected = true;
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
		if ((what & CONN_EOF) && s->s_resp_body == HTTP_BODY_CLOSE) {
			s->s_up_keepalive = false;
			request_finish(s);
			return;
		}
		log_warn("upstream %s: %s in the middle of the response to %s "
			 "%s",
			 s->s_uc->uc_addr,
			 (what & CONN_TIMEOUT) ? "timeout" : "closed",
			 s->s_method_str, s->s_path);
		session_free(s, "upstream failed mid-response");
		return;
	}
	if (!(what & CONN_TIMEOUT) && retry(s))
		return;
	log_warn(
	    "upstream %s: %s before answering %s %s", s->s_uc->uc_addr,
	    (what & CONN_TIMEOUT)
		? (s->s_uc->uc_connected ? "read timeout" : "connect timeout")
	    : !s->s_uc->uc_connected ? "connection refused"
	    : (what & CONN_EOF)	     ? "connection closed"
				     : "connection error",
	    s->s_method_str, s->s_path);
	answer_upstream_error(s, (what & CONN_TIMEOUT) ? METRICS_UPERR_TIMEOUT
				 : !s->s_uc->uc_connected
				     ? METRICS_UPERR_CONNECT
				     : METRICS_UPERR_RESET);
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
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)peer)->sin_addr,
			  s->s_client, sizeof(s->s_client));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)peer)->sin6_addr,
			  s->s_client, sizeof(s->s_client));
	else
		strcpy(s->s_client, "unknown");
	s->s_peer = guard_key(peer);
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
	static const char busy[] =
	    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: 35\r\nConnection: close\r\n"
	    "\r\n503 Service Unavailable (too busy)\n";
	struct timeval tv = {1, 0};

	/* A fresh socket's send buffer takes this whole; never blocks. */
	if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) ==
		-1 ||
	    shutdown(fd, SHUT_WR) == -1 ||
	    event_base_once(w->w_base, fd, EV_READ, refuse_done, NULL, &tv) ==
		-1)
		close(fd);
}
