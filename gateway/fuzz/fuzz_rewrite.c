/*
 * fuzz_rewrite.c - libFuzzer target for what the gateway sends on
 * (rewrite.c). The input is what a client (or an upstream) sends: a head
 * and the bytes after it. Whatever http.c accepts and rewrite_connection()
 * lets through is rewritten as the gateway would -- head, then body framed
 * anew, fed in two parts split where the input says -- and what comes out
 * is read back by a strict parser of this file's own, which shares no code
 * with http.c or rewrite.c. It must find exactly one message, nothing after
 * it, and:
 *   - requests: the method and target the gateway routed (the prefix cut
 *     on a strip_prefix route), the same body bytes, exactly one framing
 *     field, no field with '_', none the client's Connection named, the
 *     user header only with the verified user and no other route's user
 *     header, no Connection option but
 *     the gateway's own;
 *   - responses: the status, the same body bytes, chunked (also a
 *     close-delimited body) to an HTTP/1.1 client and never to a 1.0 one,
 *     no field the upstream's Connection named.
 * The first input byte picks the options (strip, HTTP/1.0 client, HEAD).
 */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "rewrite.h"

#define USER_HEADER "X-User"

/* The user headers of every route: this route's, and another's. */
static const struct rewrite_str users[] = {{USER_HEADER, 6}, {"x-other", 7}};

static const struct http_limits limits = {
    .max_head = 4096, .max_target = 1024, .max_headers = HTTP_MAX_HEADERS};

static struct http_request req;
static struct http_header res_fields[HTTP_MAX_HEADERS];
static struct http_response res = {.headers = res_fields};
static char head[16384];
static char body_in[8192], body_out[8192];

/* ------------------------------------------- the independent reader */

struct msg {
	const char *p, *end; /* what is left to read */
	char start[3][4200]; /* start line's three parts (limits.max_head) */
	size_t start_len[3];
	struct {
		const char *name, *value;
		size_t nlen, vlen;
	} f[HTTP_MAX_HEADERS + 16];
	size_t nf;
};

static bool
lc_eq(const char *a, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return false;
	for (i = 0; i < n; i++) {
		char c = a[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

static bool
token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One CRLF-terminated line; no bare CR or LF in it. NULL at the end. */
static const char *
line(struct msg *m, size_t *len)
{
	const char *s = m->p, *q;

	for (q = s; q + 1 < m->end; q++) {
		CHECK(*q != '\n');
		if (*q == '\r') {
			CHECK(q[1] == '\n');
			*len = (size_t)(q - s);
			m->p = q + 2;
			return s;
		}
	}
	return NULL;
}

/* Start line: three parts split at single spaces (the third may hold
 * spaces: a reason phrase), then "name: value" fields. */
static void
read_head(struct msg *m)
{
	const char *l, *sp1, *sp2;
	size_t n, i;

	l = line(m, &n);
	CHECK(l != NULL);
	sp1 = memchr(l, ' ', n);
	CHECK(sp1 != NULL);
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l));
	CHECK(sp2 != NULL);
	m->start_len[0] = (size_t)(sp1 - l);
	m->start_len[1] = (size_t)(sp2 - sp1 - 1);
	m->start_len[2] = n - (size_t)(sp2 + 1 - l);
	for (i = 0; i < 3; i++)
		CHECK(m->start_len[i] < sizeof(m->start[i]));
	memcpy(m->start[0], l, m->start_len[0]);
	memcpy(m->start[1], sp1 + 1, m->start_len[1]);
	memcpy(m->start[2], sp2 + 1, m->start_len[2]);
	m->nf = 0;
	for (;;) {
		const char *colon;

		l = line(m, &n);
		CHECK(l != NULL);
		if (n == 0)
			return;
		CHECK(m->nf < sizeof(m->f) / sizeof(m->f[0]));
		colon = memchr(l, ':', n);
		CHECK(colon != NULL && colon > l);
		for (i = 0; l + i < colon; i++)
			CHECK(token_char(l[i]));
		CHECK(colon[1] == ' '); /* the gateway's own style */
		m->f[m->nf].name = l;
		m->f[m->nf].nlen = (size_t)(colon - l);
		m->f[m->nf].value = colon + 2;
		m->f[m->nf].vlen = n - (size_t)(colon + 2 - l);
		for (i = 0; i < m->f[m->nf].vlen; i++)
			CHECK((unsigned char)m->f[m->nf].value[i] >= 0x20 ||
			      m->f[m->nf].value[i] == '\t');
		m->nf++;
	}
}

/* How many fields are called `name`; *v gets the last one's value. */
static size_t
count(const struct msg *m, const char *name, const char **v, size_t *vlen)
{
	size_t i, n = 0;

	for (i = 0; i < m->nf; i++)
		if (lc_eq(m->f[i].name, m->f[i].nlen, name)) {
			n++;
			if (v != NULL) {
				*v = m->f[i].value;
				*vlen = m->f[i].vlen;
			}
		}
	return n;
}

/* A decimal without leading zeros. */
static uint64_t
decimal(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	CHECK(n > 0 && n <= 19 && (s[0] != '0' || n == 1));
	for (i = 0; i < n; i++) {
		CHECK(s[i] >= '0' && s[i] <= '9');
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* The gateway's chunked coding, strictly: lower-case hex without leading
 * zeros, no extensions, no trailers. Appends the data to out. */
static size_t
read_chunked(struct msg *m, char *out, size_t cap)
{
	size_t total = 0, n, i;
	const char *l;

	for (;;) {
		uint64_t size = 0;

		l = line(m, &n);
		CHECK(l != NULL && n > 0 && n <= 16 && (l[0] != '0' || n == 1));
		for (i = 0; i < n; i++) {
			CHECK((l[i] >= '0' && l[i] <= '9') ||
			      (l[i] >= 'a' && l[i] <= 'f'));
			size = size * 16 + (uint64_t)(l[i] <= '9'
							  ? l[i] - '0'
							  : l[i] - 'a' + 10);
		}
		if (size == 0)
			break;
		CHECK(size <= (uint64_t)(m->end - m->p) && total + size <= cap);
		memcpy(out + total, m->p, size);
		total += size;
		m->p += size;
		CHECK(m->end - m->p >= 2 && memcmp(m->p, "\r\n", 2) == 0);
		m->p += 2;
	}
	l = line(m, &n);
	CHECK(l != NULL && n == 0);
	return total;
}

/* A body as the input framed it, read leniently but independently:
 * chunk sizes in any case with leading zeros, extensions skipped, trailer
 * lines skipped. Returns the data length; the caller knows the framing was
 * accepted. */
static size_t
decode_input(const char *p, size_t len, const struct http_request *rq,
	     enum http_body kind, uint64_t cl, char *out, size_t cap)
{
	size_t total = 0, i = 0;

	if (kind == HTTP_BODY_NONE)
		return 0;
	if (kind == HTTP_BODY_LENGTH) {
		CHECK(cl <= len && cl <= cap);
		memcpy(out, p, cl);
		return cl;
	}
	for (;;) {
		uint64_t size = 0;

		while (i < len && p[i] != ';' && p[i] != '\r' && p[i] != ' ' &&
		       p[i] != '\t') {
			char c = p[i++];

			size =
			    size * 16 + (uint64_t)(c <= '9'   ? c - '0'
						   : c <= 'F' ? c - 'A' + 10
							      : c - 'a' + 10);
		}
		while (i < len && p[i] != '\n')
			i++;
		i++;
		if (size == 0)
			break;
		CHECK(i + size <= len && total + size <= cap);
		memcpy(out + total, p + i, size);
		total += size;
		i += size + 2;
	}
	while (i + 1 < len && !(p[i] == '\r' && p[i + 1] == '\n')) {
		while (i < len && p[i] != '\n')
			i++;
		i++;
	}
	(void)rq;
	return total;
}

/* ------------------------------------------------------- the target */

/* Runs the body through rewrite_body_move in two parts split at k; the
 * bytes out go to ob. Returns the move's last result. */
static int
move(struct rewrite_body *b, const char *p, size_t n, size_t k,
     struct evbuffer *ob)
{
	struct evbuffer *ib = evbuffer_new();
	int r;

	CHECK(ib != NULL);
	evbuffer_add(ib, p, k);
	r = rewrite_body_move(b, ib, ob);
	if (r == 0) {
		evbuffer_add(ib, p + k, n - k);
		r = rewrite_body_move(b, ib, ob);
	}
	evbuffer_free(ib);
	return r;
}

static bool
named_by(const struct rewrite_conn *c, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->opt[i].n == n && http_eq_ci(c->opt[i].p, name, n))
			return true;
	return false;
}

static void
check_request(const char *buf, size_t size, unsigned opts, size_t split)
{
	struct rewrite_conn conn;
	struct rewrite_request rr;
	static struct msg m;
	struct rewrite_body b;
	struct evbuffer *ob;
	const char *why, *v = NULL, *slash;
	size_t hlen, n, din, dout, vlen = 0, i, want_len;
	char want[1100];
	int rc = http_parse_request(buf, size, &limits, &req), r;

	if (rc <= 0 || rewrite_connection(req.headers, req.nheaders, users, 2,
					  &conn, &why) == -1)
		return;
	hlen = (size_t)rc;
	rr = (struct rewrite_request){
	    .req = &req,
	    .conn = &conn,
	    .client = {"192.0.2.1", 9},
	    .request_id = {"id", 2},
	    .drop = users,
	    .ndrop = 2,
	    .user_header = {USER_HEADER, strlen(USER_HEADER)},
	    .user = {"u", 1},
	    .drop_authorization = opts & 2,
	};
	/* A strip_prefix route on the path's first segment, "/seg/". */
	slash = req.path_len > 1 ? memchr(req.path + 1, '/', req.path_len - 1)
				 : NULL;
	if ((opts & 1) && slash != NULL)
		rr.strip = (size_t)(slash - req.path) + 1;
	n = rewrite_request_head(&rr, head, sizeof(head));
	CHECK(n <= rewrite_request_bound(&rr, hlen) || n > sizeof(head));
	if (n > sizeof(head))
		return;
	CHECK(rewrite_request_head(&rr, head, n) == n);

	ob = evbuffer_new();
	CHECK(ob != NULL);
	evbuffer_add(ob, head, n);
	rewrite_body_init(&b, req.body, req.content_length, true, UINT64_MAX);
	r = move(&b, buf + hlen, size - hlen, split % (size - hlen + 1), ob);
	if (r != 1) { /* incomplete or bad framing: nothing to compare */
		evbuffer_free(ob);
		return;
	}

	m.p = (const char *)evbuffer_pullup(ob, -1);
	m.end = m.p + evbuffer_get_length(ob);
	read_head(&m);
	/* Method and target as routed; HTTP/1.0 or 1.1 as the client. */
	CHECK(m.start_len[0] == req.method_len &&
	      memcmp(m.start[0], req.method, req.method_len) == 0);
	if (rr.strip > 0) {
		size_t cut = rr.strip - 1; /* keeps the prefix's last '/' */

		want_len = req.path_len - cut;
		memcpy(want, req.path + cut, want_len);
	} else {
		want_len = req.path_len;
		memcpy(want, req.path, want_len);
	}
	CHECK(m.start_len[1] == want_len &&
	      memcmp(m.start[1], want, want_len) == 0);
	CHECK(m.start_len[2] == 8 &&
	      memcmp(m.start[2], req.minor ? "HTTP/1.1" : "HTTP/1.0", 8) == 0);
	for (i = 0; i < m.nf; i++) {
		CHECK(memchr(m.f[i].name, '_', m.f[i].nlen) == NULL);
		CHECK(!named_by(&conn, m.f[i].name, m.f[i].nlen));
	}
	/* One framing, the gateway's; one user header, the verified one. */
	CHECK(count(&m, "transfer-encoding", &v, &vlen) ==
	      (req.body == HTTP_BODY_CHUNKED));
	if (req.body == HTTP_BODY_CHUNKED)
		CHECK(vlen == 7 && memcmp(v, "chunked", 7) == 0);
	CHECK(count(&m, "content-length", &v, &vlen) ==
	      (req.body == HTTP_BODY_LENGTH));
	CHECK(count(&m, "x-user", &v, &vlen) == 1 && vlen == 1 && *v == 'u');
	CHECK(count(&m, "x-other", NULL, NULL) == 0);
	CHECK(count(&m, "host", NULL, NULL) == (req.host != NULL));
	CHECK(count(&m, "x-forwarded-for", &v, &vlen) == 1 && vlen == 9);
	CHECK(count(&m, "x-request-id", NULL, NULL) == 1);
	CHECK(count(&m, "forwarded", NULL, NULL) == 0);
	CHECK(count(&m, "te", NULL, NULL) == 0 &&
	      count(&m, "trailer", NULL, NULL) == 0);
	CHECK(!(opts & 2) || count(&m, "authorization", NULL, NULL) == 0);
	if (count(&m, "connection", &v, &vlen) > 0)
		CHECK(count(&m, "connection", NULL, NULL) == 1 &&
		      (lc_eq(v, vlen, "keep-alive") ||
		       lc_eq(v, vlen, "upgrade")));

	/* The same body bytes, and nothing after the message. */
	din = decode_input(buf + hlen, size - hlen, &req, req.body,
			   req.content_length, body_in, sizeof(body_in));
	if (req.body == HTTP_BODY_LENGTH) {
		count(&m, "content-length", &v, &vlen);
		CHECK(decimal(v, vlen) == req.content_length);
		CHECK((size_t)(m.end - m.p) >= req.content_length);
		dout = req.content_length;
		memcpy(body_out, m.p, dout);
		m.p += dout;
	} else if (req.body == HTTP_BODY_CHUNKED) {
		dout = read_chunked(&m, body_out, sizeof(body_out));
	} else {
		dout = 0;
	}
	CHECK(m.p == m.end);
	CHECK(din == dout && memcmp(body_in, body_out, din) == 0);
	CHECK(b.data == dout);
	evbuffer_free(ob);
}

/* A response policy (opts & 32): what a front door typically sets. */
static const struct rewrite_hfield policy_set[] = {
    {{"X-Frame-Options", 15}, {"DENY", 4}}};
static const struct rewrite_hfield policy_add[] = {
    {{"Cache-Control", 13}, {"private", 7}}};
static const struct rewrite_str policy_remove[] = {{"Server", 6}};
static const struct rewrite_headers policy = {
    policy_set,
    policy_add,
    1,
    1,
    policy_remove,
    1,
    sizeof("X-Frame-Options: DENY\r\nCache-Control: private\r\n") - 1};

static void
check_response(const char *buf, size_t size, unsigned opts, size_t split)
{
	struct rewrite_conn conn;
	struct rewrite_response rw;
	static struct msg m;
	struct rewrite_body b;
	struct evbuffer *ob;
	const char *why, *v = NULL;
	size_t hlen, n, din, dout, vlen = 0, i;
	bool http10 = opts & 4, head_req = opts & 8, chunked_out;
	int rc = http_parse_response(buf, size, &limits, head_req, &res), r;

	if (rc <= 0 ||
	    rewrite_connection(res.headers, res.nheaders, NULL, 0, &conn,
			       &why) == -1 ||
	    res.status == 101)
		return;
	hlen = (size_t)rc;
	chunked_out = !http10;
	rw = (struct rewrite_response){
	    .res = &res,
	    .conn = &conn,
	    .client_http10 = http10,
	    .keep_alive = !(http10 && (res.body == HTTP_BODY_CLOSE ||
				       res.body == HTTP_BODY_CHUNKED)),
	    .hsts_max_age = opts & 16 ? 31536000 : 0,
	    .headers = opts & 32 ? &policy : NULL,
	};
	n = rewrite_response_head(&rw, head, sizeof(head));
	CHECK(n <= rewrite_response_bound(&rw, hlen) || n > sizeof(head));
	if (n > sizeof(head))
		return;
	ob = evbuffer_new();
	CHECK(ob != NULL);
	evbuffer_add(ob, head, n);
	rewrite_body_init(&b, res.body, res.content_length, chunked_out,
			  UINT64_MAX);
	r = move(&b, buf + hlen, size - hlen, split % (size - hlen + 1), ob);
	if (res.body == HTTP_BODY_CLOSE) {
		CHECK(r == 0);
		rewrite_body_close(&b, ob); /* it ends where the input ends */
		r = 1;
	}
	if (r != 1) {
		evbuffer_free(ob);
		return;
	}
	m.p = (const char *)evbuffer_pullup(ob, -1);
	m.end = m.p + evbuffer_get_length(ob);
	read_head(&m);
	CHECK(m.start_len[0] == 8 && memcmp(m.start[0], "HTTP/1.1", 8) == 0);
	CHECK(m.start_len[1] == 3 && (m.start[1][0] - '0') * 100 +
					     (m.start[1][1] - '0') * 10 +
					     (m.start[1][2] - '0') ==
					 res.status);
	for (i = 0; i < m.nf; i++)
		CHECK(!named_by(&conn, m.f[i].name, m.f[i].nlen));
	CHECK(count(&m, "transfer-encoding", &v, &vlen) ==
	      ((res.body == HTTP_BODY_CHUNKED || res.body == HTTP_BODY_CLOSE) &&
	       !http10));
	CHECK(count(&m, "content-length", &v, &vlen) <= 1);
	CHECK(count(&m, "keep-alive", NULL, NULL) == 0 &&
	      count(&m, "trailer", NULL, NULL) == 0);
	if (res.status < 200 || res.status == 204)
		CHECK(count(&m, "content-length", NULL, NULL) == 0);
	/* The policy decides those fields, whatever the upstream said. */
	if ((opts & 32) && res.status >= 200)
		CHECK(count(&m, "x-frame-options", &v, &vlen) == 1 &&
		      vlen == 4 && memcmp(v, "DENY", 4) == 0 &&
		      count(&m, "server", NULL, NULL) == 0 &&
		      count(&m, "cache-control", NULL, NULL) >= 1);
	if (res.body == HTTP_BODY_CLOSE && http10)
		CHECK(count(&m, "connection", &v, &vlen) == 1 &&
		      lc_eq(v, vlen, "close"));

	din = 0;
	if (res.body == HTTP_BODY_LENGTH || res.body == HTTP_BODY_CHUNKED)
		din =
		    decode_input(buf + hlen, size - hlen, NULL, res.body,
				 res.content_length, body_in, sizeof(body_in));
	else if (res.body == HTTP_BODY_CLOSE) {
		din = size - hlen;
		CHECK(din <= sizeof(body_in));
		memcpy(body_in, buf + hlen, din);
	}
	if (res.body == HTTP_BODY_LENGTH) {
		CHECK(count(&m, "content-length", &v, &vlen) == 1 &&
		      decimal(v, vlen) == res.content_length);
		dout = res.content_length;
		memcpy(body_out, m.p, dout);
		m.p += dout;
	} else if ((res.body == HTTP_BODY_CHUNKED ||
		    res.body == HTTP_BODY_CLOSE) &&
		   chunked_out) {
		dout = read_chunked(&m, body_out, sizeof(body_out));
	} else {
		/* Bare data to the end (close-delimited, or chunked to a 1.0
		 * client), or no body. */
		dout = (size_t)(m.end - m.p);
		CHECK(dout <= sizeof(body_out));
		memcpy(body_out, m.p, dout);
		m.p = m.end;
	}
	CHECK(m.p == m.end);
	CHECK(din == dout && memcmp(body_in, body_out, din) == 0);
	evbuffer_free(ob);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned opts;
	size_t split;

	if (size < 2 || size > 6000)
		return 0;
	opts = data[0];
	split = (size_t)data[size - 1] * 31;
	check_request((const char *)data + 1, size - 1, opts, split);
	check_response((const char *)data + 1, size - 1, opts, split);
	return 0;
}
