/*
 * test_router.c - longest prefix wins, queries never take part, and the
 * trailing-slash redirect.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

static struct config_route routes[] = {
    {.name = "grafana", .path = "/", .path_len = 1},
    {.name = "prometheus", .path = "/prometheus/", .path_len = 12},
    {.name = "prom_api", .path = "/prometheus/api/", .path_len = 16},
    {.name = "alertmanager", .path = "/alertmanager/", .path_len = 14},
    {.name = "exact", .path = "/healthz", .path_len = 8},
};
static struct config_listener listener = {.routes = routes, .nroutes = 5};
static struct config_listener no_root = {.routes = routes + 1, .nroutes = 3};

static const char *
match(const struct config_listener *l, const char *path,
      enum router_result *res)
{
	const struct config_route *r = NULL;

	*res = router_match(l, path, strlen(path), &r);
	return r != NULL ? r->name : NULL;
}

static void
test_longest_prefix_wins(void **state)
{
	enum router_result res;

	assert_string_equal(match(&listener, "/prometheus/api/v1/query", &res),
			    "prom_api");
	assert_int_equal(res, ROUTER_MATCH);
	assert_string_equal(match(&listener, "/prometheus/graph", &res),
			    "prometheus");
	assert_string_equal(match(&listener, "/alertmanager/", &res),
			    "alertmanager");
	assert_string_equal(match(&listener, "/d/abc", &res), "grafana");
}

static void
test_query_is_not_part_of_the_match(void **state)
{
	enum router_result res;

	/* "?x=/prometheus/" must not make "/" look like "/prometheus/". */
	assert_string_equal(match(&listener, "/?x=/prometheus/", &res),
			    "grafana");
	assert_string_equal(
	    match(&listener, "/prometheus/api/v1/query?query=up", &res),
	    "prom_api");
}

static void
test_prefix_without_slash_redirects(void **state)
{
	enum router_result res;

	assert_string_equal(match(&listener, "/prometheus", &res),
			    "prometheus");
	assert_int_equal(res, ROUTER_REDIRECT);
	assert_string_equal(match(&listener, "/alertmanager?silenced=1", &res),
			    "alertmanager");
	assert_int_equal(res, ROUTER_REDIRECT);
}

static void
test_exact_route_without_slash_matches_as_prefix(void **state)
{
	enum router_result res;

	assert_string_equal(match(&listener, "/healthz", &res), "exact");
	assert_int_equal(res, ROUTER_MATCH);
	assert_string_equal(match(&listener, "/healthzzz", &res), "exact");
}

static void
test_no_route(void **state)
{
	enum router_result res;

	assert_null(match(&no_root, "/grafana/", &res));
	assert_int_equal(res, ROUTER_NONE);
	assert_null(match(&no_root, "/prometheu", &res));
	assert_int_equal(res, ROUTER_NONE);
	/* Case matters: paths are compared byte for byte. */
	assert_null(match(&no_root, "/Prometheus/", &res));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_longest_prefix_wins),
	    cmocka_unit_test(test_query_is_not_part_of_the_match),
	    cmocka_unit_test(test_prefix_without_slash_redirects),
	    cmocka_unit_test(test_exact_route_without_slash_matches_as_prefix),
	    cmocka_unit_test(test_no_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
