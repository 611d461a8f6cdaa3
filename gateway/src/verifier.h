/*
 * verifier.h - the verifier pool: a few threads that run slow password
 * hashes so no event loop ever does, at a lower CPU priority than the
 * loops.
 *
 * Single flight: a check already queued or running for the same key (the
 * HMAC of realm and Authorization value) takes further waiters instead of
 * hashing again, and a successful one answers newcomers at once until
 * every worker's cache holds its key. The queue is bounded; past it,
 * checks are refused. Each answer goes back to its waiter's worker as
 * mail; a success is also mailed to every worker's cache.
 */
#ifndef PORTCULLIS_VERIFIER_H
#define PORTCULLIS_VERIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

#define VERIFIER_QUEUE_MAX 1024 /* distinct checks waiting */

struct worker;

/* Starts n threads; `workers` receive cache mail. Main thread; 0 or -1. */
int verifier_start(unsigned n, struct worker *workers, unsigned nworkers);

/* Stops and joins the threads; checks still queued are dropped with their
 * waiters (whose requests are gone by then). Main thread. */
void verifier_stop(void);

/*
 * Worker thread: joins the check in flight for `key` in realm r (or one
 * done for the realm's credential set `version`, the one the worker's
 * cache lookup used), or queues a new one of user/pw -- if the realm's
 * guard lets wait->aw_peer start another (guard_reserve). `wait` (made by
 * auth.c) is mailed back, never answered within the call. 0; -1 when the
 * queue is full or the pool is not running; -2 when the guard refuses,
 * with the seconds to wait in *retry_after.
 */
int verifier_submit(struct auth_realm *r, uint64_t version, const uint8_t *key,
		    const char *user, size_t ulen, const char *pw, size_t pwlen,
		    struct auth_wait *wait, uint64_t now_ms,
		    uint32_t *retry_after);

#endif
