/*
 * config.c - parses the JSON configuration with cJSON and validates every
 * value into an immutable struct config.
 *
 * Validation never stops at the first problem: each check records an error
 * naming its JSON path and parsing goes on, so `portcullis -t` lists every
 * mistake at once. The snapshot is built as parsing goes; if any error was
 * recorded it is freed and NULL is returned.
 */
#include "config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "ratelimit.h"
#include "rewrite.h"

/* Bigger than any sane config; keeps a stray file from filling memory. */
#define CONFIG_FILE_MAX (4u << 20)

#define CFG_PATH_LEN 160  /* a JSON path, e.g. listeners[3].routes[17].path */
#define CFG_QUOTE_LEN 72  /* a quoted value in a message, elided past that */
#define CFG_PATH_MAX 1024 /* route path prefix bytes */
#define CFG_HOST_MAX 253  /* RFC 1035 name length, without the root dot */

#define CFG_MAX_SERVERS 64
#define CFG_MAX_UPSTREAMS 256
#define CFG_MAX_LISTENERS 64
#define CFG_MAX_ROUTES 256
#define CFG_MAX_REALMS 64
#define CFG_MAX_HTPASSWD 16 /* files per realm */

#define MS 1ULL
#define SEC (1000 * MS)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

#define ADMIN_LISTEN_DEFAULT "127.0.0.1:9145"
#define ACCESS_LOG_DEFAULT true
#define CFG_ROOT_REDIRECT_MAX 1024
#define CFG_MAX_HEADERS 32
#define CFG_MAX_CIDRS 256
#define CFG_MAX_RATE 1000000 /* requests per unit of a rate_limit */
#define CFG_HEADER_VALUE_MAX 1024
#define STRIP_PREFIX_DEFAULT false

/* A numeric option: the value used when it is absent, and its bounds. */
struct cfg_range {
	uint64_t def;
	uint64_t min;
	uint64_t max;
};

/* One row per numeric option. */
static const struct cfg_range r_workers = {0, 0, CONFIG_MAX_WORKERS};
static const struct cfg_range r_max_connections = {10000, 1, 1000000};
static const struct cfg_range r_drain_timeout = {30 * SEC, 0, 10 * MIN};
static const struct cfg_range r_keepalive = {32, 0, 10000};
static const struct cfg_range r_up_keepalive_timeout = {60 * SEC, MS, HOUR};
static const struct cfg_range r_connect_timeout = {5 * SEC, MS, 10 * MIN};
static const struct cfg_range r_read_timeout = {60 * SEC, MS, HOUR};
static const struct cfg_range r_resolve_interval = {30 * SEC, SEC, DAY};
static const struct cfg_range r_header_timeout = {10 * SEC, MS, 10 * MIN};
static const struct cfg_range r_body_timeout = {60 * SEC, MS, HOUR};
static const struct cfg_range r_keepalive_timeout = {75 * SEC, MS, HOUR};
static const struct cfg_range r_max_header_size = {16 * KIB, KIB, MIB};
/* The default is lowered to max_header_size when that is smaller. */
static const struct cfg_range r_max_uri_size = {8 * KIB, 256, MIB};
static const struct cfg_range r_max_body_size = {MIB, 0, 64 * GIB};
static const struct cfg_range r_https_port = {443, 1, 65535};
static const struct cfg_range r_hsts_max_age = {0, 0, 2 * 365 * DAY};
static const struct cfg_range r_ticket_rotation = {12 * HOUR, MIN, 7 * DAY};
static const struct cfg_range r_cert_days = {365, 1, 3650};
static const struct cfg_range r_verifier_threads = {1, 1, 16};
static const struct cfg_range r_cache_entries = {4096, 16, 1 << 20};
static const struct cfg_range r_check_timeout = {10 * SEC, 100 * MS, 10 * MIN};
static const struct cfg_range r_cache_ttl = {5 * MIN, 0, DAY};
static const struct cfg_range r_max_failures = {10, 0, 1000000};
static const struct cfg_range r_burst = {0, 1, 100000};
static const struct cfg_range r_failure_window = {5 * MIN, SEC, DAY};
static const struct cfg_range r_secret_refresh = {5 * MIN, SEC, DAY};
static const struct cfg_range r_check_interval = {5 * SEC, 100 * MS, HOUR};
/* The default is lowered to the interval when that is shorter. */
static const struct cfg_range r_check_timeout_hc = {2 * SEC, 10 * MS, MIN};
static const struct cfg_range r_rise = {2, 1, 100};
static const struct cfg_range r_fall = {3, 1, 100};
static const struct cfg_range r_max_fails = {3, 1, 100};
static const struct cfg_range r_eject_for = {30 * SEC, SEC, HOUR};
#define CFG_CHECK_PATH_MAX 1024
#define CFG_CHECK_HOST_MAX 255
#define CFG_MAX_EXPECT 16
#define REQUIRED_FOR_READY_DEFAULT true

/* A key an object may hold, and the value found for it. */
struct cfg_key {
	const char *name;
	const cJSON *val;
};

static void cfg_err(struct config_errors *, const char *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Records "path: message"; past CONFIG_MAX_ERRORS only counts it. */
static void
cfg_err(struct config_errors *err, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *m;
	int k;

	if (err->n >= CONFIG_MAX_ERRORS) {
		err->dropped++;
		return;
	}
	m = err->msg[err->n++];
	k = snprintf(m, CONFIG_ERROR_LEN, "%s: ", path);
	if (k < 0 || k >= CONFIG_ERROR_LEN)
		return;
	va_start(ap, fmt);
	vsnprintf(m + k, CONFIG_ERROR_LEN - (size_t)k, fmt, ap);
	va_end(ap);
}

void
config_error(struct config_errors *err, const char *path, const char *fmt, ...)
{
	char m[CONFIG_ERROR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	cfg_err(err, path, "%s", m);
}

static bool
cfg_word_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* True if s is 1 to CONFIG_NAME_MAX of [A-Za-z0-9_-]. */
static bool
cfg_is_name(const char *s)
{
	size_t i;

	/* cppcheck-suppress arrayIndexOutOfBoundsCond ; stops at the NUL */
	for (i = 0; s[i] != '\0'; i++)
		/* cppcheck-suppress arrayIndexOutOfBoundsCond ; likewise */
		if (i >= CONFIG_NAME_MAX || !cfg_word_char((unsigned char)s[i]))
			return false;
	return i > 0;
}

/*
 * Writes s into buf[size] double-quoted, with '"' and '\' escaped and any
 * byte outside printable ASCII as \xNN, cut with "..." when too long, so
 * a message never carries raw control bytes from the file. Returns buf.
 */
static const char *
cfg_quote(char *buf, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	unsigned char ch;

	buf[o++] = '"';
	for (; (ch = (unsigned char)*s) != '\0'; s++) {
		/* Room for the longest escape, "...", the quote and NUL. */
		if (o + 4 + 3 + 2 > size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch > 0x7e) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 0xf];
		} else
			buf[o++] = (char)ch;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/*
 * Writes base.key into buf[CFG_PATH_LEN], or base["key"] when key is not a
 * plain name. A path too long is cut; it is only ever shown.
 */
static void
cfg_path_key(char *buf, const char *base, const char *key)
{
	char q[CFG_QUOTE_LEN];
	int n;

	if (cfg_is_name(key))
		n = snprintf(buf, CFG_PATH_LEN, "%s%s%s", base,
			     base[0] != '\0' ? "." : "", key);
	else
		n = snprintf(buf, CFG_PATH_LEN, "%s[%s]", base,
			     cfg_quote(q, sizeof(q), key));
	if (n < 0)
		buf[0] = '\0';
}

/* Writes base[i] into buf[CFG_PATH_LEN], cut like cfg_path_key(). */
static void
cfg_path_index(char *buf, const char *base, size_t i)
{
	if (snprintf(buf, CFG_PATH_LEN, "%s[%zu]", base, i) < 0)
		buf[0] = '\0';
}

/*
 * Checks that obj is an object and files its members into keys[] by name.
 * Unknown and repeated keys are errors (cJSON keeps every duplicate; the
 * first one is used). Returns 0, or -1 when obj is not an object.
 */
static int
cfg_object(struct config_errors *err, const cJSON *obj, const char *path,
	   struct cfg_key *keys, size_t nkeys)
{
	const cJSON *m;
	char p[CFG_PATH_LEN];
	size_t i;

	if (!cJSON_IsObject(obj)) {
		cfg_err(err, path, "must be an object");
		return -1;
	}
	cJSON_ArrayForEach (m, obj) {
		for (i = 0; i < nkeys; i++)
			if (strcmp(m->string, keys[i].name) == 0)
				break;
		cfg_path_key(p, path, m->string);
		if (i == nkeys)
			cfg_err(err, p, "unknown key");
		else if (keys[i].val != NULL)
			cfg_err(err, p, "duplicate key");
		else
			keys[i].val = m;
	}
	return 0;
}

/* Returns the string in v, or NULL after recording why it is not one. */
static const char *
cfg_string(struct config_errors *err, const cJSON *v, const char *path)
{
	if (!cJSON_IsString(v)) {
		cfg_err(err, path, "must be a string");
		return NULL;
	}
	return v->valuestring;
}

/* Returns a copy of s, or NULL after recording the allocation failure. */
static char *
cfg_strdup(struct config_errors *err, const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		cfg_err(err, "(internal)", "out of memory");
	return d;
}

/* Returns a zeroed array of n elements, or NULL after recording why. */
static void *
cfg_calloc(struct config_errors *err, size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) == NULL)
		cfg_err(err, "(internal)", "out of memory");
	return p;
}

/* Formats a millisecond count in its largest exact unit: "90s", "250ms". */
static const char *
cfg_fmt_duration(char *buf, size_t size, uint64_t ms)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {{DAY, "d"}, {HOUR, "h"}, {MIN, "m"}, {SEC, "s"}};
	size_t i;

	if (ms == 0) {
		snprintf(buf, size, "0s");
		return buf;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, size, "%llu%s",
				 (unsigned long long)(ms / units[i].ms),
				 units[i].unit);
			return buf;
		}
	snprintf(buf, size, "%llums", (unsigned long long)ms);
	return buf;
}

/* Formats a byte count in its largest exact binary unit: "16k", "300". */
static const char *
cfg_fmt_size(char *buf, size_t size, uint64_t n)
{
	if (n != 0 && n % GIB == 0)
		snprintf(buf, size, "%llug", (unsigned long long)(n / GIB));
	else if (n != 0 && n % MIB == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(n / MIB));
	else if (n != 0 && n % KIB == 0)
		snprintf(buf, size, "%lluk", (unsigned long long)(n / KIB));
	else
		snprintf(buf, size, "%llu", (unsigned long long)n);
	return buf;
}

/*
 * True if v is a JSON number holding a whole value in [min, max]. The
 * bounds stay below 2^53, so the double holds every candidate exactly.
 */
static bool
cfg_number_in(const cJSON *v, uint64_t min, uint64_t max, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!(d >= (double)min && d <= (double)max))
		return false;
	if ((double)(uint64_t)d != d)
		return false;
	*out = (uint64_t)d;
	return true;
}

/* An integer option; returns its value, or the default if absent or bad. */
static uint64_t
cfg_uint(struct config_errors *err, const cJSON *v, const char *path,
	 const struct cfg_range *r)
{
	uint64_t n;

	if (v == NULL)
		return r->def;
	if (!cfg_number_in(v, r->min, r->max, &n)) {
		cfg_err(err, path, "must be an integer from %llu to %llu",
			(unsigned long long)r->min, (unsigned long long)r->max);
		return r->def;
	}
	return n;
}

/* A boolean option; returns its value, or def if absent or bad. */
static bool
cfg_bool(struct config_errors *err, const cJSON *v, const char *path, bool def)
{
	if (v == NULL)
		return def;
	if (!cJSON_IsBool(v)) {
		cfg_err(err, path, "must be true or false");
		return def;
	}
	return cJSON_IsTrue(v);
}

/*
 * A file the gateway writes (the pid file, the access log): an absolute
 * path, since `portcullis -s` and a restart may run from another working
 * directory. Returns a copy, or NULL after recording why.
 */
static char *
cfg_abs_path(struct config_errors *err, const cJSON *v, const char *path)
{
	const char *s = cfg_string(err, v, path);

	if (s == NULL)
		return NULL;
	if (s[0] != '/' || strlen(s) >= PATH_MAX) {
		cfg_err(err, path,
			"must be an absolute file path (starting with '/', "
			"under %d bytes)",
			PATH_MAX);
		return NULL;
	}
	if (s[strlen(s) - 1] == '/') {
		cfg_err(err, path, "names a directory; give a file path");
		return NULL;
	}
	return cfg_strdup(err, s);
}

/* A duration option (a string); returns ms, or the default. */
static uint64_t
cfg_duration(struct config_errors *err, const cJSON *v, const char *path,
	     const struct cfg_range *r)
{
	char lo[24], hi[24], def[24];
	uint64_t ms;

	if (v == NULL)
		return r->def;
	if (cJSON_IsString(v) &&
	    config_parse_duration(v->valuestring, &ms) == 0 && ms >= r->min &&
	    ms <= r->max)
		return ms;
	cfg_err(err, path, "must be a duration from %s to %s, such as \"%s\"",
		cfg_fmt_duration(lo, sizeof(lo), r->min),
		cfg_fmt_duration(hi, sizeof(hi), r->max),
		cfg_fmt_duration(def, sizeof(def), r->def));
	return r->def;
}

/* A size option (an integer or a string); returns bytes, or the default. */
static uint64_t
cfg_size(struct config_errors *err, const cJSON *v, const char *path,
	 const struct cfg_range *r)
{
	char lo[24], hi[24], def[24];
	uint64_t n;

	if (v == NULL)
		return r->def;
	if (cfg_number_in(v, r->min, r->max, &n))
		return n;
	if (cJSON_IsString(v) && config_parse_size(v->valuestring, &n) == 0 &&
	    n >= r->min && n <= r->max)
		return n;
	cfg_err(err, path, "must be a size from %s to %s, such as \"%s\"",
		cfg_fmt_size(lo, sizeof(lo), r->min),
		cfg_fmt_size(hi, sizeof(hi), r->max),
		cfg_fmt_size(def, sizeof(def), r->def));
	return r->def;
}

/*
 * Parses a listening address into addr/addrlen; it must be numeric since
 * nothing resolves names before bind. Returns 0 or -1 (error recorded).
 */
static int
cfg_listen_addr(struct config_errors *err, const char *s, const char *path,
		struct sockaddr_storage *addr, socklen_t *addrlen)
{
	struct config_hostport hp;
	const char *why;
	char q[CFG_QUOTE_LEN];

	if (config_parse_hostport(s, &hp, &why) == -1) {
		cfg_err(err, path, "%s: %s", cfg_quote(q, sizeof(q), s), why);
		return -1;
	}
	free(hp.host);
	if (!hp.numeric) {
		cfg_err(err, path,
			"must be a numeric address (names are not resolved "
			"for listening)");
		return -1;
	}
	*addr = hp.addr;
	*addrlen = hp.addrlen;
	return 0;
}

/*
 * An array of 1 to CFG_MAX_SERVERS "host:port" strings at `path`, into
 * out and n (names allowed unless numeric_only). Upstream servers and
 * resolvers both take this shape.
 */
static void
cfg_hostports(struct config_errors *err, const cJSON *v, const char *path,
	      bool numeric_only, struct config_hostport **out, size_t *n)
{
	const cJSON *s;
	const char *str, *why;
	char p[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	size_t i = 0;
	int count;

	if (!cJSON_IsArray(v)) {
		cfg_err(err, path, "must be an array");
		return;
	}
	count = cJSON_GetArraySize(v);
	if (count < 1 || count > CFG_MAX_SERVERS) {
		cfg_err(err, path, "must list 1 to %d servers",
			CFG_MAX_SERVERS);
		return;
	}
	if ((*out = cfg_calloc(err, (size_t)count, sizeof(**out))) == NULL)
		return;
	*n = (size_t)count;
	cJSON_ArrayForEach (s, v) {
		cfg_path_index(p, path, i);
		if ((str = cfg_string(err, s, p)) != NULL) {
			if (config_parse_hostport(str, &(*out)[i], &why) == -1)
				cfg_err(err, p, "%s: %s",
					cfg_quote(q, sizeof(q), str), why);
			else if (numeric_only && !(*out)[i].numeric)
				cfg_err(err, p,
					"%s: must be a numeric address (a "
					"resolver cannot be found by name)",
					cfg_quote(q, sizeof(q), str));
		}
		i++;
	}
}

/* Adds the statuses lo..hi (within 100..599) to set. */
static void
cfg_status_range(uint64_t set[CONFIG_STATUS_WORDS], uint64_t lo, uint64_t hi)
{
	uint64_t code;

	for (code = lo; code <= hi; code++)
		set[(code - 100) / 64] |= UINT64_C(1) << ((code - 100) % 64);
}

/* Adds one expect_status element (an integer, "2xx" or "200-399") to
 * set; 0, or -1 when it is none of those. */
static int
cfg_status_element(const cJSON *v, uint64_t set[CONFIG_STATUS_WORDS])
{
	uint64_t code, lo, hi;
	const char *s;
	char *end;

	if (cfg_number_in(v, 100, 599, &code)) {
		lo = hi = code;
	} else if (!cJSON_IsString(v)) {
		return -1;
	} else if (s = v->valuestring, strlen(s) == 3 && s[0] >= '1' &&
					   s[0] <= '5' && s[1] == 'x' &&
					   s[2] == 'x') {
		lo = (uint64_t)(s[0] - '0') * 100;
		hi = lo + 99;
	} else {
		if (strspn(s, "0123456789") != 3 || s[3] != '-' ||
		    strspn(s + 4, "0123456789") != 3 || s[7] != '\0')
			return -1;
		lo = strtoull(s, &end, 10);
		hi = strtoull(s + 4, &end, 10);
		if (lo < 100 || hi > 599 || lo > hi)
			return -1;
	}
	cfg_status_range(set, lo, hi);
	return 0;
}

/* "expect_status": one element or an array of 1 to CFG_MAX_EXPECT. */
static void
cfg_expect_status(struct config_errors *err, const cJSON *v, const char *path,
		  uint64_t set[CONFIG_STATUS_WORDS])
{
	static const char what[] =
	    "must be a status (200), a class (\"2xx\") or a range "
	    "(\"200-399\") of codes 100 to 599";
	const cJSON *e;
	char p[CFG_PATH_LEN];
	size_t i = 0;
	int n;

	memset(set, 0, CONFIG_STATUS_WORDS * sizeof(set[0]));
	if (!cJSON_IsArray(v)) {
		if (cfg_status_element(v, set) == -1)
			cfg_err(err, path, "%s, or an array of them", what);
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n < 1 || n > CFG_MAX_EXPECT) {
		cfg_err(err, path, "must list 1 to %d statuses",
			CFG_MAX_EXPECT);
		return;
	}
	cJSON_ArrayForEach (e, v) {
		cfg_path_index(p, path, i++);
		if (cfg_status_element(e, set) == -1)
			cfg_err(err, p, "%s", what);
	}
}

bool
config_status_in(const uint64_t set[CONFIG_STATUS_WORDS], int status)
{
	unsigned b;

	if (status < 100 || status > 599)
		return false;
	b = (unsigned)(status - 100);
	return (set[b / 64] >> (b % 64)) & 1;
}

/* A string of 1 to max visible ASCII bytes (0x21..0x7e) that starts
 * with `first` (0: any); a copy, or NULL after recording why. */
static char *
cfg_visible(struct config_errors *err, const cJSON *v, const char *path,
	    size_t max, char first, const char *what)
{
	const char *s = cfg_string(err, v, path);
	size_t i;

	if (s == NULL)
		return NULL;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || i >= max)
			break;
	if (i == 0 || s[i] != '\0' || (first != 0 && s[0] != first)) {
		cfg_err(err, path, "%s", what);
		return NULL;
	}
	return cfg_strdup(err, s);
}

enum {
	CK_PATH,
	CK_HOST,
	CK_INTERVAL,
	CK_TIMEOUT,
	CK_RISE,
	CK_FALL,
	CK_EXPECT_STATUS,
	CK_N
};

/* An upstream's "health_check" block. */
static void
cfg_health_check(struct config_errors *err, const cJSON *v, const char *path,
		 struct config_health_check *hc)
{
	struct cfg_key k[CK_N] = {
	    [CK_PATH] = {"path", NULL},
	    [CK_HOST] = {"host", NULL},
	    [CK_INTERVAL] = {"interval", NULL},
	    [CK_TIMEOUT] = {"timeout", NULL},
	    [CK_RISE] = {"rise", NULL},
	    [CK_FALL] = {"fall", NULL},
	    [CK_EXPECT_STATUS] = {"expect_status", NULL},
	};
	char p[CFG_PATH_LEN], a[24], b[24];

	hc->enabled = true;
	hc->interval_ms = r_check_interval.def;
	hc->rise = (unsigned)r_rise.def;
	hc->fall = (unsigned)r_fall.def;
	/* 200 to 399, as HAProxy and nginx pass a check by default. */
	cfg_status_range(hc->expect, 200, 399);
	if (cfg_object(err, v, path, k, CK_N) == -1)
		return;
	cfg_path_key(p, path, "path");
	if (k[CK_PATH].val == NULL)
		cfg_err(err, p, "required");
	else
		hc->path = cfg_visible(
		    err, k[CK_PATH].val, p, CFG_CHECK_PATH_MAX, '/',
		    "must be a path starting with '/', 1 to 1024 visible "
		    "ASCII characters (no spaces)");
	cfg_path_key(p, path, "host");
	if (k[CK_HOST].val != NULL)
		hc->host =
		    cfg_visible(err, k[CK_HOST].val, p, CFG_CHECK_HOST_MAX, 0,
				"must be a Host value, 1 to 255 visible "
				"ASCII characters (no spaces)");
	cfg_path_key(p, path, "interval");
	hc->interval_ms =
	    cfg_duration(err, k[CK_INTERVAL].val, p, &r_check_interval);
	cfg_path_key(p, path, "timeout");
	hc->timeout_ms =
	    cfg_duration(err, k[CK_TIMEOUT].val, p, &r_check_timeout_hc);
	if (k[CK_TIMEOUT].val == NULL && hc->timeout_ms > hc->interval_ms)
		hc->timeout_ms = hc->interval_ms;
	else if (hc->timeout_ms > hc->interval_ms)
		cfg_err(err, p, "%s is longer than interval (%s)",
			cfg_fmt_duration(a, sizeof(a), hc->timeout_ms),
			cfg_fmt_duration(b, sizeof(b), hc->interval_ms));
	cfg_path_key(p, path, "rise");
	hc->rise = (unsigned)cfg_uint(err, k[CK_RISE].val, p, &r_rise);
	cfg_path_key(p, path, "fall");
	hc->fall = (unsigned)cfg_uint(err, k[CK_FALL].val, p, &r_fall);
	cfg_path_key(p, path, "expect_status");
	if (k[CK_EXPECT_STATUS].val != NULL)
		cfg_expect_status(err, k[CK_EXPECT_STATUS].val, p, hc->expect);
}

enum { PK_MAX_FAILS, PK_EJECT_FOR, PK_N };

/* An upstream's "passive" block: ejection after connect failures. */
static void
cfg_passive(struct config_errors *err, const cJSON *v, const char *path,
	    struct config_upstream *u)
{
	struct cfg_key k[PK_N] = {
	    [PK_MAX_FAILS] = {"max_fails", NULL},
	    [PK_EJECT_FOR] = {"eject_for", NULL},
	};
	char p[CFG_PATH_LEN];

	u->max_fails = (unsigned)r_max_fails.def;
	u->eject_ms = r_eject_for.def;
	if (cfg_object(err, v, path, k, PK_N) == -1)
		return;
	cfg_path_key(p, path, "max_fails");
	u->max_fails =
	    (unsigned)cfg_uint(err, k[PK_MAX_FAILS].val, p, &r_max_fails);
	cfg_path_key(p, path, "eject_for");
	u->eject_ms = cfg_duration(err, k[PK_EJECT_FOR].val, p, &r_eject_for);
}

/* The upstream's servers, each once: their metric labels and health
 * state are keyed by "host:port". */
static void
cfg_servers_unique(struct config_errors *err, const char *path,
		   const struct config_upstream *u)
{
	char p[CFG_PATH_LEN], a[CFG_HOST_MAX + 16], b[CFG_HOST_MAX + 16];
	size_t i, j;

	for (i = 0; i < u->nservers; i++) {
		if (u->servers[i].host == NULL)
			continue;
		config_hostport_str(&u->servers[i], a, sizeof(a));
		for (j = 0; j < i; j++) {
			if (u->servers[j].host == NULL)
				continue;
			config_hostport_str(&u->servers[j], b, sizeof(b));
			if (strcmp(a, b) == 0) {
				cfg_path_index(p, path, i);
				cfg_err(err, p, "\"%s\" is listed twice", a);
				break;
			}
		}
	}
}

enum {
	UK_SERVERS,
	UK_KEEPALIVE,
	UK_KEEPALIVE_TIMEOUT,
	UK_CONNECT_TIMEOUT,
	UK_READ_TIMEOUT,
	UK_RESOLVE_INTERVAL,
	UK_HEALTH_CHECK,
	UK_PASSIVE,
	UK_REQUIRED_FOR_READY,
	UK_N
};

/* One member of "upstreams"; its key is the upstream's name. */
static void
cfg_upstream(struct config_errors *err, const cJSON *v, const char *path,
	     struct config_upstream *u)
{
	struct cfg_key k[UK_N] = {
	    [UK_SERVERS] = {"servers", NULL},
	    [UK_KEEPALIVE] = {"keepalive", NULL},
	    [UK_KEEPALIVE_TIMEOUT] = {"keepalive_timeout", NULL},
	    [UK_CONNECT_TIMEOUT] = {"connect_timeout", NULL},
	    [UK_READ_TIMEOUT] = {"read_timeout", NULL},
	    [UK_RESOLVE_INTERVAL] = {"resolve_interval", NULL},
	    [UK_HEALTH_CHECK] = {"health_check", NULL},
	    [UK_PASSIVE] = {"passive", NULL},
	    [UK_REQUIRED_FOR_READY] = {"required_for_ready", NULL},
	};
	char p[CFG_PATH_LEN];

	if (!cfg_is_name(v->string))
		cfg_err(err, path,
			"upstream name must be 1 to %d of A-Z a-z 0-9 _ -",
			CONFIG_NAME_MAX);
	/* Kept even when invalid, so routes naming it add no noise. */
	u->name = cfg_strdup(err, v->string);
	u->keepalive = (unsigned)r_keepalive.def;
	u->keepalive_timeout_ms = r_up_keepalive_timeout.def;
	u->connect_timeout_ms = r_connect_timeout.def;
	u->read_timeout_ms = r_read_timeout.def;
	u->resolve_interval_ms = r_resolve_interval.def;
	u->required_for_ready = REQUIRED_FOR_READY_DEFAULT;
	if (cfg_object(err, v, path, k, UK_N) == -1)
		return;

	cfg_path_key(p, path, "servers");
	if (k[UK_SERVERS].val == NULL) {
		cfg_err(err, p, "required");
	} else {
		cfg_hostports(err, k[UK_SERVERS].val, p, false, &u->servers,
			      &u->nservers);
		cfg_servers_unique(err, p, u);
	}
	cfg_path_key(p, path, "keepalive");
	u->keepalive =
	    (unsigned)cfg_uint(err, k[UK_KEEPALIVE].val, p, &r_keepalive);
	cfg_path_key(p, path, "keepalive_timeout");
	u->keepalive_timeout_ms = cfg_duration(err, k[UK_KEEPALIVE_TIMEOUT].val,
					       p, &r_up_keepalive_timeout);
	cfg_path_key(p, path, "connect_timeout");
	u->connect_timeout_ms =
	    cfg_duration(err, k[UK_CONNECT_TIMEOUT].val, p, &r_connect_timeout);
	cfg_path_key(p, path, "read_timeout");
	u->read_timeout_ms =
	    cfg_duration(err, k[UK_READ_TIMEOUT].val, p, &r_read_timeout);
	cfg_path_key(p, path, "resolve_interval");
	u->resolve_interval_ms = cfg_duration(err, k[UK_RESOLVE_INTERVAL].val,
					      p, &r_resolve_interval);
	cfg_path_key(p, path, "health_check");
	if (k[UK_HEALTH_CHECK].val != NULL)
		cfg_health_check(err, k[UK_HEALTH_CHECK].val, p, &u->check);
	cfg_path_key(p, path, "passive");
	if (k[UK_PASSIVE].val != NULL)
		cfg_passive(err, k[UK_PASSIVE].val, p, u);
	cfg_path_key(p, path, "required_for_ready");
	u->required_for_ready = cfg_bool(err, k[UK_REQUIRED_FOR_READY].val, p,
					 REQUIRED_FOR_READY_DEFAULT);
}

/* "upstreams": an object of upstreams keyed by name. */
static void
cfg_upstreams(struct config_errors *err, const cJSON *v, struct config *c)
{
	const cJSON *m, *o;
	char p[CFG_PATH_LEN];
	int n;
	size_t i = 0;

	if (v == NULL) {
		cfg_err(err, "upstreams", "required");
		return;
	}
	if (!cJSON_IsObject(v)) {
		cfg_err(err, "upstreams", "must be an object");
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n < 1 || n > CFG_MAX_UPSTREAMS) {
		cfg_err(err, "upstreams", "must hold 1 to %d upstreams",
			CFG_MAX_UPSTREAMS);
		return;
	}
	if ((c->upstreams =
		 cfg_calloc(err, (size_t)n, sizeof(*c->upstreams))) == NULL)
		return;
	c->nupstreams = (size_t)n;
	cJSON_ArrayForEach (m, v) {
		cfg_path_key(p, "upstreams", m->string);
		for (o = v->child; o != m; o = o->next)
			if (strcmp(o->string, m->string) == 0)
				break;
		if (o != m)
			cfg_err(err, p, "duplicate key");
		cfg_upstream(err, m, p, &c->upstreams[i++]);
	}
}

/* True if s is a valid route path prefix (see config.h). */
static bool
cfg_is_route_path(const char *s)
{
	size_t i;

	if (s[0] != '/')
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '?' || s[i] == '#')
			return false;
	return true;
}

enum {
	RK_NAME,
	RK_PATH,
	RK_UPSTREAM,
	RK_STRIP_PREFIX,
	RK_MAX_BODY_SIZE,
	RK_REALM,
	RK_PASS_AUTHORIZATION,
	RK_USER_HEADER,
	RK_HEADERS,
	RK_ALLOW,
	RK_DENY,
	RK_RATE_LIMIT,
	RK_N
};

/* True if s is an RFC 9110 field name (a token). */
static bool
cfg_is_field_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!cfg_word_char((unsigned char)s[i]) &&
		    strchr("!#$%&'*+.^`|~", s[i]) == NULL)
			return false;
	return i > 0 && i <= CONFIG_NAME_MAX;
}

/* Fields the gateway writes or frames itself: no route may hand the user
 * name upstream in one of them. */
static bool
cfg_field_reserved(const char *s)
{
	static const char *const reserved[] = {"authorization",
					       "connection",
					       "content-length",
					       "cookie",
					       "host",
					       "keep-alive",
					       "proxy-authorization",
					       "proxy-connection",
					       "te",
					       "trailer",
					       "transfer-encoding",
					       "upgrade",
					       "x-forwarded-for",
					       "x-forwarded-host",
					       "x-forwarded-proto",
					       "x-real-ip",
					       "x-request-id"};
	size_t i;

	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(s, reserved[i]) == 0)
			return true;
	return false;
}

/* A route's "realm", "pass_authorization" and "user_header". */
static void
cfg_route_auth(struct config_errors *err, const struct cfg_key *k,
	       const char *path, const struct config *c, struct config_route *r)
{
	char p[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	const char *s;
	size_t i;

	r->realm = CONFIG_NO_REALM;
	cfg_path_key(p, path, "realm");
	if (k[RK_REALM].val != NULL &&
	    (s = cfg_string(err, k[RK_REALM].val, p)) != NULL) {
		for (i = 0; i < c->nrealms; i++)
			if (c->realms[i].name != NULL &&
			    strcmp(c->realms[i].name, s) == 0)
				break;
		if (i == c->nrealms)
			cfg_err(err, p, "no realm named %s",
				cfg_quote(q, sizeof(q), s));
		else
			r->realm = i;
	}
	cfg_path_key(p, path, "pass_authorization");
	r->pass_authorization =
	    cfg_bool(err, k[RK_PASS_AUTHORIZATION].val, p, false);
	if (k[RK_PASS_AUTHORIZATION].val != NULL && k[RK_REALM].val == NULL)
		cfg_err(err, p, "only applies to a route with a realm");
	cfg_path_key(p, path, "user_header");
	if (k[RK_USER_HEADER].val == NULL ||
	    (s = cfg_string(err, k[RK_USER_HEADER].val, p)) == NULL)
		return;
	if (k[RK_REALM].val == NULL)
		cfg_err(err, p, "only applies to a route with a realm");
	else if (!cfg_is_field_name(s))
		cfg_err(err, p,
			"must be a header name of 1 to %d token characters",
			CONFIG_NAME_MAX);
	else if (cfg_field_reserved(s))
		cfg_err(err, p,
			"%s is managed by the gateway; pick another name",
			cfg_quote(q, sizeof(q), s));
	r->user_header = cfg_strdup(err, s);
	r->user_header_len = strlen(s);
}

/* "allow" or "deny": a list of 1 to 256 addresses or ranges. */
static void
cfg_cidrs(struct config_errors *err, const cJSON *v, const char *path,
	  struct config_cidr **out, size_t *n)
{
	char p[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	const char *why;
	const cJSON *m;
	int cnt;
	size_t i = 0;

	if (v == NULL)
		return;
	cnt = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
	if (cnt < 1 || cnt > CFG_MAX_CIDRS) {
		cfg_err(err, path,
			"must be a list of 1 to %d addresses or ranges "
			"(\"10.0.0.0/8\", \"2001:db8::/32\")",
			CFG_MAX_CIDRS);
		return;
	}
	if ((*out = cfg_calloc(err, (size_t)cnt, sizeof(**out))) == NULL)
		return;
	cJSON_ArrayForEach (m, v) {
		cfg_path_index(p, path, i++);
		if (!cJSON_IsString(m)) {
			cfg_err(err, p, "must be a string");
			continue;
		}
		if (config_parse_cidr(m->valuestring, &(*out)[*n], &why) ==
		    -1) {
			cfg_err(err, p, "%s: %s",
				cfg_quote(q, sizeof(q), m->valuestring), why);
			continue;
		}
		(*n)++;
	}
}

/* A listener's or route's "allow" and "deny". */
static void
cfg_access(struct config_errors *err, const cJSON *allow, const cJSON *deny,
	   const char *path, struct config_access *a)
{
	char p[CFG_PATH_LEN];

	cfg_path_key(p, path, "allow");
	cfg_cidrs(err, allow, p, &a->allow, &a->nallow);
	cfg_path_key(p, path, "deny");
	cfg_cidrs(err, deny, p, &a->deny, &a->ndeny);
}

/* A response policy being parsed: the arrays rewrite_headers points at. */
struct cfg_headers {
	struct rewrite_headers h;
	struct rewrite_hfield f[CFG_MAX_HEADERS]; /* set first, then add */
	struct rewrite_str remove[CFG_MAX_HEADERS];
};

void
config_headers_free(struct rewrite_headers *h)
{
	struct cfg_headers *ch = (struct cfg_headers *)h;
	size_t i;

	if (ch == NULL)
		return;
	for (i = 0; i < h->nset + h->nadd; i++) {
		free((char *)ch->f[i].name.p);
		free((char *)ch->f[i].value.p);
	}
	for (i = 0; i < h->nremove; i++)
		free((char *)ch->remove[i].p);
	free(ch);
}

/* Was this name (any case) already given in the policy? */
static bool
cfg_header_seen(const struct cfg_headers *ch, size_t nf, const char *name)
{
	size_t i;

	for (i = 0; i < nf; i++)
		if (strcasecmp(ch->f[i].name.p, name) == 0)
			return true;
	for (i = 0; i < ch->h.nremove; i++)
		if (strcasecmp(ch->remove[i].p, name) == 0)
			return true;
	return false;
}

/* A field name a policy may use; records why not. */
static bool
cfg_header_name(struct config_errors *err, const char *path, const char *name,
		const struct cfg_headers *ch, size_t nf)
{
	char q[CFG_QUOTE_LEN];
	const char *why;

	if (!cfg_is_field_name(name)) {
		cfg_err(err, path,
			"must be a header name of 1 to %d token characters",
			CONFIG_NAME_MAX);
		return false;
	}
	if ((why = rewrite_headers_refused(name, strlen(name))) != NULL) {
		cfg_err(err, path, "%s %s", cfg_quote(q, sizeof(q), name), why);
		return false;
	}
	if (nf + ch->h.nremove >= CFG_MAX_HEADERS) {
		cfg_err(err, path, "at most %d fields in one \"headers\"",
			CFG_MAX_HEADERS);
		return false;
	}
	if (cfg_header_seen(ch, nf, name)) {
		cfg_err(err, path,
			"%s is named twice in this \"headers\" (names are "
			"compared without case)",
			cfg_quote(q, sizeof(q), name));
		return false;
	}
	return true;
}

/* A field value: visible ASCII, spaces and tabs inside, 0 to 1024 bytes. */
static bool
cfg_header_value(const char *v)
{
	size_t i, n = strlen(v);

	if (n > CFG_HEADER_VALUE_MAX ||
	    (n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' ||
		       v[n - 1] == '\t')))
		return false;
	for (i = 0; i < n; i++)
		if ((v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f ||
		    (unsigned char)v[i] > 0x7e)
			return false;
	return true;
}

/* "set" or "add": an object of field names and values, appended to f. */
static void
cfg_header_fields(struct config_errors *err, const cJSON *v, const char *path,
		  struct cfg_headers *ch, size_t *nf)
{
	char p[CFG_PATH_LEN];
	const cJSON *m;

	if (!cJSON_IsObject(v)) {
		cfg_err(err, path,
			"must be an object of header names and values");
		return;
	}
	cJSON_ArrayForEach (m, v) {
		cfg_path_key(p, path, m->string);
		if (!cfg_header_name(err, p, m->string, ch, *nf))
			continue;
		if (!cJSON_IsString(m) || !cfg_header_value(m->valuestring)) {
			cfg_err(err, p,
				"must be a string of at most %d visible "
				"ASCII characters, spaces and tabs (none at "
				"either end)",
				CFG_HEADER_VALUE_MAX);
			continue;
		}
		ch->f[*nf].name.p = cfg_strdup(err, m->string);
		ch->f[*nf].name.n = strlen(m->string);
		ch->f[*nf].value.p = cfg_strdup(err, m->valuestring);
		ch->f[*nf].value.n = strlen(m->valuestring);
		ch->h.size += ch->f[*nf].name.n + 2 + ch->f[*nf].value.n + 2;
		(*nf)++;
	}
}

enum { HK_SET, HK_ADD, HK_REMOVE, HK_N };

/*
 * "headers" of a listener or route: the response policy (rewrite.h).
 * Returns it, or NULL (absent, or after recording errors).
 */
static struct rewrite_headers *
cfg_headers(struct config_errors *err, const cJSON *v, const char *path)
{
	struct cfg_key k[HK_N] = {
	    [HK_SET] = {"set", NULL},
	    [HK_ADD] = {"add", NULL},
	    [HK_REMOVE] = {"remove", NULL},
	};
	struct cfg_headers *ch;
	char p[CFG_PATH_LEN], pi[CFG_PATH_LEN];
	size_t nf = 0, before = err->n + err->dropped;
	const cJSON *m;

	if (v == NULL || cfg_object(err, v, path, k, HK_N) == -1)
		return NULL;
	if ((ch = cfg_calloc(err, 1, sizeof(*ch))) == NULL)
		return NULL;
	cfg_path_key(p, path, "remove");
	if (k[HK_REMOVE].val != NULL && !cJSON_IsArray(k[HK_REMOVE].val))
		cfg_err(err, p, "must be a list of header names");
	else if (k[HK_REMOVE].val != NULL) {
		size_t i = 0;

		cJSON_ArrayForEach (m, k[HK_REMOVE].val) {
			cfg_path_index(pi, p, i++);
			if (!cJSON_IsString(m)) {
				cfg_err(err, pi, "must be a header name");
				continue;
			}
			if (!cfg_header_name(err, pi, m->valuestring, ch, nf))
				continue;
			ch->remove[ch->h.nremove].p =
			    cfg_strdup(err, m->valuestring);
			ch->remove[ch->h.nremove++].n = strlen(m->valuestring);
		}
	}
	cfg_path_key(p, path, "set");
	if (k[HK_SET].val != NULL)
		cfg_header_fields(err, k[HK_SET].val, p, ch, &nf);
	ch->h.nset = nf;
	cfg_path_key(p, path, "add");
	if (k[HK_ADD].val != NULL)
		cfg_header_fields(err, k[HK_ADD].val, p, ch, &nf);
	ch->h.nadd = nf - ch->h.nset;
	ch->h.set = ch->f;
	ch->h.add = ch->f + ch->h.nset;
	ch->h.remove = ch->remove;
	if (err->n + err->dropped > before) {
		config_headers_free(&ch->h);
		return NULL;
	}
	return &ch->h;
}

static const char *cfg_digits(const char *s, uint64_t *n);

/* "N/s", "N/m" or "N/h" into microseconds per request; 0 if invalid. */
static uint64_t
cfg_rate(const char *s)
{
	uint64_t n, period;
	const char *p = cfg_digits(s, &n);

	if (p == NULL || p[0] != '/' || p[1] == '\0' || p[2] != '\0' || n < 1 ||
	    n > CFG_MAX_RATE)
		return 0;
	switch (p[1]) {
	case 's':
		period = 1000000u;
		break;
	case 'm':
		period = 60u * 1000000u;
		break;
	case 'h':
		period = 3600u * 1000000u;
		break;
	default:
		return 0;
	}
	return period / n;
}

/* A route's "rate_limit": {"rate": "10/s", "burst": 20, "key": ...}. */
static void
cfg_rate_limit(struct config_errors *err, const cJSON *v, const char *path,
	       bool has_realm, struct config_route *r)
{
	enum { RL_RATE, RL_BURST, RL_KEY, RL_N };
	struct cfg_key k[RL_N] = {
	    [RL_RATE] = {"rate", NULL},
	    [RL_BURST] = {"burst", NULL},
	    [RL_KEY] = {"key", NULL},
	};
	char p[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	const char *s;
	uint64_t us = 0;

	if (cfg_object(err, v, path, k, RL_N) == -1)
		return;
	cfg_path_key(p, path, "rate");
	if (k[RL_RATE].val == NULL)
		cfg_err(err, p, "required (\"10/s\", \"600/m\", \"100/h\")");
	else if ((s = cfg_string(err, k[RL_RATE].val, p)) != NULL &&
		 (us = cfg_rate(s)) == 0)
		cfg_err(err, p,
			"%s: must be N/s, N/m or N/h with N from 1 to %d "
			"(\"10/s\")",
			cfg_quote(q, sizeof(q), s), CFG_MAX_RATE);
	cfg_path_key(p, path, "burst");
	if (k[RL_BURST].val == NULL)
		cfg_err(err, p,
			"required: how many requests may come at once (a "
			"page that loads 20 things needs 20)");
	else
		r->rate.burst =
		    (unsigned)cfg_uint(err, k[RL_BURST].val, p, &r_burst);
	cfg_path_key(p, path, "key");
	if (k[RL_KEY].val != NULL &&
	    (s = cfg_string(err, k[RL_KEY].val, p)) != NULL) {
		if (strcmp(s, "user") == 0) {
			r->rate.by_user = true;
			if (!has_realm)
				cfg_err(err, p,
					"\"user\" needs a route with a realm");
		} else if (strcmp(s, "client") != 0) {
			cfg_err(err, p,
				"%s: must be \"client\" (the address) or "
				"\"user\" (the verified user)",
				cfg_quote(q, sizeof(q), s));
		}
	}
	if (r->rate.burst > 0)
		r->rate.interval_us = us;
}

/* One route of a listener. */
static void
cfg_route(struct config_errors *err, const cJSON *v, const char *path,
	  const struct config *c, struct config_route *r)
{
	struct cfg_key k[RK_N] = {
	    [RK_NAME] = {"name", NULL},
	    [RK_PATH] = {"path", NULL},
	    [RK_UPSTREAM] = {"upstream", NULL},
	    [RK_STRIP_PREFIX] = {"strip_prefix", NULL},
	    [RK_MAX_BODY_SIZE] = {"max_body_size", NULL},
	    [RK_REALM] = {"realm", NULL},
	    [RK_PASS_AUTHORIZATION] = {"pass_authorization", NULL},
	    [RK_USER_HEADER] = {"user_header", NULL},
	    [RK_HEADERS] = {"headers", NULL},
	    [RK_ALLOW] = {"allow", NULL},
	    [RK_DENY] = {"deny", NULL},
	    [RK_RATE_LIMIT] = {"rate_limit", NULL},
	};
	char p[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	const char *s;
	size_t i;

	r->strip_prefix = STRIP_PREFIX_DEFAULT;
	r->max_body = r_max_body_size.def;
	r->realm = CONFIG_NO_REALM;
	if (cfg_object(err, v, path, k, RK_N) == -1)
		return;

	cfg_path_key(p, path, "name");
	if (k[RK_NAME].val == NULL)
		cfg_err(err, p, "required");
	else if ((s = cfg_string(err, k[RK_NAME].val, p)) != NULL) {
		/* Names starting with '_' are kept for the gateway's own. */
		if (!cfg_is_name(s) || s[0] == '_')
			cfg_err(err, p,
				"must be 1 to %d of A-Z a-z 0-9 _ -, not "
				"starting with _",
				CONFIG_NAME_MAX);
		r->name = cfg_strdup(err, s);
	}

	cfg_path_key(p, path, "path");
	if (k[RK_PATH].val == NULL)
		cfg_err(err, p, "required");
	else if ((s = cfg_string(err, k[RK_PATH].val, p)) != NULL) {
		if (!cfg_is_route_path(s))
			cfg_err(err, p,
				"must start with '/' and hold only visible "
				"ASCII, without '?' or '#'");
		else if (strlen(s) > CFG_PATH_MAX)
			cfg_err(err, p, "must be at most %d bytes",
				CFG_PATH_MAX);
		r->path = cfg_strdup(err, s);
		r->path_len = strlen(s);
	}

	cfg_path_key(p, path, "upstream");
	if (k[RK_UPSTREAM].val == NULL)
		cfg_err(err, p, "required");
	else if ((s = cfg_string(err, k[RK_UPSTREAM].val, p)) != NULL) {
		for (i = 0; i < c->nupstreams; i++)
			if (c->upstreams[i].name != NULL &&
			    strcmp(c->upstreams[i].name, s) == 0)
				break;
		if (i == c->nupstreams)
			cfg_err(err, p, "no upstream named %s",
				cfg_quote(q, sizeof(q), s));
		r->upstream = i;
	}

	cfg_path_key(p, path, "strip_prefix");
	r->strip_prefix =
	    cfg_bool(err, k[RK_STRIP_PREFIX].val, p, STRIP_PREFIX_DEFAULT);
	cfg_path_key(p, path, "max_body_size");
	r->max_body =
	    cfg_size(err, k[RK_MAX_BODY_SIZE].val, p, &r_max_body_size);
	cfg_route_auth(err, k, path, c, r);
	cfg_path_key(p, path, "headers");
	r->headers = cfg_headers(err, k[RK_HEADERS].val, p);
	cfg_access(err, k[RK_ALLOW].val, k[RK_DENY].val, path, &r->access);
	if (k[RK_RATE_LIMIT].val != NULL) {
		cfg_path_key(p, path, "rate_limit");
		cfg_rate_limit(err, k[RK_RATE_LIMIT].val, p,
			       k[RK_REALM].val != NULL, r);
	}
}

/* A listener's "routes": 1 to 256, names and paths unique within it. */
static void
cfg_routes(struct config_errors *err, const cJSON *v, const char *path,
	   const struct config *c, struct config_listener *l)
{
	const cJSON *m;
	const struct config_route *a, *b;
	char p[CFG_PATH_LEN], rp[CFG_PATH_LEN], also[CFG_PATH_LEN];
	char q[CFG_QUOTE_LEN];
	int n;
	size_t i = 0, j;

	if (!cJSON_IsArray(v)) {
		cfg_err(err, path, "must be an array");
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n < 1 || n > CFG_MAX_ROUTES) {
		cfg_err(err, path, "must list 1 to %d routes", CFG_MAX_ROUTES);
		return;
	}
	if ((l->routes = cfg_calloc(err, (size_t)n, sizeof(*l->routes))) ==
	    NULL)
		return;
	l->nroutes = (size_t)n;
	cJSON_ArrayForEach (m, v) {
		cfg_path_index(p, path, i);
		cfg_route(err, m, p, c, &l->routes[i++]);
	}

	for (i = 0; i < l->nroutes; i++) {
		a = &l->routes[i];
		for (j = 0; j < i; j++) {
			b = &l->routes[j];
			if (a->name == NULL || b->name == NULL ||
			    strcmp(a->name, b->name) != 0)
				continue;
			cfg_path_index(rp, path, i);
			cfg_path_key(p, rp, "name");
			cfg_path_index(also, path, j);
			cfg_err(err, p, "duplicate route name %s (also %s)",
				cfg_quote(q, sizeof(q), a->name), also);
			break;
		}
		for (j = 0; j < i; j++) {
			b = &l->routes[j];
			if (a->path == NULL || b->path == NULL ||
			    strcmp(a->path, b->path) != 0)
				continue;
			cfg_path_index(rp, path, i);
			cfg_path_key(p, rp, "path");
			cfg_path_index(also, path, j);
			cfg_err(err, p, "duplicate path %s (also %s)",
				cfg_quote(q, sizeof(q), a->path), also);
			break;
		}
	}
}

enum { TK_HEADER, TK_BODY, TK_KEEPALIVE, TK_N };

/* A listener's "timeouts" object. */
static void
cfg_timeouts(struct config_errors *err, const cJSON *v, const char *path,
	     struct config_listener *l)
{
	struct cfg_key k[TK_N] = {
	    [TK_HEADER] = {"header", NULL},
	    [TK_BODY] = {"body", NULL},
	    [TK_KEEPALIVE] = {"keepalive", NULL},
	};
	char p[CFG_PATH_LEN];

	if (cfg_object(err, v, path, k, TK_N) == -1)
		return;
	cfg_path_key(p, path, "header");
	l->header_timeout_ms =
	    cfg_duration(err, k[TK_HEADER].val, p, &r_header_timeout);
	cfg_path_key(p, path, "body");
	l->body_timeout_ms =
	    cfg_duration(err, k[TK_BODY].val, p, &r_body_timeout);
	cfg_path_key(p, path, "keepalive");
	l->keepalive_timeout_ms =
	    cfg_duration(err, k[TK_KEEPALIVE].val, p, &r_keepalive_timeout);
}

/*
 * A listener's "root_redirect": where GET and HEAD of "/" are sent (302).
 * A path on this host ("/grafana/") or an absolute http(s) URL; visible
 * ASCII only, so it goes into the Location field as written.
 */
static void
cfg_root_redirect(struct config_errors *err, const cJSON *v, const char *path,
		  struct config_listener *l)
{
	const char *s = cfg_string(err, v, path);
	size_t i, n;

	if (s == NULL)
		return;
	n = strlen(s);
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			break;
	if (n == 0 || n > CFG_ROOT_REDIRECT_MAX || i < n) {
		cfg_err(err, path,
			"must be 1 to %d visible ASCII characters (no spaces; "
			"percent-encode the rest)",
			CFG_ROOT_REDIRECT_MAX);
		return;
	}
	if (!((s[0] == '/' && s[1] != '/' && s[1] != '\\') ||
	      strncmp(s, "https://", 8) == 0 ||
	      strncmp(s, "http://", 7) == 0)) {
		cfg_err(err, path,
			"must be a path on this host (\"/grafana/\") or an "
			"http:// or https:// URL");
		return;
	}
	if (n == 1) {
		cfg_err(err, path, "\"/\" would send \"/\" to itself");
		return;
	}
	l->root_redirect = cfg_strdup(err, s);
	l->root_redirect_len = n;
}

enum {
	LK_LISTEN,
	LK_TIMEOUTS,
	LK_MAX_HEADER_SIZE,
	LK_MAX_URI_SIZE,
	LK_ROUTES,
	LK_TLS,
	LK_REDIRECT_HTTPS,
	LK_HTTPS_PORT,
	LK_ROOT_REDIRECT,
	LK_HEADERS,
	LK_ALLOW,
	LK_DENY,
	LK_TRUSTED_PROXIES,
	LK_N
};

/* One member of "listeners". */
static void
cfg_listener(struct config_errors *err, const cJSON *v, const char *path,
	     const struct config *c, struct config_listener *l)
{
	struct cfg_key k[LK_N] = {
	    [LK_LISTEN] = {"listen", NULL},
	    [LK_TIMEOUTS] = {"timeouts", NULL},
	    [LK_MAX_HEADER_SIZE] = {"max_header_size", NULL},
	    [LK_MAX_URI_SIZE] = {"max_uri_size", NULL},
	    [LK_ROUTES] = {"routes", NULL},
	    [LK_TLS] = {"tls", NULL},
	    [LK_REDIRECT_HTTPS] = {"redirect_https", NULL},
	    [LK_HTTPS_PORT] = {"https_port", NULL},
	    [LK_ROOT_REDIRECT] = {"root_redirect", NULL},
	    [LK_HEADERS] = {"headers", NULL},
	    [LK_ALLOW] = {"allow", NULL},
	    [LK_DENY] = {"deny", NULL},
	    [LK_TRUSTED_PROXIES] = {"trusted_proxies", NULL},
	};
	char p[CFG_PATH_LEN], sz[24];
	const char *s;

	l->header_timeout_ms = r_header_timeout.def;
	l->body_timeout_ms = r_body_timeout.def;
	l->keepalive_timeout_ms = r_keepalive_timeout.def;
	l->max_header_size = r_max_header_size.def;
	l->max_uri_size = r_max_uri_size.def;
	if (cfg_object(err, v, path, k, LK_N) == -1)
		return;

	cfg_path_key(p, path, "listen");
	if (k[LK_LISTEN].val == NULL)
		cfg_err(err, p, "required");
	else if ((s = cfg_string(err, k[LK_LISTEN].val, p)) != NULL) {
		l->listen = cfg_strdup(err, s);
		if (cfg_listen_addr(err, s, p, &l->addr, &l->addrlen) == -1)
			l->addrlen = 0;
	}

	if (k[LK_TIMEOUTS].val != NULL) {
		cfg_path_key(p, path, "timeouts");
		cfg_timeouts(err, k[LK_TIMEOUTS].val, p, l);
	}

	cfg_path_key(p, path, "max_header_size");
	l->max_header_size =
	    cfg_size(err, k[LK_MAX_HEADER_SIZE].val, p, &r_max_header_size);
	cfg_path_key(p, path, "max_uri_size");
	if (k[LK_MAX_URI_SIZE].val == NULL) {
		if (l->max_uri_size > l->max_header_size)
			l->max_uri_size = l->max_header_size;
	} else {
		l->max_uri_size =
		    cfg_size(err, k[LK_MAX_URI_SIZE].val, p, &r_max_uri_size);
		if (l->max_uri_size > l->max_header_size)
			cfg_err(
			    err, p, "must not exceed max_header_size (%s)",
			    cfg_fmt_size(sz, sizeof(sz), l->max_header_size));
	}

	cfg_path_key(p, path, "tls");
	l->tls = cfg_bool(err, k[LK_TLS].val, p, false);
	cfg_path_key(p, path, "redirect_https");
	l->redirect_https = cfg_bool(err, k[LK_REDIRECT_HTTPS].val, p, false);
	cfg_path_key(p, path, "https_port");
	l->https_port =
	    (unsigned)cfg_uint(err, k[LK_HTTPS_PORT].val, p, &r_https_port);
	if (l->tls && l->redirect_https)
		cfg_err(err, p, "a TLS listener cannot redirect to https");
	if (l->tls && c->tls.settings.ncerts == 0) {
		cfg_path_key(p, path, "tls");
		cfg_err(err, p, "needs certificates in tls.certificates");
	}

	cfg_path_key(p, path, "headers");
	l->headers = cfg_headers(err, k[LK_HEADERS].val, p);
	cfg_access(err, k[LK_ALLOW].val, k[LK_DENY].val, path, &l->access);
	cfg_path_key(p, path, "trusted_proxies");
	cfg_cidrs(err, k[LK_TRUSTED_PROXIES].val, p, &l->trusted, &l->ntrusted);
	cfg_path_key(p, path, "root_redirect");
	if (k[LK_ROOT_REDIRECT].val != NULL) {
		if (l->redirect_https)
			cfg_err(err, p,
				"a redirect_https listener sends every request "
				"to https already");
		else
			cfg_root_redirect(err, k[LK_ROOT_REDIRECT].val, p, l);
	}

	cfg_path_key(p, path, "routes");
	if (l->redirect_https) {
		if (k[LK_ROUTES].val != NULL)
			cfg_err(err, p,
				"a redirect_https listener has no routes (it "
				"answers every request with 308, /healthz with "
				"200)");
	} else if (k[LK_ROUTES].val == NULL)
		cfg_err(err, p, "required");
	else
		cfg_routes(err, k[LK_ROUTES].val, p, c, l);
}

/* Port of a sockaddr_in or sockaddr_in6, network order. */
static in_port_t
cfg_addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_port;
	return ((const struct sockaddr_in6 *)a)->sin6_port;
}

static bool
cfg_addr_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(
	    &((const struct sockaddr_in6 *)a)->sin6_addr);
}

/*
 * Compares two listening addresses: 0 if they can both be bound, 1 if they
 * are the same, 2 if one is the wildcard of the other's family and port
 * (with SO_REUSEPORT both would bind and split the traffic silently).
 */
static int
cfg_addr_clash(const struct sockaddr_storage *a, socklen_t alen,
	       const struct sockaddr_storage *b, socklen_t blen)
{
	bool same;

	if (alen == 0 || blen == 0 || a->ss_family != b->ss_family ||
	    cfg_addr_port(a) != cfg_addr_port(b))
		return 0;
	if (a->ss_family == AF_INET)
		same = ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	else
		same = memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	if (same)
		return 1;
	return cfg_addr_any(a) || cfg_addr_any(b) ? 2 : 0;
}

/* "listeners": 1 to 64, each listening on its own address. */
static void
cfg_listeners(struct config_errors *err, const cJSON *v, struct config *c)
{
	const cJSON *m;
	const struct config_listener *a, *b;
	char p[CFG_PATH_LEN], lp[CFG_PATH_LEN];
	char q[CFG_QUOTE_LEN], qb[CFG_QUOTE_LEN];
	int n, clash;
	size_t i = 0, j;

	if (v == NULL) {
		cfg_err(err, "listeners", "required");
		return;
	}
	if (!cJSON_IsArray(v)) {
		cfg_err(err, "listeners", "must be an array");
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n < 1 || n > CFG_MAX_LISTENERS) {
		cfg_err(err, "listeners", "must list 1 to %d listeners",
			CFG_MAX_LISTENERS);
		return;
	}
	if ((c->listeners =
		 cfg_calloc(err, (size_t)n, sizeof(*c->listeners))) == NULL)
		return;
	c->nlisteners = (size_t)n;
	cJSON_ArrayForEach (m, v) {
		cfg_path_index(p, "listeners", i);
		cfg_listener(err, m, p, c, &c->listeners[i++]);
	}

	for (i = 0; i < c->nlisteners; i++) {
		a = &c->listeners[i];
		for (j = 0; j < i; j++) {
			b = &c->listeners[j];
			clash = cfg_addr_clash(&a->addr, a->addrlen, &b->addr,
					       b->addrlen);
			if (clash == 0)
				continue;
			cfg_path_index(lp, "listeners", i);
			cfg_path_key(p, lp, "listen");
			if (clash == 1)
				cfg_err(err, p,
					"duplicate address %s (also "
					"listeners[%zu])",
					cfg_quote(q, sizeof(q), a->listen), j);
			else
				cfg_err(err, p,
					"address %s overlaps listeners[%zu] "
					"(%s)",
					cfg_quote(q, sizeof(q), a->listen), j,
					cfg_quote(qb, sizeof(qb), b->listen));
			break;
		}
	}
}

/* "resolvers": DNS servers for upstream names, numeric "ip:port" (nginx's
 * "resolver"); without it, /etc/resolv.conf. The hosts file is read
 * either way. */
static void
cfg_resolvers(struct config_errors *err, const cJSON *v, struct config *c)
{
	if (v != NULL)
		cfg_hostports(err, v, "resolvers", true, &c->resolvers,
			      &c->nresolvers);
}

/* tls.certificates[i].self_signed */
static struct tls_self_signed *
cfg_self_signed(struct config_errors *err, const cJSON *v, const char *path)
{
	struct cfg_key k[] = {{"common_name", NULL},
			      {"alt_names", NULL},
			      {"key_type", NULL},
			      {"days", NULL}};
	struct tls_self_signed *ss;
	char p[CFG_PATH_LEN];
	const cJSON *e;
	const char *str;
	size_t i = 0;

	if (cfg_object(err, v, path, k, 4) == -1)
		return NULL;
	if ((ss = cfg_calloc(err, 1, sizeof(*ss))) == NULL)
		return NULL;
	ss->key_type = TLS_KEY_ECDSA_P256;
	cfg_path_key(p, path, "common_name");
	if (k[0].val == NULL)
		cfg_err(err, p, "required");
	else if ((str = cfg_string(err, k[0].val, p)) != NULL)
		ss->common_name = cfg_strdup(err, str);
	cfg_path_key(p, path, "alt_names");
	if (k[1].val != NULL) {
		if (!cJSON_IsArray(k[1].val)) {
			cfg_err(err, p, "must be an array");
		} else if ((ss->alt_names = cfg_calloc(
				err, (size_t)cJSON_GetArraySize(k[1].val) + 1,
				sizeof(char *))) != NULL) {
			cJSON_ArrayForEach (e, k[1].val) {
				char ep[CFG_PATH_LEN];

				cfg_path_index(ep, p, i);
				if ((str = cfg_string(err, e, ep)) != NULL)
					ss->alt_names[ss->nalt_names++] =
					    cfg_strdup(err, str);
				i++;
			}
		}
	}
	cfg_path_key(p, path, "key_type");
	if (k[2].val != NULL && (str = cfg_string(err, k[2].val, p)) != NULL) {
		if (strcmp(str, "rsa") == 0)
			ss->key_type = TLS_KEY_RSA_2048;
		else if (strcmp(str, "ecdsa") != 0)
			cfg_err(err, p, "must be \"ecdsa\" or \"rsa\"");
	}
	cfg_path_key(p, path, "days");
	ss->days = (unsigned)cfg_uint(err, k[3].val, p, &r_cert_days);
	return ss;
}

/*
 * tls.certificates[i].ocsp, .ocsp_file, .ocsp_responder (k[3..5]): the
 * file is checked against the certificate when the pair is loaded (-t,
 * start, reload), not here.
 */
static void
cfg_ocsp(struct config_errors *err, const struct cfg_key *k, const char *path,
	 struct tls_cert_config *cc)
{
	char kp[CFG_PATH_LEN], q[CFG_QUOTE_LEN];
	const char *str;

	cfg_path_key(kp, path, "ocsp");
	cc->ocsp = cfg_bool(err, k[3].val, kp, true);
	cfg_path_key(kp, path, "ocsp_file");
	if (k[4].val != NULL && (str = cfg_string(err, k[4].val, kp)) != NULL) {
		if (str[0] == '\0')
			cfg_err(err, kp, "must not be empty");
		else if (!cc->ocsp)
			cfg_err(err, kp, "given, but ocsp is false");
		else
			cc->ocsp_file = cfg_strdup(err, str);
	}
	cfg_path_key(kp, path, "ocsp_responder");
	if (k[5].val == NULL || (str = cfg_string(err, k[5].val, kp)) == NULL)
		return;
	if (strncasecmp(str, "http://", 7) != 0 &&
	    strncasecmp(str, "https://", 8) != 0)
		cfg_err(err, kp, "%s: must be an http:// or https:// URL",
			cfg_quote(q, sizeof(q), str));
	else if (strlen(str) > 1024 || strpbrk(str, " \t\r\n") != NULL)
		cfg_err(err, kp,
			"%s: at most 1024 bytes, without spaces or "
			"line breaks",
			cfg_quote(q, sizeof(q), str));
	else if (!cc->ocsp)
		cfg_err(err, kp, "given, but ocsp is false");
	else if (k[4].val != NULL)
		cfg_err(err, kp,
			"not with ocsp_file (a file is never fetched)");
	else
		cc->ocsp_responder = cfg_strdup(err, str);
}

/* tls.certificates: cert/key pairs, the first the default. */
static void
cfg_certificates(struct config_errors *err, const cJSON *v, const char *path,
		 struct tls_settings *ts)
{
	const cJSON *e;
	char p[CFG_PATH_LEN], kp[CFG_PATH_LEN];
	const char *str;
	size_t i = 0;
	int n;

	if (!cJSON_IsArray(v)) {
		cfg_err(err, path, "must be an array");
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n < 1 || n > CFG_MAX_SERVERS) {
		cfg_err(err, path, "must list 1 to %d certificates",
			CFG_MAX_SERVERS);
		return;
	}
	if ((ts->certs = cfg_calloc(err, (size_t)n, sizeof(*ts->certs))) ==
	    NULL)
		return;
	ts->ncerts = (size_t)n;
	cJSON_ArrayForEach (e, v) {
		struct cfg_key k[] = {
		    {"cert", NULL},	   {"key", NULL},
		    {"self_signed", NULL}, {"ocsp", NULL},
		    {"ocsp_file", NULL},   {"ocsp_responder", NULL}};
		struct tls_cert_config *cc = &ts->certs[i];

		cc->ocsp = true;
		/* "tls.certificates[63]" at most: no cut. */
		snprintf(cc->where, sizeof(cc->where), "%s[%zu]", path, i);
		cfg_path_index(p, path, i++);
		if (cfg_object(err, e, p, k, 6) == -1)
			continue;
		cfg_path_key(kp, p, "cert");
		if (k[0].val == NULL)
			cfg_err(err, kp, "required");
		else if ((str = cfg_string(err, k[0].val, kp)) != NULL)
			cc->cert_path = cfg_strdup(err, str);
		cfg_path_key(kp, p, "key");
		if (k[1].val == NULL)
			cfg_err(err, kp, "required");
		else if ((str = cfg_string(err, k[1].val, kp)) != NULL)
			cc->key_path = cfg_strdup(err, str);
		if (k[2].val != NULL) {
			cfg_path_key(kp, p, "self_signed");
			cc->self_signed = cfg_self_signed(err, k[2].val, kp);
		}
		cfg_ocsp(err, k, p, cc);
	}
}

/* "tls": certificates and policy shared by every TLS listener. */
static void
cfg_tls(struct config_errors *err, const cJSON *v, struct config *c)
{
	struct cfg_key k[] = {
	    {"certificates", NULL},	   {"ciphers", NULL},
	    {"ciphersuites", NULL},	   {"session_tickets", NULL},
	    {"ticket_key_rotation", NULL}, {"hsts_max_age", NULL}};
	struct tls_settings *ts = &c->tls.settings;
	const char *str;

	ts->session_tickets = true;
	ts->ticket_key_rotation_ms = r_ticket_rotation.def;
	if (v == NULL || cfg_object(err, v, "tls", k, 6) == -1)
		return;
	if (k[0].val == NULL)
		cfg_err(err, "tls.certificates", "required");
	else
		cfg_certificates(err, k[0].val, "tls.certificates", ts);
	if (k[1].val != NULL &&
	    (str = cfg_string(err, k[1].val, "tls.ciphers")) != NULL)
		ts->ciphers = cfg_strdup(err, str);
	if (k[2].val != NULL &&
	    (str = cfg_string(err, k[2].val, "tls.ciphersuites")) != NULL)
		ts->ciphersuites = cfg_strdup(err, str);
	ts->session_tickets =
	    cfg_bool(err, k[3].val, "tls.session_tickets", true);
	ts->ticket_key_rotation_ms = cfg_duration(
	    err, k[4].val, "tls.ticket_key_rotation", &r_ticket_rotation);
	c->tls.hsts_max_age_s =
	    cfg_duration(err, k[5].val, "tls.hsts_max_age", &r_hsts_max_age) /
	    1000;
}

/* "admin": the metrics and health listener. */
static void
cfg_admin(struct config_errors *err, const cJSON *v, struct config *c)
{
	struct cfg_key k[] = {{"listen", NULL}};
	const char *s = ADMIN_LISTEN_DEFAULT;

	if (v != NULL) {
		if (cfg_object(err, v, "admin", k, 1) == -1)
			return;
		if (k[0].val != NULL &&
		    (s = cfg_string(err, k[0].val, "admin.listen")) == NULL)
			return;
	}
	if ((c->admin_listen = cfg_strdup(err, s)) == NULL)
		return;
	if (cfg_listen_addr(err, s, "admin.listen", &c->admin_addr,
			    &c->admin_addrlen) == -1)
		c->admin_addrlen = 0;
}

/* Checks the admin address against every listener's. */
static void
cfg_admin_clash(struct config_errors *err, const struct config *c)
{
	const struct config_listener *l;
	char q[CFG_QUOTE_LEN];
	size_t i;
	int clash;

	for (i = 0; i < c->nlisteners; i++) {
		l = &c->listeners[i];
		clash = cfg_addr_clash(&c->admin_addr, c->admin_addrlen,
				       &l->addr, l->addrlen);
		if (clash == 1)
			cfg_err(err, "admin.listen",
				"same address as listeners[%zu] (%s)", i,
				cfg_quote(q, sizeof(q), l->listen));
		else if (clash == 2)
			cfg_err(err, "admin.listen",
				"overlaps listeners[%zu] (%s)", i,
				cfg_quote(q, sizeof(q), l->listen));
	}
}

/* The online CPU count, within 1..CONFIG_MAX_WORKERS. */
static unsigned
cfg_nproc(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	if (n > CONFIG_MAX_WORKERS)
		return CONFIG_MAX_WORKERS;
	return (unsigned)n;
}

enum {
	AK_HTPASSWD,
	AK_ALLOW_PLAINTEXT,
	AK_CACHE_TTL,
	AK_MAX_FAILURES,
	AK_FAILURE_WINDOW,
	AK_AWS_SECRET,
	AK_SECRET_REFRESH,
	AK_N
};

/* A realm's "htpasswd": one path or an array of 1 to 16. */
static void
cfg_htpasswd_files(struct config_errors *err, const cJSON *v, const char *path,
		   struct config_realm *r)
{
	const cJSON *m;
	char p[CFG_PATH_LEN];
	const char *s;
	size_t at = 0;
	int n;

	if (cJSON_IsString(v)) {
		if ((r->htpasswd = cfg_calloc(err, 1, sizeof(char *))) == NULL)
			return;
		if (v->valuestring[0] == '\0')
			cfg_err(err, path, "must not be empty");
		r->htpasswd[0] = cfg_strdup(err, v->valuestring);
		r->nhtpasswd = 1;
		return;
	}
	n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
	if (n < 1 || n > CFG_MAX_HTPASSWD) {
		cfg_err(err, path, "must be a file name or a list of 1 to %d",
			CFG_MAX_HTPASSWD);
		return;
	}
	if ((r->htpasswd = cfg_calloc(err, (size_t)n, sizeof(char *))) == NULL)
		return;
	r->htpasswd_list = true;
	cJSON_ArrayForEach (m, v) {
		cfg_path_index(p, path, at++);
		if ((s = cfg_string(err, m, p)) == NULL)
			continue;
		if (s[0] == '\0')
			cfg_err(err, p, "must not be empty");
		r->htpasswd[r->nhtpasswd++] = cfg_strdup(err, s);
	}
}

/* One member of "realms"; its key is the realm's name. */
static void
cfg_realm(struct config_errors *err, const cJSON *v, const char *path,
	  struct config_realm *r)
{
	struct cfg_key k[AK_N] = {
	    [AK_HTPASSWD] = {"htpasswd", NULL},
	    [AK_ALLOW_PLAINTEXT] = {"allow_plaintext", NULL},
	    [AK_CACHE_TTL] = {"cache_ttl", NULL},
	    [AK_MAX_FAILURES] = {"max_failures", NULL},
	    [AK_FAILURE_WINDOW] = {"failure_window", NULL},
	    [AK_AWS_SECRET] = {"aws_secret", NULL},
	    [AK_SECRET_REFRESH] = {"secret_refresh", NULL},
	};
	char p[CFG_PATH_LEN];
	const char *sv;

	if (!cfg_is_name(v->string))
		cfg_err(err, path,
			"realm name must be 1 to %d of A-Z a-z 0-9 _ -",
			CONFIG_NAME_MAX);
	/* Kept even when invalid, so routes naming it add no noise. */
	r->name = cfg_strdup(err, v->string);
	r->cache_ttl_ms = r_cache_ttl.def;
	r->max_failures = (unsigned)r_max_failures.def;
	r->failure_window_ms = r_failure_window.def;
	r->secret_refresh_ms = r_secret_refresh.def;
	if (cfg_object(err, v, path, k, AK_N) == -1)
		return;
	if (k[AK_HTPASSWD].val == NULL && k[AK_AWS_SECRET].val == NULL)
		cfg_err(err, path,
			"needs \"htpasswd\" or \"aws_secret\" (there are no "
			"default passwords)");
	cfg_path_key(p, path, "htpasswd");
	if (k[AK_HTPASSWD].val != NULL)
		cfg_htpasswd_files(err, k[AK_HTPASSWD].val, p, r);
	cfg_path_key(p, path, "aws_secret");
	if (k[AK_AWS_SECRET].val != NULL &&
	    (sv = cfg_string(err, k[AK_AWS_SECRET].val, p)) != NULL) {
		/* Names and ARNs: 1..2048 printable ASCII (AWS's limit). */
		size_t i, n = strlen(sv);

		for (i = 0; i < n; i++)
			if (sv[i] < 0x21 || sv[i] > 0x7e)
				break;
		if (n == 0 || n > 2048 || i < n)
			cfg_err(err, p,
				"must be a secret name or ARN: 1 to 2048 "
				"visible ASCII characters");
		r->aws_secret = cfg_strdup(err, sv);
	}
	cfg_path_key(p, path, "secret_refresh");
	r->secret_refresh_ms =
	    cfg_duration(err, k[AK_SECRET_REFRESH].val, p, &r_secret_refresh);
	if (k[AK_SECRET_REFRESH].val != NULL && k[AK_AWS_SECRET].val == NULL)
		cfg_err(err, p, "only applies to a realm with aws_secret");
	cfg_path_key(p, path, "allow_plaintext");
	r->allow_plaintext = cfg_bool(err, k[AK_ALLOW_PLAINTEXT].val, p, false);
	cfg_path_key(p, path, "cache_ttl");
	r->cache_ttl_ms =
	    cfg_duration(err, k[AK_CACHE_TTL].val, p, &r_cache_ttl);
	cfg_path_key(p, path, "max_failures");
	r->max_failures =
	    (unsigned)cfg_uint(err, k[AK_MAX_FAILURES].val, p, &r_max_failures);
	cfg_path_key(p, path, "failure_window");
	r->failure_window_ms =
	    cfg_duration(err, k[AK_FAILURE_WINDOW].val, p, &r_failure_window);
}

/* "realms": an object of realms keyed by name; optional. */
static void
cfg_realms(struct config_errors *err, const cJSON *v, struct config *c)
{
	const cJSON *m, *o;
	char p[CFG_PATH_LEN];
	int n;
	size_t i = 0;

	if (v == NULL)
		return;
	if (!cJSON_IsObject(v)) {
		cfg_err(err, "realms", "must be an object");
		return;
	}
	n = cJSON_GetArraySize(v);
	if (n > CFG_MAX_REALMS) {
		cfg_err(err, "realms", "must hold at most %d realms",
			CFG_MAX_REALMS);
		return;
	}
	if (n == 0)
		return;
	if ((c->realms = cfg_calloc(err, (size_t)n, sizeof(*c->realms))) ==
	    NULL)
		return;
	c->nrealms = (size_t)n;
	cJSON_ArrayForEach (m, v) {
		cfg_path_key(p, "realms", m->string);
		for (o = v->child; o != m; o = o->next)
			if (strcmp(o->string, m->string) == 0)
				break;
		if (o != m)
			cfg_err(err, p, "duplicate key");
		cfg_realm(err, m, p, &c->realms[i++]);
	}
}

enum { AUK_VERIFIER_THREADS, AUK_CACHE_ENTRIES, AUK_CHECK_TIMEOUT, AUK_N };

/* "auth": the verifier pool and the per-worker cache; optional. */
static void
cfg_auth(struct config_errors *err, const cJSON *v, struct config *c)
{
	struct cfg_key k[AUK_N] = {
	    [AUK_VERIFIER_THREADS] = {"verifier_threads", NULL},
	    [AUK_CACHE_ENTRIES] = {"cache_entries", NULL},
	    [AUK_CHECK_TIMEOUT] = {"check_timeout", NULL},
	};

	c->auth.verifier_threads = (unsigned)r_verifier_threads.def;
	c->auth.cache_entries = (size_t)r_cache_entries.def;
	c->auth.check_timeout_ms = r_check_timeout.def;
	if (v == NULL || cfg_object(err, v, "auth", k, AUK_N) == -1)
		return;
	c->auth.verifier_threads =
	    (unsigned)cfg_uint(err, k[AUK_VERIFIER_THREADS].val,
			       "auth.verifier_threads", &r_verifier_threads);
	c->auth.cache_entries =
	    (size_t)cfg_uint(err, k[AUK_CACHE_ENTRIES].val,
			     "auth.cache_entries", &r_cache_entries);
	c->auth.check_timeout_ms =
	    cfg_duration(err, k[AUK_CHECK_TIMEOUT].val, "auth.check_timeout",
			 &r_check_timeout);
}

/* "access_log": true (stdout), false, or a file appended to. */
static void
cfg_access_log(struct config_errors *err, const cJSON *v, struct config *c)
{
	c->access_log = ACCESS_LOG_DEFAULT;
	if (v == NULL)
		return;
	if (cJSON_IsBool(v)) {
		c->access_log = cJSON_IsTrue(v);
		return;
	}
	if (!cJSON_IsString(v)) {
		cfg_err(err, "access_log",
			"must be true (stdout), false, or an absolute file "
			"path");
		return;
	}
	c->access_log_path = cfg_abs_path(err, v, "access_log");
}

enum {
	K_WORKERS,
	K_MAX_CONNECTIONS,
	K_ACCESS_LOG,
	K_PID_FILE,
	K_METRICS,
	K_DRAIN_TIMEOUT,
	K_ADMIN,
	K_RESOLVERS,
	K_TLS,
	K_UPSTREAMS,
	K_AUTH,
	K_REALMS,
	K_LISTENERS,
	K_N
};

/* The top-level object. Upstreams and realms come first: routes refer to
 * them. */
static void
cfg_root(struct config_errors *err, const cJSON *root, struct config *c)
{
	struct cfg_key k[K_N] = {
	    [K_WORKERS] = {"workers", NULL},
	    [K_MAX_CONNECTIONS] = {"max_connections", NULL},
	    [K_ACCESS_LOG] = {"access_log", NULL},
	    [K_PID_FILE] = {"pid_file", NULL},
	    [K_METRICS] = {"metrics", NULL},
	    [K_DRAIN_TIMEOUT] = {"drain_timeout", NULL},
	    [K_ADMIN] = {"admin", NULL},
	    [K_RESOLVERS] = {"resolvers", NULL},
	    [K_TLS] = {"tls", NULL},
	    [K_UPSTREAMS] = {"upstreams", NULL},
	    [K_AUTH] = {"auth", NULL},
	    [K_REALMS] = {"realms", NULL},
	    [K_LISTENERS] = {"listeners", NULL},
	};

	if (!cJSON_IsObject(root)) {
		cfg_err(err, "(root)", "not a JSON object");
		return;
	}
	cfg_object(err, root, "", k, K_N);
	c->workers =
	    (unsigned)cfg_uint(err, k[K_WORKERS].val, "workers", &r_workers);
	if (c->workers == 0)
		c->workers = cfg_nproc();
	c->max_connections =
	    (size_t)cfg_uint(err, k[K_MAX_CONNECTIONS].val, "max_connections",
			     &r_max_connections);
	cfg_access_log(err, k[K_ACCESS_LOG].val, c);
	if (k[K_PID_FILE].val != NULL)
		c->pid_file = cfg_abs_path(err, k[K_PID_FILE].val, "pid_file");
	c->metrics = cfg_bool(err, k[K_METRICS].val, "metrics", true);
	c->drain_timeout_ms = cfg_duration(err, k[K_DRAIN_TIMEOUT].val,
					   "drain_timeout", &r_drain_timeout);
	cfg_admin(err, k[K_ADMIN].val, c);
	cfg_resolvers(err, k[K_RESOLVERS].val, c);
	cfg_tls(err, k[K_TLS].val, c);
	cfg_upstreams(err, k[K_UPSTREAMS].val, c);
	cfg_auth(err, k[K_AUTH].val, c);
	cfg_realms(err, k[K_REALMS].val, c);
	cfg_listeners(err, k[K_LISTENERS].val, c);
	cfg_admin_clash(err, c);
}

/* Records "(json): <what> at line L, column C" for byte offset pos. */
static void
cfg_json_err(struct config_errors *err, const char *json, size_t pos,
	     const char *what)
{
	size_t i, line = 1, col = 1;

	for (i = 0; i < pos; i++) {
		if (json[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	cfg_err(err, "(json)", "%s at line %zu, column %zu", what, line, col);
}

/*
 * Checks what cJSON lets through but RFC 8259 forbids or this parser
 * cannot keep: control bytes outside strings (cJSON skips them as
 * whitespace), raw control characters in strings, and "\u0000", which
 * would silently cut a C string short. Runs on text cJSON accepted, so
 * string boundaries are known. Returns 0, or -1 with the error recorded.
 */
static int
cfg_json_lint(struct config_errors *err, const char *json, size_t len)
{
	bool in_str = false;
	unsigned char ch;
	size_t i;

	for (i = 0; i < len; i++) {
		ch = (unsigned char)json[i];
		if (!in_str) {
			if (ch == '"')
				in_str = true;
			else if (ch < 0x20 && ch != ' ' && ch != '\t' &&
				 ch != '\n' && ch != '\r')
				goto bad_control;
		} else if (ch == '"')
			in_str = false;
		else if (ch < 0x20)
			goto bad_control;
		else if (ch == '\\' && i + 1 < len) {
			if (json[i + 1] == 'u' && i + 5 < len &&
			    memcmp(json + i + 2, "0000", 4) == 0) {
				cfg_json_err(err, json, i,
					     "\"\\u0000\" is not allowed");
				return -1;
			}
			i++;
		}
	}
	return 0;

bad_control:
	cfg_json_err(err, json, i, "control character");
	return -1;
}

/*
 * Parses json[0..len), which must be NUL-terminated at len, into a cJSON
 * tree holding exactly one value. Returns it, or NULL with the error.
 */
static cJSON *
cfg_json_parse(struct config_errors *err, const char *json, size_t len)
{
	const char *end = NULL;
	cJSON *root;
	size_t i;

	for (i = 0; i < len; i++)
		if (strchr(" \t\r\n", json[i]) == NULL || json[i] == '\0')
			break;
	if (i == len) {
		cfg_err(err, "(json)", "empty document");
		return NULL;
	}
	/* The parse end, unlike cJSON_GetErrorPtr(), is not a global. */
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (root == NULL) {
		i = end != NULL && end >= json && end <= json + len
			? (size_t)(end - json)
			: 0;
		cfg_json_err(err, json, i, "syntax error");
		return NULL;
	}
	for (i = (size_t)(end - json); i < len; i++)
		if (strchr(" \t\r\n", json[i]) == NULL || json[i] == '\0')
			break;
	if (i < len) {
		cfg_json_err(err, json, i, "text after the JSON value");
		goto fail;
	}
	if (cfg_json_lint(err, json, len) == -1)
		goto fail;
	return root;

fail:
	cJSON_Delete(root);
	return NULL;
}

/* Collects config.user_headers from the routes; 0 or -1 (out of memory). */
static int
cfg_user_headers(struct config_errors *err, struct config *c)
{
	size_t i, j, k, n = 0;

	for (i = 0; i < c->nlisteners; i++)
		n += c->listeners[i].nroutes;
	if ((c->user_headers = cfg_calloc(err, n > 0 ? n : 1,
					  sizeof(*c->user_headers))) == NULL)
		return -1;
	for (i = 0; i < c->nlisteners; i++)
		for (j = 0; j < c->listeners[i].nroutes; j++) {
			const struct config_route *r =
			    &c->listeners[i].routes[j];

			if (r->user_header == NULL)
				continue;
			for (k = 0; k < c->nuser_headers; k++)
				if (c->user_headers[k].n ==
					r->user_header_len &&
				    http_eq_ci(c->user_headers[k].p,
					       r->user_header,
					       r->user_header_len))
					break;
			if (k == c->nuser_headers)
				c->user_headers[c->nuser_headers++] =
				    (struct rewrite_str){r->user_header,
							 r->user_header_len};
		}
	return 0;
}

/* Frees c and everything it owns, whatever state parsing left it in. */
static void
config_free(struct config *c)
{
	struct config_upstream *u;
	struct config_listener *l;
	size_t i, j;

	if (c == NULL)
		return;
	for (i = 0; i < c->nupstreams; i++) {
		u = &c->upstreams[i];
		for (j = 0; j < u->nservers; j++)
			free(u->servers[j].host);
		free(u->servers);
		free(u->name);
		free(u->check.path);
		free(u->check.host);
		free(u->health); /* plain memory; see health_build() */
	}
	free(c->upstreams);
	for (i = 0; i < c->nlisteners; i++) {
		l = &c->listeners[i];
		for (j = 0; j < l->nroutes; j++) {
			free(l->routes[j].name);
			free(l->routes[j].path);
			free(l->routes[j].user_header);
			config_headers_free(l->routes[j].headers);
			free(l->routes[j].access.allow);
			free(l->routes[j].access.deny);
			ratelimit_unref(l->routes[j].limiter);
		}
		free(l->routes);
		free(l->listen);
		free(l->root_redirect);
		config_headers_free(l->headers);
		free(l->access.allow);
		free(l->access.deny);
		free(l->trusted);
	}
	free(c->listeners);
	for (i = 0; i < c->nrealms; i++) {
		struct config_realm *r = &c->realms[i];

		for (j = 0; j < r->nhtpasswd; j++)
			free(r->htpasswd[j]);
		free(r->htpasswd);
		free(r->aws_secret);
		free(r->name);
		auth_realm_unref(r->auth);
	}
	free(c->realms);
	free(c->user_headers);
	for (i = 0; i < c->nresolvers; i++)
		free(c->resolvers[i].host);
	free(c->resolvers);
	for (i = 0; i < c->tls.settings.ncerts; i++) {
		struct tls_cert_config *cc = &c->tls.settings.certs[i];

		free(cc->cert_path);
		free(cc->key_path);
		free(cc->ocsp_file);
		free(cc->ocsp_responder);
		if (cc->self_signed != NULL) {
			for (j = 0; j < cc->self_signed->nalt_names; j++)
				free(cc->self_signed->alt_names[j]);
			free(cc->self_signed->alt_names);
			free(cc->self_signed->common_name);
			free(cc->self_signed);
		}
	}
	free(c->tls.settings.certs);
	free((char *)c->tls.settings.ciphers);
	free((char *)c->tls.settings.ciphersuites);
	tls_context_unref(c->tls_ctx);
	free(c->admin_listen);
	free(c->access_log_path);
	free(c->pid_file);
	free(c);
}

/*
 * Resets err, then parses. json need not be NUL-terminated; a copy that
 * is goes to cJSON, so embedded NULs and the end of input are handled.
 * err may be NULL when only success matters. With `partial`, a config
 * with errors is returned too (for config_load_partial()).
 */
static struct config *
cfg_parse(const char *json, size_t len, struct config_errors *err, bool partial)
{
	struct config_errors scratch;
	struct config *c = NULL;
	cJSON *root = NULL;
	char *buf = NULL;

	if (err == NULL)
		err = &scratch;
	err->n = 0;
	err->dropped = 0;
	if (len > CONFIG_FILE_MAX) {
		cfg_err(err, "(json)", "larger than %u MiB",
			CONFIG_FILE_MAX >> 20);
		goto fail;
	}
	if ((buf = malloc(len + 1)) == NULL) {
		cfg_err(err, "(internal)", "out of memory");
		goto fail;
	}
	if (len > 0)
		memcpy(buf, json, len);
	buf[len] = '\0';
	if ((root = cfg_json_parse(err, buf, len)) == NULL)
		goto fail;
	if ((c = cfg_calloc(err, 1, sizeof(*c))) == NULL)
		goto fail;
	atomic_init(&c->refs, 1);
	cfg_root(err, root, c);
	if (err->n > 0 || err->dropped > 0 || cfg_user_headers(err, c) == -1) {
		if (partial)
			goto keep;
		goto fail;
	}
keep:
	cJSON_Delete(root);
	free(buf);
	return c;

fail:
	config_free(c);
	cJSON_Delete(root);
	free(buf);
	return NULL;
}

struct config *
config_parse(const char *json, size_t len, struct config_errors *err)
{
	return cfg_parse(json, len, err, false);
}

/*
 * Reads the whole file, up to CONFIG_FILE_MAX bytes, with read(2) so pipes
 * and /dev/stdin work too. Returns 0 with *out (caller frees) and *outlen,
 * or -1 with errno set (EFBIG when the file is too large).
 */
static int
cfg_read_file(const char *path, char **out, size_t *outlen)
{
	char *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		if (len == cap) {
			if (cap > CONFIG_FILE_MAX) {
				errno = EFBIG;
				goto fail;
			}
			cap = cap == 0 ? 64 * 1024 : cap * 2;
			if (cap > CONFIG_FILE_MAX + 1)
				cap = CONFIG_FILE_MAX + 1;
			if ((nbuf = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;

fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

static struct config *
cfg_load(const char *path, struct config_errors *err, bool partial)
{
	struct config_errors scratch;
	struct config *c;
	char q[CFG_QUOTE_LEN];
	char *buf;
	size_t len;

	if (err == NULL)
		err = &scratch;
	err->n = 0;
	err->dropped = 0;
	if (cfg_read_file(path, &buf, &len) == -1) {
		if (errno == EFBIG)
			cfg_err(err, "(file)", "%s is larger than %u MiB",
				cfg_quote(q, sizeof(q), path),
				CONFIG_FILE_MAX >> 20);
		else
			cfg_err(err, "(file)", "cannot read %s: %s",
				cfg_quote(q, sizeof(q), path), strerror(errno));
		return NULL;
	}
	c = cfg_parse(buf, len, err, partial);
	free(buf);
	return c;
}

struct config *
config_load(const char *path, struct config_errors *err)
{
	return cfg_load(path, err, false);
}

struct config *
config_load_partial(const char *path, struct config_errors *err)
{
	return cfg_load(path, err, true);
}

int
config_build_tls(struct config *c, char *err)
{
	size_t i;

	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].tls)
			break;
	if (i == c->nlisteners)
		return 0;
	if ((c->tls_ctx = tls_context_new(&c->tls.settings, err)) == NULL)
		return -1;
	return 0;
}

struct config *
config_ref(struct config *c)
{
	/* Relaxed: a new reference is made from one already held. */
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void
config_unref(struct config *c)
{
	if (c == NULL)
		return;
	/* Release our writes; the last holder acquires everyone's. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		config_free(c);
}

/* Reads a run of decimal digits into *n; NULL on none or on overflow. */
static const char *
cfg_digits(const char *s, uint64_t *n)
{
	uint64_t v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return NULL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return NULL;
	*n = v;
	return p;
}

/* Grammar: DIGIT+ ("ms" / "s" / "m" / "h" / "d"), lower case only. */
int
config_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
	    {"ms", MS}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY}};
	const char *p;
	uint64_t n;
	size_t i;

	if (s == NULL || (p = cfg_digits(s, &n)) == NULL)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (n > UINT64_MAX / units[i].ms)
			return -1;
		*ms = n * units[i].ms;
		return 0;
	}
	return -1;
}

/* Grammar: DIGIT+ [("k" / "m" / "g") ["b"]], case-insensitive. */
int
config_parse_size(const char *s, uint64_t *bytes)
{
	const char *p;
	uint64_t n, mult;

	if (s == NULL || (p = cfg_digits(s, &n)) == NULL)
		return -1;
	switch (*p) {
	case '\0':
		*bytes = n;
		return 0;
	case 'k':
	case 'K':
		mult = KIB;
		break;
	case 'm':
	case 'M':
		mult = MIB;
		break;
	case 'g':
	case 'G':
		mult = GIB;
		break;
	default:
		return -1;
	}
	p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p != '\0' || n > UINT64_MAX / mult)
		return -1;
	*bytes = n * mult;
	return 0;
}

/*
 * True if name is a plausible DNS name: dot-separated labels of 1 to 63
 * of [A-Za-z0-9_-] (underscore for container names), one final dot
 * allowed. Whether it resolves is found out later.
 */
static bool
cfg_is_hostname(const char *name)
{
	size_t label = 0;
	const char *p;

	for (p = name; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (cfg_word_char((unsigned char)*p)) {
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return p != name && (label > 0 || p[-1] == '.');
}

/* Port: 1 to 5 digits, 1..65535. Returns it, or 0 if invalid. */
static unsigned
cfg_port(const char *s)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == 5 || s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 65535 ? v : 0;
}

int
config_parse_cidr(const char *s, struct config_cidr *out, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1], *end;
	const char *slash = strchr(s, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	struct in_addr v4;
	unsigned long bits;
	unsigned max, i;
	bool is_v4;

	memset(out, 0, sizeof(*out));
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "not an address or address/prefix";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	is_v4 = inet_pton(AF_INET, host, &v4) == 1;
	if (is_v4) {
		out->addr[10] = out->addr[11] = 0xff;
		memcpy(out->addr + 12, &v4, 4);
	} else if (inet_pton(AF_INET6, host, out->addr) != 1) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	max = is_v4 ? 32 : 128;
	bits = max;
	if (slash != NULL) {
		errno = 0;
		if (slash[1] < '0' || slash[1] > '9' ||
		    (bits = strtoul(slash + 1, &end, 10)) > max || errno != 0 ||
		    *end != '\0') {
			*why = is_v4 ? "the prefix must be 0 to 32"
				     : "the prefix must be 0 to 128";
			return -1;
		}
	}
	out->bits = (unsigned)bits + (is_v4 ? 96 : 0);
	for (i = out->bits; i < 128; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8))) {
			*why = "has bits set past its prefix (write the "
			       "network's first address)";
			return -1;
		}
	return 0;
}

int
config_addr16(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr,
		       4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 0;
	}
	return -1;
}

static bool
cidr_has(const struct config_cidr *c, const uint8_t addr[16])
{
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return false;
	return rest == 0 || ((c->addr[full] ^ addr[full]) &
			     (uint8_t)(0xff << (8 - rest))) == 0;
}

bool
config_cidr_any(const struct config_cidr *c, size_t n, const uint8_t addr[16])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (cidr_has(&c[i], addr))
			return true;
	return false;
}

enum config_access_verdict
config_access_check(const struct config_access *a, const uint8_t addr[16])
{
	if (config_cidr_any(a->deny, a->ndeny, addr))
		return CONFIG_ACCESS_DENIED;
	if (a->nallow == 0 || config_cidr_any(a->allow, a->nallow, addr))
		return CONFIG_ACCESS_OK;
	return CONFIG_ACCESS_NOT_ALLOWED;
}

int
config_parse_hostport(const char *s, struct config_hostport *hp,
		      const char **why)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&hp->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&hp->addr;
	char host[CFG_HOST_MAX + 1];
	const char *h, *end, *port;
	size_t hlen;
	unsigned pnum;
	bool v6;

	memset(hp, 0, sizeof(*hp));
	if ((v6 = s[0] == '[')) {
		h = s + 1;
		if ((end = strchr(h, ']')) == NULL) {
			*why = "bad IPv6 literal";
			return -1;
		}
		port = end + 1;
		if (*port++ != ':') {
			*why = "missing port";
			return -1;
		}
	} else {
		h = s;
		if ((end = strrchr(s, ':')) == NULL) {
			*why = "missing port";
			return -1;
		}
		port = end + 1;
		if (memchr(h, ':', (size_t)(end - h)) != NULL) {
			*why = "IPv6 literal needs brackets";
			return -1;
		}
	}
	if (*port == '\0') {
		*why = "missing port";
		return -1;
	}
	if ((pnum = cfg_port(port)) == 0) {
		*why = "bad port";
		return -1;
	}
	if ((hlen = (size_t)(end - h)) > CFG_HOST_MAX) {
		*why = "host too long";
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	if (v6) {
		if (hlen == 0) {
			*why = "empty host";
			return -1;
		}
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "bad IPv6 literal";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((in_port_t)pnum);
		hp->addrlen = sizeof(*sin6);
		hp->numeric = true;
	} else if (hlen == 0 || inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		/* ":port" listens on every IPv4 address. */
		if (hlen == 0)
			snprintf(host, sizeof(host), "0.0.0.0");
		sin->sin_family = AF_INET;
		sin->sin_port = htons((in_port_t)pnum);
		hp->addrlen = sizeof(*sin);
		hp->numeric = true;
	} else if (strspn(host, "0123456789.") == hlen) {
		/* Not a name: a resolver would read "10.1" as 10.0.0.1. */
		*why = "bad IPv4 address";
		return -1;
	} else if (!cfg_is_hostname(host)) {
		*why = "bad host name";
		return -1;
	}
	if ((hp->host = strdup(host)) == NULL) {
		memset(hp, 0, sizeof(*hp));
		*why = "out of memory";
		return -1;
	}
	/* pnum <= 65535, so the port always fits. */
	if (snprintf(hp->port, sizeof(hp->port), "%u", pnum) < 0)
		hp->port[0] = '\0';
	return 0;
}

void
config_hostport_str(const struct config_hostport *hp, char *buf, size_t len)
{
	bool v6 = hp->host != NULL && strchr(hp->host, ':') != NULL;

	if (snprintf(buf, len, "%s%s%s:%s", v6 ? "[" : "",
		     hp->host != NULL ? hp->host : "", v6 ? "]" : "",
		     hp->port) < 0)
		buf[0] = '\0';
}
