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

struct upstream_conn {
	TAILQ_ENTRY(upstream_conn) uc_entry; /* in the idle list */
	struct upstream *uc_up;
	struct conn *uc_conn;
	bool uc_reused;	   /* served a request before this one */
	bool uc_connected; /* the TCP handshake finished */
	bool uc_idle;	   /* in the pool, not owned by a session */
	char uc_addr[64];  /* "ip:port", for logs */
};

/* Makes the pool and starts resolving names; NULL if out of memory. */
struct upstream *upstream_new(struct event_base *base, struct evdns_base *dns,
			      const struct config_upstream *cu);

/* Closes idle connections and stops resolving. Connections lent out must
 * have been returned or closed first. NULL is fine. */
void upstream_free(struct upstream *u);

/*
 * Lends a connection: an idle one unless `fresh`, else a new one that is
 * connecting (its output is sent once it connects). The caller sets its own
 * callbacks and timeout. Returns NULL with *why set (DNS: no address yet;
 * CONNECT: refused at once or no socket), logged with the request's id.
 */
struct upstream_conn *upstream_get(struct upstream *u, bool fresh,
				   const char *reqid,
				   enum metrics_upstream_error *why);

/* Gives a connection back after a complete exchange; it is kept idle if
 * the pool has room, closed otherwise. */
void upstream_put(struct upstream_conn *c);

/* Closes a lent connection. */
void upstream_close(struct upstream_conn *c);

/* The upstream's configuration. */
const struct config_upstream *upstream_config(const struct upstream *u);

#endif
