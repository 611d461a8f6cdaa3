/*
 * authcache.c - the per-worker verified-credential cache (see authcache.h).
 */
#include "authcache.h"

#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct entry {
	uint8_t key[AUTHCACHE_KEY_LEN];
	uint64_t version; /* 0: empty */
	uint64_t expires_ms;
};

struct authcache {
	size_t mask; /* sets - 1 */
	struct entry e[];
};

struct authcache *
authcache_new(size_t entries)
{
	struct authcache *c;
	size_t sets = 1;

	while (sets * WAYS < entries)
		sets <<= 1;
	if ((c = calloc(1, sizeof(*c) + sets * WAYS * sizeof(c->e[0]))) == NULL)
		return NULL;
	c->mask = sets - 1;
	return c;
}

void
authcache_free(struct authcache *c)
{
	free(c);
}

/* Keys are HMAC outputs: any of their bytes is already uniform. */
static struct entry *
set_of(const struct authcache *c, const uint8_t *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (struct entry *)&c->e[(h & c->mask) * WAYS];
}

bool
authcache_get(const struct authcache *c, const uint8_t *key, uint64_t version,
	      uint64_t now_ms)
{
	const struct entry *set = set_of(c, key);
	int i;

	for (i = 0; i < WAYS; i++)
		if (set[i].version == version && set[i].expires_ms > now_ms &&
		    memcmp(set[i].key, key, AUTHCACHE_KEY_LEN) == 0)
			return true;
	return false;
}

void
authcache_put(struct authcache *c, const uint8_t *key, uint64_t version,
	      uint64_t now_ms, uint64_t expires_ms)
{
	struct entry *set = set_of(c, key), *victim = &set[0];
	int i;

	for (i = 0; i < WAYS; i++) {
		if (memcmp(set[i].key, key, AUTHCACHE_KEY_LEN) == 0 ||
		    set[i].version == 0 || set[i].expires_ms <= now_ms) {
			victim = &set[i];
			break;
		}
		if (set[i].expires_ms < victim->expires_ms)
			victim = &set[i];
	}
	memcpy(victim->key, key, AUTHCACHE_KEY_LEN);
	victim->version = version;
	victim->expires_ms = expires_ms;
}
