/*
 * test_ratelimit.c - ratelimit.c on a clock of the test's own: the burst,
 * the refill, Retry-After, keys apart, a full table, the same table
 * shared by threads (what two workers do), and carrying tables across a
 * reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ratelimit.h"

#define SEC 1000000u

static uint64_t t0;

/* A table, and t0 set to a time after it was made. */
static struct ratelimit *
make(uint64_t interval_us, unsigned burst)
{
	struct ratelimit *rl = ratelimit_new(interval_us, burst);

	t0 = ratelimit_now_us();
	return rl;
}

/* 10/s, burst 5: five at once, then one per 100 ms. */
static void
test_burst_then_rate(void **state)
{
	struct ratelimit *rl = make(SEC / 10, 5);
	const char key[] = "client-a";
	int i;

	(void)state;
	assert_non_null(rl);
	for (i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, key, 8, t0), 0);
	/* the sixth waits 100 ms: Retry-After rounds up to 1 s */
	assert_int_equal(ratelimit_take(rl, key, 8, t0), 1);
	assert_int_equal(ratelimit_take(rl, key, 8, t0 + 99999), 1);
	assert_int_equal(ratelimit_take(rl, key, 8, t0 + 100000), 0);
	assert_int_not_equal(ratelimit_take(rl, key, 8, t0 + 100000), 0);
	/* over 10 s, 100 more and not one over */
	for (i = 0; i < 100; i++)
		assert_int_equal(
		    ratelimit_take(rl, key, 8,
				   t0 + 200000 + (uint64_t)i * 100000),
		    0);
	assert_int_not_equal(ratelimit_take(rl, key, 8, t0 + 10100000), 0);
	/* quiet for a while: a full burst again, no more */
	for (i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, key, 8, t0 + 60 * SEC), 0);
	assert_int_not_equal(ratelimit_take(rl, key, 8, t0 + 60 * SEC), 0);
	ratelimit_unref(rl);
}

/* 1/m: Retry-After says when, in whole seconds. */
static void
test_retry_after(void **state)
{
	struct ratelimit *rl = make(60 * SEC, 1);

	(void)state;
	assert_int_equal(ratelimit_take(rl, "k", 1, t0), 0);
	assert_int_equal(ratelimit_take(rl, "k", 1, t0), 60);
	assert_int_equal(ratelimit_take(rl, "k", 1, t0 + 59 * SEC + 1), 1);
	assert_int_equal(ratelimit_take(rl, "k", 1, t0 + 60 * SEC), 0);
	ratelimit_unref(rl);
}

/* Keys have buckets of their own, also keys differing in one byte. */
static void
test_keys_apart(void **state)
{
	struct ratelimit *rl = make(SEC, 2);
	unsigned char a[16] = {0}, b[16] = {0};

	(void)state;
	b[15] = 1;
	assert_int_equal(ratelimit_take(rl, a, 16, t0), 0);
	assert_int_equal(ratelimit_take(rl, a, 16, t0), 0);
	assert_int_not_equal(ratelimit_take(rl, a, 16, t0), 0);
	assert_int_equal(ratelimit_take(rl, b, 16, t0), 0);
	assert_int_equal(ratelimit_take(rl, b, 16, t0), 0);
	assert_int_not_equal(ratelimit_take(rl, b, 16, t0), 0);
	ratelimit_unref(rl);
}

/* Many more keys than slots. A new key whose 16-bit tag matches a key in
 * one of its two slots shares that key's bucket: with every slot taken,
 * 2 in 65536 new keys do (about 2 here); the last keys are still there. */
static void
test_full_table(void **state)
{
	struct ratelimit *rl = make(SEC, 1);
	unsigned i, admitted = 0, refused = 0;
	char k[16];

	(void)state;
	for (i = 0; i < 4 * RATELIMIT_SLOTS; i++) {
		snprintf(k, sizeof(k), "%u", i);
		if (ratelimit_take(rl, k, strlen(k), t0) == 0)
			admitted++;
	}
	assert_true(admitted >= 4 * RATELIMIT_SLOTS - 20);
	/* the last keys are still in the table: refused at once */
	for (i = 4 * RATELIMIT_SLOTS - 100; i < 4 * RATELIMIT_SLOTS; i++) {
		snprintf(k, sizeof(k), "%u", i);
		if (ratelimit_take(rl, k, strlen(k), t0) != 0)
			refused++;
	}
	assert_true(refused >= 95);
	ratelimit_unref(rl);
}

struct racer {
	struct ratelimit *rl;
	_Atomic uint64_t *clock; /* microseconds past t0, moved by racers */
	unsigned admitted;
};

/* Takes tokens for one key while moving the shared clock 1 ms at a time
 * up to 2 s: all threads see the same time line. */
static void *
race(void *arg)
{
	struct racer *r = arg;
	uint64_t now;

	while ((now = atomic_fetch_add(r->clock, 1)) < 2 * 1000 * 1000) {
		if (now % 1000 != 0)
			continue;
		if (ratelimit_take(r->rl, "same", 4, t0 + now) == 0)
			r->admitted++;
	}
	return NULL;
}

/* Four threads on one key, 100/s with a burst of 10 over 2 s: exactly
 * 10 + 199 admitted, whoever takes them (workers share the table). */
static void
test_threads_share_one_limit(void **state)
{
	struct ratelimit *rl = make(SEC / 100, 10);
	_Atomic uint64_t clock = 0;
	struct racer r[4];
	pthread_t t[4];
	unsigned i, total = 0;

	(void)state;
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){rl, &clock, 0};
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += r[i].admitted;
	}
	/* One take per millisecond tick, 2000 in all: in order, ticks 0 to
	 * 10 pass (the burst, and the refill meanwhile), then one each 10 ms
	 * from 20 to 1990: 11 + 198. A thread that is slow to use its tick
	 * takes with a time already past, which can only refuse more (a
	 * refusal is made good at the next tick, but not after the last
	 * ticks): never above, at most one short per thread. */
	assert_true(total <= 11 + 198);
	assert_true(total >= 11 + 198 - 4);
	ratelimit_unref(rl);
}

/* Two routes with limits, the second's rate from the test, and one
 * without. */
#define JSON                                                                   \
	"{\"upstreams\":{\"u\":{\"servers\":[\"127.0.0.1:1\"]}},"              \
	"\"listeners\":[{\"listen\":\"127.0.0.1:2\",\"routes\":["              \
	"{\"name\":\"a\",\"path\":\"/a/\",\"upstream\":\"u\","                 \
	"\"rate_limit\":{\"rate\":\"10/s\",\"burst\":5}},"                     \
	"{\"name\":\"b\",\"path\":\"/b/\",\"upstream\":\"u\","                 \
	"\"rate_limit\":{\"rate\":\"%s\",\"burst\":5}},"                       \
	"{\"name\":\"c\",\"path\":\"/c/\",\"upstream\":\"u\"}]}]}"

/* A reload keeps the table of a route whose limit did not change. */
static void
test_reload_keeps_tables(void **state)
{
	char buf[1024];
	static struct config_errors err;
	struct config *c1, *c2;

	(void)state;
	snprintf(buf, sizeof(buf), JSON, "10/s");
	c1 = config_parse(buf, strlen(buf), &err);
	assert_non_null(c1);
	snprintf(buf, sizeof(buf), JSON, "20/s");
	c2 = config_parse(buf, strlen(buf), &err);
	assert_non_null(c2);
	assert_int_equal(ratelimit_build(c1, NULL), 0);
	assert_int_equal(ratelimit_build(c2, c1), 0);
	t0 = ratelimit_now_us();
	assert_non_null(c1->listeners[0].routes[0].limiter);
	assert_ptr_equal(c2->listeners[0].routes[0].limiter,
			 c1->listeners[0].routes[0].limiter);
	assert_non_null(c2->listeners[0].routes[1].limiter);
	assert_ptr_not_equal(c2->listeners[0].routes[1].limiter,
			     c1->listeners[0].routes[1].limiter);
	assert_null(c2->listeners[0].routes[2].limiter);
	assert_int_equal(c2->listeners[0].routes[1].rate.interval_us, 50000);
	config_unref(c1);
	/* the shared table outlives the config that made it */
	assert_int_equal(
	    ratelimit_take(c2->listeners[0].routes[0].limiter, "x", 1, t0), 0);
	config_unref(c2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_rate),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_keys_apart),
	    cmocka_unit_test(test_full_table),
	    cmocka_unit_test(test_threads_share_one_limit),
	    cmocka_unit_test(test_reload_keeps_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
