/*
 * cost.h - Cost Explorer answers in, cost figures out. Pure: no I/O, no
 * clock (the caller says which day is today), no globals; fuzzed by
 * gateway/fuzz/fuzz_cost.c.
 *
 * Money is integer nano-dollars (int64_t, 1 USD = 1000000000): Cost
 * Explorer's decimal strings are rounded once each to the nano-dollar and
 * summed exactly, so even 100000 tiny amounts add up to the cent. Days are
 * counted from 1970-01-01 in the Gregorian calendar (UTC, as Cost Explorer
 * dates are).
 */
#ifndef PORTCULLIS_COST_H
#define PORTCULLIS_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define COST_DAY_LEN 11		  /* "YYYY-MM-DD" and its NUL */
#define COST_SERVICES_MAX 2000	  /* more in one answer: a bad response */
#define COST_SERVICE_NAME_MAX 256 /* bytes; longer: a bad response */
#define COST_TOKEN_MAX 8192	  /* bytes of a NextPageToken */
#define COST_AMOUNT_MAX 64	  /* bytes of one amount string */

/* The UTC day that holds t. */
int32_t cost_day_of(time_t t);

/* "YYYY-MM-DD" (exactly, a real date) into *day: 0, or -1. */
int cost_day_parse(const char *s, int32_t *day);

#define COST_DAY_MIN (-719528) /* 0000-01-01 */
#define COST_DAY_MAX 2932896   /* 9999-12-31 */

/* The day as "YYYY-MM-DD" into out[COST_DAY_LEN]; a day outside
 * COST_DAY_MIN..COST_DAY_MAX as the nearer of the two. */
void cost_day_format(int32_t day, char *out);

/* The first day of the month that holds `day`, and of the month after. */
int32_t cost_month_first(int32_t day);
int32_t cost_month_next(int32_t day);

/* The days one refresh asks about, all derived from today (UTC). */
struct cost_window {
	int32_t today;
	int32_t start;	     /* min(first of the month, today - 7) */
	int32_t end;	     /* tomorrow: Cost Explorer's End is exclusive */
	int32_t month_first; /* first of this month */
	int32_t month_next;  /* first of next month: the forecast's End */
};

void cost_window_init(struct cost_window *w, int32_t today);

/* False on the last day of the month: nothing is left to forecast
 * (tomorrow .. first of next month would be empty). */
bool cost_window_has_forecast(const struct cost_window *w);

/* GetCostAndUsage's JSON body (DAILY, UnblendedCost, grouped by SERVICE,
 * start .. end), with NextPageToken when `token` is not NULL; and
 * GetCostForecast's (UNBLENDED_COST, MONTHLY, tomorrow .. month_next).
 * Malloc'd, the caller frees; NULL without memory. */
char *cost_usage_request(const struct cost_window *w, const char *token);
char *cost_forecast_request(const struct cost_window *w);

/* One service's figures; nano-dollars. */
struct cost_service {
	char *name;
	int64_t yesterday;
	int64_t today; /* so far: Cost Explorer's estimate */
	int64_t month_to_date;
};

/* What one refresh adds up, page by page. */
struct cost_totals {
	struct cost_window window;
	struct cost_service *services; /* sorted by name (strcmp), unique */
	size_t nservices, cap;
	int64_t month_to_date; /* first of the month .. today, inclusive */
	int64_t seven_days;    /* today - 7 .. today - 1: whole days seen */
	uint64_t days_seen;    /* bit (day - window.start) */
	unsigned pages;
};

/* Empty totals for window w. */
void cost_totals_init(struct cost_totals *t, const struct cost_window *w);

/*
 * Adds one GetCostAndUsage answer page (json[0..len)) to t. A page need
 * not hold every day: days no page holds are counted by
 * cost_totals_missing() and left out of every figure. On 0, *token
 * is the malloc'd NextPageToken (the caller frees it) or NULL on the last
 * page. On -1 the page is not what was asked for (not JSON, a period
 * outside the window or seen before, not one day long, a missing or
 * invalid amount, a unit other than USD, an amount out of range...): the
 * reason is in why[why_len], *token is NULL, and t holds part of the
 * page: drop it (cost_totals_free).
 */
int cost_totals_add_page(struct cost_totals *t, const char *json, size_t len,
			 char **token, char *why, size_t why_len);

/* True when an answer page held `day` (a day of the window). */
bool cost_totals_has_day(const struct cost_totals *t, int32_t day);

/*
 * After the last page: how many days of the window no page held (0 .. the
 * window's length). Their dates go into list[list_len] as "YYYY-MM-DD,
 * YYYY-MM-DD", cut short with ", ..." if they do not fit ("" when none);
 * list may be NULL when list_len is 0. The figures leave those days out:
 * a missing day is unknown, not free.
 */
unsigned cost_totals_missing(const struct cost_totals *t, char *list,
			     size_t list_len);

/* How many of the 7 whole days before today came back: the divisor of the
 * 7-day average (0: there is none). */
unsigned cost_totals_seven_days_seen(const struct cost_totals *t);

/* The service called `name`, or NULL. */
const struct cost_service *cost_totals_find(const struct cost_totals *t,
					    const char *name);

/* Frees what t holds and empties it (its window stays). */
void cost_totals_free(struct cost_totals *t);

/* A GetCostForecast answer's Total.Amount into *nano: 0, or -1 with the
 * reason in why. */
int cost_forecast_parse(const char *json, size_t len, int64_t *nano, char *why,
			size_t why_len);

/*
 * A Cost Explorer amount: an optional "-", digits, an optional fraction
 * and exponent ("12.5", "0.0000012", "1.2E-7"), rounded half away from zero
 * to the nano-dollar. 0, or -1 if it is not one or |amount| >= 1e9 USD.
 */
int cost_amount_parse(const char *s, int64_t *nano);

/* nano / divisor nano-dollars as a plain decimal ("12.5", "-0.000000001",
 * "3"), exact up to 12 fractional digits, into buf; returns its length
 * (snprintf's contract). divisor >= 1. */
int cost_amount_format(char *buf, size_t len, int64_t nano, uint32_t divisor);

#endif
