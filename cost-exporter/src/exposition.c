/*
 * exposition.c - the /metrics page (see exposition.h). Families are
 * written in name order; within one, samples follow the services' order
 * (sorted by name).
 */
#include "exposition.h"

#include <event2/buffer.h>
#include <stdio.h>

#include "metrics.h"

static void
family(struct evbuffer *out, const char *name, const char *type,
       const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

/* `name{environment="..."` without the closing brace. */
static void
sample_start(struct evbuffer *out, const struct exposition *e, const char *name)
{
	evbuffer_add_printf(out, "%s{environment=\"", name);
	metrics_label_value(out, e->environment);
	evbuffer_add(out, "\"", 1);
}

static void
usd(struct evbuffer *out, int64_t nano, uint32_t divisor)
{
	char v[48];

	cost_amount_format(v, sizeof(v), nano, divisor);
	evbuffer_add_printf(out, "} %s\n", v);
}

static void
daily(struct evbuffer *out, const struct exposition *e)
{
	const struct cost_service *s;
	bool today, yesterday;
	size_t i;

	family(out, "aws_cost_daily_usd", "gauge",
	       "Unblended cost of one service on one UTC day as of the last "
	       "successful refresh: yesterday, and today so far (an "
	       "estimate); absent for a day Cost Explorer did not return.");
	if (e->totals == NULL)
		return;
	/* A day Cost Explorer left out has no samples: unknown, not 0. */
	today = cost_totals_has_day(e->totals, e->totals->window.today);
	yesterday = cost_totals_has_day(e->totals, e->totals->window.today - 1);
	for (i = 0; i < e->totals->nservices; i++) {
		s = &e->totals->services[i];
		if (today) {
			sample_start(out, e, "aws_cost_daily_usd");
			evbuffer_add(out, ",service=\"", 10);
			metrics_label_value(out, s->name);
			evbuffer_add(out, "\",day=\"today\"", 13);
			usd(out, s->today, 1);
		}
		if (yesterday) {
			sample_start(out, e, "aws_cost_daily_usd");
			evbuffer_add(out, ",service=\"", 10);
			metrics_label_value(out, s->name);
			evbuffer_add(out, "\",day=\"yesterday\"", 17);
			usd(out, s->yesterday, 1);
		}
	}
}

static void
exporter(struct evbuffer *out, const struct exposition *e)
{
	int r;

	family(out, "aws_cost_exporter_api_requests_total", "counter",
	       "Cost Explorer requests sent (every page, failures too); each "
	       "costs USD 0.01.");
	sample_start(out, e, "aws_cost_exporter_api_requests_total");
	evbuffer_add_printf(out, "} %llu\n",
			    (unsigned long long)e->api_requests);
	family(out, "aws_cost_exporter_build_info", "gauge",
	       "Always 1; the version of the cost exporter.");
	sample_start(out, e, "aws_cost_exporter_build_info");
	evbuffer_add(out, ",version=\"", 10);
	metrics_label_value(out, e->version);
	evbuffer_add(out, "\"} 1\n", 5);
	family(out, "aws_cost_exporter_last_success_timestamp_seconds", "gauge",
	       "When the figures were last refreshed (unix time; 0: never).");
	sample_start(out, e,
		     "aws_cost_exporter_last_success_timestamp_seconds");
	evbuffer_add_printf(out, "} %.0f\n", e->last_success);
	family(out, "aws_cost_exporter_missing_dates", "gauge",
	       "Days of the last successful refresh's window (from the first "
	       "of the month, or 7 days back if earlier, to today) that Cost "
	       "Explorer returned no figures for; every aws_cost_* figure "
	       "leaves them out.");
	if (e->totals != NULL) {
		sample_start(out, e, "aws_cost_exporter_missing_dates");
		evbuffer_add_printf(out, "} %u\n",
				    cost_totals_missing(e->totals, NULL, 0));
	}
	family(out, "aws_cost_exporter_refresh_total", "counter",
	       "Refreshes from Cost Explorer, by result (ok, or why one "
	       "failed).");
	for (r = 0; r < EXPOSITION_RESULTS; r++) {
		sample_start(out, e, "aws_cost_exporter_refresh_total");
		evbuffer_add_printf(out, ",result=\"%s\"} %llu\n",
				    aws_status_name((enum aws_status)r),
				    (unsigned long long)e->refreshes[r]);
	}
}

void
exposition_render(struct evbuffer *out, const struct exposition *e)
{
	const struct cost_totals *t = e->totals;
	unsigned seen;
	size_t i;

	daily(out, e);
	exporter(out, e);
	family(out, "aws_cost_forecast_month_usd", "gauge",
	       "Whole-month forecast: month to date plus Cost Explorer's "
	       "forecast for tomorrow to the end of the month.");
	if (t != NULL && e->have_forecast) {
		sample_start(out, e, "aws_cost_forecast_month_usd");
		usd(out, e->forecast_month, 1);
	}
	family(out, "aws_cost_month_to_date_by_service_usd", "gauge",
	       "Unblended cost of one service from the first of the month "
	       "(UTC) to today, today's estimate included; days Cost "
	       "Explorer did not return are left out.");
	for (i = 0; t != NULL && i < t->nservices; i++) {
		sample_start(out, e, "aws_cost_month_to_date_by_service_usd");
		evbuffer_add(out, ",service=\"", 10);
		metrics_label_value(out, t->services[i].name);
		evbuffer_add(out, "\"", 1);
		usd(out, t->services[i].month_to_date, 1);
	}
	family(out, "aws_cost_month_to_date_usd", "gauge",
	       "Unblended cost of every service from the first of the month "
	       "(UTC) to today, today's estimate included; days Cost "
	       "Explorer did not return are left out (see "
	       "aws_cost_exporter_missing_dates).");
	if (t != NULL) {
		sample_start(out, e, "aws_cost_month_to_date_usd");
		usd(out, t->month_to_date, 1);
	}
	family(out, "aws_cost_seven_day_average_daily_usd", "gauge",
	       "Average daily unblended cost of every service over the 7 "
	       "whole UTC days before today, of those Cost Explorer "
	       "returned (see aws_cost_exporter_missing_dates).");
	if (t != NULL && (seen = cost_totals_seven_days_seen(t)) > 0) {
		sample_start(out, e, "aws_cost_seven_day_average_daily_usd");
		usd(out, t->seven_days, seen);
	}
}
