/*
 * test_rewrite.c - the heads and bodies the gateway sends on, through
 * rewrite.h: byte-exact heads written from parsed messages, the drop rules,
 * the Connection options refused, answers that never clip, and chunked
 * bodies framed anew however their bytes arrive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "http.h"
#include "rewrite.h"

static const struct http_limits lim = {
    .max_head = 8192,
    .max_target = 4096,
    .max_headers = HTTP_MAX_HEADERS,
};

static struct http_request req;
static struct http_header res_fields[HTTP_MAX_HEADERS];
static struct http_response res = {.headers = res_fields};
static char out[16384];

#define S(lit) ((struct rewrite_str){lit, sizeof(lit) - 1})

static void
parse_req(const char *s)
{
	assert_int_equal(http_parse_request(s, strlen(s), &lim, &req),
			 (int)strlen(s));
}

static void
parse_res(const char *s, bool head)
{
	assert_int_equal(http_parse_response(s, strlen(s), &lim, head, &res),
			 (int)strlen(s));
}

/* A request decision with the usual gateway fields. */
static struct rewrite_request
decision(const struct rewrite_conn *conn)
{
	return (struct rewrite_request){
	    .req = &req,
	    .conn = conn,
	    .client = S("10.0.0.7"),
	    .request_id = S("rid1"),
	};
}

/* Writes the request head and checks it against `want`, and that the bound
 * was enough. */
static void
assert_request_head(const struct rewrite_request *rr, const char *want)
{
	size_t n = rewrite_request_head(rr, out, sizeof(out));

	assert_true(n <= sizeof(out));
	assert_true(n <= rewrite_request_bound(rr, strlen(want)));
	out[n] = '\0';
	assert_string_equal(out, want);
}

static void
conn_ok(const struct http_header *h, size_t n, const char *extra,
	struct rewrite_conn *c)
{
	const char *why = NULL;

	struct rewrite_str x = {extra, extra != NULL ? strlen(extra) : 0};

	assert_int_equal(
	    rewrite_connection(h, n, &x, extra != NULL ? 1 : 0, c, &why), 0);
}

static void
test_request_minimal(void **state)
{
	struct rewrite_conn c;
	struct rewrite_request rr;

	parse_req("GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
	conn_ok(req.headers, req.nheaders, NULL, &c);
	rr = decision(&c);
	assert_request_head(&rr, "GET /a?b HTTP/1.1\r\n"
				 "Host: h\r\n"
				 "Accept: */*\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "\r\n");
}

/* Every field the gateway frames, sets or treats as hop-by-hop is written
 * by the gateway or not at all; so is every route's user header, on every
 * route; the rest pass with OWS normalised. */
static void
test_request_drops(void **state)
{
	static const struct rewrite_str users[] = {S("x-webauth-user"),
						   S("X-Other-User")};
	struct rewrite_conn c;
	struct rewrite_request rr;
	size_t n;

	parse_req("POST /x HTTP/1.1\r\n"
		  "Host: h\r\n"
		  "Content-Length: 010\r\n"
		  "Connection: keep-alive, x-custom\r\n"
		  "X-Custom: gone\r\n"
		  "Keep-Alive: timeout=5\r\n"
		  "Proxy-Connection: keep-alive\r\n"
		  "TE: trailers\r\n"
		  "Trailer: X-Sum\r\n"
		  "HTTP2-Settings: AAA\r\n"
		  "X-Forwarded-For: 1.2.3.4\r\n"
		  "X-Forwarded-Proto: https\r\n"
		  "X-Forwarded-Host: evil\r\n"
		  "X-Real-IP: 1.2.3.4\r\n"
		  "X-Request-Id: theirs\r\n"
		  "Forwarded: for=1.2.3.4\r\n"
		  "Proxy-Authorization: Basic eDp5\r\n"
		  "Authorization: Basic YTpi\r\n"
		  "X-WEBAUTH-USER: root\r\n"
		  "x-webauth-user: root\r\n"
		  "X-WEBAUTH_USER: root\r\n"
		  "X_Anything: 1\r\n"
		  "X-Other-User: root\r\n"
		  "Cookie:a=b\r\n"
		  "\r\n");
	conn_ok(req.headers, req.nheaders, "X-WEBAUTH-USER", &c);
	rr = decision(&c);
	rr.drop = users;
	rr.ndrop = 2;
	rr.user_header = S("X-WEBAUTH-USER");
	rr.user = S("admin");
	rr.drop_authorization = true;
	rr.tls = true;
	assert_request_head(&rr, "POST /x HTTP/1.1\r\n"
				 "Host: h\r\n"
				 "Cookie: a=b\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: https\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "X-WEBAUTH-USER: admin\r\n"
				 "Content-Length: 10\r\n"
				 "\r\n");
	/* The route's own user header goes, in any case, even when the
	 * caller's drop set does not list it. */
	rr.drop = NULL;
	rr.ndrop = 0;
	n = rewrite_request_head(&rr, out, sizeof(out));
	assert_true(n < sizeof(out));
	out[n] = '\0';
	assert_null(strstr(out, "X-WEBAUTH-USER: root"));
	assert_null(strstr(out, "x-webauth-user: root"));
	assert_non_null(strstr(out, "X-Other-User: root")); /* not in drop */
	rr.drop = users;
	rr.ndrop = 2;
	/* Without a verified user the header is dropped, not sent empty;
	 * pass_authorization keeps the credentials. */
	rr.user.p = NULL;
	rr.drop_authorization = false;
	rr.tls = false;
	assert_request_head(&rr, "POST /x HTTP/1.1\r\n"
				 "Host: h\r\n"
				 "Authorization: Basic YTpi\r\n"
				 "Cookie: a=b\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "Content-Length: 10\r\n"
				 "\r\n");
}

static void
test_request_chunked_and_http10(void **state)
{
	struct rewrite_conn c;
	struct rewrite_request rr;

	parse_req("PUT /x HTTP/1.1\r\nHost: h\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n");
	conn_ok(req.headers, req.nheaders, NULL, &c);
	rr = decision(&c);
	assert_request_head(&rr, "PUT /x HTTP/1.1\r\n"
				 "Host: h\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "Transfer-Encoding: chunked\r\n"
				 "\r\n");
	parse_req("GET http://h/y HTTP/1.0\r\nHost: h\r\n\r\n");
	conn_ok(req.headers, req.nheaders, NULL, &c);
	rr = decision(&c);
	assert_request_head(&rr, "GET /y HTTP/1.0\r\n"
				 "Host: h\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "Connection: keep-alive\r\n"
				 "\r\n");
}

static void
test_request_strip_prefix(void **state)
{
	static const struct {
		const char *path;
		size_t strip;
		const char *want;
	} cases[] = {
	    {"/grafana/", 9, "/"}, {"/grafana/api/x?y", 9, "/api/x?y"},
	    {"/grafana", 8, "/"},  {"/grafana?x", 8, "/?x"},
	    {"/g/a", 2, "/a"},
	};
	struct rewrite_conn c;
	struct rewrite_request rr;
	char in[128];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "GET %s HTTP/1.0\r\n\r\n",
			 cases[i].path);
		parse_req(in);
		conn_ok(req.headers, req.nheaders, NULL, &c);
		rr = decision(&c);
		rr.strip = cases[i].strip;
		n = rewrite_request_head(&rr, out, sizeof(out));
		assert_true(n < sizeof(out));
		assert_memory_equal(out, "GET ", 4);
		assert_memory_equal(out + 4, cases[i].want,
				    strlen(cases[i].want));
		assert_memory_equal(out + 4 + strlen(cases[i].want), " HTTP",
				    5);
	}
}

static void
test_request_websocket(void **state)
{
	struct rewrite_conn c;
	struct rewrite_request rr;

	parse_req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
		  "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n");
	conn_ok(req.headers, req.nheaders, NULL, &c);
	rr = decision(&c);
	rr.upgrade = http_find(req.headers, req.nheaders, "upgrade");
	assert_request_head(&rr, "GET /ws HTTP/1.1\r\n"
				 "Host: h\r\n"
				 "Sec-WebSocket-Key: k\r\n"
				 "X-Forwarded-For: 10.0.0.7\r\n"
				 "X-Real-IP: 10.0.0.7\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: h\r\n"
				 "X-Request-Id: rid1\r\n"
				 "Connection: upgrade\r\n"
				 "Upgrade: websocket\r\n"
				 "\r\n");
}

/* A Connection option naming a field the gateway decides by is refused;
 * so is one that is not a token. */
static void
test_connection_refused(void **state)
{
	static const char *const bad[] = {
	    "content-length",
	    "Content-Length",
	    "transfer-encoding",
	    "host",
	    "close, HOST",
	    "connection",
	    "authorization",
	    "proxy-authorization",
	    "x-forwarded-for",
	    "keep-alive, X-Forwarded-Proto",
	    "x-forwarded-host",
	    "x-real-ip",
	    "x-request-id",
	    "forwarded",
	    "strict-transport-security",
	    "x-webauth-user",
	    "x foo",
	    "\"x\"",
	    "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q",
	    "X-Grafana-User",
	};
	static const struct rewrite_str users[] = {S("X-WEBAUTH-USER"),
						   S("x-grafana-user")};
	struct rewrite_conn c;
	char in[256];
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in),
			 "GET / HTTP/1.1\r\nHost: h\r\nConnection: %s\r\n\r\n",
			 bad[i]);
		parse_req(in);
		why = NULL;
		assert_int_equal(rewrite_connection(req.headers, req.nheaders,
						    users, 2, &c, &why),
				 -1);
		assert_non_null(why);
	}
	/* Several fields are one list. */
	parse_req("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
		  "connection: content-length\r\n\r\n");
	assert_int_equal(
	    rewrite_connection(req.headers, req.nheaders, NULL, 0, &c, &why),
	    -1);
}

static void
test_connection_options(void **state)
{
	struct rewrite_conn c;

	parse_req("GET / HTTP/1.1\r\nHost: h\r\n"
		  "Connection: close, , keep-alive,Upgrade, TE, x-a\r\n"
		  "Connection: x-b\r\n\r\n");
	conn_ok(req.headers, req.nheaders, NULL, &c);
	assert_int_equal(c.n, 3);
	assert_memory_equal(c.opt[0].p, "TE", 2);
	assert_memory_equal(c.opt[1].p, "x-a", 3);
	assert_memory_equal(c.opt[2].p, "x-b", 3);
}

static void
assert_response_head(const struct rewrite_response *rw, const char *want)
{
	size_t n = rewrite_response_head(rw, out, sizeof(out));

	assert_true(n < sizeof(out));
	out[n] = '\0';
	assert_string_equal(out, want);
}

static struct rewrite_response
response(const struct rewrite_conn *c)
{
	return (struct rewrite_response){
	    .res = &res, .conn = c, .keep_alive = true};
}

static void
test_response_framing(void **state)
{
	struct rewrite_conn c;
	struct rewrite_response rw;

	parse_res("HTTP/1.1 200 OK\r\nContent-Length: 010\r\n"
		  "Content-Length: 10\r\nConnection: x-a\r\nX-A: 1\r\n"
		  "Keep-Alive: timeout=5\r\nETag:\"e\"\r\n\r\n",
		  false);
	conn_ok(res.headers, res.nheaders, NULL, &c);
	rw = response(&c);
	assert_response_head(&rw, "HTTP/1.1 200 OK\r\nETag: \"e\"\r\n"
				  "Content-Length: 10\r\n\r\n");
	rw.keep_alive = false;
	rw.hsts_max_age = 300;
	assert_response_head(&rw,
			     "HTTP/1.1 200 OK\r\nETag: \"e\"\r\n"
			     "Strict-Transport-Security: max-age=300\r\n"
			     "Content-Length: 10\r\nConnection: close\r\n\r\n");

	parse_res("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
		  "Trailer: X-Sum\r\n\r\n",
		  false);
	conn_ok(res.headers, res.nheaders, NULL, &c);
	rw = response(&c);
	assert_response_head(&rw, "HTTP/1.1 201 Created\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n");
	/* An HTTP/1.0 client gets the data until the connection closes. */
	rw.client_http10 = true;
	rw.keep_alive = false;
	assert_response_head(&rw, "HTTP/1.1 201 Created\r\n"
				  "Connection: close\r\n\r\n");
	parse_res("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false);
	rw = response(&c);
	rw.client_http10 = true;
	assert_response_head(&rw, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				  "Connection: keep-alive\r\n\r\n");
	/* Close-delimited: chunked to 1.1, bare (and closed) to 1.0. */
	parse_res("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", false);
	rw = response(&c);
	assert_response_head(&rw, "HTTP/1.1 200 OK\r\nX: y\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n");
	rw.client_http10 = true;
	rw.keep_alive = false;
	assert_response_head(&rw, "HTTP/1.1 200 OK\r\nX: y\r\n"
				  "Connection: close\r\n\r\n");
}

static void
test_response_without_body(void **state)
{
	struct rewrite_conn c = {.n = 0};
	struct rewrite_response rw = response(&c);

	parse_res("HTTP/1.1 200 OK\r\nContent-Length: 0099\r\n\r\n", true);
	assert_response_head(&rw, "HTTP/1.1 200 OK\r\n"
				  "Content-Length: 99\r\n\r\n");
	parse_res("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
		  false);
	assert_response_head(&rw, "HTTP/1.1 304 Not Modified\r\n"
				  "Content-Length: 7\r\n\r\n");
	parse_res("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		  false);
	assert_response_head(&rw, "HTTP/1.1 204 No Content\r\n\r\n");
	parse_res("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n"
		  "Content-Length: 5\r\n\r\n",
		  false);
	rw.hsts_max_age = 5;
	rw.keep_alive = false;
	assert_response_head(&rw,
			     "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
}

static void
test_response_tunnel(void **state)
{
	struct rewrite_conn c = {.n = 0};
	struct rewrite_response rw = response(&c);

	parse_res("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
		  "Upgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n",
		  false);
	rw.tunnel = true;
	assert_response_head(&rw, "HTTP/1.1 101 Switching Protocols\r\n"
				  "Upgrade: websocket\r\n"
				  "Sec-WebSocket-Accept: a\r\n"
				  "Connection: upgrade\r\n\r\n");
}

static void
test_answer(void **state)
{
	struct rewrite_field f = {"Location", {S("/a/"), S("?q=1")}};
	struct rewrite_answer a = {.status = 301, .fields = &f, .nfields = 1};
	size_t n;

	n = rewrite_answer(&a, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 301 Moved Permanently\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Length: 22\r\n"
				 "Location: /a/?q=1\r\n\r\n"
				 "301 Moved Permanently\n");
	a = (struct rewrite_answer){.status = 503,
				    .close = true,
				    .head = true,
				    .hsts_max_age = 60,
				    .detail =
					S("realm \"x\" has no credentials")};
	n = rewrite_answer(&a, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Length: 54\r\n"
				 "Connection: close\r\n"
				 "Strict-Transport-Security: max-age=60\r\n"
				 "\r\n");
}

/* A head that does not fit is reported with the room it needs, and
 * nothing is written past the room given: never a clipped head. */
static void
test_never_clipped(void **state)
{
	static char big[9000];
	struct rewrite_field f = {"Location", {S("https://"), {big, 0}}};
	struct rewrite_answer a = {.status = 308, .fields = &f, .nfields = 1};
	struct rewrite_conn c = {.n = 0};
	struct rewrite_request rr;
	size_t need, cap, n;

	memset(big, 'a', sizeof(big));
	f.v[1].n = sizeof(big);
	need = rewrite_answer(&a, out, sizeof(out));
	assert_true(need > sizeof(big) + 100);
	for (cap = 0; cap < need; cap += 97) {
		memset(out, 0x5a, sizeof(out));
		assert_int_equal(rewrite_answer(&a, out, cap), need);
		for (n = cap; n < need + 1; n++)
			assert_int_equal(out[n], 0x5a);
	}
	assert_int_equal(rewrite_answer(&a, out, need), need);
	assert_memory_equal(out + need - 23, "308 Permanent Redirect\n", 23);

	parse_req("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
	rr = decision(&c);
	need = rewrite_request_head(&rr, out, sizeof(out));
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(rewrite_request_head(&rr, out, need - 1), need);
	assert_int_equal(out[need - 1], 0x5a);
}

/* Moves `in` split at every position through a body reader; the output
 * must be the same however the input arrived. */
static int
move_split(enum http_body kind, uint64_t len, bool chunked_out, uint64_t limit,
	   const char *in, size_t n, size_t k, struct evbuffer *dst,
	   size_t *left)
{
	struct rewrite_body b;
	struct evbuffer *src = evbuffer_new();
	int r;

	rewrite_body_init(&b, kind, len, chunked_out, limit);
	evbuffer_add(src, in, k);
	r = rewrite_body_move(&b, src, dst);
	evbuffer_add(src, in + k, n - k);
	if (r == 0)
		r = rewrite_body_move(&b, src, dst);
	*left = evbuffer_get_length(src);
	evbuffer_free(src);
	return r;
}

static void
assert_body(enum http_body kind, uint64_t len, bool chunked_out, const char *in,
	    int rc, const char *want, size_t left)
{
	size_t n = strlen(in), k, l;

	for (k = 0; k <= n; k++) {
		struct evbuffer *dst = evbuffer_new();
		size_t got;

		assert_int_equal(move_split(kind, len, chunked_out, UINT64_MAX,
					    in, n, k, dst, &l),
				 rc);
		got = evbuffer_get_length(dst);
		assert_int_equal(got, strlen(want));
		assert_memory_equal(evbuffer_pullup(dst, -1), want, got);
		assert_int_equal(l, left);
		evbuffer_free(dst);
	}
}

/* A close-delimited body is chunked as it comes, for an HTTP/1.1 client,
 * and ended when the peer closes; a 1.0 client gets it bare. */
static void
test_body_close(void **state)
{
	struct evbuffer *src = evbuffer_new(), *dst = evbuffer_new();
	struct rewrite_body b;
	const char *want = "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n";

	rewrite_body_init(&b, HTTP_BODY_CLOSE, 0, true, UINT64_MAX);
	evbuffer_add(src, "hello", 5);
	assert_int_equal(rewrite_body_move(&b, src, dst), 0);
	assert_int_equal(rewrite_body_move(&b, src, dst), 0);
	evbuffer_add(src, "!", 1);
	assert_int_equal(rewrite_body_move(&b, src, dst), 0);
	rewrite_body_close(&b, dst);
	assert_int_equal(evbuffer_get_length(dst), strlen(want));
	assert_memory_equal(evbuffer_pullup(dst, -1), want, strlen(want));
	assert_int_equal(b.data, 6);
	evbuffer_drain(dst, evbuffer_get_length(dst));
	rewrite_body_init(&b, HTTP_BODY_CLOSE, 0, false, UINT64_MAX);
	evbuffer_add(src, "hello", 5);
	assert_int_equal(rewrite_body_move(&b, src, dst), 0);
	rewrite_body_close(&b, dst);
	assert_int_equal(evbuffer_get_length(dst), 5);
	evbuffer_free(src);
	evbuffer_free(dst);
}

static void
test_body_length(void **state)
{
	assert_body(HTTP_BODY_LENGTH, 5, true, "helloGET /", 1, "hello", 5);
	assert_body(HTTP_BODY_LENGTH, 12, true, "hello", 0, "hello", 0);
}

static void
test_body_chunked_reframed(void **state)
{
	assert_body(HTTP_BODY_CHUNKED, 0, true,
		    "0005;a=\"b;c\"\r\nhello\r\n00A;x\r\n0123456789\r\n"
		    "000\r\nContent-Length: 99\r\nHost: x\r\n\r\n"
		    "GET / HTTP/1.1\r\n",
		    1, "5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n", 16);
	assert_body(HTTP_BODY_CHUNKED, 0, false,
		    "5\r\nhello\r\n1;x\r\n!\r\n0\r\nX: 1\r\n\r\n", 1, "hello!",
		    0);
	assert_body(HTTP_BODY_CHUNKED, 0, true, "5\r\nhelloX\r\n0\r\n\r\n", -1,
		    "5\r\nhello\r\n", 8);
}

/* The limit is checked on a chunk's declared size, before its data. */
static void
test_body_chunked_limit(void **state)
{
	static const char in[] = "a\r\n0123456789\r\n5\r\nabcde\r\n0\r\n\r\n";
	struct evbuffer *dst = evbuffer_new();
	size_t l;

	assert_int_equal(move_split(HTTP_BODY_CHUNKED, 0, true, 14, in,
				    strlen(in), strlen(in), dst, &l),
			 -2);
	assert_int_equal(evbuffer_get_length(dst), 15); /* "a" CRLF data CRLF */
	evbuffer_drain(dst, evbuffer_get_length(dst));
	assert_int_equal(move_split(HTTP_BODY_CHUNKED, 0, true, 15, in,
				    strlen(in), strlen(in), dst, &l),
			 1);
	evbuffer_free(dst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_minimal),
	    cmocka_unit_test(test_request_drops),
	    cmocka_unit_test(test_request_chunked_and_http10),
	    cmocka_unit_test(test_request_strip_prefix),
	    cmocka_unit_test(test_request_websocket),
	    cmocka_unit_test(test_connection_refused),
	    cmocka_unit_test(test_connection_options),
	    cmocka_unit_test(test_response_framing),
	    cmocka_unit_test(test_response_without_body),
	    cmocka_unit_test(test_response_tunnel),
	    cmocka_unit_test(test_answer),
	    cmocka_unit_test(test_never_clipped),
	    cmocka_unit_test(test_body_close),
	    cmocka_unit_test(test_body_length),
	    cmocka_unit_test(test_body_chunked_reframed),
	    cmocka_unit_test(test_body_chunked_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
