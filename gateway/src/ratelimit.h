/*
 * ratelimit.h - a route's rate limit: one table shared by every worker,
 * with no lock. Each key (a client address, or a verified user) has a
 * token bucket kept as a single 64-bit word -- the time its bucket will be
 * full again (the generic cell rate algorithm's "theoretical arrival
 * time") and a 16-bit tag of the key -- changed with one compare-and-swap.
 * So the limit is the same whichever worker a request lands on, and a
 * request costs a hash, two loads and a CAS.
 *
 * The table has a fixed number of slots; a key may sit in either of two.
 * When both hold other keys, the one whose bucket refills first is taken
 * over: under more distinct keys than slots, a client can find its bucket
 * full again early (the limit fails open for it), never the reverse.
 */
#ifndef PORTCULLIS_RATELIMIT_H
#define PORTCULLIS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct config;

#define RATELIMIT_SLOTS 16384 /* per rate-limited route, 128 KiB */

struct ratelimit;

/*
 * A table admitting one request per `interval_us` on average and `burst`
 * at once after a quiet spell. NULL when out of memory.
 */
struct ratelimit *ratelimit_new(uint64_t interval_us, unsigned burst);

struct ratelimit *ratelimit_ref(struct ratelimit *rl);
void ratelimit_unref(struct ratelimit *rl); /* NULL is fine */

/*
 * Takes a token for `key` at `now_us` (CLOCK_MONOTONIC, microseconds):
 * 0 when the request may pass, else the whole seconds (at least 1) until
 * one would. Any thread.
 */
unsigned ratelimit_take(struct ratelimit *rl, const void *key, size_t len,
			uint64_t now_us);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t ratelimit_now_us(void);

/*
 * Gives every rate-limited route of c (not yet shared) its table: the one
 * of `old` (the running config, or NULL) when the same listener has a
 * route of that name with the same limit, so a reload does not refill
 * every bucket; a new one otherwise. 0, or -1 when out of memory. Main
 * thread.
 */
int ratelimit_build(struct config *c, const struct config *old);

#endif
