/*
 * authcache.h - one worker's verified-credential cache: keys are HMACs of
 * (realm, Authorization value), never the credentials themselves.
 *
 * Fixed size, allocated once: 4-way sets, a full set evicts the entry that
 * expires first. An entry holds the credential version it was verified
 * against, so a realm whose credentials change misses on every old entry
 * at once. Owner thread only; no locks.
 */
#ifndef PORTCULLIS_AUTHCACHE_H
#define PORTCULLIS_AUTHCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHCACHE_KEY_LEN 32

struct authcache;

/* A cache of at least `entries` (rounded up to a power of two, >= 4), or
 * NULL when out of memory. */
struct authcache *authcache_new(size_t entries);

void authcache_free(struct authcache *c); /* NULL is fine */

/* True if key is cached for `version` and has not expired at now_ms. */
bool authcache_get(const struct authcache *c, const uint8_t *key,
		   uint64_t version, uint64_t now_ms);

/* Remembers key for `version` until expires_ms (replacing its old entry). */
void authcache_put(struct authcache *c, const uint8_t *key, uint64_t version,
		   uint64_t now_ms, uint64_t expires_ms);

#endif
