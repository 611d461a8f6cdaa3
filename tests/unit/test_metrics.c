/*
 * test_metrics.c - shards sum exactly, buckets are cumulative and hold the
 * SLO thresholds, every upstream server has its series from the start,
 * ids survive a reload, and the access log line is JSON with its strings
 * escaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "accesslog.h"
#include "metrics.h"

static struct config_route routes[2] = {
    {.name = "prometheus", .path = "/prometheus/", .path_len = 12},
    {.name = "alertmanager", .path = "/alertmanager/", .path_len = 14},
};
static struct config_listener listeners[1] = {
    {.listen = "127.0.0.1:8080", .routes = routes, .nroutes = 2}};
static struct config_hostport servers[2] = {
    {.host = "10.0.0.1", .port = "9090"},
    {.host = "::1", .port = "9090"},
};
static struct config_upstream upstreams[1] = {
    {.name = "prom", .servers = servers, .nservers = 2}};
static struct config cfg = {.listeners = listeners,
			    .nlisteners = 1,
			    .upstreams = upstreams,
			    .nupstreams = 1};

static char *
render(struct metrics_shard **shards, unsigned n)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *text;

	metrics_render(b, shards, n, &cfg);
	len = evbuffer_get_length(b);
	text = malloc(len + 1);
	evbuffer_remove(b, text, len);
	text[len] = '\0';
	evbuffer_free(b);
	return text;
}

static void
assert_has_line(const char *text, const char *line)
{
	const char *p = strstr(text, line);

	if (p == NULL || (p != text && p[-1] != '\n') ||
	    p[strlen(line)] != '\n')
		fail_msg("missing line: %s", line);
}

static void
test_shards_sum_and_buckets(void **state)
{
	struct metrics_shard *sh[2] = {metrics_shard_new(),
				       metrics_shard_new()};
	unsigned prom, am;
	char *text;
	int i;

	assert_int_equal(metrics_register(&cfg), 0);
	prom = routes[0].metric_id;
	am = routes[1].metric_id;
	assert_int_not_equal(prom, am);
	assert_int_not_equal(prom, METRICS_NO_ROUTE);
	for (i = 0; i < 7; i++)
		metrics_request(sh[0], prom, METRICS_GET, 200, 0.5, 0.4, 100,
				1000);
	for (i = 0; i < 3; i++)
		metrics_request(sh[1], prom, METRICS_GET, 200, 0.6, -1, 10, 10);
	metrics_request(sh[1], prom, METRICS_POST, 503, 0.001, 0.001, 1, 1);
	metrics_request(sh[0], METRICS_NO_ROUTE, METRICS_OTHER, 404, 0, -1, 1,
			1);
	metrics_upstream_error(sh[1], am, METRICS_UPERR_TIMEOUT);
	metrics_connection(sh[0], 0, 1, true);
	metrics_connection(sh[1], 0, 1, true);
	metrics_connection(sh[1], 0, -1, false);
	text = render(sh, 2);

	assert_has_line(text, "portcullis_http_requests_total{route="
			      "\"prometheus\",method=\"GET\",code=\"200\"} 10");
	assert_has_line(text, "portcullis_http_requests_total{route="
			      "\"prometheus\",method=\"POST\",code=\"503\"} 1");
	assert_has_line(text, "portcullis_http_requests_total{route=\"_none\","
			      "method=\"OTHER\",code=\"404\"} 1");
	/* Classes sum methods and codes; a configured route without traffic
	 * has all five at 0 (its first 5xx must be an increase from 0). */
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"prometheus\",class=\"2xx\"} 10");
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"prometheus\",class=\"5xx\"} 1");
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"prometheus\",class=\"4xx\"} 0");
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"alertmanager\",class=\"1xx\"} 0");
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"alertmanager\",class=\"5xx\"} 0");
	assert_has_line(text, "portcullis_http_responses_total{route="
			      "\"_none\",class=\"4xx\"} 1");
	/* 0.5 s sits in le="0.5" (upper bounds are inclusive). */
	assert_has_line(text, "portcullis_http_request_duration_seconds_bucket{"
			      "route=\"prometheus\",le=\"0.25\"} 1");
	assert_has_line(text, "portcullis_http_request_duration_seconds_bucket{"
			      "route=\"prometheus\",le=\"0.5\"} 8");
	assert_has_line(text, "portcullis_http_request_duration_seconds_bucket{"
			      "route=\"prometheus\",le=\"1\"} 11");
	assert_has_line(text, "portcullis_http_request_duration_seconds_bucket{"
			      "route=\"prometheus\",le=\"+Inf\"} 11");
	assert_has_line(text, "portcullis_http_request_duration_seconds_count{"
			      "route=\"prometheus\"} 11");
	/* Requests without an upstream are not in the upstream histogram. */
	assert_has_line(text,
			"portcullis_upstream_response_duration_seconds_count{"
			"route=\"prometheus\"} 8");
	assert_has_line(text, "portcullis_upstream_errors_total{route="
			      "\"alertmanager\",reason=\"timeout\"} 1");
	assert_has_line(text, "portcullis_http_request_size_bytes_total{"
			      "route="
			      "\"prometheus\"} 731");
	assert_has_line(text, "portcullis_connections_active{listener="
			      "\"127.0.0.1:8080\"} 1");
	assert_has_line(text, "portcullis_connections_accepted_total{listener="
			      "\"127.0.0.1:8080\"} 2");
	assert_has_line(text, "# TYPE portcullis_http_request_duration_seconds "
			      "histogram");
	free(text);
	metrics_shard_free(sh[0]);
	metrics_shard_free(sh[1]);
}

static void
test_server_series(void **state)
{
	struct metrics_shard *sh[2] = {metrics_shard_new(),
				       metrics_shard_new()};
	unsigned a, b;
	char *text;

	assert_int_equal(metrics_register(&cfg), 0);
	a = servers[0].metric_id;
	b = servers[1].metric_id;
	assert_int_not_equal(a, b);
	metrics_server_request(sh[0], a);
	metrics_server_request(sh[1], a);
	metrics_server_request(sh[1], a);
	metrics_server_error(sh[0], a, METRICS_UPERR_CONNECT);
	metrics_server_error(sh[1], a, METRICS_UPERR_RESET);
	metrics_server_error(sh[1], a, METRICS_UPERR_UNHEALTHY); /* ignored */
	metrics_server_connect(sh[0], a, 0.0005); /* le is inclusive */
	metrics_server_connect(sh[1], a, 0.003);
	metrics_server_connect(sh[1], a, 30);
	text = render(sh, 2);
	assert_has_line(text, "portcullis_upstream_server_requests_total{"
			      "upstream=\"prom\",server=\"10.0.0.1:9090\"} 3");
	/* every configured server from the start, IPv6 in brackets */
	assert_has_line(text, "portcullis_upstream_server_requests_total{"
			      "upstream=\"prom\",server=\"[::1]:9090\"} 0");
	assert_has_line(
	    text, "portcullis_upstream_server_errors_total{upstream="
		  "\"prom\",server=\"10.0.0.1:9090\",reason=\"connect\"} 1");
	assert_has_line(
	    text, "portcullis_upstream_server_errors_total{upstream="
		  "\"prom\",server=\"10.0.0.1:9090\",reason=\"reset\"} 1");
	assert_has_line(
	    text, "portcullis_upstream_server_errors_total{upstream="
		  "\"prom\",server=\"10.0.0.1:9090\",reason=\"timeout\"} 0");
	assert_null(strstr(text, "server=\"10.0.0.1:9090\",reason=\"dns\""));
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "bucket{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\",le=\"0.0005\"} 1");
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "bucket{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\",le=\"0.005\"} 2");
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "bucket{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\",le=\"10\"} 2");
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "bucket{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\",le=\"+Inf\"} 3");
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "count{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\"} 3");
	assert_has_line(text, "portcullis_upstream_server_connect_seconds_"
			      "sum{upstream=\"prom\",server=\"10.0.0.1:"
			      "9090\"} 30.003500000");
	free(text);
	metrics_shard_free(sh[0]);
	metrics_shard_free(sh[1]);
}

static void
test_ids_survive_reload(void **state)
{
	unsigned before = routes[1].metric_id;

	routes[1].metric_id = 999;
	assert_int_equal(metrics_register(&cfg), 0);
	assert_int_equal(routes[1].metric_id, before);
}

static void
test_method_labels(void **state)
{
	assert_int_equal(metrics_method("GET", 3), METRICS_GET);
	assert_int_equal(metrics_method("PATCH", 5), METRICS_PATCH);
	assert_int_equal(metrics_method("GETX", 4), METRICS_OTHER);
	assert_int_equal(metrics_method("get", 3), METRICS_OTHER);
}

static void
test_access_log_line_is_escaped_json(void **state)
{
	struct timespec t = {1764072000, 123456789}; /* 2025-11-25 12:00 */
	struct accesslog_entry e = {
	    .request_id = "abc",
	    .client = "127.0.0.1",
	    .method = "GET",
	    .path = "/a\"b\\c\x01",
	    .status = 200,
	    .bytes_in = 10,
	    .bytes_out = 20,
	    .duration = 0.25,
	    .upstream_duration = -1,
	    .route = "prometheus",
	    .upstream = NULL,
	    .user = "al\"ice",
	};
	char buf[1024];
	size_t n = accesslog_format(buf, sizeof(buf), &e, &t);

	buf[n] = '\0';
	assert_string_equal(
	    buf,
	    "{\"time\":\"2025-11-25T12:00:00.123Z\",\"request_id\":\"abc\","
	    "\"client\":\"127.0.0.1\",\"proxy\":null,\"user\":\"al\\\"ice\","
	    "\"method\":"
	    "\"GET\",\"path\":"
	    "\"/a\\\"b\\\\c\\u0001\",\"status\":200,\"reason\":null,"
	    "\"bytes_in\":10,"
	    "\"bytes_out\":20,\"duration\":0.250000,"
	    "\"upstream_duration\":null,\"route\":\"prometheus\","
	    "\"upstream\":null,\"tls\":null}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shards_sum_and_buckets),
	    cmocka_unit_test(test_server_series),
	    cmocka_unit_test(test_ids_survive_reload),
	    cmocka_unit_test(test_method_labels),
	    cmocka_unit_test(test_access_log_line_is_escaped_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
