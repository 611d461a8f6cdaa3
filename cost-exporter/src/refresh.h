/*
 * refresh.h - the cost figures kept fresh from Cost Explorer, on one
 * libevent loop: one refresh at start, then one per interval, one more on
 * refresh_now(). A refresh reads every GetCostAndUsage page and the
 * forecast and publishes them together, or publishes nothing: a failed
 * one keeps the last good figures, is counted under its aws_status name,
 * is logged when failing starts or its reason changes, and is retried
 * after retry_min, doubling up to the interval. Days of the window that
 * Cost Explorer's answer leaves out do not fail a refresh (unless it holds
 * none): the others are published, and the missing dates are logged in one
 * line per refresh.
 */
#ifndef PORTCULLIS_REFRESH_H
#define PORTCULLIS_REFRESH_H

#include <stdint.h>

struct aws;
struct event_base;
struct exposition;
struct refresh;

/* Starts the first refresh at once. `aws` must outlive the refresher's
 * calls: free it (which cancels them) before refresh_free(). NULL when
 * out of memory. */
struct refresh *refresh_new(struct event_base *base, struct aws *aws,
			    uint64_t interval_ms, uint64_t retry_min_ms);

/* Refreshes now (SIGHUP), unless one is running already. */
void refresh_now(struct refresh *r);

/* Fills what a scrape shows, except environment and version; valid until
 * the loop runs again. */
void refresh_expose(const struct refresh *r, struct exposition *e);

/* Frees r. NULL ok. */
void refresh_free(struct refresh *r);

#endif
