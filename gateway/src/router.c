/*
 * router.c - a linear scan keeping the longest match. Listeners carry a
 * handful of routes, so a scan over a contiguous array beats any tree here.
 */
#include "router.h"

#include <string.h>

enum router_result
router_match(const struct config_listener *l, const char *path, size_t path_len,
	     const struct config_route **route)
{
	const struct config_route *best = NULL, *redirect = NULL;
	const char *q = memchr(path, '?', path_len);
	size_t plen = q != NULL ? (size_t)(q - path) : path_len, i;

	for (i = 0; i < l->nroutes; i++) {
		const struct config_route *r = &l->routes[i];

		if (r->path_len <= plen &&
		    memcmp(r->path, path, r->path_len) == 0) {
			if (best == NULL || r->path_len > best->path_len)
				best = r;
		} else if (r->path_len == plen + 1 &&
			   r->path[r->path_len - 1] == '/' &&
			   memcmp(r->path, path, plen) == 0) {
			redirect = r;
		}
	}
	/* "/x" with routes "/" and "/x/": the redirect is the better answer. */
	if (redirect != NULL &&
	    (best == NULL || best->path_len < redirect->path_len)) {
		*route = redirect;
		return ROUTER_REDIRECT;
	}
	if (best == NULL)
		return ROUTER_NONE;
	*route = best;
	return ROUTER_MATCH;
}
