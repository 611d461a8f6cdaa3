/*
 * fuzz_cost.c - libFuzzer target for the cost exporter's Cost Explorer
 * parser (cost-exporter/src/cost.c). Every input is added as a
 * GetCostAndUsage page to two windows (mid-month, and early in the month
 * where the 7 days reach into the last one), parsed as a GetCostForecast
 * answer, as an amount and as a day. What cost.h promises is checked,
 * abort() if not: a page is refused with a reason and no token, or its
 * services are sorted, unique and well-named and their figures add up to
 * the totals, and every day of the window is either seen or listed as
 * missing; an amount prints and parses back to itself; a day formats
 * back to its text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "fuzz.h"

static void
check_page(const char *buf, size_t size, int32_t today)
{
	struct cost_window w;
	struct cost_totals t;
	__int128 mtd = 0;
	char why[200], *token = (char *)"unset", list[400];
	unsigned missing;
	size_t i;

	cost_window_init(&w, today);
	cost_totals_init(&t, &w);
	memset(why, 'Z', sizeof(why));
	if (cost_totals_add_page(&t, buf, size, &token, why, sizeof(why)) ==
	    -1) {
		CHECK(token == NULL);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
		cost_totals_free(&t);
		return;
	}
	CHECK(token == NULL ||
	      (token[0] != '\0' && strlen(token) <= COST_TOKEN_MAX));
	free(token);
	CHECK(t.pages == 1);
	CHECK(t.nservices <= COST_SERVICES_MAX);
	CHECK((t.days_seen >> (w.end - w.start)) == 0);
	for (i = 0; i < t.nservices; i++) {
		const struct cost_service *s = &t.services[i];

		CHECK(s->name[0] != '\0' &&
		      strlen(s->name) <= COST_SERVICE_NAME_MAX);
		CHECK(i == 0 || strcmp(t.services[i - 1].name, s->name) < 0);
		CHECK(cost_totals_find(&t, s->name) == s);
		mtd += s->month_to_date;
	}
	CHECK(mtd == t.month_to_date);
	missing = cost_totals_missing(&t, list, sizeof(list));
	CHECK(missing + (unsigned)__builtin_popcountll(t.days_seen) ==
	      (unsigned)(w.end - w.start));
	CHECK(strlen(list) == (missing == 0 ? 0 : 12 * missing - 2));
	CHECK(cost_totals_seven_days_seen(&t) <= 7);
	cost_totals_free(&t);
	CHECK(t.nservices == 0 && t.services == NULL);
}

static void
check_amount(const char *buf, size_t size)
{
	char s[COST_AMOUNT_MAX + 1], out[48];
	int64_t v, back;

	if (size > COST_AMOUNT_MAX)
		return;
	memcpy(s, buf, size);
	s[size] = '\0';
	if (cost_amount_parse(s, &v) == -1)
		return;
	CHECK(v > -1000000000000000000 && v < 1000000000000000000);
	CHECK(cost_amount_format(out, sizeof(out), v, 1) < (int)sizeof(out));
	CHECK(cost_amount_parse(out, &back) == 0 && back == v);
	CHECK(cost_amount_format(out, sizeof(out), v, 7) < (int)sizeof(out));
}

static void
check_day(const char *buf, size_t size)
{
	char s[COST_DAY_LEN], out[COST_DAY_LEN];
	int32_t d;

	if (size != COST_DAY_LEN - 1)
		return;
	memcpy(s, buf, size);
	s[size] = '\0';
	if (cost_day_parse(s, &d) == -1)
		return;
	cost_day_format(d, out);
	CHECK(strcmp(out, s) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	char why[200];
	int64_t v;

	check_page(buf, size, 19792); /* 2024-03-10 */
	check_page(buf, size, 19785); /* 2024-03-03 */
	if (cost_forecast_parse(buf, size, &v, why, sizeof(why)) == 0)
		CHECK(v > -1000000000000000000 && v < 1000000000000000000);
	check_amount(buf, size);
	check_day(buf, size);
	return 0;
}
