/*
 * test_exposition.c - the cost exporter's /metrics page: every family with
 * HELP and TYPE in name order, value metrics absent before the first good
 * refresh, label values escaped, amounts exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "cost.h"
#include "exposition.h"

static char *
render(const struct exposition *e)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *text;

	exposition_render(b, e);
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
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("missing line: %s", line);
}

/* The names of the "# TYPE" lines, in order, are sorted and complete. */
static void
assert_families_sorted(const char *text)
{
	static const char *const want[] = {
	    "aws_cost_daily_usd",
	    "aws_cost_exporter_api_requests_total",
	    "aws_cost_exporter_build_info",
	    "aws_cost_exporter_last_success_timestamp_seconds",
	    "aws_cost_exporter_missing_dates",
	    "aws_cost_exporter_refresh_total",
	    "aws_cost_forecast_month_usd",
	    "aws_cost_month_to_date_by_service_usd",
	    "aws_cost_month_to_date_usd",
	    "aws_cost_seven_day_average_daily_usd",
	};
	const char *p = text;
	size_t i = 0, n;

	while ((p = strstr(p, "# TYPE ")) != NULL) {
		p += 7;
		n = strcspn(p, " ");
		assert_true(i < sizeof(want) / sizeof(want[0]));
		if (strlen(want[i]) != n || strncmp(p, want[i], n) != 0)
			fail_msg("family %zu is %.*s, not %s", i, (int)n, p,
				 want[i]);
		i++;
	}
	assert_int_equal(i, sizeof(want) / sizeof(want[0]));
}

static void
test_before_first_success(void **state)
{
	struct exposition e = {.environment = "dev", .version = "0.1.0"};
	char *text;

	e.refreshes[AWS_THROTTLED] = 2;
	e.api_requests = 2;
	text = render(&e);
	assert_families_sorted(text);
	assert_null(strstr(text, "aws_cost_daily_usd{"));
	assert_null(strstr(text, "aws_cost_month_to_date_usd{"));
	assert_null(strstr(text, "aws_cost_forecast_month_usd{"));
	assert_null(strstr(text, "aws_cost_seven_day_average_daily_usd{"));
	assert_null(strstr(text, "aws_cost_exporter_missing_dates{"));
	assert_has_line(text, "aws_cost_exporter_last_success_timestamp_"
			      "seconds{environment=\"dev\"} 0");
	assert_has_line(text, "aws_cost_exporter_refresh_total{environment="
			      "\"dev\",result=\"throttled\"} 2");
	assert_has_line(text, "aws_cost_exporter_refresh_total{environment="
			      "\"dev\",result=\"ok\"} 0");
	assert_has_line(text, "aws_cost_exporter_refresh_total{environment="
			      "\"dev\",result=\"bad_response\"} 0");
	assert_has_line(text, "aws_cost_exporter_api_requests_total{"
			      "environment=\"dev\"} 2");
	assert_has_line(text, "aws_cost_exporter_build_info{environment="
			      "\"dev\",version=\"0.1.0\"} 1");
	assert_has_line(text, "# TYPE aws_cost_exporter_refresh_total "
			      "counter");
	assert_has_line(text, "# TYPE aws_cost_daily_usd gauge");
	free(text);
}

static void
test_figures(void **state)
{
	struct cost_service services[2] = {
	    {.name = (char *)"Amazon EC2",
	     .yesterday = 1010000000,
	     .today = 250000001,
	     .month_to_date = 12345678901},
	    {.name = (char *)"we\"ird\\name\nx",
	     .yesterday = -20000000,
	     .today = 0,
	     .month_to_date = 1},
	};
	struct cost_totals t = {.services = services,
				.nservices = 2,
				.month_to_date = 12345678902,
				.seven_days = 10000000000};
	struct exposition e = {.environment = "prod",
			       .version = "0.1.0",
			       .totals = &t,
			       .have_forecast = true,
			       .forecast_month = 40000000000,
			       .last_success = 1710072000};
	char *text;

	/* 2024-03-10: a window of Mar 1 .. Mar 10, every day there */
	cost_window_init(&t.window, 19792);
	t.days_seen = (1ull << (t.window.end - t.window.start)) - 1;
	e.refreshes[AWS_OK] = 3;
	text = render(&e);
	assert_families_sorted(text);
	assert_has_line(text, "aws_cost_daily_usd{environment=\"prod\","
			      "service=\"Amazon EC2\",day=\"yesterday\"} 1.01");
	assert_has_line(text, "aws_cost_daily_usd{environment=\"prod\","
			      "service=\"Amazon EC2\",day=\"today\"} "
			      "0.250000001");
	assert_has_line(text, "aws_cost_daily_usd{environment=\"prod\","
			      "service=\"we\\\"ird\\\\name\\nx\",day="
			      "\"yesterday\"} -0.02");
	assert_has_line(text, "aws_cost_daily_usd{environment=\"prod\","
			      "service=\"we\\\"ird\\\\name\\nx\",day="
			      "\"today\"} 0");
	assert_has_line(text, "aws_cost_month_to_date_by_service_usd{"
			      "environment=\"prod\",service=\"Amazon EC2\"} "
			      "12.345678901");
	assert_has_line(text, "aws_cost_month_to_date_usd{environment="
			      "\"prod\"} 12.345678902");
	assert_has_line(text, "aws_cost_forecast_month_usd{environment="
			      "\"prod\"} 40");
	assert_has_line(text, "aws_cost_seven_day_average_daily_usd{"
			      "environment=\"prod\"} 1.428571428571");
	assert_has_line(text, "aws_cost_exporter_last_success_timestamp_"
			      "seconds{environment=\"prod\"} 1710072000");
	assert_has_line(text, "aws_cost_exporter_refresh_total{environment="
			      "\"prod\",result=\"ok\"} 3");
	free(text);
	/* A forecast that Cost Explorer could not make stays absent. */
	e.have_forecast = false;
	text = render(&e);
	assert_null(strstr(text, "aws_cost_forecast_month_usd{"));
	assert_has_line(text, "# TYPE aws_cost_forecast_month_usd gauge");
	assert_has_line(text, "aws_cost_exporter_missing_dates{environment="
			      "\"prod\"} 0");
	free(text);
	/* Yesterday (Mar 9) and Mar 5 missing: no yesterday samples, the
	 * 7-day average over the 5 of Mar 3 .. Mar 9 there, the gaps
	 * counted. */
	t.days_seen &= ~(1ull << 8 | 1ull << 4);
	text = render(&e);
	assert_null(strstr(text, "day=\"yesterday\""));
	assert_has_line(text, "aws_cost_daily_usd{environment=\"prod\","
			      "service=\"Amazon EC2\",day=\"today\"} "
			      "0.250000001");
	assert_has_line(text, "aws_cost_seven_day_average_daily_usd{"
			      "environment=\"prod\"} 2");
	assert_has_line(text, "aws_cost_exporter_missing_dates{environment="
			      "\"prod\"} 2");
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_before_first_success),
	    cmocka_unit_test(test_figures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
