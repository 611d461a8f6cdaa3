/*
 * test_sesscache.c - the process's TLS session store (sesscache.c) through
 * sesscache.h: a session is found by its ID and no other, an expired one
 * is not given out (and is dropped), forget drops one, a full bucket gives
 * up the session that expires first, and what does not fit is not kept.
 * Real handshakes through it are in test_tls.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <string.h>

#include "sesscache.h"

#define NOW 1000000

static void
id_of(unsigned n, unsigned char id[SESSCACHE_ID_MAX])
{
	memset(id, 0xA5, SESSCACHE_ID_MAX);
	memcpy(id, &n, sizeof(n));
}

static size_t
get(unsigned n, unsigned char *buf, time_t now)
{
	unsigned char id[SESSCACHE_ID_MAX];

	id_of(n, id);
	return sesscache_get(id, sizeof(id), buf, SESSCACHE_DER_MAX, now);
}

static void
put(unsigned n, time_t expires)
{
	unsigned char id[SESSCACHE_ID_MAX], der[16];

	id_of(n, id);
	snprintf((char *)der, sizeof(der), "session %u", n);
	sesscache_put(id, sizeof(id), der, strlen((char *)der) + 1, expires);
}

static int
setup(void **state)
{
	(void)state;
	/* One bucket: every ID meets every other. */
	return sesscache_init(SESSCACHE_WAYS);
}

static void
test_found_by_id(void **state)
{
	unsigned char buf[SESSCACHE_DER_MAX], id[SESSCACHE_ID_MAX];

	put(1, NOW + 60);
	assert_int_equal(get(1, buf, NOW), strlen("session 1") + 1);
	assert_string_equal((char *)buf, "session 1");
	assert_int_equal(get(2, buf, NOW), 0);
	/* a prefix of the ID is another ID */
	id_of(1, id);
	assert_int_equal(sesscache_get(id, 16, buf, sizeof(buf), NOW), 0);
	/* too small a buffer gets nothing, not a cut session */
	assert_int_equal(sesscache_get(id, sizeof(id), buf, 4, NOW), 0);
	/* the same ID again replaces the session */
	put(1, NOW + 90);
	assert_int_equal(get(1, buf, NOW + 70), strlen("session 1") + 1);
}

static void
test_expired_and_forgotten(void **state)
{
	unsigned char buf[SESSCACHE_DER_MAX], id[SESSCACHE_ID_MAX];

	put(3, NOW + 10);
	assert_int_equal(get(3, buf, NOW + 10), 0); /* expired: dropped */
	assert_int_equal(get(3, buf, NOW), 0);	    /* ... for good */
	put(4, NOW + 60);
	id_of(4, id);
	sesscache_forget(id, sizeof(id));
	assert_int_equal(get(4, buf, NOW), 0);
}

static void
test_full_bucket_evicts_soonest_expiry(void **state)
{
	unsigned char buf[SESSCACHE_DER_MAX];
	unsigned n;

	for (n = 10; n < 10 + SESSCACHE_WAYS; n++)
		put(n, NOW + 100 + n);
	put(99, NOW + 500); /* 10 expires first: it goes */
	assert_int_equal(get(10, buf, NOW), 0);
	for (n = 11; n < 10 + SESSCACHE_WAYS; n++)
		assert_int_not_equal(get(n, buf, NOW), 0);
	assert_int_not_equal(get(99, buf, NOW), 0);
}

static void
test_what_does_not_fit_is_not_kept(void **state)
{
	static unsigned char big[SESSCACHE_DER_MAX + 1];
	unsigned char buf[SESSCACHE_DER_MAX], id[SESSCACHE_ID_MAX + 1];

	memset(id, 7, sizeof(id));
	sesscache_put(id, SESSCACHE_ID_MAX, big, sizeof(big), NOW + 60);
	assert_int_equal(
	    sesscache_get(id, SESSCACHE_ID_MAX, buf, sizeof(buf), NOW), 0);
	sesscache_put(id, sizeof(id), big, 8, NOW + 60);
	assert_int_equal(sesscache_get(id, sizeof(id), buf, sizeof(buf), NOW),
			 0);
	sesscache_put(id, 0, big, 8, NOW + 60);
	assert_int_equal(sesscache_get(id, 0, buf, sizeof(buf), NOW), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_found_by_id),
	    cmocka_unit_test(test_expired_and_forgotten),
	    cmocka_unit_test(test_full_bucket_evicts_soonest_expiry),
	    cmocka_unit_test(test_what_does_not_fit_is_not_kept),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
