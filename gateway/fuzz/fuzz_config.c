/*
 * fuzz_config.c - libFuzzer target for config_parse(): any input must
 * give either a snapshot and no error, or NULL and at least one error,
 * without crashing or leaking.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config_errors err;
	struct config *c;
	size_t i;

	c = config_parse((const char *)data, size, &err);
	if (c == NULL) {
		if (err.n == 0)
			abort();
		for (i = 0; i < err.n; i++)
			if (memchr(err.msg[i], '\0', CONFIG_ERROR_LEN) == NULL)
				abort();
		return 0;
	}
	if (err.n != 0 || err.dropped != 0 || c->workers == 0 ||
	    c->nlisteners == 0 || c->nupstreams == 0)
		abort();
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].nroutes == 0 ||
		    c->listeners[i].max_uri_size >
			c->listeners[i].max_header_size)
			abort();
	config_unref(config_ref(c));
	config_unref(c);
	return 0;
}
