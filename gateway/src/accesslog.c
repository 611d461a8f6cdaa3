/*
 * accesslog.c - the JSON access log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "accesslog.h"
#include "log.h"

struct out {
	char *p;
	size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
put_str(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6] = {'\\', 'u', '0', '0', 0, 0};

	if (s == NULL) {
		put(o, "null", 4);
		return;
	}
	put(o, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			put(o, "\\", 1);
			put(o, (const char *)&c, 1);
		} else if (c < 0x20 || c >= 0x7f) {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			put(o, esc, 6);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

static void put_fmt(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp,
		    (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

size_t
accesslog_format(char *buf, size_t cap, const struct accesslog_entry *e,
		 const struct timespec *now)
{
	struct out o = {buf, 0, cap};
	struct tm tm;
	char ts[40];

	/* A clock past what struct tm holds gives no time, not garbage. */
	if (gmtime_r(&now->tv_sec, &tm) == NULL ||
	    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	put_fmt(&o, "{\"time\":\"%s.%03ldZ\",\"request_id\":", ts,
		now->tv_nsec / 1000000);
	put_str(&o, e->request_id);
	put(&o, ",\"client\":", 10);
	put_str(&o, e->client);
	put(&o, ",\"proxy\":", 9);
	put_str(&o, e->proxy);
	put(&o, ",\"user\":", 8);
	put_str(&o, e->user);
	put(&o, ",\"method\":", 10);
	put_str(&o, e->method);
	put(&o, ",\"path\":", 8);
	put_str(&o, e->path);
	put_fmt(&o, ",\"status\":%d,\"reason\":", e->status);
	put_str(&o, e->reason);
	put_fmt(&o,
		",\"bytes_in\":%llu,\"bytes_out\":%llu,"
		"\"duration\":%.6f,\"upstream_duration\":",
		(unsigned long long)e->bytes_in,
		(unsigned long long)e->bytes_out, e->duration);
	if (e->upstream_duration < 0)
		put(&o, "null", 4);
	else
		put_fmt(&o, "%.6f", e->upstream_duration);
	put(&o, ",\"route\":", 9);
	put_str(&o, e->route);
	put(&o, ",\"upstream\":", 12);
	put_str(&o, e->upstream);
	put(&o, ",\"tls\":", 7);
	put_str(&o, e->tls);
	put(&o, "}", 1);
	return o.len;
}

void
accesslog_write(const struct accesslog_entry *e)
{
	char line[2048];
	struct timespec now;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	n = accesslog_format(line, sizeof(line), e, &now);
	log_access(line, n);
}
