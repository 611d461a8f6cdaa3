/*
 * guard.c - per-address failure counting for one realm (see guard.h).
 *
 * Slots live in a fixed open-addressed table. Writers (failures, successes)
 * hold g_lock; readers take no lock. A reader loads a slot's key, then its
 * refusal deadline, then the key again, and trusts the deadline only when
 * both keys are its own: a writer reusing a slot clears the deadline
 * before it stores the new key, so a reader never takes another address's
 * refusal for its own.
 */
#include "guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define PROBE 8 /* slots looked at per address */

struct slot {
	_Atomic uint64_t key;		/* 0: never used */
	_Atomic uint64_t refused_until; /* ms; 0 or past: not refused */
	uint64_t window_start;		/* under g_lock */
	uint32_t failures;		/* under g_lock */
	uint32_t pending;		/* checks in flight, under g_lock */
};

struct guard {
	unsigned g_max;
	uint64_t g_window;
	pthread_mutex_t g_lock;
	_Atomic uint64_t g_latest; /* latest refused_until of any slot */
	struct slot g_slots[GUARD_SLOTS];
};

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void
seed_init(void)
{
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ull;
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t
guard_key(const struct sockaddr *sa)
{
	uint64_t v = 0, h;

	pthread_once(&seed_once, seed_init);
	if (sa->sa_family == AF_INET) {
		uint32_t a;

		memcpy(&a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		v = (4ull << 32) | a;
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *b =
		    ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
						   0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(b, mapped, 12) == 0) {
			uint32_t a;

			memcpy(&a, b + 12, 4);
			v = (4ull << 32) | a;
		} else {
			memcpy(&v, b, 8); /* the /64 */
			v = mix(v ^ (6ull << 56));
		}
	}
	h = mix(v ^ seed);
	return h != 0 ? h : 1;
}

struct guard *
guard_new(unsigned max_failures, uint64_t window_ms)
{
	struct guard *g;

	pthread_once(&seed_once, seed_init);
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->g_max = max_failures;
	g->g_window = window_ms;
	pthread_mutex_init(&g->g_lock, NULL);
	return g;
}

void
guard_free(struct guard *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->g_lock);
	free(g);
}

uint32_t
guard_refused(const struct guard *g, uint64_t key, uint64_t now_ms)
{
	struct guard *mg = (struct guard *)g; /* atomics need a mutable ptr */
	unsigned i;

	if (g->g_max == 0 ||
	    atomic_load_explicit(&mg->g_latest, memory_order_acquire) <= now_ms)
		return 0;
	for (i = 0; i < PROBE; i++) {
		struct slot *s = &mg->g_slots[(key + i) % GUARD_SLOTS];
		uint64_t k =
		    atomic_load_explicit(&s->key, memory_order_acquire);
		uint64_t until;

		if (k == 0)
			return 0;
		if (k != key)
			continue;
		until = atomic_load_explicit(&s->refused_until,
					     memory_order_acquire);
		if (atomic_load_explicit(&s->key, memory_order_acquire) !=
			key ||
		    until <= now_ms)
			return 0;
		return (uint32_t)((until - now_ms + 999) / 1000);
	}
	return 0;
}

/* The slot of key, or one to take over for it (g_lock held). */
static struct slot *
slot_for(struct guard *g, uint64_t key, uint64_t now_ms, bool make)
{
	struct slot *free_slot = NULL, *oldest = NULL;
	unsigned i;

	for (i = 0; i < PROBE; i++) {
		struct slot *s = &g->g_slots[(key + i) % GUARD_SLOTS];
		uint64_t k =
		    atomic_load_explicit(&s->key, memory_order_relaxed);

		if (k == key)
			return s;
		if (k == 0) {
			if (free_slot == NULL)
				free_slot = s;
			break; /* slots are never emptied: key is not further */
		}
		if (free_slot == NULL && s->pending == 0 &&
		    atomic_load_explicit(&s->refused_until,
					 memory_order_relaxed) <= now_ms &&
		    s->window_start + g->g_window <= now_ms)
			free_slot = s;
		if (s->pending == 0 &&
		    (oldest == NULL || s->window_start < oldest->window_start))
			oldest = s;
	}
	if (!make)
		return NULL;
	if (free_slot == NULL)
		free_slot = oldest; /* table crowded: forget the oldest */
	if (free_slot == NULL)
		return NULL; /* every slot in reach has checks in flight */
	atomic_store_explicit(&free_slot->refused_until, 0,
			      memory_order_release);
	atomic_store_explicit(&free_slot->key, key, memory_order_release);
	free_slot->window_start = now_ms;
	free_slot->failures = 0;
	free_slot->pending = 0;
	return free_slot;
}

/* Starts a new window for s if its last one is over (g_lock held). */
static void
window_roll(struct guard *g, struct slot *s, uint64_t now_ms)
{
	if (s->window_start + g->g_window <= now_ms) {
		s->window_start = now_ms;
		s->failures = 0;
	}
}

uint32_t
guard_reserve(struct guard *g, uint64_t key, uint64_t now_ms)
{
	struct slot *s;
	uint32_t wait = 0;
	uint64_t until;

	if (g->g_max == 0)
		return 0;
	pthread_mutex_lock(&g->g_lock);
	if ((s = slot_for(g, key, now_ms, true)) == NULL) {
		wait = 1; /* the table is full of checks in flight */
	} else {
		window_roll(g, s, now_ms);
		if (s->failures + s->pending >= g->g_max) {
			until = atomic_load_explicit(&s->refused_until,
						     memory_order_relaxed);
			wait = until > now_ms
				   ? (uint32_t)((until - now_ms + 999) / 1000)
				   : 1;
		} else {
			s->pending++;
		}
	}
	pthread_mutex_unlock(&g->g_lock);
	return wait;
}

void
guard_release(struct guard *g, uint64_t key)
{
	struct slot *s;

	if (g->g_max == 0)
		return;
	pthread_mutex_lock(&g->g_lock);
	if ((s = slot_for(g, key, 0, false)) != NULL && s->pending > 0)
		s->pending--;
	pthread_mutex_unlock(&g->g_lock);
}

void
guard_failure(struct guard *g, uint64_t key, uint64_t now_ms)
{
	struct slot *s;

	if (g->g_max == 0)
		return;
	pthread_mutex_lock(&g->g_lock);
	if ((s = slot_for(g, key, now_ms, true)) == NULL) {
		pthread_mutex_unlock(&g->g_lock);
		return;
	}
	window_roll(g, s, now_ms);
	if (++s->failures >= g->g_max) {
		uint64_t until = s->window_start + g->g_window;

		atomic_store_explicit(&s->refused_until, until,
				      memory_order_release);
		if (atomic_load_explicit(&g->g_latest, memory_order_relaxed) <
		    until)
			atomic_store_explicit(&g->g_latest, until,
					      memory_order_release);
	}
	pthread_mutex_unlock(&g->g_lock);
}

void
guard_success(struct guard *g, uint64_t key)
{
	struct slot *s;

	if (g->g_max == 0)
		return;
	pthread_mutex_lock(&g->g_lock);
	if ((s = slot_for(g, key, 0, false)) != NULL &&
	    atomic_load_explicit(&s->refused_until, memory_order_relaxed) == 0)
		s->failures = 0;
	pthread_mutex_unlock(&g->g_lock);
}
