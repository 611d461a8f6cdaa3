/*
 * ratelimit.c - the shared, lock-free token buckets of rate-limited routes.
 *
 * A slot is (tag << 48) | tat: tat is when the key's bucket is full again,
 * in microseconds since the table was made (48 bits: 8.9 years). A bucket
 * of `burst` tokens refilled one per interval admits a request at `now`
 * when tat - now <= (burst - 1) * interval, and moves tat one interval on
 * from max(tat, now). An empty slot (0), or a tat in the past, is a full
 * bucket.
 */
#include "ratelimit.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"

#define TAT_BITS 48
#define TAT_MASK ((UINT64_C(1) << TAT_BITS) - 1)
#define CAS_TRIES 16

struct ratelimit {
	atomic_int refs;
	uint64_t interval; /* microseconds per token */
	uint64_t tau;	   /* (burst - 1) * interval */
	uint64_t base;	   /* ratelimit_now_us() when made */
	uint64_t seed[2];  /* keys the hash: slots cannot be aimed at */
	_Atomic uint64_t slot[RATELIMIT_SLOTS];
};

uint64_t
ratelimit_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct ratelimit *
ratelimit_new(uint64_t interval_us, unsigned burst)
{
	struct ratelimit *rl;

	if (interval_us == 0 || burst == 0 ||
	    (rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	atomic_init(&rl->refs, 1);
	rl->interval = interval_us;
	rl->tau = (uint64_t)(burst - 1) * interval_us;
	rl->base = ratelimit_now_us();
	/* Without randomness the table still works; only its slots could
	 * be predicted. getrandom() on a booted system does not block. */
	if (getrandom(rl->seed, sizeof(rl->seed), 0) != sizeof(rl->seed))
		rl->seed[0] = rl->base, rl->seed[1] = (uint64_t)(uintptr_t)rl;
	return rl;
}

struct ratelimit *
ratelimit_ref(struct ratelimit *rl)
{
	atomic_fetch_add_explicit(&rl->refs, 1, memory_order_relaxed);
	return rl;
}

void
ratelimit_unref(struct ratelimit *rl)
{
	if (rl != NULL &&
	    atomic_fetch_sub_explicit(&rl->refs, 1, memory_order_acq_rel) == 1)
		free(rl);
}

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* A keyed hash of a short key (an address, a user name). */
static uint64_t
hash(const struct ratelimit *rl, const unsigned char *p, size_t n)
{
	uint64_t h = rl->seed[0] ^ (n * UINT64_C(0x9e3779b97f4a7c15));

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		h = mix(h ^ w) + rl->seed[1];
		p += 8;
		n -= 8;
	}
	if (n > 0) {
		uint64_t w = 0;

		memcpy(&w, p, n);
		h = mix(h ^ w ^ ((uint64_t)n << 56)) + rl->seed[1];
	}
	return mix(h);
}

unsigned
ratelimit_take(struct ratelimit *rl, const void *key, size_t len,
	       uint64_t now_us)
{
	uint64_t h = hash(rl, key, len), tag = h >> TAT_BITS;
	/* A time from before the table was made is its first instant. */
	uint64_t now = now_us > rl->base ? (now_us - rl->base) & TAT_MASK : 0;
	_Atomic uint64_t *a = &rl->slot[h % RATELIMIT_SLOTS];
	_Atomic uint64_t *b = &rl->slot[(h >> 20) % RATELIMIT_SLOTS];
	int tries;

	if (tag == 0)
		tag = 1; /* 0 is an empty slot */
	for (tries = 0; tries < CAS_TRIES; tries++) {
		uint64_t va = atomic_load_explicit(a, memory_order_relaxed);
		uint64_t vb = atomic_load_explicit(b, memory_order_relaxed);
		_Atomic uint64_t *s;
		uint64_t old, tat;

		if (va >> TAT_BITS == tag) {
			s = a, old = va, tat = va & TAT_MASK;
		} else if (vb >> TAT_BITS == tag) {
			s = b, old = vb, tat = vb & TAT_MASK;
		} else {
			/* Neither holds the key: take the slot whose bucket
			 * is full soonest (an empty one, or a quiet key's);
			 * the key starts with a full bucket. */
			bool pick_a = (va & TAT_MASK) <= (vb & TAT_MASK);

			s = pick_a ? a : b;
			old = pick_a ? va : vb;
			tat = 0;
		}
		if (tat < now)
			tat = now;
		if (tat - now > rl->tau) {
			uint64_t wait = tat - now - rl->tau;

			return (unsigned)((wait + 999999) / 1000000);
		}
		if (atomic_compare_exchange_weak_explicit(
			s, &old,
			tag << TAT_BITS | ((tat + rl->interval) & TAT_MASK),
			memory_order_relaxed, memory_order_relaxed))
			return 0;
	}
	/* Sixteen workers raced for this very slot: let the request pass
	 * rather than spin on it. */
	return 0;
}

/* Does `old` have the route (by listener and name) with the same limit? */
static struct ratelimit *
find_old(const struct config *old, const struct config_listener *l,
	 const struct config_route *r)
{
	size_t i, j;

	if (old == NULL)
		return NULL;
	for (i = 0; i < old->nlisteners; i++) {
		const struct config_listener *ol = &old->listeners[i];

		if (strcmp(ol->listen, l->listen) != 0)
			continue;
		for (j = 0; j < ol->nroutes; j++) {
			const struct config_route * or = &ol->routes[j];

			if (or
				->limiter != NULL &&
				    strcmp(or->name, r->name) == 0 &&
			    or->rate.interval_us == r->rate.interval_us &&
			    or->rate.burst == r->rate.burst &&
			    or->rate.by_user == r->rate.by_user)
				return or->limiter;
		}
	}
	return NULL;
}

int
ratelimit_build(struct config *c, const struct config *old)
{
	size_t i, j;

	for (i = 0; i < c->nlisteners; i++) {
		struct config_listener *l = &c->listeners[i];

		for (j = 0; j < l->nroutes; j++) {
			struct config_route *r = &l->routes[j];
			struct ratelimit *o;

			if (r->rate.interval_us == 0 || r->limiter != NULL)
				continue;
			if ((o = find_old(old, l, r)) != NULL)
				r->limiter = ratelimit_ref(o);
			else if ((r->limiter =
				      ratelimit_new(r->rate.interval_us,
						    r->rate.burst)) == NULL)
				return -1;
		}
	}
	return 0;
}
