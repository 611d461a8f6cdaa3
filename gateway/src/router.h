/*
 * router.h - picks the route of a request: longest path prefix wins.
 */
#ifndef PORTCULLIS_ROUTER_H
#define PORTCULLIS_ROUTER_H

#include <stddef.h>

#include "config.h"

enum router_result {
	ROUTER_MATCH,	 /* *route is the route */
	ROUTER_REDIRECT, /* path is a route's prefix minus its final '/':
			    answer 301 to the prefix; *route is that route */
	ROUTER_NONE,	 /* no route: 404 */
};

/*
 * Matches the origin-form `path` (query included, path_len bytes) against
 * the listener's routes. A prefix matches byte for byte; the query never
 * takes part. A route "/x/" also answers "/x" (and "/x?q") with a redirect,
 * as nginx does for a location with a trailing slash.
 */
enum router_result router_match(const struct config_listener *l,
				const char *path, size_t path_len,
				const struct config_route **route);

#endif
