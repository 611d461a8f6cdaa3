/*
 * exposition.h - the exporter's /metrics page in the Prometheus text format
 * 0.0.4: every family with HELP and TYPE, families sorted by name, label
 * values escaped. Pure: it renders what it is given.
 */
#ifndef PORTCULLIS_EXPOSITION_H
#define PORTCULLIS_EXPOSITION_H

#include <stdbool.h>
#include <stdint.h>

#include "aws.h"
#include "cost.h"

struct evbuffer;

#define EXPOSITION_RESULTS (AWS_FAILED + 1) /* one per enum aws_status */

/* What a scrape shows; the renderer only reads it. */
struct exposition {
	const char *environment; /* the label on every metric */
	const char *version;
	const struct cost_totals *totals; /* last good; NULL before one */
	bool have_forecast;
	int64_t forecast_month; /* nano-dollars, the whole month */
	double last_success;	/* unix seconds; 0 before the first */
	uint64_t refreshes[EXPOSITION_RESULTS]; /* by enum aws_status */
	uint64_t api_requests;
};

/* Appends the page to out. */
void exposition_render(struct evbuffer *out, const struct exposition *e);

#endif
