/*
 * http.c - strict HTTP/1.1 head parser and chunked framing scanner
 * (RFC 9110, RFC 9112); the contracts are in http.h.
 *
 * A head is read in two passes. The first only looks for the empty line
 * that ends it, with memchr over LF, so the "need more bytes" answer stays
 * cheap when the caller re-parses a growing buffer; it also rejects a bare
 * LF and enforces the limits on partial input. The second walks the
 * complete head once, through a class table. No byte class holds CR or LF
 * and a CR is only passed after checking that LF follows, so the second
 * pass stops at the first CRLF CRLF without bounds checks of its own; that
 * is also why it may skip the first when the buffer ends in CRLF CRLF.
 */
#include <limits.h>
#include <string.h>

#include "http.h"

#define HTTP_MAX_METHOD 32     /* longer than any registered method */
#define HTTP_MAX_EMPTY_LINES 8 /* skipped before a request line */
#define CHUNK_MAX_LINE 4096    /* a size line, or all trailer lines */

#define C_TCHAR 0x01  /* tchar, RFC 9110 section 5.6.2 */
#define C_VALUE 0x02  /* field-content or OWS, RFC 9110 section 5.5 */
#define C_TARGET 0x04 /* VCHAR but '#': a request-target byte */
#define C_HOST 0x08   /* authority: unreserved sub-delims ":[]%" (RFC 3986) */
#define C_HEX 0x10    /* HEXDIG */
#define C_QDTEXT 0x20 /* qdtext, RFC 9110 section 5.6.4 */
#define C_VCHAR 0x40  /* VCHAR */

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define IS_TCHAR(c)                                                            \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' ||             \
	 (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||              \
	 (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || \
	 (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_HOST(c)                                                             \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' ||             \
	 (c) == '_' || (c) == '~' || (c) == '!' || (c) == '$' || (c) == '&' || \
	 (c) == '\'' || (c) == '(' || (c) == ')' || (c) == '*' ||              \
	 (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' || (c) == ':' || \
	 (c) == '[' || (c) == ']' || (c) == '%')
#define IS_HEX(c)                                                              \
	(IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') ||                          \
	 ((c) >= 'A' && (c) <= 'F'))

#define IS_FIELD(c) (IS_WS(c) || IS_VCHAR(c) || (c) >= 0x80)

#define CLASS(c)                                                               \
	((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_FIELD(c) ? C_VALUE : 0) |           \
	 (IS_VCHAR(c) && (c) != '#' ? C_TARGET : 0) |                          \
	 (IS_HOST(c) ? C_HOST : 0) | (IS_HEX(c) ? C_HEX : 0) |                 \
	 (IS_FIELD(c) && (c) != '"' && (c) != '\\' ? C_QDTEXT : 0) |           \
	 (IS_VCHAR(c) ? C_VCHAR : 0))
#define CLASS4(c) CLASS(c), CLASS((c) + 1), CLASS((c) + 2), CLASS((c) + 3)
#define CLASS16(c) CLASS4(c), CLASS4((c) + 4), CLASS4((c) + 8), CLASS4((c) + 12)
#define CLASS64(c)                                                             \
	CLASS16(c), CLASS16((c) + 16), CLASS16((c) + 32), CLASS16((c) + 48)

/* Byte classes, computed by the compiler from the grammar above. */
static const unsigned char http_class[256] = {
    CLASS64(0x00),
    CLASS64(0x40),
    CLASS64(0x80),
    CLASS64(0xc0),
};

#define IS(cls, c) (http_class[(unsigned char)(c)] & (cls))

/* Where a shared helper records why it failed. */
struct http_fail {
	int status;
	const char *why;
};

/* Chunked scanner states (RFC 9112 section 7.1). */
enum {
	CK_SIZE0,	/* first HEXDIG of a chunk-size */
	CK_SIZE,	/* further HEXDIGs */
	CK_EXT_NAME0,	/* after ';': a chunk-ext-name */
	CK_EXT_NAME,	/* in chunk-ext-name */
	CK_EXT_VAL0,	/* after '=': a token or quoted-string */
	CK_EXT_TOKEN,	/* in a token value */
	CK_EXT_QUOTED,	/* in a quoted-string value */
	CK_EXT_QPAIR,	/* after a backslash in it */
	CK_EXT_VAL_END, /* after the closing quote */
	CK_SIZE_LF,	/* CR of the size line seen */
	CK_DATA,	/* in chunk-data */
	CK_DATA_CR,	/* CRLF after chunk-data */
	CK_DATA_LF,
	CK_TRAILER0, /* start of a trailer line, or the final CRLF */
	CK_TRAILER_NAME,
	CK_TRAILER_VALUE,
	CK_TRAILER_LF,
	CK_END_LF, /* CR of the final line seen */
	CK_DONE,
};

static const char http_root[] = "/";

/*
 * Word-at-a-time tests, exact about whether a byte matches though not
 * about which: a hit sends the scan back to the byte loop.
 */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static uint64_t
load8(const char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w;
}

/* Nonzero if a byte of w is below n, n <= 128. */
static uint64_t
has_less(uint64_t w, uint64_t n)
{
	return (w - ONES * n) & ~w & HIGHS;
}

/*
 * Skips field-content and OWS from p, never reading at or past end; 8
 * bytes at a time while they are all printable, SP or obs-text.
 */
static const char *
skip_value(const char *p, const char *end)
{
	uint64_t w;

	while (end - p >= 8) {
		w = load8(p);
		if (has_less(w, 0x20) | has_less(w ^ ONES * 0x7f, 1))
			break;
		p += 8;
	}
	while (IS(C_VALUE, *p))
		p++;
	return p;
}

static int
fail(struct http_fail *f, int status, const char *why)
{
	f->status = status;
	f->why = why;
	return -1;
}

static unsigned char
lower(unsigned char c)
{
	return (unsigned char)(c - 'A') < 26 ? c | 0x20 : c;
}

/* Case-insensitive comparison of n bytes (ASCII only, RFC 9110 5.1). */
static bool
eq_ci(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

static bool
header_is(const struct http_header *h, const char *name, size_t n)
{
	return h->name_len == n && eq_ci(h->name, name, n);
}

static bool
value_is(const struct http_header *h, const char *value, size_t n)
{
	return h->value_len == n && eq_ci(h->value, value, n);
}

/* http_list_next(), inlined where this file walks lists. */
static bool
list_next(const char **pos, const char *end, const char **el, size_t *len)
{
	const char *p = *pos, *comma, *e;

	if (p == NULL)
		return false;
	comma = memchr(p, ',', (size_t)(end - p));
	e = comma != NULL ? comma : end;
	*pos = comma != NULL ? comma + 1 : NULL;
	while (p < e && IS_WS(*p))
		p++;
	while (e > p && IS_WS(e[-1]))
		e--;
	*el = p;
	*len = (size_t)(e - p);
	return true;
}

/* 1*DIGIT up to HTTP_MAX_CONTENT_LENGTH (RFC 9110 section 8.6); 0 or -1. */
static int
parse_length(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - (unsigned)'0';

		if (d > 9 || v > (HTTP_MAX_CONTENT_LENGTH - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

#define CONN_CLOSE 0x1
#define CONN_KEEP_ALIVE 0x2
#define CONN_UPGRADE 0x4

/* The connection options we act on (RFC 9110 section 7.6.1). */
static unsigned
connection_flags(const struct http_header *h)
{
	const char *pos = h->value, *el;
	size_t n;
	unsigned f = 0;

	while (list_next(&pos, h->value + h->value_len, &el, &n)) {
		if (n == 5 && eq_ci(el, "close", 5))
			f |= CONN_CLOSE;
		else if (n == 10 && eq_ci(el, "keep-alive", 10))
			f |= CONN_KEEP_ALIVE;
		else if (n == 7 && eq_ci(el, "upgrade", 7))
			f |= CONN_UPGRADE;
	}
	return f;
}

/*
 * Skips the empty lines a request may start with (RFC 9112 section 2.2).
 * Returns 0 with *off at the request line, -2 if only CRLFs are there so
 * far, -1 on a bare CR or LF or more than HTTP_MAX_EMPTY_LINES.
 */
static int
skip_empty_lines(const char *buf, size_t len, size_t *off, struct http_fail *f)
{
	size_t p = 0, n = 0;

	while (p < len) {
		if (buf[p] == '\n')
			return fail(f, 400, "bare LF");
		if (buf[p] != '\r')
			break;
		if (p + 1 == len)
			return -2;
		if (buf[p + 1] != '\n')
			return fail(f, 400, "bare CR");
		if (++n > HTTP_MAX_EMPTY_LINES)
			return fail(f, 400, "too many empty lines");
		p += 2;
	}
	*off = p;
	return p < len ? 0 : -2;
}

/*
 * First pass: looks for the empty line that ends a head whose first line
 * starts at buf[off], within buf[0..min(len, max_head)). Returns 1 with
 * *end just past it, 0 if it is not there, -1 on a bare LF (RFC 9112
 * section 2.2) or more than max_lines lines before it.
 */
static int
head_find_end(const char *buf, size_t off, size_t len, size_t max_head,
	      size_t max_lines, size_t *end, struct http_fail *f)
{
	const char *p = buf + off, *e = buf + (len < max_head ? len : max_head);
	size_t ls = off, nlines = 0, i;

	for (;;) {
		if ((p = memchr(p, '\n', (size_t)(e - p))) == NULL)
			return 0;
		i = (size_t)(p - buf);
		if (i == ls || buf[i - 1] != '\r')
			return fail(f, 400, "bare LF");
		if (i - 1 == ls) {
			*end = i + 1;
			return 1;
		}
		if (++nlines > max_lines)
			return fail(f, 431, "too many header fields");
		ls = i + 1;
		p++;
	}
}

/*
 * Sets *end to a bound within which the second pass is safe and returns 1,
 * or returns 0 (incomplete) or -1 as head_find_end does. A buffer that
 * ends in CRLF CRLF and fits in max_head, the usual whole request in one
 * read, needs no first pass: the second stops at that CRLF CRLF at the
 * latest, and its result is the head's real end.
 */
static int
head_bound(const char *buf, size_t off, size_t len, size_t max_head,
	   size_t max_lines, size_t *end, struct http_fail *f)
{
	if (len <= max_head && len - off >= 4 &&
	    memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) {
		*end = len;
		return 1;
	}
	return head_find_end(buf, off, len, max_head, max_lines, end, f);
}

/*
 * Second pass over the field lines (RFC 9112 section 5) of a head known to
 * be complete, from p up to and including the empty line. Returns the
 * position after that line, or NULL on obs-fold, whitespace before the
 * colon (section 5.1), a bad name or value byte, a bare CR, or more than
 * max fields.
 */
static const char *
parse_fields(const char *p, const char *end, struct http_header *h, size_t max,
	     size_t *nh, struct http_fail *f)
{
	size_t n = 0;
	const char *name, *v, *ve;

	for (;;) {
		if (*p == '\r')
			break;
		if (IS_WS(*p)) {
			fail(f, 400, "obs-fold");
			return NULL;
		}
		name = p;
		while (IS(C_TCHAR, *p))
			p++;
		if (p == name || *p != ':') {
			fail(f, 400,
			     p != name && IS_WS(*p)
				 ? "whitespace before colon"
				 : "invalid character in field name");
			return NULL;
		}
		if (n == max) {
			fail(f, 431, "too many header fields");
			return NULL;
		}
		h[n].name = name;
		h[n].name_len = (size_t)(p - name);
		p++;
		while (IS_WS(*p))
			p++;
		v = p;
		p = skip_value(p, end);
		ve = p;
		while (ve > v && IS_WS(ve[-1]))
			ve--;
		h[n].value = v;
		h[n].value_len = (size_t)(ve - v);
		n++;
		if (*p != '\r') {
			fail(f, 400, "invalid character in field value");
			return NULL;
		}
		if (p[1] != '\n') {
			fail(f, 400, "bare CR");
			return NULL;
		}
		p += 2;
	}
	if (p[1] != '\n') {
		fail(f, 400, "bare CR");
		return NULL;
	}
	*nh = n;
	return p + 2;
}

/*
 * The version at p, which must end the line: HTTP-version is
 * "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 section 2.3). Returns
 * the minor version of 1.0 or 1.1, -1 for any other well-formed version,
 * -2 when malformed; *next is set past the CRLF.
 */
static int
parse_version(const char *p, const char **next)
{
	const char *v = p;

	while (IS(C_VCHAR, *p))
		p++;
	if (*p != '\r' || p[1] != '\n' || p - v != 8 ||
	    memcmp(v, "HTTP/", 5) != 0 || !IS_DIGIT(v[5]) || v[6] != '.' ||
	    !IS_DIGIT(v[7]))
		return -2;
	*next = p + 2;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return -1;
	return v[7] - '0';
}

static unsigned
hex_value(unsigned char ch)
{
	return ch <= '9' ? ch - (unsigned)'0'
			 : (ch | 0x20) - (unsigned)'a' + 10;
}

/*
 * The path of a request-target, up to its query, must have one meaning
 * only. Routes match bytes, and what sits behind the gateway decodes and
 * cleans paths before its own routing (Go's net/http, Prometheus's router,
 * most frameworks): a path that reads differently after decoding or
 * cleaning would be routed by the gateway one way and served another, past
 * a realm on a longer prefix. So these are refused rather than normalized:
 *   - a '%' not followed by two hex digits;
 *   - percent-encoded unreserved characters, '/', '\' and NUL (%41, %2e,
 *     %2F, %5C, %00): RFC 3986 says unreserved ones are never to be
 *     encoded, and an encoded separator is a second path syntax;
 *   - a raw '\', not a URI character at all, which Windows servers and
 *     some URL parsers read as '/';
 *   - "." and ".." segments and empty ones ("//"), which clients resolve
 *     before sending (RFC 3986 section 5.2.4) and servers may resolve
 *     again; also "..;x" and ".;x": servlet containers cut path parameters
 *     off a segment before they resolve dot segments.
 * Nothing else is rewritten: the path goes upstream byte for byte.
 */
static int
check_path(const char *p, size_t n, struct http_fail *f)
{
	const char *q = memchr(p, '?', n);
	size_t i, seg = 1,   /* the current segment starts here; p[0] is '/' */
	    semi = SIZE_MAX; /* its first ';', if any */

	if (q != NULL)
		n = (size_t)(q - p);
	for (i = 1; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t len = (semi < i ? semi : i) - seg;

			if (i - seg == 0 && i < n)
				return fail(
				    f, 400,
				    "empty segment (//) in target path");
			if ((len == 1 && p[seg] == '.') ||
			    (len == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return fail(f, 400,
					    "dot segment in target path");
			seg = i + 1;
			semi = SIZE_MAX;
		} else if (p[i] == ';') {
			if (semi == SIZE_MAX)
				semi = i;
		} else if (p[i] == '\\') {
			return fail(f, 400, "backslash in target path");
		} else if (p[i] == '%') {
			unsigned v;

			if (i + 2 >= n || !IS(C_HEX, p[i + 1]) ||
			    !IS(C_HEX, p[i + 2]))
				return fail(f, 400,
					    "invalid percent-encoding in "
					    "target path");
			v = hex_value((unsigned char)p[i + 1]) * 16 +
			    hex_value((unsigned char)p[i + 2]);
			if (IS_ALPHA(v) || IS_DIGIT(v) || v == '-' ||
			    v == '.' || v == '_' || v == '~' || v == '/' ||
			    v == '\\' || v == 0)
				return fail(f, 400,
					    "percent-encoded unreserved "
					    "character or separator in target "
					    "path");
			i += 2;
		}
	}
	return 0;
}

/*
 * Classifies the target (RFC 9112 section 3.2), already checked to be
 * VCHARs but '#'. Sets path and form; *auth is the authority of an
 * absolute-form target, NULL otherwise.
 */
static int
parse_target(struct http_request *req, const char **auth, size_t *auth_len,
	     struct http_fail *f)
{
	const char *t = req->target;
	size_t n = req->target_len, a, q;

	*auth = NULL;
	*auth_len = 0;
	if (t[0] == '/') {
		/* "//x" reads as a network-path reference to many URL APIs. */
		if (n > 1 && t[1] == '/')
			return fail(f, 400, "target path starts with //");
		req->target_form = HTTP_TARGET_ORIGIN;
		req->path = t;
		req->path_len = n;
		return check_path(t, n, f);
	}
	if (n == 1 && t[0] == '*') {
		if (req->method_len != 7 ||
		    memcmp(req->method, "OPTIONS", 7) != 0)
			return fail(f, 400, "asterisk-form without OPTIONS");
		req->target_form = HTTP_TARGET_ASTERISK;
		req->path = t;
		req->path_len = 1;
		return 0;
	}
	if (n >= 7 && eq_ci(t, "http://", 7))
		a = 7;
	else if (n >= 8 && eq_ci(t, "https://", 8))
		a = 8;
	else
		return fail(f, 400, "invalid request-target");
	/* No userinfo ('@' is not C_HOST): it only serves to mislead. */
	for (q = a; q < n && IS(C_HOST, t[q]); q++)
		;
	if (q == a)
		return fail(f, 400, "absolute-form without authority");
	if (q < n && t[q] != '/')
		return fail(f, 400, "invalid authority in absolute-form");
	if (n - q > 1 && t[q + 1] == '/')
		return fail(f, 400, "target path starts with //");
	req->target_form = HTTP_TARGET_ABSOLUTE;
	*auth = t + a;
	*auth_len = q - a;
	if (q == n) { /* "http://host": the path is "/", nothing to check */
		req->path = http_root;
		req->path_len = 1;
		return 0;
	}
	req->path = t + q;
	req->path_len = n - q;
	return check_path(req->path, req->path_len, f);
}

/*
 * Parses the request line at buf[off] (RFC 9112 section 3) and returns the
 * position after it, or NULL.
 */
static const char *
parse_request_line(const char *buf, size_t off, const struct http_limits *lim,
		   struct http_request *req, struct http_fail *f)
{
	const char *p = buf + off, *next = NULL;
	int minor;

	req->method = p;
	while (IS(C_TCHAR, *p))
		p++;
	req->method_len = (size_t)(p - req->method);
	if (req->method_len == 0 || *p != ' ') {
		fail(f, 400, "invalid method");
		return NULL;
	}
	if (req->method_len > HTTP_MAX_METHOD) {
		fail(f, 400, "method too long");
		return NULL;
	}
	/* CONNECT asks for a tunnel, which a reverse proxy does not offer. */
	if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0) {
		fail(f, 400, "CONNECT not supported");
		return NULL;
	}
	req->target = ++p;
	while (IS(C_TARGET, *p))
		p++;
	req->target_len = (size_t)(p - req->target);
	if (req->target_len > lim->max_target) {
		fail(f, 414, "target too long");
		return NULL;
	}
	if (req->target_len == 0 || *p != ' ') {
		fail(f, 400, "invalid character in target");
		return NULL;
	}
	minor = parse_version(p + 1, &next);
	if (minor == -2) {
		fail(f, 400, "malformed request line");
		return NULL;
	}
	if (minor == -1) {
		fail(f, 505, "unsupported HTTP version");
		return NULL;
	}
	req->minor = minor;
	return next;
}

/*
 * A request head that is not complete yet: the request line is checked as
 * far as it has arrived, so bytes that cannot start a request (a TLS
 * ClientHello on a plain port, binary garbage) get their 400 at once
 * instead of after the header timeout. Also 414 as soon as the target seen
 * so far is too long, and 431 once the head cannot fit. Whatever passes
 * here passes parse_request_line() as far as it goes.
 */
static int
request_partial(const char *buf, size_t off, size_t len,
		const struct http_limits *lim, size_t max_head,
		struct http_fail *f)
{
	static const char version[] = "HTTP/0.0\r\n"; /* '0': any DIGIT */
	const char *m = buf + off, *p = m, *end = buf + len, *t;
	size_t k;

	for (; p < end && IS(C_TCHAR, *p); p++)
		if (p - m == HTTP_MAX_METHOD)
			return fail(f, 400, "method too long");
	if (p == end)
		goto more;
	if (p == m || *p != ' ')
		return fail(f, 400, "invalid method");
	for (t = ++p; p < end && IS(C_TARGET, *p); p++)
		if ((size_t)(p - t) == lim->max_target)
			return fail(f, 414, "target too long");
	if (p == end)
		goto more;
	if (p == t || *p != ' ')
		return fail(f, 400, "invalid character in target");
	for (p++, k = 0; p < end && k < sizeof(version) - 1; p++, k++)
		if (version[k] == '0' ? !IS_DIGIT(*p) : *p != version[k])
			return fail(f, 400, "malformed request line");
more:
	if (len >= max_head)
		return fail(f, 431, "request head too large");
	return -2;
}

/*
 * Request Transfer-Encoding (RFC 9112 section 6.1): "chunked" alone is
 * the only coding we forward. Others are unknown (501); chunked anywhere
 * but last (section 6.3, item 4) or twice, with parameters, or a malformed
 * list is 400.
 */
static int
request_te(const struct http_header *te, struct http_fail *f)
{
	const char *pos = te->value, *end = te->value + te->value_len, *el;
	size_t n, tok;
	bool chunked = false, unknown = false;

	while (list_next(&pos, end, &el, &n)) {
		for (tok = 0; tok < n && IS(C_TCHAR, el[tok]); tok++)
			;
		if (tok == 0)
			return fail(f, 400, "malformed Transfer-Encoding");
		if (chunked)
			return fail(f, 400, "chunked is not the last coding");
		if (tok == 7 && eq_ci(el, "chunked", 7)) {
			if (n != 7)
				return fail(f, 400, "chunked with parameters");
			chunked = true;
			continue;
		}
		while (tok < n && IS_WS(el[tok]))
			tok++;
		if (tok < n && el[tok] != ';')
			return fail(f, 400, "malformed Transfer-Encoding");
		unknown = true;
	}
	if (unknown)
		return fail(f, 501, "unsupported transfer coding");
	return 0;
}

/* Host (RFC 9110 section 7.2): an authority, never empty here. */
static int
request_host(struct http_request *req, const struct http_header *host,
	     const char *auth, size_t auth_len, struct http_fail *f)
{
	size_t i;

	if (host == NULL) {
		if (req->minor == 1)
			return fail(f, 400, "missing Host");
		return 0;
	}
	if (host->value_len == 0)
		return fail(f, 400, "empty Host");
	for (i = 0; i < host->value_len; i++)
		if (!IS(C_HOST, host->value[i]))
			return fail(f, 400, "invalid Host");
	/*
	 * Section 3.2.2 lets a server prefer the target's authority over
	 * Host; demanding that they agree keeps routing (by Host) and the
	 * upstream's view of the request the same.
	 */
	if (auth != NULL && (auth_len != host->value_len ||
			     !eq_ci(auth, host->value, auth_len)))
		return fail(f, 400, "Host differs from target");
	req->host = host->value;
	req->host_len = host->value_len;
	return 0;
}

/* Body framing (RFC 9112 section 6.3) and connection options. */
static int
request_derive(struct http_request *req, const char *auth, size_t auth_len,
	       struct http_fail *f)
{
	const struct http_header *h, *cl = NULL, *te = NULL, *host = NULL;
	bool has_upgrade = false;
	unsigned conn = 0;
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		switch (h->name_len) {
		case 4:
			if (header_is(h, "host", 4)) {
				if (host != NULL)
					return fail(f, 400, "repeated Host");
				host = h;
			}
			break;
		case 6:
			/* RFC 9110 section 10.1.1: ignored in HTTP/1.0. */
			if (header_is(h, "expect", 6) &&
			    value_is(h, "100-continue", 12) && req->minor == 1)
				req->expect_continue = true;
			break;
		case 7:
			if (header_is(h, "upgrade", 7))
				has_upgrade = true;
			break;
		case 10:
			if (header_is(h, "connection", 10))
				conn |= connection_flags(h);
			break;
		case 14:
			if (header_is(h, "content-length", 14)) {
				if (cl != NULL)
					return fail(f, 400,
						    "repeated Content-Length");
				cl = h;
			}
			break;
		case 17:
			if (header_is(h, "transfer-encoding", 17)) {
				if (te != NULL)
					return fail(
					    f, 400,
					    "repeated Transfer-Encoding");
				te = h;
			}
			break;
		}
	}
	if (request_host(req, host, auth, auth_len, f) == -1)
		return -1;
	if (te != NULL) {
		if (req->minor == 0)
			return fail(f, 400, "Transfer-Encoding in HTTP/1.0");
		if (cl != NULL)
			return fail(f, 400,
				    "Content-Length with Transfer-Encoding");
		if (request_te(te, f) == -1)
			return -1;
		req->body = HTTP_BODY_CHUNKED;
	} else if (cl != NULL) {
		if (parse_length(cl->value, cl->value_len,
				 &req->content_length) == -1)
			return fail(f, 400, "invalid Content-Length");
		req->body = HTTP_BODY_LENGTH;
	}
	if (req->minor == 1)
		req->keep_alive = !(conn & CONN_CLOSE);
	else
		req->keep_alive =
		    (conn & (CONN_CLOSE | CONN_KEEP_ALIVE)) == CONN_KEEP_ALIVE;
	req->upgrade = (conn & CONN_UPGRADE) && has_upgrade;
	return 0;
}

/*
 * Content-Length 0 yields HTTP_BODY_LENGTH with content_length 0, not
 * HTTP_BODY_NONE: the request said how it is framed, and the caller has
 * nothing to read either way.
 */
int
http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		   struct http_request *req)
{
	struct http_fail f = {0, NULL};
	size_t off = 0, end = 0, max_head, max_headers;
	const char *p, *auth;
	size_t auth_len;
	int rc;

	req->method = req->target = req->path = NULL;
	req->method_len = req->target_len = req->path_len = 0;
	req->nheaders = 0;
	req->body = HTTP_BODY_NONE;
	req->content_length = 0;
	req->host = NULL;
	req->host_len = 0;
	req->keep_alive = req->upgrade = req->expect_continue = false;
	req->status = 0;
	req->error = NULL;

	max_head = lim->max_head < INT_MAX ? lim->max_head : INT_MAX;
	max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers
							  : HTTP_MAX_HEADERS;
	if ((rc = skip_empty_lines(buf, len, &off, &f)) != 0)
		goto out;
	rc = head_bound(buf, off, len, max_head, max_headers + 1, &end, &f);
	if (rc != 1) {
		if (rc == 0)
			rc = request_partial(buf, off, len, lim, max_head, &f);
		goto out;
	}
	rc = -1;
	if ((p = parse_request_line(buf, off, lim, req, &f)) == NULL ||
	    parse_target(req, &auth, &auth_len, &f) == -1 ||
	    (p = parse_fields(p, buf + end, req->headers, max_headers,
			      &req->nheaders, &f)) == NULL ||
	    request_derive(req, auth, auth_len, &f) == -1)
		goto out;
	rc = (int)(p - buf);
out:
	if (rc == -1) {
		req->status = f.status;
		req->error = f.why;
	}
	return rc;
}

/* Body framing of a response (RFC 9112 section 6.3) and keep-alive. */
static int
response_derive(struct http_response *res, bool method_is_head,
		struct http_fail *f)
{
	const struct http_header *h, *te = NULL;
	uint64_t v;
	unsigned conn = 0;
	size_t i;

	for (i = 0; i < res->nheaders; i++) {
		h = &res->headers[i];
		if (header_is(h, "content-length", 14)) {
			/* RFC 9110 section 8.6: equal repeats are one value. */
			if (parse_length(h->value, h->value_len, &v) == -1)
				return fail(f, 502, "invalid Content-Length");
			if (res->has_length && v != res->content_length)
				return fail(f, 502,
					    "conflicting Content-Length");
			res->has_length = true;
			res->content_length = v;
		} else if (header_is(h, "transfer-encoding", 17)) {
			/* One field, one coding: "chunked". Anything else
			 * would be a coding the client is not told of once
			 * the gateway has re-framed the body. */
			if (te != NULL || !value_is(h, "chunked", 7))
				return fail(f, 502,
					    "unsupported Transfer-Encoding");
			te = h;
		} else if (header_is(h, "connection", 10)) {
			conn |= connection_flags(h);
		}
	}
	if (te != NULL && res->has_length)
		return fail(f, 502, "Content-Length with Transfer-Encoding");
	if (te != NULL && res->minor == 0)
		return fail(f, 502, "Transfer-Encoding in HTTP/1.0");
	if (method_is_head || res->status < 200 || res->status == 204 ||
	    res->status == 304)
		res->body = HTTP_BODY_NONE;
	else if (te != NULL)
		res->body = HTTP_BODY_CHUNKED;
	else if (res->has_length)
		res->body = HTTP_BODY_LENGTH;
	else
		res->body = HTTP_BODY_CLOSE;
	if (res->minor == 1)
		res->keep_alive = !(conn & CONN_CLOSE);
	else
		res->keep_alive =
		    (conn & (CONN_CLOSE | CONN_KEEP_ALIVE)) == CONN_KEEP_ALIVE;
	if (res->body == HTTP_BODY_CLOSE)
		res->keep_alive = false;
	return 0;
}

/*
 * The status line (RFC 9112 section 4), "HTTP/1.x 3DIGIT [SP reason]":
 * the reason may be empty or, leniently, missing with its SP.
 */
static const char *
parse_status_line(const char *p, size_t n, struct http_response *res,
		  struct http_fail *f)
{
	const char *r;

	/* The shortest complete head: "HTTP/1.1 200" CRLF CRLF. */
	if (n < 16 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' || p[9] < '1' ||
	    p[9] > '9' || !IS_DIGIT(p[10]) || !IS_DIGIT(p[11])) {
		fail(f, 502, "malformed status line");
		return NULL;
	}
	res->minor = p[7] - '0';
	res->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	r = p + 12;
	if (*r == ' ')
		r++;
	else if (*r != '\r') {
		fail(f, 502, "malformed status line");
		return NULL;
	}
	res->reason = r;
	while (IS(C_VALUE, *r))
		r++;
	res->reason_len = (size_t)(r - res->reason);
	if (*r != '\r' || r[1] != '\n') {
		fail(f, 502, "invalid character in reason phrase");
		return NULL;
	}
	return r + 2;
}

int
http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
		    bool method_is_head, struct http_response *res)
{
	struct http_fail f = {0, NULL};
	size_t end = 0, max_head, max_headers;
	const char *p;
	int rc;

	res->minor = res->status = 0;
	res->reason = NULL;
	res->reason_len = 0;
	res->nheaders = 0;
	res->body = HTTP_BODY_NONE;
	res->content_length = 0;
	res->has_length = false;
	res->keep_alive = false;
	res->error = NULL;

	max_head = lim->max_head < INT_MAX ? lim->max_head : INT_MAX;
	max_headers = lim->max_headers;
	rc = head_bound(buf, 0, len, max_head, max_headers + 1, &end, &f);
	if (rc != 1) {
		if (rc == 0 && len >= max_head)
			rc = fail(&f, 502, "response head too large");
		else if (rc == 0)
			rc = -2;
		goto out;
	}
	rc = -1;
	if ((p = parse_status_line(buf, end, res, &f)) == NULL ||
	    (p = parse_fields(p, buf + end, res->headers, max_headers,
			      &res->nheaders, &f)) == NULL ||
	    response_derive(res, method_is_head, &f) == -1)
		goto out;
	rc = (int)(p - buf);
out:
	if (rc == -1)
		res->error = f.why;
	return rc;
}

const struct http_header *
http_find(const struct http_header *h, size_t n, const char *name)
{
	size_t len = strlen(name), i;

	for (i = 0; i < n; i++)
		if (header_is(&h[i], name, len))
			return &h[i];
	return NULL;
}

/* The value of a base64 digit (RFC 4648 table 1), or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
http_basic_decode(const char *v, size_t len, char *out, size_t cap,
		  size_t *ulen, size_t *pwlen)
{
	size_t i = 5, n = 0, digits = 0, pad = 0, colon = 0;
	uint32_t acc = 0;
	bool found = false;

	if (len < 6 || !eq_ci(v, "basic", 5) || v[5] != ' ' || cap < 2)
		return -1;
	while (i < len && v[i] == ' ')
		i++;
	for (; i < len; i++) {
		int d = b64_value((unsigned char)v[i]);

		if (v[i] == '=') {
			pad++;
			continue;
		}
		if (d < 0 || pad > 0)
			return -1; /* not base64, or data after padding */
		acc = acc << 6 | (uint32_t)d;
		if (++digits % 4 == 0) {
			if (n + 3 > cap - 2)
				return -1;
			out[n++] = (char)(acc >> 16);
			out[n++] = (char)(acc >> 8);
			out[n++] = (char)acc;
			acc = 0;
		}
	}
	/* A last group of 2 or 3 digits holds 1 or 2 bytes and its unused
	 * bits must be zero (the canonical encoding, RFC 4648 section 3.5);
	 * 1 digit holds none; padding must complete the group if present. */
	switch (digits % 4) {
	case 1:
		return -1;
	case 2:
		if ((pad != 0 && pad != 2) || n + 1 > cap - 2 ||
		    (acc & 15) != 0)
			return -1;
		out[n++] = (char)(acc >> 4);
		break;
	case 3:
		if ((pad != 0 && pad != 1) || n + 2 > cap - 2 || (acc & 3) != 0)
			return -1;
		out[n++] = (char)(acc >> 10);
		out[n++] = (char)(acc >> 2);
		break;
	default:
		if (pad != 0 || digits == 0)
			return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c == 0x7f)
			return -1;
		if (c == ':' && !found) {
			found = true;
			colon = i;
		}
	}
	if (!found || colon == 0)
		return -1;
	/* The ':' becomes the NUL after the user. */
	out[colon] = '\0';
	out[n] = '\0';
	*ulen = colon;
	*pwlen = n - colon - 1;
	return 0;
}

bool
http_list_next(const char **pos, const char *end, const char **el, size_t *len)
{
	return list_next(pos, end, el, len);
}

bool
http_eq_ci(const char *a, const char *b, size_t n)
{
	return eq_ci(a, b, n);
}

bool
http_list_has(const char *value, size_t len, const char *token)
{
	const char *pos = value, *el;
	size_t tlen = strlen(token), n;

	while (list_next(&pos, value + len, &el, &n))
		if (n == tlen && eq_ci(el, token, n))
			return true;
	return false;
}

bool
http_is_tchar(unsigned char c)
{
	return IS(C_TCHAR, c);
}

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CK_SIZE0;
}

/*
 * One byte of a size line, RFC 9112 section 7.1.1, up to its CR:
 *   chunk-size [ chunk-ext ] CRLF
 *   chunk-ext = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )
 * without the BWS the grammar tolerates: a sender must not send it, and
 * parsers that disagree about whitespace in a size line are how chunked
 * bodies get smuggled past the proxy in front of this one. The size takes
 * at most 16 hex digits, leading zeros included (HTTP_MAX_CONTENT_LENGTH
 * needs 16). The line may end after the size, an extension name or an
 * extension value. Returns 0 or -1.
 */
static int
chunk_size_byte(struct http_chunked *c, unsigned char ch)
{
	int s = c->state;

	if (ch == '\r' && (s == CK_SIZE || s == CK_EXT_NAME ||
			   s == CK_EXT_TOKEN || s == CK_EXT_VAL_END)) {
		c->state = CK_SIZE_LF;
		return 0;
	}
	switch (s) {
	case CK_SIZE0:
		if (!IS(C_HEX, ch))
			return -1;
		c->size = hex_value(ch);
		c->state = CK_SIZE;
		return 0;
	case CK_SIZE:
		if (IS(C_HEX, ch)) {
			/* c->line counts the digits so far, this one too */
			if (c->line > 16 ||
			    c->size > HTTP_MAX_CONTENT_LENGTH >> 4)
				return -1;
			c->size = c->size << 4 | hex_value(ch);
			return c->size > HTTP_MAX_CONTENT_LENGTH ? -1 : 0;
		}
		/* FALLTHROUGH */
	case CK_EXT_VAL_END:
		if (ch != ';')
			return -1;
		c->state = CK_EXT_NAME0;
		return 0;
	case CK_EXT_NAME0:
		if (!IS(C_TCHAR, ch))
			return -1;
		c->state = CK_EXT_NAME;
		return 0;
	case CK_EXT_VAL0:
		if (IS(C_TCHAR, ch))
			c->state = CK_EXT_TOKEN;
		else if (ch == '"')
			c->state = CK_EXT_QUOTED;
		else
			return -1;
		return 0;
	case CK_EXT_NAME:
	case CK_EXT_TOKEN:
		if (IS(C_TCHAR, ch))
			return 0;
		if (ch == ';')
			c->state = CK_EXT_NAME0;
		else if (ch == '=' && s == CK_EXT_NAME)
			c->state = CK_EXT_VAL0;
		else
			return -1;
		return 0;
	case CK_EXT_QUOTED:
		if (ch == '"')
			c->state = CK_EXT_VAL_END;
		else if (ch == '\\')
			c->state = CK_EXT_QPAIR;
		else if (!IS(C_QDTEXT, ch))
			return -1;
		return 0;
	case CK_EXT_QPAIR:
		if (!IS(C_VALUE, ch))
			return -1;
		c->state = CK_EXT_QUOTED;
		return 0;
	}
	return -1;
}

/* One byte outside chunk-data and size lines (RFC 9112 section 7.1). */
static int
chunk_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CK_SIZE_LF:
		if (ch != '\n')
			return -1;
		c->line = 0;
		if (c->size == 0) {
			c->state = CK_TRAILER0;
		} else {
			c->remaining = c->size;
			c->state = CK_DATA;
		}
		return 0;
	case CK_DATA_CR:
		if (ch != '\r')
			return -1;
		c->state = CK_DATA_LF;
		return 0;
	case CK_DATA_LF:
		if (ch != '\n')
			return -1;
		c->state = CK_SIZE0;
		c->line = 0;
		return 0;
	case CK_TRAILER0:
		/* Trailer fields as in RFC 9112 section 7.1.2: no obs-fold. */
		if (ch == '\r')
			c->state = CK_END_LF;
		else if (IS(C_TCHAR, ch))
			c->state = CK_TRAILER_NAME;
		else
			return -1;
		return 0;
	case CK_TRAILER_NAME:
		if (ch == ':')
			c->state = CK_TRAILER_VALUE;
		else if (!IS(C_TCHAR, ch))
			return -1;
		return 0;
	case CK_TRAILER_VALUE:
		if (ch == '\r')
			c->state = CK_TRAILER_LF;
		else if (!IS(C_VALUE, ch))
			return -1;
		return 0;
	case CK_TRAILER_LF:
		if (ch != '\n')
			return -1;
		c->state = CK_TRAILER0;
		return 0;
	case CK_END_LF:
		if (ch != '\n')
			return -1;
		c->state = CK_DONE;
		c->done = true;
		return 0;
	}
	return chunk_size_byte(c, ch);
}

ssize_t
http_chunked_frame(struct http_chunked *c, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && c->state != CK_DATA && c->state != CK_DONE) {
		if (++c->line > CHUNK_MAX_LINE ||
		    chunk_byte(c, (unsigned char)buf[i]) == -1)
			return -1;
		i++;
	}
	return (ssize_t)i;
}

void
http_chunked_skip(struct http_chunked *c, uint64_t n)
{
	if (n > c->remaining)
		n = c->remaining;
	c->remaining -= n;
	c->total += n;
	if (c->state == CK_DATA && c->remaining == 0)
		c->state = CK_DATA_CR;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}
