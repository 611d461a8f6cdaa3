/*
 * rewrite.c - heads written from parsed messages, bodies framed anew; the
 * contracts are in rewrite.h.
 */
#include "rewrite.h"

#include <event2/buffer.h>
#include <string.h>

/* What a field name is to the gateway. */
#define F_HOP 0x01	 /* hop-by-hop by nature (RFC 9110 section 7.6.1) */
#define F_FRAMING 0x02	 /* Content-Length: written from the decision */
#define F_SET 0x04	 /* set by the gateway on requests */
#define F_AUTHZ 0x08	 /* Authorization */
#define F_UPGRADE 0x10	 /* Upgrade (also F_HOP) */
#define F_PROTECTED 0x20 /* no Connection option may name it */

/* Where a writer is: bytes are copied only while they fit, the length is
 * counted either way, so an overflow reports the size needed. */
struct out {
	char *buf;
	size_t cap;
	size_t len;
};

/* Inlined: most pieces are short literals, whose copy then needs no call. */
static inline __attribute__((always_inline)) void
put(struct out *o, const void *p, size_t n)
{
	if (n <= o->cap && o->len <= o->cap - n)
		memcpy(o->buf + o->len, p, n);
	o->len += n;
}

#define put_lit(o, lit) put((o), (lit), sizeof(lit) - 1)

static void
put_str(struct out *o, struct rewrite_str s)
{
	put(o, s.p, s.n);
}

static void
put_field(struct out *o, const char *name, size_t nlen, const char *v,
	  size_t vlen)
{
	put(o, name, nlen);
	put_lit(o, ": ");
	put(o, v, vlen);
	put_lit(o, "\r\n");
}

/* Writes v in decimal (base 10) or lower-case hex (16), no leading zeros. */
static void
put_uint(struct out *o, uint64_t v, unsigned base)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = digits[v % base];
		v /= base;
	} while (v > 0);
	put(o, tmp + i, sizeof(tmp) - i);
}

/*
 * Whether the field name name[0..n) is `lit`, a lower-case literal of n
 * bytes. OR-ing 0x20 into a byte maps upper-case letters to lower case and
 * leaves digits and '-' as they are; no other token character lands on a
 * letter, digit or '-' that way, so for names (tchars) this is exact.
 */
static inline bool
is(const char *name, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)name[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

/* The F_* class of a field name; 0 for one the gateway has no view on. */
static unsigned
field_class(const char *name, size_t n)
{
	switch (n) {
	case 2:
		return is(name, n, "te") ? F_HOP : 0;
	case 4:
		return is(name, n, "host") ? F_PROTECTED : 0;
	case 7:
		if (is(name, n, "upgrade"))
			return F_HOP | F_UPGRADE;
		return is(name, n, "trailer") ? F_HOP : 0;
	case 9:
		if (is(name, n, "forwarded") || is(name, n, "x-real-ip"))
			return F_SET | F_PROTECTED;
		return 0;
	case 10:
		if (is(name, n, "connection"))
			return F_HOP | F_PROTECTED;
		return is(name, n, "keep-alive") ? F_HOP : 0;
	case 12:
		return is(name, n, "x-request-id") ? F_SET | F_PROTECTED : 0;
	case 13:
		return is(name, n, "authorization") ? F_AUTHZ | F_PROTECTED : 0;
	case 14:
		if (is(name, n, "content-length"))
			return F_FRAMING | F_PROTECTED;
		return is(name, n, "http2-settings") ? F_HOP : 0;
	case 15:
		return is(name, n, "x-forwarded-for") ? F_SET | F_PROTECTED : 0;
	case 16:
		if (is(name, n, "proxy-connection"))
			return F_HOP;
		return is(name, n, "x-forwarded-host") ? F_SET | F_PROTECTED
						       : 0;
	case 17:
		if (is(name, n, "transfer-encoding"))
			return F_HOP | F_PROTECTED;
		return is(name, n, "x-forwarded-proto") ? F_SET | F_PROTECTED
							: 0;
	case 19:
		return is(name, n, "proxy-authorization") ? F_SET | F_PROTECTED
							  : 0;
	case 25:
		return is(name, n, "strict-transport-security") ? F_PROTECTED
								: 0;
	}
	return 0;
}

/* Whether name[0..n) is one of set[0..nset). */
static bool
in_set(const char *name, size_t n, const struct rewrite_str *set, size_t nset)
{
	size_t i;

	for (i = 0; i < nset; i++)
		if (set[i].n == n && http_eq_ci(name, set[i].p, n))
			return true;
	return false;
}

int
rewrite_connection(const struct http_header *h, size_t n,
		   const struct rewrite_str *extra, size_t nextra,
		   struct rewrite_conn *conn, const char **why)
{
	size_t i, j, len;
	const char *pos, *el;

	conn->n = 0;
	for (i = 0; i < n; i++) {
		if (h[i].name_len != 10 || !is(h[i].name, 10, "connection"))
			continue;
		pos = h[i].value;
		while (http_list_next(&pos, h[i].value + h[i].value_len, &el,
				      &len)) {
			if (len == 0)
				continue; /* RFC 9110 section 5.6.1 */
			for (j = 0; j < len; j++)
				if (!http_is_tchar((unsigned char)el[j])) {
					*why = "invalid Connection option";
					return -1;
				}
			if ((len == 5 && is(el, 5, "close")) ||
			    (len == 10 && is(el, 10, "keep-alive")) ||
			    (len == 7 && is(el, 7, "upgrade")))
				continue;
			if ((field_class(el, len) & F_PROTECTED) ||
			    in_set(el, len, extra, nextra)) {
				*why = "Connection names a field the gateway "
				       "frames, routes or sets";
				return -1;
			}
			if (conn->n == REWRITE_MAX_CONN_OPTIONS) {
				*why = "too many Connection options";
				return -1;
			}
			conn->opt[conn->n].p = el;
			conn->opt[conn->n].n = len;
			conn->n++;
		}
	}
	return 0;
}

static bool
conn_names(const struct rewrite_conn *conn, const struct http_header *h)
{
	return in_set(h->name, h->name_len, conn->opt, conn->n);
}

/* Whether a client's field goes upstream (rewrite_request_head()). */
static bool
request_keeps(const struct rewrite_request *rr, const struct http_header *h)
{
	unsigned c = field_class(h->name, h->name_len);

	if (c & (F_HOP | F_FRAMING | F_SET))
		return false;
	if ((c & F_AUTHZ) && rr->drop_authorization)
		return false;
	if (memchr(h->name, '_', h->name_len) != NULL)
		return false;
	if (in_set(h->name, h->name_len, rr->drop, rr->ndrop) ||
	    in_set(h->name, h->name_len, &rr->user_header,
		   rr->user_header.p != NULL))
		return false;
	return !conn_names(rr->conn, h);
}

/* The fields rewrite_request_head() adds, at their longest, beyond the
 * values the caller supplies (about 210 bytes). */
#define REQUEST_ADDED 400

/* A kept field may grow by one byte: "a:b" is written "a: b". */
size_t
rewrite_request_bound(const struct rewrite_request *rr, size_t head_len)
{
	return head_len + rr->req->nheaders + REQUEST_ADDED + 2 * rr->client.n +
	       rr->forwarded_for.n + rr->request_id.n + rr->req->host_len +
	       rr->user_header.n + rr->user.n +
	       (rr->upgrade != NULL ? rr->upgrade->value_len : 0);
}

size_t
rewrite_request_head(const struct rewrite_request *rr, char *buf, size_t cap)
{
	const struct http_request *req = rr->req;
	struct out o = {buf, cap, 0};
	const char *path = req->path;
	size_t plen = req->path_len, i;

	put(&o, req->method, req->method_len);
	put_lit(&o, " ");
	if (rr->strip > 0) {
		size_t cut = rr->strip < plen ? rr->strip : plen;

		/* Keep the '/' that ends the prefix, or add one. */
		if (path[cut - 1] == '/')
			cut--;
		path += cut;
		plen -= cut;
		if (plen == 0 || path[0] != '/')
			put_lit(&o, "/");
	}
	put(&o, path, plen);
	if (req->minor == 0)
		put_lit(&o, " HTTP/1.0\r\n");
	else
		put_lit(&o, " HTTP/1.1\r\n");
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (request_keeps(rr, h))
			put_field(&o, h->name, h->name_len, h->value,
				  h->value_len);
	}
	if (rr->forwarded_for.p != NULL)
		put_field(&o, "X-Forwarded-For", 15, rr->forwarded_for.p,
			  rr->forwarded_for.n);
	else
		put_field(&o, "X-Forwarded-For", 15, rr->client.p,
			  rr->client.n);
	put_field(&o, "X-Real-IP", 9, rr->client.p, rr->client.n);
	if (rr->tls)
		put_lit(&o, "X-Forwarded-Proto: https\r\n");
	else
		put_lit(&o, "X-Forwarded-Proto: http\r\n");
	if (req->host != NULL)
		put_field(&o, "X-Forwarded-Host", 16, req->host, req->host_len);
	put_field(&o, "X-Request-Id", 12, rr->request_id.p, rr->request_id.n);
	if (rr->user_header.p != NULL && rr->user.p != NULL)
		put_field(&o, rr->user_header.p, rr->user_header.n, rr->user.p,
			  rr->user.n);
	if (req->body == HTTP_BODY_LENGTH) {
		put_lit(&o, "Content-Length: ");
		put_uint(&o, req->content_length, 10);
		put_lit(&o, "\r\n");
	} else if (req->body == HTTP_BODY_CHUNKED) {
		put_lit(&o, "Transfer-Encoding: chunked\r\n");
	}
	if (rr->upgrade != NULL) {
		put_lit(&o, "Connection: upgrade\r\n");
		put_field(&o, "Upgrade", 7, rr->upgrade->value,
			  rr->upgrade->value_len);
	} else if (req->minor == 0) {
		put_lit(&o, "Connection: keep-alive\r\n");
	}
	put_lit(&o, "\r\n");
	return o.len;
}

/* The gateway's fields of a final response: HSTS, framing, Connection
 * (about 130 bytes), and a reason phrase's SP. */
#define RESPONSE_ADDED 200

const char *
rewrite_headers_refused(const char *name, size_t n)
{
	unsigned c = field_class(name, n);

	if (c & (F_HOP | F_FRAMING))
		return "is hop-by-hop or framing, written from the gateway's "
		       "own decisions";
	if (n == 25 && is(name, n, "strict-transport-security"))
		return "is set by tls.hsts_max_age";
	if ((n == 12 && is(name, n, "content-type")) ||
	    (n == 8 && is(name, n, "location")))
		return "is written by the gateway's own answers";
	return NULL;
}

/* Field names equal but for ASCII case (both given; any token bytes). */
static bool
same_name(const char *a, size_t an, const struct rewrite_str *b)
{
	size_t i;

	if (an != b->n)
		return false;
	for (i = 0; i < an; i++) {
		unsigned char x = (unsigned char)a[i],
			      y = (unsigned char)b->p[i];

		if (x >= 'A' && x <= 'Z')
			x |= 0x20;
		if (y >= 'A' && y <= 'Z')
			y |= 0x20;
		if (x != y)
			return false;
	}
	return true;
}

/* Does the policy drop the upstream's field h (remove or set)? */
static bool
policy_drops(const struct rewrite_headers *pol, const struct http_header *h)
{
	size_t i;

	if (pol == NULL)
		return false;
	for (i = 0; i < pol->nremove; i++)
		if (same_name(h->name, h->name_len, &pol->remove[i]))
			return true;
	for (i = 0; i < pol->nset; i++)
		if (same_name(h->name, h->name_len, &pol->set[i].name))
			return true;
	return false;
}

/* The policy's set and add fields. */
static void
put_policy(struct out *o, const struct rewrite_headers *pol)
{
	size_t i;

	if (pol == NULL)
		return;
	for (i = 0; i < pol->nset; i++)
		put_field(o, pol->set[i].name.p, pol->set[i].name.n,
			  pol->set[i].value.p, pol->set[i].value.n);
	for (i = 0; i < pol->nadd; i++)
		put_field(o, pol->add[i].name.p, pol->add[i].name.n,
			  pol->add[i].value.p, pol->add[i].value.n);
}

size_t
rewrite_response_bound(const struct rewrite_response *rw, size_t head_len)
{
	return head_len + rw->res->nheaders + RESPONSE_ADDED +
	       (rw->headers != NULL ? rw->headers->size : 0);
}

static void
put_status(struct out *o, int status)
{
	char s[3] = {(char)('0' + status / 100 % 10),
		     (char)('0' + status / 10 % 10), (char)('0' + status % 10)};

	put(o, s, 3);
}

size_t
rewrite_response_head(const struct rewrite_response *rw, char *buf, size_t cap)
{
	const struct http_response *res = rw->res;
	/* Interim responses (1xx) pass as they are. */
	const struct rewrite_headers *pol =
	    res->status >= 200 ? rw->headers : NULL;
	struct out o = {buf, cap, 0};
	size_t i;

	put_lit(&o, "HTTP/1.1 ");
	put_status(&o, res->status);
	put_lit(&o, " ");
	put(&o, res->reason, res->reason_len);
	put_lit(&o, "\r\n");
	for (i = 0; i < res->nheaders; i++) {
		const struct http_header *h = &res->headers[i];
		unsigned c = field_class(h->name, h->name_len);

		if ((c & F_FRAMING) ||
		    ((c & F_HOP) && !(rw->tunnel && (c & F_UPGRADE))) ||
		    conn_names(rw->conn, h) || policy_drops(pol, h))
			continue;
		put_field(&o, h->name, h->name_len, h->value, h->value_len);
	}
	put_policy(&o, pol);
	if (res->status == 101) {
		if (rw->tunnel)
			put_lit(&o, "Connection: upgrade\r\n");
	} else if (res->status >= 200) {
		if (rw->hsts_max_age > 0) {
			put_lit(&o, "Strict-Transport-Security: max-age=");
			put_uint(&o, rw->hsts_max_age, 10);
			put_lit(&o, "\r\n");
		}
		if (res->body == HTTP_BODY_LENGTH ||
		    (res->body == HTTP_BODY_NONE && res->has_length &&
		     res->status != 204)) {
			put_lit(&o, "Content-Length: ");
			put_uint(&o, res->content_length, 10);
			put_lit(&o, "\r\n");
		} else if ((res->body == HTTP_BODY_CHUNKED ||
			    res->body == HTTP_BODY_CLOSE) &&
			   !rw->client_http10) {
			put_lit(&o, "Transfer-Encoding: chunked\r\n");
		}
		if (!rw->keep_alive)
			put_lit(&o, "Connection: close\r\n");
		else if (rw->client_http10)
			put_lit(&o, "Connection: keep-alive\r\n");
	}
	put_lit(&o, "\r\n");
	return o.len;
}

size_t
rewrite_answer(const struct rewrite_answer *a, char *buf, size_t cap)
{
	const char *reason = http_reason(a->status);
	size_t rlen = strlen(reason), blen, i, j;
	struct out o = {buf, cap, 0};

	blen = 4 + rlen + 1 + (a->detail.p != NULL ? 2 + a->detail.n : 0);
	put_lit(&o, "HTTP/1.1 ");
	put_status(&o, a->status);
	put_lit(&o, " ");
	put(&o, reason, rlen);
	put_lit(&o, "\r\nContent-Type: text/plain; charset=utf-8\r\n"
		    "Content-Length: ");
	put_uint(&o, blen, 10);
	put_lit(&o, "\r\n");
	if (a->close)
		put_lit(&o, "Connection: close\r\n");
	else if (a->http10_keep)
		put_lit(&o, "Connection: keep-alive\r\n");
	if (a->hsts_max_age > 0) {
		put_lit(&o, "Strict-Transport-Security: max-age=");
		put_uint(&o, a->hsts_max_age, 10);
		put_lit(&o, "\r\n");
	}
	for (i = 0; i < a->nfields; i++) {
		put(&o, a->fields[i].name, strlen(a->fields[i].name));
		put_lit(&o, ": ");
		for (j = 0; j < 4 && a->fields[i].v[j].p != NULL; j++)
			put_str(&o, a->fields[i].v[j]);
		put_lit(&o, "\r\n");
	}
	put_policy(&o, a->headers);
	put_lit(&o, "\r\n");
	if (a->head)
		return o.len;
	put_status(&o, a->status);
	put_lit(&o, " ");
	put(&o, reason, rlen);
	if (a->detail.p != NULL) {
		put_lit(&o, ": ");
		put_str(&o, a->detail);
	}
	put_lit(&o, "\n");
	return o.len;
}

void
rewrite_body_init(struct rewrite_body *b, enum http_body kind, uint64_t length,
		  bool chunked_out, uint64_t limit)
{
	b->kind = kind;
	b->left = kind == HTTP_BODY_LENGTH ? length : 0;
	http_chunked_init(&b->ch);
	b->chunked_out = chunked_out;
	b->limit = limit;
	b->data = 0;
}

/* The size line of a chunk of n bytes. */
static void
chunk_line(struct evbuffer *out, uint64_t n)
{
	char line[24];
	struct out o = {line, sizeof(line), 0};

	put_uint(&o, n, 16);
	put_lit(&o, "\r\n");
	evbuffer_add(out, line, o.len);
}

/*
 * Reads framing from the front of `in` (not empty) and drains it, up to
 * where data begins or the body ends; 0 or -1. Looks through the first
 * chains one by one, empty ones included; should there be nothing but
 * empty ones among them, makes the front contiguous so the next call
 * progresses.
 */
static int
frame(struct rewrite_body *b, struct evbuffer *in)
{
	struct evbuffer_iovec v[8];
	int nv = evbuffer_peek(in, -1, NULL, v, 8), i;
	size_t used = 0;
	ssize_t r;

	if (nv > 8)
		nv = 8;
	for (i = 0; i < nv; i++) {
		if ((r = http_chunked_frame(&b->ch, v[i].iov_base,
					    v[i].iov_len)) == -1)
			return -1;
		used += (size_t)r;
		if ((size_t)r < v[i].iov_len || b->ch.remaining > 0 ||
		    b->ch.done)
			break;
	}
	evbuffer_drain(in, used);
	if (used == 0 && b->ch.remaining == 0 && !b->ch.done)
		evbuffer_pullup(in, 64);
	return 0;
}

/* A chunked body: data moves as it is, framing is parsed and written. */
static int
body_chunked(struct rewrite_body *b, struct evbuffer *in, struct evbuffer *out)
{
	size_t n;

	while (!b->ch.done) {
		if (b->ch.remaining > 0) {
			n = evbuffer_get_length(in);
			if (n == 0)
				return 0;
			if (n > b->ch.remaining)
				n = (size_t)b->ch.remaining;
			evbuffer_remove_buffer(in, out, n);
			http_chunked_skip(&b->ch, n);
			b->data += n;
			if (b->ch.remaining == 0 && b->chunked_out)
				evbuffer_add(out, "\r\n", 2);
			continue;
		}
		if (evbuffer_get_length(in) == 0)
			return 0;
		if (frame(b, in) == -1)
			return -1;
		if (b->ch.remaining > 0) {
			/* A new chunk: its size is known before its data. */
			if (b->ch.remaining > b->limit - b->data)
				return -2;
			if (b->chunked_out)
				chunk_line(out, b->ch.remaining);
		}
	}
	if (b->chunked_out)
		evbuffer_add(out, "0\r\n\r\n", 5);
	return 1;
}

int
rewrite_body_move(struct rewrite_body *b, struct evbuffer *in,
		  struct evbuffer *out)
{
	size_t n = evbuffer_get_length(in);

	switch (b->kind) {
	case HTTP_BODY_NONE:
		return 1;
	case HTTP_BODY_LENGTH:
		if (n > b->left)
			n = (size_t)b->left;
		evbuffer_remove_buffer(in, out, n);
		b->left -= n;
		b->data += n;
		return b->left == 0;
	case HTTP_BODY_CLOSE:
		if (n > 0 && b->chunked_out)
			chunk_line(out, n);
		evbuffer_add_buffer(out, in);
		if (n > 0 && b->chunked_out)
			evbuffer_add(out, "\r\n", 2);
		b->data += n;
		return 0;
	case HTTP_BODY_CHUNKED:
		return body_chunked(b, in, out);
	}
	return -1;
}

void
rewrite_body_close(struct rewrite_body *b, struct evbuffer *out)
{
	if (b->kind == HTTP_BODY_CLOSE && b->chunked_out)
		evbuffer_add(out, "0\r\n\r\n", 5);
}
