/*
 * guard.h - the brute-force guard of one realm: failed checks counted per
 * client address; past a limit within a window the address is refused
 * without hashing until the window ends.
 *
 * Shared by every thread. Recording a failure takes the guard's lock (it
 * follows a slow hash anyway); asking whether an address is refused takes
 * none: while nobody is refused it is one atomic load, otherwise a short
 * probe of atomic slots.
 */
#ifndef PORTCULLIS_GUARD_H
#define PORTCULLIS_GUARD_H

#include <stdint.h>
#include <sys/socket.h>

#define GUARD_SLOTS 4096 /* addresses tracked at once per realm */

struct guard;

/* A guard allowing max_failures per window_ms (0 failures: never refuses),
 * or NULL when out of memory. */
struct guard *guard_new(unsigned max_failures, uint64_t window_ms);

void guard_free(struct guard *g); /* NULL is fine */

/* The key of a client address: IPv4 whole, IPv6 by its /64 (one host
 * usually owns a /64), mixed with a per-process random seed. Never 0. */
uint64_t guard_key(const struct sockaddr *sa);

/* 0 if `key` may try now; else the seconds until it may (>= 1). */
uint32_t guard_refused(const struct guard *g, uint64_t key, uint64_t now_ms);

/*
 * Before a new hash check for `key`: 0 with one check reserved, or the
 * seconds to wait when the address's failures in the window plus its
 * checks in flight already reach the limit -- so many concurrent guesses
 * cannot all be hashed before the first failure is counted. Each 0 needs
 * one guard_release() when the check is done.
 */
uint32_t guard_reserve(struct guard *g, uint64_t key, uint64_t now_ms);

void guard_release(struct guard *g, uint64_t key);

/* Counts a failed check; the window starts at the first failure. */
void guard_failure(struct guard *g, uint64_t key, uint64_t now_ms);

/* A successful check forgives the address's failures so far. */
void guard_success(struct guard *g, uint64_t key);

#endif
