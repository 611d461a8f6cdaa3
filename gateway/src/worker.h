/*
 * worker.h - one thread, one event_base, its own SO_REUSEPORT listening
 * sockets, upstream pools and metrics shard. Nothing here is shared with
 * another worker, so the request path takes no lock.
 *
 * Config snapshots reach a worker as a "generation": the worker's own
 * view of one config (its upstream pools for it) with a plain reference
 * count, since only the worker touches it. A request holds the generation
 * it started on; a reload makes a new current one and the old one is freed
 * when its last request ends.
 */
#ifndef PORTCULLIS_WORKER_H
#define PORTCULLIS_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"

struct event;
struct event_base;
struct evdns_base;
struct evconnlistener;
struct listener_ctx;
struct metrics_shard;
struct auth_worker;
struct worker;
struct session;
struct upstream;
struct http_header;

/*
 * A message for a worker's loop from another thread (the verifier pool):
 * embedded first in the sender's struct; the worker calls wm_fn on its own
 * thread, in posting order, and wm_fn owns m from then on.
 */
struct worker_mail {
	struct worker_mail *wm_next;
	void (*wm_fn)(struct worker *w, struct worker_mail *m);
};

struct wgen {
	struct config *g_cfg; /* one reference held */
	struct worker *g_w;
	unsigned g_refs;
	struct upstream **g_up; /* one per g_cfg->upstreams */
};

struct worker {
	unsigned w_id;
	pthread_t w_thread;
	struct event_base *w_base;
	struct evdns_base *w_dns;
	struct event *w_notify; /* main -> worker: reload or drain */
	int w_notify_fd;	/* eventfd behind w_notify */
	int w_spare; /* a descriptor to close when out of them (overload.h) */
	_Atomic(struct config *) w_pending; /* a new config to take */
	/* The watchdog's question (main) and the loop's answer: equal when
	 * the loop has run since the last worker_ping(). */
	_Atomic uint64_t w_ping, w_pong;
	atomic_bool w_drain_req;
	struct wgen *w_gen; /* current generation */
	struct evconnlistener **w_listeners;
	struct listener_ctx **w_lctx; /* callback argument of each listener */
	size_t w_nlisteners;
	struct metrics_shard *w_metrics;
	struct auth_worker *w_auth;  /* credential cache, HMAC context */
	pthread_mutex_t w_mail_lock; /* guards w_mail only */
	struct worker_mail *w_mail, **w_mail_tail;
	TAILQ_HEAD(, session) w_sessions;
	size_t w_nsessions;
	bool w_draining;
	char w_idprefix[17]; /* random, for generated request ids */
	uint64_t w_idseq;
	/* Room for one parsed response head (PROXY_MAX_RESPONSE_FIELDS), used
	 * and done with within one callback. */
	struct http_header *w_fields;
};

/* Main thread, every few seconds: returns freed memory to the system
 * (malloc_trim) when many more connections were open since the last call
 * than are now. */
void worker_memory_trim(void);

/* Main thread: asks the worker's loop to show it turns; the answer is
 * worker_answered(), true once the loop has woken since. */
void worker_ping(struct worker *w);
bool worker_answered(const struct worker *w);

/* A resolver on `base` for upstream names: cfg's "resolvers", else the
 * system's; NULL if none can be made. */
struct evdns_base *worker_resolver(struct event_base *base,
				   const struct config *cfg);

/* Sets up a worker and binds its listeners (before any thread starts);
 * 0, or -1 after logging why. */
int worker_init(struct worker *w, unsigned id, struct config *cfg);

/* Starts the worker's thread; 0 or -1. */
int worker_start(struct worker *w);

/* Main thread: hands a new snapshot to the worker (takes a reference). */
void worker_publish(struct worker *w, struct config *cfg);

/* Main thread: stop accepting, finish in-flight requests, then exit. */
void worker_drain(struct worker *w);

/* Main thread: frees what worker_init() made (also when it failed half
 * way); the thread must not be running. */
void worker_free(struct worker *w);

/* Main thread: waits for the worker's thread to end; worker_free() then
 * frees what it holds (after the verifier pool has stopped posting). */
void worker_join(struct worker *w);

/* Any thread: queues m for the worker's loop and wakes it. Mail posted
 * after the loop ended is handled by worker_free(). */
void worker_post(struct worker *w, struct worker_mail *m);

/* The current generation, with a reference for the caller. */
struct wgen *wgen_acquire(struct worker *w);

/* Drops a reference; frees a retired generation with its last one. */
void wgen_release(struct wgen *g);

/* Called by the proxy when a session ends: frees its slot of
 * max_connections, and ends the loop once a draining worker has no session
 * left. */
void worker_session_gone(struct worker *w);

#endif
