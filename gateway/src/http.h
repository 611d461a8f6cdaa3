/*
 * http.h - strict, pure HTTP/1.1 message-head parser and chunked framing
 * scanner (RFC 9110, RFC 9112).
 *
 * Pure: every function takes (buf, len) and touches nothing else. No I/O,
 * no allocation. Parsed fields point into the caller's buffer, so the
 * buffer must stay unchanged while the result is used.
 *
 * Return convention of the head parsers:
 *   > 0  the head is complete; the value is its length in bytes, up to and
 *        including the blank line that ends it
 *   -1   the head is invalid and must never be forwarded; `status` holds
 *        the answer to give (400, 414, 431, 501, 505) and `error` a short
 *        static reason for the log
 *   -2   the head is incomplete; call again with more bytes (the caller
 *        re-parses from the start; limits are checked on partial input so
 *        an oversized head fails as soon as it is known to be too big)
 */
#ifndef PORTCULLIS_HTTP_H
#define PORTCULLIS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most header fields in a request head (431 beyond). Responses have no
 * count limit of their own: the caller's array sizes it (http_response). */
#define HTTP_MAX_HEADERS 100

/*
 * Largest Content-Length or chunk size accepted (2^62): far beyond any real
 * body, and low enough that sums of sizes cannot overflow a uint64_t.
 */
#define HTTP_MAX_CONTENT_LENGTH (UINT64_C(1) << 62)

struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* OWS trimmed on both sides */
	size_t value_len;
};

/* How the body of a message is delimited (RFC 9112 section 6.3). */
enum http_body {
	HTTP_BODY_NONE,	   /* no body at all */
	HTTP_BODY_LENGTH,  /* exactly content_length bytes */
	HTTP_BODY_CHUNKED, /* chunked coding; read with http_chunked_frame */
	HTTP_BODY_CLOSE,   /* response only: until the upstream closes */
};

/* Target forms, RFC 9112 section 3.2. */
enum http_target {
	HTTP_TARGET_ORIGIN,   /* "/path?query" */
	HTTP_TARGET_ABSOLUTE, /* "http://host/path"; path/path_len give the
				 origin-form part, "/" if it was empty */
	HTTP_TARGET_ASTERISK, /* "*", only with OPTIONS */
};

/* Limits applied while parsing; 0 never means "unlimited". */
struct http_limits {
	size_t max_head;    /* whole head in bytes; over it: 431 */
	size_t max_target;  /* request-target in bytes; over it: 414 */
	size_t max_headers; /* header field count; requests: <= HTTP_MAX_HEADERS
			       (431 over it); responses: the room in
			       http_response.headers (502 over it) */
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target; /* exactly as received */
	size_t target_len;
	const char *path; /* origin-form of the target (path and query);
			     "*" for asterisk-form */
	size_t path_len;
	enum http_target target_form;
	int minor; /* 0 for HTTP/1.0, 1 for HTTP/1.1 */

	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;

	/* Derived from the fields above, validated. */
	enum http_body body; /* NONE, LENGTH or CHUNKED for requests */
	uint64_t content_length;
	const char *host; /* the Host field value; NULL if absent (1.0) */
	size_t host_len;
	bool keep_alive;      /* version default adjusted by Connection */
	bool upgrade;	      /* Connection has "upgrade" and Upgrade present */
	bool expect_continue; /* Expect: 100-continue */

	int status;	   /* on -1: the status to answer */
	const char *error; /* on -1: why, a static string */
};

/*
 * The caller points `headers` at room for lim->max_headers fields before
 * parsing: a response head is bounded by its size in bytes, not by a field
 * count, so the room must hold as many fields as max_head bytes can (one
 * per 4 bytes: "a:" CRLF).
 */
struct http_response {
	int minor;
	int status; /* 100..999, three digits */
	const char *reason;
	size_t reason_len;

	struct http_header *headers; /* set by the caller, see above */
	size_t nheaders;

	enum http_body body;	 /* depends on the request method, see below */
	uint64_t content_length; /* with has_length, also when body is NONE */
	bool has_length;	 /* a valid Content-Length field was present */
	bool keep_alive;	 /* the upstream connection may be reused */

	const char *error; /* on -1: why, a static string (answer is 502) */
};

/*
 * Parses a request head from buf[0..len). Rejects (-1, status 400) what
 * enables request smuggling or is otherwise malformed: Content-Length
 * together with Transfer-Encoding, more than one Content-Length field or a
 * list value, a non-digit or overflowing Content-Length, any
 * Transfer-Encoding other than a single "chunked" (501 for an unknown
 * coding), Transfer-Encoding in HTTP/1.0, obs-fold (a line starting with SP
 * or HTAB), a bare CR or bare LF anywhere in the head, whitespace between a
 * field name and the colon, invalid token characters in the method or a
 * field name, control characters in a field value, a missing or repeated
 * Host in HTTP/1.1, a target that is not origin-form, a well-formed
 * absolute-form (http/https) or "*" with OPTIONS. Also 400: CONNECT, a
 * path starting with "//", userinfo in an absolute-form target, an empty
 * or invalid Host, and a Host that differs from the authority of an
 * absolute-form target. HTTP versions other than 1.0 and 1.1 get 505. Up
 * to 8 empty lines before the request line (RFC 9112 section 2.2) are
 * skipped and counted in the return value. Content-Length: 0 gives
 * HTTP_BODY_LENGTH with content_length 0. A request line that goes wrong
 * is refused as soon as its first wrong byte arrives, not when the head is
 * complete: a client speaking something else gets its 400 at once.
 */
int http_parse_request(const char *buf, size_t len,
		       const struct http_limits *lim, struct http_request *req);

/*
 * Parses a response head from buf[0..len) into res (whose `headers` the
 * caller set). `method_is_head` tells whether it answers a HEAD request.
 * Framing per RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304;
 * chunked when Transfer-Encoding is "chunked"; close-delimited when neither
 * field is present; otherwise Content-Length. -1 (502) for CL and TE
 * together, conflicting CLs, and any Transfer-Encoding but a single
 * "chunked": the gateway re-frames bodies and cannot pass on a coding it
 * would have to drop. keep_alive is false for close-delimited bodies,
 * "Connection: close", and HTTP/1.0 without "keep-alive".
 */
int http_parse_response(const char *buf, size_t len,
			const struct http_limits *lim, bool method_is_head,
			struct http_response *res);

/* Finds a field by name (case-insensitive); NULL if absent. */
const struct http_header *http_find(const struct http_header *h, size_t n,
				    const char *name);

/*
 * Steps through a comma-separated list value (RFC 9110 section 5.6.1),
 * *pos starting at its first byte and `end` just past its last: false at
 * the end, else the next element in *el and *len, OWS trimmed, possibly
 * empty. Commas in quoted strings are not special: for lists of tokens.
 */
bool http_list_next(const char **pos, const char *end, const char **el,
		    size_t *len);

/* Whether a[0..n) and b[0..n) are equal, ASCII case-insensitively. */
bool http_eq_ci(const char *a, const char *b, size_t n);

/* True if the comma-separated field value holds `token`, case-insensitive. */
bool http_list_has(const char *value, size_t len, const char *token);

/* True for a token character (RFC 9110 section 5.6.2). */
bool http_is_tchar(unsigned char c);

/*
 * Incremental reader of a chunked body (RFC 9112 section 7.1) that keeps
 * the framing apart from the data, so the body can be framed anew on the
 * way out: chunk sizes without leading zeros, no extensions, no trailers.
 * Extensions are checked for syntax (without whitespace) and dropped;
 * trailer fields are checked like header fields and dropped (section 7.1.2
 * allows discarding them).
 */
struct http_chunked {
	int state;	    /* private */
	uint64_t remaining; /* data bytes left in the current chunk */
	uint64_t total;	    /* data bytes seen so far (for body limits) */
	uint64_t size;	    /* private: the chunk size being read */
	size_t line;	    /* bytes in the current size line or trailers */
	bool done;	    /* the terminating empty line has been seen */
};

/* Sets up a reader for a new body. */
void http_chunked_init(struct http_chunked *c);

/*
 * Reads framing from buf[0..len): size lines, the CRLF after data, the
 * trailer section and the final CRLF. Returns how many bytes it consumed,
 * none of them data: it stops where a chunk's data begins (c->remaining is
 * then that chunk's size, > 0), where the body ends (c->done; the rest of
 * buf is the next message), or at the end of buf. While c->remaining > 0 it
 * consumes nothing and returns 0: the caller moves the data and accounts
 * for it with http_chunked_skip. -1 on a framing error: bad hex, more than
 * 16 hex digits, a size over HTTP_MAX_CONTENT_LENGTH, whitespace in a size
 * line, a missing CRLF after data, a bad extension
 * or trailer, a size line or the whole trailer section over 4096 bytes.
 */
ssize_t http_chunked_frame(struct http_chunked *c, const char *buf, size_t len);

/* Accounts for n data bytes (n <= c->remaining) moved by the caller. */
void http_chunked_skip(struct http_chunked *c, uint64_t n);

/*
 * Decodes Basic credentials (RFC 7617) from an Authorization value v[0..len):
 * the scheme "Basic" (any case), one or more spaces, then base64 (RFC 4648
 * section 4, canonical, padding optional). Writes the user, a NUL, the password
 * and a NUL into out[cap]; 0 with *ulen and *pwlen set, or -1 for another
 * scheme, bad base64, no ':' in the decoded text, an empty user, a control
 * character anywhere (section 2), or more than cap - 2 decoded bytes.
 */
int http_basic_decode(const char *v, size_t len, char *out, size_t cap,
		      size_t *ulen, size_t *pwlen);

/* The reason phrase for a status the gateway answers itself. */
const char *http_reason(int status);

#endif
