/*
 * accesslog.h - one JSON object per request on stdout.
 */
#ifndef PORTCULLIS_ACCESSLOG_H
#define PORTCULLIS_ACCESSLOG_H

#include <stdint.h>

struct accesslog_entry {
	const char *request_id;
	const char *client; /* behind a trusted proxy: the one it names */
	const char *proxy;  /* that trusted proxy, or NULL (direct) */
	const char *method;
	const char *path;
	int status;
	const char *reason; /* why it ended incomplete, or NULL */
	uint64_t bytes_in;
	uint64_t bytes_out;
	double duration;	  /* seconds */
	double upstream_duration; /* seconds; < 0: none */
	const char *route;	  /* NULL: no route */
	const char *upstream;	  /* "ip:port" or NULL */
	const char *tls;	  /* "TLSv1.3" or NULL (plain HTTP) */
	const char *user;	  /* verified basic-auth user, or NULL */
};

/* Formats and queues one line; strings are JSON-escaped. Never blocks. */
void accesslog_write(const struct accesslog_entry *e);

/* Formats into buf (at most cap bytes, no newline); returns the length. */
size_t accesslog_format(char *buf, size_t cap, const struct accesslog_entry *e,
			const struct timespec *now);

#endif
