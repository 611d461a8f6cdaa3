/*
 * health.h - which servers of an upstream take traffic.
 *
 * Two sources decide: active HTTP checks (an upstream's "health_check"),
 * run on the main thread's loop, and passive ejection (its "passive"),
 * reported by the workers that see connects fail. Both write one shared
 * struct health_server per configured server; workers read it with
 * relaxed loads on the request path, without a lock. The state lives in
 * the config snapshot (config_upstream.health) and is carried over to the
 * next snapshot for servers a reload keeps (same upstream name, same
 * "host:port").
 */
#ifndef PORTCULLIS_HEALTH_H
#define PORTCULLIS_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct evbuffer;

/* The outcome of one active check, as labelled in /metrics. */
enum health_result {
	HEALTH_OK,	/* "ok": an expected status */
	HEALTH_STATUS,	/* "status": an answer with another status */
	HEALTH_TIMEOUT, /* "timeout": no answer within the check timeout */
	HEALTH_CONNECT, /* "connect": refused or unreachable */
	HEALTH_INVALID, /* "invalid": closed early or not HTTP/1.x */
	HEALTH_DNS,	/* "dns": the name did not resolve */
	HEALTH_N
};

struct health_server {
	atomic_bool hs_up; /* the active checks' verdict; true without them */
	_Atomic uint64_t hs_ejected_until; /* conn_now_ms() when a passive
					      ejection ends; 0: none */
	atomic_uint hs_fails;	 /* connect failures in a row, all workers */
	atomic_bool hs_resolved; /* an address is known (a worker resolved
				    the name once, or it is numeric) */
	_Atomic uint64_t hs_checks[HEALTH_N]; /* written by the main thread */
	unsigned hs_run; /* main thread: checks in a row against hs_up */
};

/*
 * Main thread, before `c` is published: gives every upstream of `c` its
 * health array, carrying the state of the servers `old` (NULL: none)
 * also has. A server with checks starts up (traffic flows while its first
 * checks run). 0, or -1 when out of memory.
 */
int health_build(struct config *c, const struct config *old);

/* Whether a server may be given a request now; NULL is always usable.
 * Any thread; a few relaxed loads (and one compare-exchange when an
 * ejection has just run out). */
bool health_usable(struct health_server *hs);

/* A worker resolved the server's name (NULL is fine): /readyz no longer
 * reports it. */
void health_resolved(struct health_server *hs);

/* Whether any server of the upstream has an address (a numeric one, or a
 * name some worker resolved). */
bool health_upstream_resolved(const struct config_upstream *cu);

/* Whether any server of the upstream is usable. */
bool health_upstream_usable(const struct config_upstream *cu);

/*
 * A worker's connect to server `i` of `cu` failed (refused, unreachable,
 * connect timeout). Returns true when this failure ejected the server
 * (the caller logs it): max_fails in a row, on an upstream of two or more
 * servers with "passive" set.
 */
bool health_connect_failed(const struct config_upstream *cu, size_t i);

/* A worker's connect to server `i` of `cu` succeeded: the run of
 * failures ends. */
void health_connect_ok(const struct config_upstream *cu, size_t i);

/*
 * The rise/fall rule, pure: given the verdict `up`, the run of checks in a
 * row that disagreed with it (*run) and one more check, returns the new
 * verdict and updates *run. `fall` failures in a row take a server down,
 * `rise` passes in a row bring it up; a check that agrees resets the run.
 */
bool health_step(bool up, bool passed, unsigned rise, unsigned fall,
		 unsigned *run);

/* The label of a result: "ok", "status", ... */
const char *health_result_name(enum health_result r);

/* Main thread: starts checking the servers of `c` on `base`. 0, or -1
 * after logging why. */
int health_start(struct event_base *base, struct config *c);

/* Main thread, after a reload published `c`: checks in flight are
 * dropped and the servers of `c` are checked from now on (at once). */
void health_switch(struct config *c);

/* Main thread: stops every check. */
void health_stop(void);

/* Appends portcullis_upstream_server_up and
 * portcullis_upstream_health_checks_total for the servers of `c`. */
void health_render(struct evbuffer *out, const struct config *c);

#endif
