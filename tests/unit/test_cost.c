/*
 * test_cost.c - the cost exporter's pure part: calendar days, the window
 * a refresh asks about, the request bodies, amounts parsed and printed to
 * the nano-dollar, and GetCostAndUsage pages added up (or refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cost.h"

#define USD(x) ((int64_t)((x)*1000000000.0 + ((x) < 0 ? -0.5 : 0.5)))

static int32_t
day(const char *s)
{
	int32_t d;

	if (cost_day_parse(s, &d) == -1)
		fail_msg("not a day: %s", s);
	return d;
}

static void
test_days(void **state)
{
	char out[COST_DAY_LEN];
	int32_t d;
	static const char *const bad[] = {
	    "2023-02-29", "2024-02-30", "2024-13-01",  "2024-00-10",
	    "2024-1-01",  "2024-01-1",	"2024-01-01x", "2024/01/01",
	    "",		  "20240101",	"2024-04-31",  "+024-01-01"};
	size_t i;

	assert_int_equal(day("2024-03-10"), 19792);
	assert_int_equal(day("2024-02-29"), 19782);
	assert_int_equal(day("1970-01-01"), 0);
	assert_int_equal(day("1969-12-31"), -1);
	assert_int_equal(day("2000-03-01"), 11017);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cost_day_parse(bad[i], &d), -1);
	assert_int_equal(cost_day_parse(NULL, &d), -1);
	/* Every day of 60 years formats and parses back to itself. */
	for (d = day("1990-01-01"); d < day("2050-01-01"); d++) {
		int32_t back;

		cost_day_format(d, out);
		assert_int_equal(cost_day_parse(out, &back), 0);
		assert_int_equal(back, d);
	}
	/* Years 0000..9999 only, clamped beyond (and no int32_t overflow). */
	assert_int_equal(day("0000-01-01"), COST_DAY_MIN);
	assert_int_equal(day("9999-12-31"), COST_DAY_MAX);
	cost_day_format(INT32_MIN, out);
	assert_string_equal(out, "0000-01-01");
	cost_day_format(COST_DAY_MIN - 1, out);
	assert_string_equal(out, "0000-01-01");
	cost_day_format(INT32_MAX, out);
	assert_string_equal(out, "9999-12-31");
	cost_day_format(COST_DAY_MAX + 1, out);
	assert_string_equal(out, "9999-12-31");
	assert_int_equal(cost_day_of(0), 0);
	assert_int_equal(cost_day_of(86399), 0);
	assert_int_equal(cost_day_of(86400), 1);
	assert_int_equal(cost_day_of(-1), -1);
	assert_int_equal(cost_day_of(1710028800 + 43200), day("2024-03-10"));
	assert_int_equal(cost_month_first(day("2024-02-29")),
			 day("2024-02-01"));
	assert_int_equal(cost_month_next(day("2024-02-29")), day("2024-03-01"));
	assert_int_equal(cost_month_next(day("2024-12-31")), day("2025-01-01"));
	assert_int_equal(cost_month_first(day("2025-01-01")),
			 day("2025-01-01"));
}

static void
test_window(void **state)
{
	struct cost_window w;

	cost_window_init(&w, day("2024-03-10"));
	assert_int_equal(w.start, day("2024-03-01"));
	assert_int_equal(w.end, day("2024-03-11"));
	assert_int_equal(w.month_first, day("2024-03-01"));
	assert_int_equal(w.month_next, day("2024-04-01"));
	assert_true(cost_window_has_forecast(&w));
	/* Early in the month the 7 days reach into the last one. */
	cost_window_init(&w, day("2024-03-05"));
	assert_int_equal(w.start, day("2024-02-27"));
	cost_window_init(&w, day("2024-03-01"));
	assert_int_equal(w.start, day("2024-02-23"));
	assert_int_equal(w.month_first, day("2024-03-01"));
	cost_window_init(&w, day("2024-03-08"));
	assert_int_equal(w.start, day("2024-03-01"));
	/* The last day of a month: nothing to forecast. */
	cost_window_init(&w, day("2024-03-31"));
	assert_false(cost_window_has_forecast(&w));
	assert_int_equal(w.end - w.start, 31);
	cost_window_init(&w, day("2024-02-29"));
	assert_false(cost_window_has_forecast(&w));
	cost_window_init(&w, day("2023-02-28"));
	assert_false(cost_window_has_forecast(&w));
	cost_window_init(&w, day("2024-12-30"));
	assert_true(cost_window_has_forecast(&w));
	assert_int_equal(w.month_next, day("2025-01-01"));
}

static void
test_requests(void **state)
{
	struct cost_window w;
	char *s;

	cost_window_init(&w, day("2024-03-10"));
	s = cost_usage_request(&w, NULL);
	assert_string_equal(
	    s, "{\"TimePeriod\":{\"Start\":\"2024-03-01\",\"End\":"
	       "\"2024-03-11\"},\"Granularity\":\"DAILY\",\"Metrics\":["
	       "\"UnblendedCost\"],\"GroupBy\":[{\"Type\":\"DIMENSION\","
	       "\"Key\":\"SERVICE\"}]}");
	free(s);
	s = cost_usage_request(&w, "tok\"en");
	assert_non_null(strstr(s, ",\"NextPageToken\":\"tok\\\"en\"}"));
	free(s);
	s = cost_forecast_request(&w);
	assert_string_equal(s, "{\"TimePeriod\":{\"Start\":\"2024-03-11\","
			       "\"End\":\"2024-04-01\"},\"Metric\":"
			       "\"UNBLENDED_COST\",\"Granularity\":"
			       "\"MONTHLY\"}");
	free(s);
}

static void
test_amount_parse(void **state)
{
	static const struct {
		const char *s;
		int64_t nano;
	} good[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"1.23", 1230000000},
	    {"12", 12000000000},
	    {"0.000000001", 1},
	    {"0.0000000004", 0},
	    {"0.0000000005", 1},
	    {"0.00000000049999999", 0},
	    {"-0.0000000005", -1},
	    {"-2.5", -2500000000},
	    {"0.1234567894999999999999", 123456789},
	    {"0.1234567895", 123456790},
	    {"1.2E-7", 120},
	    {"1.5e-9", 2},
	    {"1e3", 1000000000000},
	    {"2.5E+2", 250000000000},
	    {"0e400", 0},
	    {"7e-400", 0},
	    {"000012.50", 12500000000},
	    {"999999999.999999999", 999999999999999999},
	};
	/* 68 bytes: refused for its length (COST_AMOUNT_MAX) alone */
	static const char too_long[] = "0."
				       "000000000000000000000000000000000000"
				       "000000000000000000000000000001";
	static const char *const bad[] = {
	    "",	      "-",	    "1.",
	    ".5",     "1e",	    "1e+",
	    "0x1",    " 1",	    "1 ",
	    "+1",     "NaN",	    "Infinity",
	    "1,5",    "1e401",	    "1.2.3",
	    "--1",    "1000000000", "999999999.9999999995",
	    too_long,
	};
	int64_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 42;
		if (cost_amount_parse(good[i].s, &v) != 0)
			fail_msg("refused %s", good[i].s);
		if (v != good[i].nano)
			fail_msg("%s: %lld, not %lld", good[i].s, (long long)v,
				 (long long)good[i].nano);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cost_amount_parse(bad[i], &v) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(cost_amount_parse(NULL, &v), -1);
}

static void
test_amount_format(void **state)
{
	static const struct {
		int64_t nano;
		uint32_t div;
		const char *s;
	} cases[] = {
	    {0, 1, "0"},
	    {1, 1, "0.000000001"},
	    {-1230000000, 1, "-1.23"},
	    {12000000000, 1, "12"},
	    {999999999999999999, 1, "999999999.999999999"},
	    {INT64_MIN + 1, 1, "-9223372036.854775807"},
	    {7, 7, "0.000000001"},
	    {10000000000, 7, "1.428571428571"},
	    {-7000000000, 7, "-1"},
	    {-1, 7, "-0.000000000142"},
	};
	char buf[48];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(cost_amount_format(buf, sizeof(buf),
						    cases[i].nano,
						    cases[i].div),
				 (int)strlen(cases[i].s));
		assert_string_equal(buf, cases[i].s);
	}
}

/* A one-day ResultsByTime entry: groups is "svc=amount;svc=amount". */
static void
entry(char *out, size_t len, const char *start, const char *end,
      const char *groups)
{
	char name[64], amount[64];
	const char *p = groups;
	size_t n;

	n = (size_t)snprintf(
	    out, len,
	    "{\"TimePeriod\":{\"Start\":\"%s\",\"End\":\"%s\"},"
	    "\"Total\":{},\"Groups\":[",
	    start, end);
	while (*p != '\0') {
		if (sscanf(p, "%63[^=]=%63[^;]", name, amount) != 2)
			fail_msg("not svc=amount: %s", p);
		n += (size_t)snprintf(
		    out + n, len - n,
		    "%s{\"Keys\":[\"%s\"],\"Metrics\":{\"UnblendedCost\":{"
		    "\"Amount\":\"%s\",\"Unit\":\"USD\"}}}",
		    p == groups ? "" : ",", name, amount);
		p += strcspn(p, ";");
		if (*p == ';')
			p++;
	}
	snprintf(out + n, len - n, "],\"Estimated\":false}");
}

/* Adds a page of entries (a NULL-ended list); returns add_page's code. */
static int
page(struct cost_totals *t, const char *token, char **next, char *why,
     size_t why_len, ...)
{
	char body[16384], e[4096];
	const char *start;
	size_t n;
	va_list ap;
	int rc;

	n = (size_t)snprintf(body, sizeof(body), "{\"ResultsByTime\":[");
	va_start(ap, why_len);
	while ((start = va_arg(ap, const char *)) != NULL) {
		const char *end = va_arg(ap, const char *);
		const char *groups = va_arg(ap, const char *);

		entry(e, sizeof(e), start, end, groups);
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s%s",
				      body[n - 1] == '[' ? "" : ",", e);
	}
	va_end(ap);
	if (token != NULL)
		snprintf(body + n, sizeof(body) - n,
			 "],\"NextPageToken\":\"%s\"}", token);
	else
		snprintf(body + n, sizeof(body) - n,
			 "],\"GroupDefinitions\":[{\"Type\":\"DIMENSION\","
			 "\"Key\":\"SERVICE\"}]}");
	*next = (char *)"unset";
	rc = cost_totals_add_page(t, body, strlen(body), next, why, why_len);
	return rc;
}

static void
test_pages_add_up(void **state)
{
	struct cost_window w;
	struct cost_totals t;
	const struct cost_service *s;
	char why[200], *next;

	/* The 3rd: 7 days reach back to Feb 25th, the month to Mar 1st. */
	cost_window_init(&w, day("2024-03-03"));
	cost_totals_init(&t, &w);
	assert_int_equal(page(&t, "p2", &next, why, sizeof(why), "2024-02-25",
			      "2024-02-26", "Amazon EC2=2.000000001;Tax=0.1",
			      "2024-02-26", "2024-02-27", "", "2024-02-27",
			      "2024-02-28", "Amazon S3=0.0000000004",
			      (const char *)NULL),
			 0);
	assert_string_equal(next, "p2");
	free(next);
	assert_int_equal(cost_totals_missing(&t, why, sizeof(why)), 5);
	assert_string_equal(why, "2024-02-28, 2024-02-29, 2024-03-01, "
				 "2024-03-02, 2024-03-03");
	assert_int_equal(
	    page(&t, NULL, &next, why, sizeof(why), "2024-02-28", "2024-02-29",
		 "Amazon S3=0.0000000004", "2024-02-29", "2024-03-01",
		 "Amazon EC2=3;Amazon S3=0.5", "2024-03-01", "2024-03-02",
		 "Amazon EC2=4.25;AWS Secrets Manager=0.4", "2024-03-02",
		 "2024-03-03", "Amazon EC2=5.5;Amazon EC2=0.5;Amazon S3=-0.25",
		 "2024-03-03", "2024-03-04", "Amazon EC2=0.75",
		 (const char *)NULL),
	    0);
	assert_null(next);
	assert_int_equal(cost_totals_missing(&t, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(cost_totals_seven_days_seen(&t), 7);
	assert_int_equal(t.pages, 2);
	/* Sorted by name, Tax included (it was in the window). */
	assert_int_equal(t.nservices, 4);
	assert_string_equal(t.services[0].name, "AWS Secrets Manager");
	assert_string_equal(t.services[1].name, "Amazon EC2");
	assert_string_equal(t.services[2].name, "Amazon S3");
	assert_string_equal(t.services[3].name, "Tax");
	s = cost_totals_find(&t, "Amazon EC2");
	assert_non_null(s);
	assert_int_equal(s->today, USD(0.75));
	assert_int_equal(s->yesterday, USD(6.0));
	assert_int_equal(s->month_to_date, USD(4.25 + 6.0 + 0.75));
	s = cost_totals_find(&t, "Amazon S3");
	assert_int_equal(s->yesterday, -USD(0.25));
	assert_int_equal(s->today, 0);
	assert_int_equal(s->month_to_date, -USD(0.25));
	assert_null(cost_totals_find(&t, "Amazon EC3"));
	assert_int_equal(cost_totals_find(&t, "Tax")->month_to_date, 0);
	assert_int_equal(t.month_to_date, USD(4.25 + 0.4 + 6.0 - 0.25 + 0.75));
	/* Feb 25 .. Mar 2: 2.100000001 + 0 + 0 + 0 + 3.5 + 4.65 + 5.75;
	 * the two 0.4 nano-dollars of S3 round to 0 each. */
	assert_int_equal(t.seven_days, USD(16.0) + 1);
	cost_totals_free(&t);
	assert_int_equal(t.nservices, 0);
	assert_null(t.services);
}

/* Days the answer leaves out are counted, named and left out of every
 * figure; the days that are there still add up. */
static void
test_missing_days(void **state)
{
	struct cost_window w;
	struct cost_totals t;
	const struct cost_service *s;
	char why[200], list[100], *next;

	/* The 3rd: Feb 25 .. Mar 3. No Feb 27 (last month, in the 7 days)
	 * and no Mar 2 (yesterday). */
	cost_window_init(&w, day("2024-03-03"));
	cost_totals_init(&t, &w);
	assert_int_equal(
	    page(&t, NULL, &next, why, sizeof(why), "2024-02-25", "2024-02-26",
		 "Amazon EC2=1", "2024-02-26", "2024-02-27", "Amazon EC2=2",
		 "2024-02-28", "2024-02-29", "Amazon EC2=4", "2024-02-29",
		 "2024-03-01", "Amazon EC2=8", "2024-03-01", "2024-03-02",
		 "Amazon EC2=16;Amazon S3=0.5", "2024-03-03", "2024-03-04",
		 "Amazon EC2=64", (const char *)NULL),
	    0);
	assert_null(next);
	assert_int_equal(cost_totals_missing(&t, list, sizeof(list)), 2);
	assert_string_equal(list, "2024-02-27, 2024-03-02");
	assert_int_equal(cost_totals_missing(&t, NULL, 0), 2);
	assert_false(cost_totals_has_day(&t, day("2024-02-27")));
	assert_false(cost_totals_has_day(&t, day("2024-03-02")));
	assert_true(cost_totals_has_day(&t, day("2024-03-03")));
	assert_false(cost_totals_has_day(&t, day("2024-02-24")));
	assert_false(cost_totals_has_day(&t, day("2024-03-04")));
	/* 6 of the 7 days before today, summed without the missing one */
	assert_int_equal(cost_totals_seven_days_seen(&t), 5);
	assert_int_equal(t.seven_days, USD(1 + 2 + 4 + 8 + 16 + 0.5));
	/* the month: Mar 1 and Mar 3 only */
	assert_int_equal(t.month_to_date, USD(16 + 0.5 + 64));
	s = cost_totals_find(&t, "Amazon EC2");
	assert_non_null(s);
	assert_int_equal(s->today, USD(64));
	assert_int_equal(s->yesterday, 0);
	/* a list too short is cut with ", ..." and the count stays right */
	assert_int_equal(cost_totals_missing(&t, list, 25), 2);
	assert_string_equal(list, "2024-02-27, ...");
	cost_totals_free(&t);

	/* a page with no day at all: every day is missing */
	cost_totals_init(&t, &w);
	assert_int_equal(
	    page(&t, NULL, &next, why, sizeof(why), (const char *)NULL), 0);
	assert_int_equal(cost_totals_missing(&t, list, sizeof(list)), 8);
	assert_int_equal(cost_totals_seven_days_seen(&t), 0);
	assert_int_equal(t.days_seen, 0);
	cost_totals_free(&t);
}

/* Each page is refused with the reason given. */
static void
test_pages_refused(void **state)
{
	static const struct {
		const char *body, *why;
	} cases[] = {
	    {"", "not a JSON object"},
	    {"[]", "not a JSON object"},
	    {"{}", "no ResultsByTime"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-01\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[]}]}",
	     "a TimePeriod that is not one day"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-11\","
	     "\"End\":\"2024-03-12\"},\"Groups\":[]}]}",
	     "2024-03-11: outside the period asked for"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[]},{\"TimePeriod\":{"
	     "\"Start\":\"2024-03-02\",\"End\":\"2024-03-03\"},\"Groups\":[]}"
	     "]}",
	     "2024-03-02: twice"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Total\":{}}]}",
	     "2024-03-02: no Groups"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[],\"Metrics\":{"
	     "}}]}]}",
	     "2024-03-02: a group without Keys"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"BlendedCost\":{\"Amount\":\"1\",\"Unit\":"
	     "\"USD\"}}}]}]}",
	     "2024-03-02: S3: no UnblendedCost"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1,5\",\"Unit\":"
	     "\"USD\"}}}]}]}",
	     "2024-03-02: S3: an invalid Amount"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":1.5,\"Unit\":"
	     "\"USD\"}}}]}]}",
	     "2024-03-02: S3: no Amount"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1.5\",\"Unit\":"
	     "\"EUR\"}}}]}]}",
	     "2024-03-02: S3: a Unit other than USD"},
	    {"{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2024-03-02\","
	     "\"End\":\"2024-03-03\"},\"Groups\":[{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"999999999\","
	     "\"Unit\":\"USD\"}}},{\"Keys\":[\"S3\"],\"Metrics\":{"
	     "\"UnblendedCost\":{\"Amount\":\"999999999\",\"Unit\":\"USD\"}"
	     "}},{\"Keys\":[\"S3\"],\"Metrics\":{\"UnblendedCost\":{"
	     "\"Amount\":\"999999999\",\"Unit\":\"USD\"}}},{\"Keys\":["
	     "\"S3\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":"
	     "\"999999999\",\"Unit\":\"USD\"}}},{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"999999999\","
	     "\"Unit\":\"USD\"}}},{\"Keys\":[\"S3\"],\"Metrics\":{"
	     "\"UnblendedCost\":{\"Amount\":\"999999999\",\"Unit\":\"USD\"}"
	     "}},{\"Keys\":[\"S3\"],\"Metrics\":{\"UnblendedCost\":{"
	     "\"Amount\":\"999999999\",\"Unit\":\"USD\"}}},{\"Keys\":["
	     "\"S3\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":"
	     "\"999999999\",\"Unit\":\"USD\"}}},{\"Keys\":[\"S3\"],"
	     "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"999999999\","
	     "\"Unit\":\"USD\"}}},{\"Keys\":[\"S3\"],\"Metrics\":{"
	     "\"UnblendedCost\":{\"Amount\":\"999999999\",\"Unit\":\"USD\"}"
	     "}}]}]}",
	     "2024-03-02: S3: a sum out of range"},
	    {"{\"ResultsByTime\":[],\"NextPageToken\":7}",
	     "an invalid NextPageToken"},
	};
	static const char last[] =
	    "{\"ResultsByTime\":[],\"NextPageToken\":\"\"}";
	struct cost_window w;
	struct cost_totals t;
	char why[200], *next;
	size_t i;

	cost_window_init(&w, day("2024-03-10"));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cost_totals_init(&t, &w);
		next = (char *)"unset";
		strcpy(why, "unset");
		if (cost_totals_add_page(&t, cases[i].body,
					 strlen(cases[i].body), &next, why,
					 sizeof(why)) != -1)
			fail_msg("accepted case %zu", i);
		assert_null(next);
		assert_string_equal(why, cases[i].why);
		cost_totals_free(&t);
	}
	/* An empty token or null means the last page. */
	cost_totals_init(&t, &w);
	assert_int_equal(cost_totals_add_page(&t, last, strlen(last), &next,
					      why, sizeof(why)),
			 0);
	assert_null(next);
	cost_totals_free(&t);
}

static void
test_forecast(void **state)
{
	static const char ok[] =
	    "{\"Total\":{\"Amount\":\"412.5012345678\",\"Unit\":\"USD\"},"
	    "\"ForecastResultsByTime\":[]}";
	int64_t v = 0;
	char why[100];

	assert_int_equal(
	    cost_forecast_parse(ok, strlen(ok), &v, why, sizeof(why)), 0);
	assert_int_equal(v, 412501234568);
	assert_int_equal(cost_forecast_parse("{}", 2, &v, why, sizeof(why)),
			 -1);
	assert_string_equal(why, "no Total");
	assert_int_equal(cost_forecast_parse("{\"Total\":{\"Amount\":\"x\"}}",
					     26, &v, why, sizeof(why)),
			 -1);
	assert_string_equal(why, "Total: an invalid Amount");
	assert_int_equal(cost_forecast_parse("nope", 4, &v, why, sizeof(why)),
			 -1);
	assert_string_equal(why, "not a JSON object");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_days),
	    cmocka_unit_test(test_window),
	    cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_amount_parse),
	    cmocka_unit_test(test_amount_format),
	    cmocka_unit_test(test_pages_add_up),
	    cmocka_unit_test(test_missing_days),
	    cmocka_unit_test(test_pages_refused),
	    cmocka_unit_test(test_forecast),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
