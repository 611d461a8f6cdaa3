/*
 * upstream.h - one worker's view of one configured upstream: its resolved
 * addresses (evdns, re-resolved on an interval) and its keep-alive pool.
 * Owned by the worker's generation; touched by that worker's thread only.
 */
#ifndef PORTCULLIS_UPSTREAM_H
#define PORTCULLIS_UPSTREAM_H

#include <stdbool.h>
#include <sys/queue.h>

#include "config.h"
#include "metrics.h"

struct event_base;
struct evdns_base;
struct conn;
struct upstream;
struct upstream_server;

struct upstream_conn {
	TAILQ_ENTRY(upstream_conn) uc_entry; /* in its server's idle list */
	struct upstream *uc_up;
	struct upstream_server *uc_sv; /* the server it leads to */
	struct conn *uc_conn;
	uint64_t uc_t0_ns; /* when the connect started (monotonic) */
	bool uc_reused;	   /* served a request before this one */
	bool uc_connected; /* the TCP handshake finished */
	bool uc_idle;	   /* in the pool, not owned by a session */
	char uc_addr[64];  /* "ip:port", for logs */
};

/* Makes the pool and starts resolving names; per-server metrics go to
 * `m`. NULL if out of memory. */
struct upstream *upstream_new(struct event_base *base, struct evdns_base *dns,
			      const struct config_upstream *cu,
			      struct metrics_shard *m);

/* Closes idle connections and stops resolving. Connections lent out must
 * have been returned or closed first. NULL is fine. */
void upstream_free(struct upstream *u);

/*
 * Lends a connection to the next usable server in round-robin order (see
 * health.h): an idle one to that server if the pool has one, else a new
 * one that is connecting (its output is sent once it connects). With
 * `after` (a connection that failed; the caller closes it) the connection
 * is a new one, to another usable server than after's when there is one.
 * A connect refused at once counts as that server's failure and the next
 * server is tried. The caller sets its own callbacks and timeout. Returns
 * NULL with *why set (UNHEALTHY: no usable server; DNS: no address yet;
 * CONNECT: every try refused at once, or no socket), logged with the
 * request's id.
 */
struct upstream_conn *upstream_get(struct upstream *u,
				   const struct upstream_conn *after,
				   const char *reqid,
				   enum metrics_upstream_error *why);

/* The connect of a lent connection finished: observes its time, ends
 * the server's run of connect failures. */
void upstream_connected(struct upstream_conn *c);

/*
 * A lent connection failed (`why`: CONNECT, TIMEOUT or RESET): counted
 * for its server; a failed connect (refused, or timed out before it
 * finished) also counts toward the server's passive ejection.
 */
void upstream_failed(struct upstream_conn *c, enum metrics_upstream_error why);

/* Gives a connection back after a complete exchange; it is kept idle if
 * the pool has room, closed otherwise. */
void upstream_put(struct upstream_conn *c);

/* Closes a lent connection. */
void upstream_close(struct upstream_conn *c);

/* The upstream's configuration. */
const struct config_upstream *upstream_config(const struct upstream *u);

#endif
