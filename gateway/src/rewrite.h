/*
 * rewrite.h - every byte the gateway sends on: request heads for upstreams,
 * response heads for clients, the gateway's own answers, and bodies framed
 * anew.
 *
 * A head is written from the parsed message (http.h), never copied: the
 * start line from the parsed method, target and status, then the fields
 * that survive the drop rules below, then the fields the gateway sets,
 * framing last and from what the gateway decided the framing is. A field
 * a client or an upstream sends can therefore add information, but cannot
 * change the route, the realm, the framing or the identity the gateway
 * decided: what would is dropped or refused.
 *
 * Head writers are pure: (message, decisions, buf, cap) in, the exact
 * length of the head out. They never write past cap; a result larger than
 * cap means the head did not fit and buf holds nothing usable, and the
 * caller calls again with that much room. Nothing is ever clipped.
 *
 * Body framing works on evbuffers (a data structure; no I/O here).
 */
#ifndef PORTCULLIS_REWRITE_H
#define PORTCULLIS_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct evbuffer;

/* Most options one message's Connection fields may name; 400/502 over. */
#define REWRITE_MAX_CONN_OPTIONS 16

/* A byte string that is not NUL-terminated. */
struct rewrite_str {
	const char *p;
	size_t n;
};

/*
 * The options of a message's Connection fields (RFC 9110 section 7.6.1)
 * beyond close, keep-alive and upgrade: the names of further fields that
 * are hop-by-hop for this message and must not be forwarded.
 */
struct rewrite_conn {
	struct rewrite_str opt[REWRITE_MAX_CONN_OPTIONS];
	size_t n;
};

/*
 * Reads every Connection field of h[0..n) into *conn. Returns 0, or -1 with
 * a static reason in *why when an element is not a token, when there are
 * more than REWRITE_MAX_CONN_OPTIONS, or when one names a field the
 * gateway frames, routes, authenticates or sets itself (Content-Length,
 * Transfer-Encoding, Host, Connection, Authorization, Proxy-Authorization,
 * Forwarded, X-Forwarded-For/-Proto/-Host, X-Real-IP, X-Request-Id,
 * Strict-Transport-Security) or one of extra[0..nextra) (the routes' user
 * headers). Dropping one of those on a peer's word would undo a decision.
 * A request that fails gets 400; a response, 502.
 */
int rewrite_connection(const struct http_header *h, size_t n,
		       const struct rewrite_str *extra, size_t nextra,
		       struct rewrite_conn *conn, const char **why);

/* What the gateway decided about a request it forwards. */
struct rewrite_request {
	const struct http_request *req;
	const struct rewrite_conn *conn; /* from rewrite_connection() */
	size_t strip;			 /* leading bytes of req->path to cut (a
					    strip_prefix route's prefix); the path
					    sent keeps or gets a leading '/' */
	struct rewrite_str client;	 /* X-Real-IP; X-Forwarded-For too
					    when forwarded_for is empty */
	struct rewrite_str forwarded_for; /* X-Forwarded-For: the chain of
					     trusted proxies; p NULL: none */
	bool tls;			  /* X-Forwarded-Proto: https */
	struct rewrite_str request_id;	  /* X-Request-Id */
	const struct rewrite_str *drop;	  /* the routes' user headers: the */
	size_t ndrop;			  /* client's are dropped */
	struct rewrite_str user_header;	  /* the route's; p NULL: none */
	struct rewrite_str user; /* sent in user_header; p NULL: none */
	bool drop_authorization; /* the credentials stay here */
	const struct http_header *upgrade; /* a WebSocket upgrade to pass on */
};

/*
 * Writes the head an upstream gets: "METHOD /path HTTP/1.x" (1.0 for a 1.0
 * client; origin-form always), the client's fields but those dropped --
 * hop-by-hop ones (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, HTTP2-Settings), the framing (Content-Length),
 * the ones the gateway sets (X-Forwarded-*, X-Real-IP, X-Request-Id,
 * Forwarded), Proxy-Authorization, Authorization when drop_authorization,
 * the user headers in drop, every name with an '_' (CGI, WSGI, Rack and PHP
 * read X_A and X-A as one variable), and the names the Connection options list
 * -- then X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host
 * (with Host), X-Request-Id, the user header (with a user), the framing
 * ("Content-Length: N" without leading zeros, or "Transfer-Encoding:
 * chunked"), and "Connection: upgrade" with the Upgrade field, or
 * "Connection: keep-alive" for 1.0. Returns the head's length (see the top
 * of this file for len > cap).
 */
size_t rewrite_request_head(const struct rewrite_request *rr, char *buf,
			    size_t cap);

/* A size rewrite_request_head() fits in for a client head of `head_len`
 * bytes (it may still ask for more; never less is needed). */
size_t rewrite_request_bound(const struct rewrite_request *rr, size_t head_len);

/* One field of a response policy: name and value, both validated. */
struct rewrite_hfield {
	struct rewrite_str name, value;
};

/*
 * A response policy (a listener's or route's "headers"): on a response
 * forwarded from an upstream, the upstream's fields named in `remove` or
 * `set` are dropped (names compared without case), then every `set` and
 * `add` field is written; the gateway's own answers get `set` and `add`
 * too. Interim (1xx) responses pass without it. `size` is what those write
 * ("Name: value" CRLF each).
 */
struct rewrite_headers {
	const struct rewrite_hfield *set, *add;
	size_t nset, nadd;
	const struct rewrite_str *remove;
	size_t nremove;
	size_t size;
};

/*
 * Why a policy may not name this field, or NULL when it may: framing and
 * hop-by-hop fields (the gateway writes them from its own decisions),
 * Strict-Transport-Security (tls.hsts_max_age), Content-Type and Location
 * (the gateway's answers write their own).
 */
const char *rewrite_headers_refused(const char *name, size_t n);

/* What the gateway decided about a response it forwards. */
struct rewrite_response {
	const struct http_response *res;
	const struct rewrite_conn *conn; /* from rewrite_connection() */
	bool tunnel;	       /* a 101 that becomes a tunnel: keeps Upgrade */
	bool client_http10;    /* the client spoke HTTP/1.0: no chunked */
	bool keep_alive;       /* the client connection stays open */
	uint64_t hsts_max_age; /* Strict-Transport-Security; 0: none */
	const struct rewrite_headers *headers; /* the policy; NULL: none */
};

/*
 * Writes the head a client gets: "HTTP/1.1 SSS reason", the upstream's
 * fields but the hop-by-hop ones (as for requests; Upgrade kept for a
 * tunnel), the framing, the names its Connection options list and those
 * the policy removes or sets; then the policy's set and add fields; then,
 * for a final response, Strict-Transport-Security, the framing the gateway
 * writes -- "Content-Length: N" (also for HEAD and 304 when the upstream
 * gave one; never for 1xx and 204), "Transfer-Encoding: chunked" for a
 * chunked or close-delimited body (not to an HTTP/1.0 client, which gets
 * the body close-delimited) -- and
 * "Connection: close" or, for a 1.0 client kept alive, "Connection:
 * keep-alive". A tunnel's 101 gets "Connection: upgrade". Returns the
 * head's length (see the top of this file).
 */
size_t rewrite_response_head(const struct rewrite_response *rw, char *buf,
			     size_t cap);

/* A size rewrite_response_head() fits in for an upstream head of
 * `head_len` bytes (it may still ask for more). */
size_t rewrite_response_bound(const struct rewrite_response *rw,
			      size_t head_len);

/* A field the gateway adds to its own answer: the value is the pieces
 * concatenated (up to 4; unused ones have p NULL). */
struct rewrite_field {
	const char *name;
	struct rewrite_str v[4];
};

/* An answer of the gateway's own. */
struct rewrite_answer {
	int status;
	bool close;	       /* Connection: close */
	bool http10_keep;      /* Connection: keep-alive (a 1.0 client kept) */
	bool head;	       /* answers a HEAD request: no body bytes */
	uint64_t hsts_max_age; /* 0: none */
	const struct rewrite_field *fields; /* extra fields, nfields of them */
	size_t nfields;
	const struct rewrite_headers *headers; /* set and add; NULL: none */
	struct rewrite_str detail; /* in the body after the reason; p NULL:
				      none */
};

/*
 * Writes a whole answer: status line, Content-Type text/plain, the
 * Content-Length of its body "STATUS REASON[: detail]\n", Connection,
 * Strict-Transport-Security, the extra fields, the policy's set and add
 * fields; then the body unless it answers HEAD. Returns its length (see the top
 * of this file).
 */
size_t rewrite_answer(const struct rewrite_answer *a, char *buf, size_t cap);

/*
 * A body on its way through: read with the framing it came with, written
 * with the framing the gateway announced. Content-Length bodies move as
 * they are; chunked ones are framed anew from the parsed sizes (lower-case
 * hex without leading zeros, no extensions, "0" CRLF CRLF at the end, no
 * trailers); close-delimited ones are chunked as they arrive. With
 * chunked_out false (an HTTP/1.0 client, which cannot read chunked) both
 * pass as bare data, and the body ends with the connection.
 */
struct rewrite_body {
	enum http_body kind;	/* of the incoming message */
	uint64_t left;		/* LENGTH: bytes still to come */
	struct http_chunked ch; /* CHUNKED: the reader */
	bool chunked_out;	/* CHUNKED: write chunked framing */
	uint64_t limit;		/* most data bytes allowed */
	uint64_t data;		/* data bytes moved so far (no framing) */
};

/* Sets up b for a body of `kind` (and `length` for LENGTH); `limit` caps a
 * chunked body's data (UINT64_MAX: no cap); chunked_out: write chunked
 * framing for a CHUNKED or CLOSE body. */
void rewrite_body_init(struct rewrite_body *b, enum http_body kind,
		       uint64_t length, bool chunked_out, uint64_t limit);

/*
 * Moves what `in` holds of the body to `out`, framed anew; bytes after the
 * body stay in `in`. Returns 1 when the body is complete, 0 when more is
 * needed (a CLOSE body never completes: its end is the peer's, see
 * rewrite_body_close()), -1 on a framing error, -2 when a chunk would take
 * the data past the limit (none of that chunk has been written). After 1,
 * -1 or -2, call it no more.
 */
int rewrite_body_move(struct rewrite_body *b, struct evbuffer *in,
		      struct evbuffer *out);

/* A CLOSE body's peer closed: the body is complete; ends the chunked
 * framing if there is one. */
void rewrite_body_close(struct rewrite_body *b, struct evbuffer *out);

#endif
