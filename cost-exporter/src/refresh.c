/*
 * refresh.c - Cost Explorer refreshes on the loop (see refresh.h).
 *
 * One refresh: GetCostAndUsage page after page into r_pending, then
 * GetCostForecast (none on the last day of the month), then publish:
 * r_pending becomes r_good. Any failure drops r_pending and nothing that
 * was published changes. One refresh at a time; every request costs
 * USD 0.01, so nothing is retried faster than retry_min.
 */
#include "refresh.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws.h"
#include "cost.h"
#include "exposition.h"
#include "log.h"

#define CE "ce"
#define CE_USAGE "AWSInsightsIndexService.GetCostAndUsage"
#define CE_FORECAST "AWSInsightsIndexService.GetCostForecast"
#define PAGES_MAX 100 /* a window is at most 31 days */

struct refresh {
	struct aws *r_aws;
	struct event *r_timer;
	uint64_t r_interval_ms, r_retry_min_ms, r_backoff_ms;

	bool r_running;
	struct cost_totals r_pending; /* the refresh under way */

	struct cost_totals r_good; /* published */
	bool r_have_good;
	bool r_have_forecast;
	int64_t r_forecast_month;    /* nano-dollars, whole month */
	int32_t r_forecast_for;	     /* month_first it was made for */
	bool r_forecast_unavailable; /* logged as unavailable */
	double r_last_success;

	int r_failing; /* the status last logged as failing; -1: none */
	uint64_t r_results[EXPOSITION_RESULTS];
	uint64_t r_api_requests;
};

static void
schedule(struct refresh *r, uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->r_timer, &tv);
}

/* Ends the refresh under way without publishing anything. */
static void
failed(struct refresh *r, enum aws_status st, const char *reason)
{
	char when[64] = "";
	time_t t = (time_t)r->r_last_success;
	struct tm tm;

	r->r_running = false;
	cost_totals_free(&r->r_pending);
	r->r_results[st]++;
	r->r_backoff_ms =
	    r->r_backoff_ms == 0 ? r->r_retry_min_ms : r->r_backoff_ms * 2;
	if (r->r_backoff_ms > r->r_interval_ms)
		r->r_backoff_ms = r->r_interval_ms;
	if (r->r_failing != (int)st) {
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when),
			     "keeping the figures of %Y-%m-%dT%H:%M:%SZ",
			     &tm) == 0)
			snprintf(when, sizeof(when),
				 "keeping the last figures");
		log_error(
		    "cost refresh failed (%s): %s; %s, retrying in %llu s",
		    aws_status_name(st), reason,
		    r->r_have_good ? when : "no figures yet",
		    (unsigned long long)(r->r_backoff_ms / 1000));
		r->r_failing = (int)st;
	}
	schedule(r, r->r_backoff_ms);
}

/* Publishes r_pending, with the forecast of the rest of the month when
 * have_rest (else the last one, if it is for this month). */
static void
publish(struct refresh *r, bool have_rest, int64_t rest)
{
	const struct cost_window *w = &r->r_pending.window;
	char mtd[48], missing[32 * (COST_DAY_LEN + 2) + 8];
	unsigned nmissing;

	if (have_rest || !cost_window_has_forecast(w)) {
		r->r_have_forecast = true;
		r->r_forecast_month = r->r_pending.month_to_date + rest;
		r->r_forecast_for = w->month_first;
	} else if (r->r_have_forecast && r->r_forecast_for != w->month_first) {
		r->r_have_forecast = false; /* last month's: no longer true */
	}
	cost_totals_free(&r->r_good);
	r->r_good = r->r_pending;
	memset(&r->r_pending, 0, sizeof(r->r_pending));
	r->r_running = false;
	r->r_last_success = (double)time(NULL);
	r->r_results[AWS_OK]++;
	r->r_backoff_ms = 0;
	cost_amount_format(mtd, sizeof(mtd), r->r_good.month_to_date, 1);
	if (r->r_failing != -1 || !r->r_have_good)
		log_info("cost refresh %s: %zu service(s), %u page(s), month "
			 "to date USD %s",
			 r->r_have_good ? "recovered" : "done",
			 r->r_good.nservices, r->r_good.pages, mtd);
	/* One line per refresh for every day missing, however many. */
	nmissing = cost_totals_missing(&r->r_good, missing, sizeof(missing));
	if (nmissing > 0)
		log_warn("cost refresh: Cost Explorer returned no figures for "
			 "%u of the window's %d day(s): %s; exporting the "
			 "others, without these",
			 nmissing,
			 (int)(r->r_good.window.end - r->r_good.window.start),
			 missing);
	r->r_have_good = true;
	r->r_failing = -1;
	schedule(r, r->r_interval_ms);
}

/* Counts a request that reached (or tried to reach) Cost Explorer. */
static void
count_request(struct refresh *r, const struct aws_result *res)
{
	if (res->http_status != 0 || res->status == AWS_NETWORK)
		r->r_api_requests++;
}

static void
reason_of(const struct aws_result *res, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", res->error,
		 res->message[0] != '\0' ? ": " : "", res->message);
}

static void
forecast_done(void *arg, const struct aws_result *res)
{
	struct refresh *r = arg;
	char why[300];
	int64_t rest;

	count_request(r, res);
	if (res->status != AWS_OK &&
	    strcmp(res->error, "DataUnavailableException") == 0) {
		/* A young account has no forecast yet: not a failure. */
		if (!r->r_forecast_unavailable)
			log_warn("cost forecast unavailable (%s); %s",
				 res->message,
				 r->r_have_forecast
				     ? "keeping the last one"
				     : "aws_cost_forecast_month_usd stays "
				       "absent");
		r->r_forecast_unavailable = true;
		publish(r, false, 0);
		return;
	}
	if (res->status != AWS_OK) {
		reason_of(res, why, sizeof(why));
		failed(r, res->status, why);
		return;
	}
	if (cost_forecast_parse(res->body, res->body_len, &rest, why,
				sizeof(why)) == -1) {
		failed(r, AWS_BAD_RESPONSE, why);
		return;
	}
	r->r_forecast_unavailable = false;
	publish(r, true, rest);
}

static void ask(struct refresh *r, const char *target, const char *token);

static void
page_done(void *arg, const struct aws_result *res)
{
	struct refresh *r = arg;
	char why[300], *token = NULL;

	count_request(r, res);
	if (res->status != AWS_OK) {
		reason_of(res, why, sizeof(why));
		failed(r, res->status, why);
		return;
	}
	if (cost_totals_add_page(&r->r_pending, res->body, res->body_len,
				 &token, why, sizeof(why)) == -1) {
		failed(r, AWS_BAD_RESPONSE, why);
		return;
	}
	if (token != NULL) {
		if (r->r_pending.pages >= PAGES_MAX) {
			free(token);
			failed(r, AWS_BAD_RESPONSE, "more than 100 pages");
			return;
		}
		ask(r, CE_USAGE, token);
		free(token);
		return;
	}
	if (r->r_pending.days_seen == 0) {
		/* Not one day: a broken answer, not a gap in Cost Explorer's
		 * data; the last good figures are worth more. */
		failed(r, AWS_BAD_RESPONSE, "no figures for any day");
		return;
	}
	if (!cost_window_has_forecast(&r->r_pending.window)) {
		publish(r, false, 0); /* the last day: the month is known */
		return;
	}
	ask(r, CE_FORECAST, NULL);
}

/* One Cost Explorer call of the refresh under way. */
static void
ask(struct refresh *r, const char *target, const char *token)
{
	bool usage = strcmp(target, CE_USAGE) == 0;
	char *body = usage ? cost_usage_request(&r->r_pending.window, token)
			   : cost_forecast_request(&r->r_pending.window);

	if (body == NULL ||
	    aws_call(r->r_aws, CE, target, body,
		     usage ? page_done : forecast_done, r) == -1) {
		free(body);
		failed(r, AWS_FAILED, "cannot start the request");
		return;
	}
	free(body);
}

static void
start(evutil_socket_t fd, short what, void *arg)
{
	struct refresh *r = arg;
	struct cost_window w;

	if (r->r_running)
		return;
	r->r_running = true;
	cost_window_init(&w, cost_day_of(time(NULL)));
	cost_totals_init(&r->r_pending, &w);
	ask(r, CE_USAGE, NULL);
}

void
refresh_now(struct refresh *r)
{
	if (r->r_running) {
		log_info("cost refresh already running");
		return;
	}
	evtimer_del(r->r_timer);
	start(-1, 0, r);
}

struct refresh *
refresh_new(struct event_base *base, struct aws *aws, uint64_t interval_ms,
	    uint64_t retry_min_ms)
{
	struct refresh *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->r_aws = aws;
	r->r_interval_ms = interval_ms;
	r->r_retry_min_ms = retry_min_ms;
	r->r_failing = -1;
	if ((r->r_timer = evtimer_new(base, start, r)) == NULL) {
		free(r);
		return NULL;
	}
	start(-1, 0, r);
	return r;
}

void
refresh_expose(const struct refresh *r, struct exposition *e)
{
	e->totals = r->r_have_good ? &r->r_good : NULL;
	e->have_forecast = r->r_have_forecast;
	e->forecast_month = r->r_forecast_month;
	e->last_success = r->r_last_success;
	memcpy(e->refreshes, r->r_results, sizeof(e->refreshes));
	e->api_requests = r->r_api_requests;
}

void
refresh_free(struct refresh *r)
{
	if (r == NULL)
		return;
	event_free(r->r_timer);
	cost_totals_free(&r->r_pending);
	cost_totals_free(&r->r_good);
	free(r);
}
