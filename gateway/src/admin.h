/*
 * admin.h - the admin listener on the main thread: /metrics, /healthz,
 * /readyz. Never on a public port by default (127.0.0.1:9145).
 */
#ifndef PORTCULLIS_ADMIN_H
#define PORTCULLIS_ADMIN_H

#include "config.h"

struct event_base;
struct metrics_shard;

/* Binds the admin listener of `cfg`; 0, or -1 after logging why. The
 * shards array must outlive the admin listener. */
int admin_start(struct event_base *base, struct config *cfg,
		struct metrics_shard *const *shards, unsigned nshards);

/* The config whose labels /metrics uses after a reload (takes a ref). */
void admin_set_config(struct config *cfg);

/* Marks every worker as running: /readyz may answer 200 from now on. */
void admin_set_started(void);

/* Marks the gateway as draining: /readyz answers 503 from now on. */
void admin_set_draining(void);

/* Records the outcome of a reload for the reload gauges. */
void admin_reload_result(bool ok);

/* Whether the last reload succeeded (true before any). */
bool admin_last_reload_ok(void);

void admin_stop(void);

#endif
