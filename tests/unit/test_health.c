/*
 * test_health.c - health.c through health.h and the health keys of
 * config.c: the rise/fall rule, expect_status sets and defaults, passive
 * ejection, and the state a reload carries over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "health.h"

static struct config_errors err;

/* A config of one upstream "app" with `servers` (JSON array text) and
 * `extra` keys (JSON members, may be ""). */
static struct config *
make(const char *servers, const char *extra)
{
	char json[4096];

	snprintf(json, sizeof(json),
		 "{\"upstreams\": {\"app\": {\"servers\": %s%s%s}},"
		 " \"listeners\": [{\"listen\": \"127.0.0.1:1\", \"routes\": "
		 "[{\"name\": \"app\", \"path\": \"/\", \"upstream\": "
		 "\"app\"}]}]}",
		 servers, extra[0] != '\0' ? ", " : "", extra);
	return config_parse(json, strlen(json), &err);
}

static void
test_step_fall_and_rise(void **state)
{
	unsigned run = 0;
	bool up = true;

	/* fall = 3: two failures keep it up, the third takes it down */
	up = health_step(up, false, 2, 3, &run);
	up = health_step(up, false, 2, 3, &run);
	assert_true(up);
	assert_int_equal(run, 2);
	up = health_step(up, false, 2, 3, &run);
	assert_false(up);
	assert_int_equal(run, 0);
	/* a pass then a failure: the run restarts */
	up = health_step(up, true, 2, 3, &run);
	assert_false(up);
	up = health_step(up, false, 2, 3, &run);
	assert_int_equal(run, 0);
	up = health_step(up, true, 2, 3, &run);
	up = health_step(up, true, 2, 3, &run);
	assert_true(up);
	assert_int_equal(run, 0);
}

static void
test_step_agreeing_check_resets_run(void **state)
{
	unsigned run = 0;
	bool up = true;

	up = health_step(up, false, 1, 2, &run);
	up = health_step(up, true, 1, 2, &run); /* back to 0 */
	up = health_step(up, false, 1, 2, &run);
	assert_true(up);
	up = health_step(up, false, 1, 2, &run);
	assert_false(up);
	/* rise = 1: one pass is enough */
	assert_true(health_step(up, true, 1, 2, &run));
}

static void
test_expect_default_and_sets(void **state)
{
	struct config *c =
	    make("[\"127.0.0.1:1\"]", "\"health_check\": {\"path\": \"/h\"}");
	const struct config_health_check *hc;

	assert_non_null(c);
	hc = &c->upstreams[0].check;
	assert_true(hc->enabled);
	assert_string_equal(hc->path, "/h");
	assert_null(hc->host);
	assert_int_equal(hc->interval_ms, 5000);
	assert_int_equal(hc->timeout_ms, 2000);
	assert_int_equal(hc->rise, 2);
	assert_int_equal(hc->fall, 3);
	assert_false(config_status_in(hc->expect, 199));
	assert_true(config_status_in(hc->expect, 200));
	assert_true(config_status_in(hc->expect, 399));
	assert_false(config_status_in(hc->expect, 400));
	assert_false(config_status_in(hc->expect, 0));
	assert_false(config_status_in(hc->expect, 600));
	assert_true(c->upstreams[0].required_for_ready);
	assert_int_equal(c->upstreams[0].max_fails, 0);
	config_unref(c);

	c = make("[\"127.0.0.1:1\"]",
		 "\"health_check\": {\"path\": \"/h\", \"interval\": \"1s\","
		 " \"expect_status\": [204, \"4xx\", \"598-599\"]}");
	assert_non_null(c);
	hc = &c->upstreams[0].check;
	assert_int_equal(hc->timeout_ms, 1000); /* the interval, shorter */
	assert_true(config_status_in(hc->expect, 204));
	assert_false(config_status_in(hc->expect, 200));
	assert_true(config_status_in(hc->expect, 400));
	assert_true(config_status_in(hc->expect, 499));
	assert_false(config_status_in(hc->expect, 500));
	assert_false(config_status_in(hc->expect, 597));
	assert_true(config_status_in(hc->expect, 598));
	assert_true(config_status_in(hc->expect, 599));
	config_unref(c);

	c = make(
	    "[\"127.0.0.1:1\"]",
	    "\"health_check\": {\"path\": \"/h\", \"expect_status\": 100}");
	assert_non_null(c);
	assert_true(config_status_in(c->upstreams[0].check.expect, 100));
	assert_false(config_status_in(c->upstreams[0].check.expect, 101));
	config_unref(c);
}

static void
test_config_errors(void **state)
{
	struct config *c =
	    make("[\"127.0.0.1:1\", \"[::1]:2\", \"[::1]:2\"]",
		 "\"health_check\": {\"path\": \"/h\", \"timeout\": \"3s\", "
		 "\"interval\": \"2s\", \"expect_status\": \"20x\"}, "
		 "\"passive\": {\"max_fails\": 101}");

	assert_null(c);
	assert_int_equal(err.n, 4);
	assert_string_equal(err.msg[0],
			    "upstreams.app.servers[2]: \"[::1]:2\" is listed "
			    "twice");
	assert_string_equal(err.msg[1], "upstreams.app.health_check.timeout: "
					"3s is longer than interval (2s)");
	assert_string_equal(
	    err.msg[2],
	    "upstreams.app.health_check.expect_status: must be a status (200), "
	    "a class (\"2xx\") or a range (\"200-399\") of codes 100 to 599, "
	    "or an array of them");
	assert_string_equal(err.msg[3], "upstreams.app.passive.max_fails: must "
					"be an integer from 1 to 100");
}

static void
test_passive_ejection(void **state)
{
	struct config *c = make("[\"127.0.0.1:1\", \"127.0.0.1:2\"]",
				"\"passive\": {\"max_fails\": 2, "
				"\"eject_for\": \"1h\"}");
	struct config_upstream *u;

	assert_non_null(c);
	u = &c->upstreams[0];
	assert_int_equal(u->max_fails, 2);
	assert_int_equal(u->eject_ms, 3600 * 1000);
	assert_int_equal(health_build(c, NULL), 0);
	assert_true(health_upstream_usable(u));
	assert_false(health_connect_failed(u, 1));
	health_connect_ok(u, 1); /* the run ends */
	assert_false(health_connect_failed(u, 1));
	assert_true(health_usable(&u->health[1]));
	assert_true(health_connect_failed(u, 1)); /* the second in a row */
	assert_false(health_usable(&u->health[1]));
	assert_true(health_usable(&u->health[0]));
	assert_true(health_upstream_usable(u));
	assert_false(health_connect_failed(u, 0));
	assert_true(health_connect_failed(u, 0));
	assert_false(health_upstream_usable(u));
	/* an ejection that ran out is cleared by the first to see it */
	atomic_store(&u->health[0].hs_ejected_until, 1);
	assert_true(health_usable(&u->health[0]));
	assert_int_equal(atomic_load(&u->health[0].hs_ejected_until), 0);
	/* checks' verdict and ejection both have to allow */
	atomic_store(&u->health[0].hs_up, false);
	assert_false(health_usable(&u->health[0]));
	config_unref(c);

	/* the only server of an upstream is never ejected */
	c = make("[\"127.0.0.1:1\"]", "\"passive\": {\"max_fails\": 1}");
	assert_non_null(c);
	assert_int_equal(health_build(c, NULL), 0);
	assert_false(health_connect_failed(&c->upstreams[0], 0));
	assert_true(health_upstream_usable(&c->upstreams[0]));
	config_unref(c);
}

static void
test_build_carries_state(void **state)
{
	const char *hc = "\"health_check\": {\"path\": \"/h\"}";
	struct config *old = make("[\"127.0.0.1:1\", \"127.0.0.1:2\"]", hc);
	struct config *kept, *unchecked;

	assert_non_null(old);
	assert_int_equal(health_build(old, NULL), 0);
	atomic_store(&old->upstreams[0].health[1].hs_up, false);
	old->upstreams[0].health[1].hs_run = 1;
	atomic_store(&old->upstreams[0].health[1].hs_checks[HEALTH_TIMEOUT], 7);

	/* server 2 kept (now first), server 3 new */
	kept = make("[\"127.0.0.1:2\", \"127.0.0.1:3\"]", hc);
	assert_non_null(kept);
	assert_int_equal(health_build(kept, old), 0);
	assert_false(atomic_load(&kept->upstreams[0].health[0].hs_up));
	assert_int_equal(kept->upstreams[0].health[0].hs_run, 1);
	assert_int_equal(
	    atomic_load(
		&kept->upstreams[0].health[0].hs_checks[HEALTH_TIMEOUT]),
	    7);
	assert_true(atomic_load(&kept->upstreams[0].health[1].hs_up));

	/* without checks nothing would bring it back: up */
	unchecked = make("[\"127.0.0.1:2\"]", "");
	assert_non_null(unchecked);
	assert_int_equal(health_build(unchecked, old), 0);
	assert_true(health_usable(&unchecked->upstreams[0].health[0]));
	config_unref(unchecked);
	config_unref(kept);
	config_unref(old);
}

static void
test_result_names(void **state)
{
	assert_string_equal(health_result_name(HEALTH_OK), "ok");
	assert_string_equal(health_result_name(HEALTH_STATUS), "status");
	assert_string_equal(health_result_name(HEALTH_DNS), "dns");
	assert_string_equal(health_result_name(HEALTH_N), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_step_fall_and_rise),
	    cmocka_unit_test(test_step_agreeing_check_resets_run),
	    cmocka_unit_test(test_expect_default_and_sets),
	    cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_passive_ejection),
	    cmocka_unit_test(test_build_carries_state),
	    cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
