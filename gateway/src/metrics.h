/*
 * metrics.h - the gateway's own telemetry: per-worker shards written
 * without locks or atomic read-modify-writes, summed at scrape time.
 *
 * A shard is written by its owner thread only (relaxed load + store) and
 * read by the scraper (relaxed loads), so counts are exact and the request
 * path pays a few plain memory operations.
 */
#ifndef PORTCULLIS_METRICS_H
#define PORTCULLIS_METRICS_H

#include <stdint.h>

#include "config.h"

struct evbuffer;
struct metrics_shard;

#define METRICS_MAX_ROUTES 1024
#define METRICS_NO_ROUTE 0 /* id of "_none": requests that matched no route */

/* Methods as labelled; anything else is "OTHER". */
enum metrics_method {
	METRICS_GET,
	METRICS_HEAD,
	METRICS_POST,
	METRICS_PUT,
	METRICS_DELETE,
	METRICS_PATCH,
	METRICS_OPTIONS,
	METRICS_OTHER,
	METRICS_NMETHODS
};

/* Sets up the registry; main thread, before anything else here. */
void metrics_init(void);

/*
 * Gives every route, realm and upstream server of a not-yet-published
 * config its metric_id, reusing the id of a name seen before so series
 * survive reloads. Main thread only.
 * Returns 0, or -1 when the registry is full (the config is then refused).
 */
int metrics_register(struct config *c);

/* A shard for one worker; owner thread writes, anyone reads. */
struct metrics_shard *metrics_shard_new(void);

/* Frees a shard once its worker has stopped. NULL is fine. */
void metrics_shard_free(struct metrics_shard *s);

/* Maps a method to its label index. */
enum metrics_method metrics_method(const char *m, size_t len);

/*
 * Counts one finished request on route `id`: status code (100..599, others
 * are counted as 0 and not exported), total and upstream durations in
 * seconds (upstream < 0: no upstream took part), bytes in and out.
 */
void metrics_request(struct metrics_shard *s, unsigned id,
		     enum metrics_method m, int code, double seconds,
		     double upstream_seconds, uint64_t bytes_in,
		     uint64_t bytes_out);

/* Upstream error reasons, as labelled. */
enum metrics_upstream_error {
	METRICS_UPERR_CONNECT,
	METRICS_UPERR_TIMEOUT,
	METRICS_UPERR_RESET,
	METRICS_UPERR_INVALID, /* "invalid_response": not HTTP we can pass on */
	METRICS_UPERR_DNS,
	METRICS_UPERR_UNHEALTHY, /* "no_healthy_server": every server down */
	METRICS_UPERR_N
};

void metrics_upstream_error(struct metrics_shard *s, unsigned id,
			    enum metrics_upstream_error why);

/* Why an address was refused (listener or route lists), as labelled. */
enum metrics_denied {
	METRICS_DENIED_LIST, /* "deny_list": in a deny list */
	METRICS_NOT_ALLOWED, /* "not_allowed": outside an allow list */
	METRICS_DENIED_N
};

/* Counts one request refused with 403 for its address on route `id`. */
void metrics_denied(struct metrics_shard *s, unsigned id,
		    enum metrics_denied why);

/* Why a request ended before its response was whole, as labelled. */
enum metrics_cut {
	METRICS_CUT_NONE = -1,
	METRICS_CUT_UPSTREAM_TRUNCATED, /* the upstream closed mid-body */
	METRICS_CUT_UPSTREAM_RESET,	/* ... reset the connection */
	METRICS_CUT_UPSTREAM_TIMEOUT,	/* ... went silent past read_timeout */
	METRICS_CUT_UPSTREAM_FRAMING,	/* ... sent a broken chunked body */
	METRICS_CUT_CLIENT_ABORTED,	/* the client closed first */
	METRICS_CUT_SEND_TIMEOUT,	/* the client stopped reading */
	METRICS_CUT_CLIENT_BODY,	/* the client's body went bad late */
	METRICS_CUT_INTERNAL,		/* out of memory */
	METRICS_CUT_N
};

/* The label of a reason ("upstream_truncated", ...). */
const char *metrics_cut_name(enum metrics_cut why);

/* Counts one request of route `id` that ended incomplete. */
void metrics_incomplete(struct metrics_shard *s, unsigned id,
			enum metrics_cut why);

/* Counts one request refused with 429 by route `id`'s rate limit. */
void metrics_limited(struct metrics_shard *s, unsigned id);

/* TLS handshake outcomes, as labelled. */
enum metrics_tls_result {
	METRICS_TLS_OK,
	METRICS_TLS_FAILED,
	METRICS_TLS_TIMEOUT,
	METRICS_TLS_N
};

void metrics_tls_handshake(struct metrics_shard *s, unsigned listener,
			   enum metrics_tls_result r);

/* A TLS protocol error on an established connection (after a handshake
 * that succeeded: a refused renegotiation, a bad record): not a handshake,
 * so counted apart. */
void metrics_tls_error(struct metrics_shard *s, unsigned listener);

#define METRICS_MAX_REALMS 256
#define METRICS_MAX_SERVERS 4096 /* distinct (upstream, server) pairs */

/* Counts one request handed to upstream server `id` (its
 * config_hostport.metric_id); a retry counts again, on its server. */
void metrics_server_request(struct metrics_shard *s, unsigned id);

/* Counts a failure of upstream server `id` (connect, timeout, reset). */
void metrics_server_error(struct metrics_shard *s, unsigned id,
			  enum metrics_upstream_error why);

/* Observes how long a connect to upstream server `id` took. */
void metrics_server_connect(struct metrics_shard *s, unsigned id,
			    double seconds);

/* Counts one request to a realm's routes by its auth result (auth.h's
 * enum auth_result, OK..UNAVAILABLE). */
void metrics_auth(struct metrics_shard *s, unsigned realm, unsigned result);

/* Counts one password hash computed for a realm; any thread (atomic). */
void metrics_auth_verification(unsigned realm);

/* Why a connection was refused at accept, as labelled. */
enum metrics_rejected {
	METRICS_REJECTED_MAX_CONNECTIONS, /* "max_connections" */
	METRICS_REJECTED_NO_FD,		  /* "no_fd": out of descriptors */
	METRICS_REJECTED_N
};

/* Counts n connections answered 503 and closed at accept. */
void metrics_rejected(struct metrics_shard *s, unsigned listener,
		      enum metrics_rejected why, uint64_t n);

/* The admin listener's count (main thread): shown with the listener
 * label of admin.listen. */
void metrics_rejected_admin(enum metrics_rejected why, uint64_t n);

/* Connection gauges and counters, per listener index. */
void metrics_connection(struct metrics_shard *s, unsigned listener, int delta,
			bool accepted);

/* Appends a label value with \\, " and newline escaped, as the text
 * exposition format (0.0.4) wants it. */
void metrics_label_value(struct evbuffer *out, const char *v);

/* Appends {upstream="U",server="S" (no closing brace), the labels of an
 * upstream server's series, escaped. */
void metrics_server_labels(struct evbuffer *out, const char *upstream,
			   const struct config_hostport *hp);

/*
 * Appends the text exposition (format 0.0.4) of every shard to `out`.
 * `c` supplies the listener labels. Main thread.
 */
void metrics_render(struct evbuffer *out, struct metrics_shard *const *shards,
		    unsigned nshards, const struct config *c);

#endif
