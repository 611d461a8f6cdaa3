/*
 * main.c - portcullis-cost-exporter: the command line, the HTTP listener
 * (/metrics, /health) and signals (HUP refresh, TERM/INT exit). Every
 * option is checked before anything is bound; a bad one is named on
 * stderr and the exit status is 2.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "aws.h"
#include "config.h"
#include "exposition.h"
#include "log.h"
#include "refresh.h"

#define PROG "portcullis-cost-exporter"
#define SEC_MS 1000ull
#define MIN_MS (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define ENVIRONMENT_MAX 64
#define HTTP_TIMEOUT_S 10
#define HEALTHCHECK_TIMEOUT_MS 3000

/* Checked options; immutable once parsed. */
struct options {
	const char *listen;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t interval_ms;
	uint64_t retry_min_ms;
	const char *environment;
	bool healthcheck;
};

/* One row per duration option: bounds and default. */
static const struct duration_opt {
	const char *flag;
	uint64_t min, max, def;
} interval_opt = {"--interval", MIN_MS, DAY_MS, 6 * HOUR_MS},
  retry_min_opt = {"--retry-min", SEC_MS, DAY_MS, MIN_MS};

struct exporter {
	const struct options *opts;
	struct event_base *base;
	struct refresh *refresh;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--listen ADDR] [--interval DURATION]\n"
		"           [--environment NAME] [--retry-min DURATION]\n"
		"       " PROG " --healthcheck [--listen ADDR]\n"
		"       " PROG " --version | -h\n"
		"\n"
		"  --listen ADDR          serve /metrics and /health on ADDR "
		"(default :9091)\n"
		"  --interval DURATION    refresh from Cost Explorer this "
		"often, 1m to 1d\n"
		"                         (default 6h; each request costs USD "
		"0.01)\n"
		"  --environment NAME     the environment label (default "
		"$ENVIRONMENT, else dev)\n"
		"  --retry-min DURATION   first retry after a failed refresh, "
		"doubling up to\n"
		"                         the interval, 1s to 1d (default 1m)\n"
		"  --healthcheck          GET /health on ADDR; exit 0 if it "
		"answers 200\n"
		"signals: HUP refresh now, TERM/INT exit\n");
}

/* Prints "PROG: flag: message" and returns 2, the exit status. */
static int bad_option(const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad_option(const char *flag, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": %s: ", flag);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see " PROG " -h)\n");
	return 2;
}

static int
parse_duration(const struct duration_opt *o, const char *s, uint64_t *ms)
{
	if (config_parse_duration(s, ms) == -1)
		return bad_option(o->flag,
				  "\"%s\" is not a duration such as 90s, 5m, "
				  "6h or 1d",
				  s);
	if (*ms < o->min || *ms > o->max)
		return bad_option(o->flag,
				  "\"%s\" is out of range: %llu s to %llu s", s,
				  (unsigned long long)(o->min / SEC_MS),
				  (unsigned long long)(o->max / SEC_MS));
	return 0;
}

static int
parse_listen(const char *s, struct options *o)
{
	struct config_hostport hp;
	const char *why;

	if (config_parse_hostport(s, &hp, &why) == -1)
		return bad_option("--listen", "\"%s\": %s", s, why);
	free(hp.host);
	if (!hp.numeric)
		return bad_option("--listen",
				  "\"%s\" must be a numeric address such as "
				  ":9091 or 127.0.0.1:9091",
				  s);
	o->listen = s;
	o->addr = hp.addr;
	o->addrlen = hp.addrlen;
	return 0;
}

static int
check_environment(const char *source, const char *v)
{
	size_t i, n = strlen(v);

	if (n == 0 || n > ENVIRONMENT_MAX)
		return bad_option(source, "must be 1 to %d characters",
				  ENVIRONMENT_MAX);
	for (i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') ||
		      (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || v[i] == '-' ||
		      v[i] == '_' || v[i] == '.'))
			return bad_option(source,
					  "\"%s\": only A-Z a-z 0-9 - _ . "
					  "are allowed",
					  v);
	return 0;
}

/*
 * Fills o from argv and the environment. Returns -1 to go on, or the exit
 * status: 0 after --version or -h, 2 after a bad option (named on
 * stderr).
 */
static int
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"interval", required_argument, NULL, 'i'},
	    {"environment", required_argument, NULL, 'e'},
	    {"retry-min", required_argument, NULL, 'r'},
	    {"healthcheck", no_argument, NULL, 'H'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *listen = ":9091", *env = NULL, *interval = NULL;
	const char *retry_min = NULL, *env_source = "--environment";
	int c, rc;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'i':
			interval = optarg;
			break;
		case 'e':
			env = optarg;
			break;
		case 'r':
			retry_min = optarg;
			break;
		case 'H':
			o->healthcheck = true;
			break;
		case 'V':
			printf(PROG " %s (libevent %s, %s)\n",
			       PORTCULLIS_VERSION, event_get_version(),
			       curl_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return bad_option(argv[optind - 1], "needs a value");
		default:
			return bad_option(argv[optind - 1], "unknown option");
		}
	}
	if (optind != argc)
		return bad_option(argv[optind], "unexpected argument");
	if ((rc = parse_listen(listen, o)) != 0)
		return rc;
	o->interval_ms = interval_opt.def;
	if (interval != NULL && (rc = parse_duration(&interval_opt, interval,
						     &o->interval_ms)) != 0)
		return rc;
	o->retry_min_ms = retry_min_opt.def;
	if (retry_min != NULL && (rc = parse_duration(&retry_min_opt, retry_min,
						      &o->retry_min_ms)) != 0)
		return rc;
	if (o->retry_min_ms > o->interval_ms)
		return bad_option("--retry-min",
				  "must not be longer than --interval");
	if (env == NULL) {
		env = getenv("ENVIRONMENT");
		env_source = "ENVIRONMENT (from the environment)";
		if (env == NULL || env[0] == '\0')
			env = "dev";
	}
	if ((rc = check_environment(env_source, env)) != 0)
		return rc;
	o->environment = env;
	return -1;
}

/* ------------------------------------------------------------ health */

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* --healthcheck: GET /health on the --listen address (a wildcard one is
 * asked on loopback). 0 when it answers 200, else 1. Blocking: it runs
 * alone, no loop. */
static int
healthcheck(const struct options *o)
{
	char host[INET6_ADDRSTRLEN], url[128];
	const struct sockaddr_in *in = (const void *)&o->addr;
	const struct sockaddr_in6 *in6 = (const void *)&o->addr;
	long status = 0;
	CURL *e;
	CURLcode rc;

	if (o->addr.ss_family == AF_INET6) {
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			snprintf(host, sizeof(host), "::1");
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, host,
				  sizeof(host));
		snprintf(url, sizeof(url), "http://[%s]:%u/health", host,
			 ntohs(in6->sin6_port));
	} else {
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			snprintf(host, sizeof(host), "127.0.0.1");
		else
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://%s:%u/health", host,
			 ntohs(in->sin_port));
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (e = curl_easy_init()) == NULL) {
		fprintf(stderr, PROG ": healthcheck: libcurl cannot start\n");
		return 1;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HEALTHCHECK_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_global_cleanup();
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, PROG ": healthcheck: %s: %s\n", url,
			rc != CURLE_OK ? curl_easy_strerror(rc) : "not 200");
		return 1;
	}
	return 0;
}

/* -------------------------------------------------------------- HTTP */

static void
reply(struct evhttp_request *req, int code, const char *reason,
      const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void
serve(struct evhttp_request *req, void *arg)
{
	struct exporter *x = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct evbuffer *out = evbuffer_new();
	struct exposition e;

	if (out == NULL) {
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	if (path == NULL)
		path = "";
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "GET, HEAD");
		evbuffer_add_printf(out, "method not allowed\n");
		reply(req, 405, "Method Not Allowed", "text/plain", out);
	} else if (strcmp(path, "/metrics") == 0) {
		memset(&e, 0, sizeof(e));
		e.environment = x->opts->environment;
		e.version = PORTCULLIS_VERSION;
		refresh_expose(x->refresh, &e);
		exposition_render(out, &e);
		reply(req, 200, "OK",
		      "text/plain; version=0.0.4; charset=utf-8", out);
	} else if (strcmp(path, "/health") == 0) {
		evbuffer_add_printf(out, "ok\n");
		reply(req, 200, "OK", "text/plain", out);
	} else if (strcmp(path, "/") == 0) {
		evbuffer_add_printf(out, PROG " %s: /metrics, /health\n",
				    PORTCULLIS_VERSION);
		reply(req, 200, "OK", "text/plain", out);
	} else {
		evbuffer_add_printf(out, "not found\n");
		reply(req, 404, "Not Found", "text/plain", out);
	}
	evbuffer_free(out);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct exporter *x = arg;

	if (sig == SIGHUP) {
		log_info("SIGHUP: refreshing the cost figures now");
		refresh_now(x->refresh);
		return;
	}
	log_info("%s: exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopbreak(x->base);
}

static int
run(const struct options *o)
{
	static const int signos[] = {SIGHUP, SIGTERM, SIGINT};
	struct event *sigs[3] = {NULL, NULL, NULL};
	struct exporter x = {.opts = o};
	struct evconnlistener *lev;
	struct evhttp *http = NULL;
	struct aws *aws = NULL;
	int rc = 1;
	size_t i;

	log_set_timestamps(true); /* a daemon from here on */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_error("cannot ignore SIGPIPE: %s", strerror(errno));
		goto done;
	}
	if ((x.base = event_base_new()) == NULL ||
	    (http = evhttp_new(x.base)) == NULL) {
		log_error("cannot set up the event loop");
		goto done;
	}
	lev = evconnlistener_new_bind(
	    x.base, NULL, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&o->addr, (int)o->addrlen);
	if (lev == NULL) {
		log_error("--listen %s: cannot listen: %s", o->listen,
			  strerror(errno));
		goto done;
	}
	if (evhttp_bind_listener(http, lev) == NULL) {
		evconnlistener_free(lev);
		log_error("--listen %s: cannot serve HTTP", o->listen);
		goto done;
	}
	evhttp_set_timeout(http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_max_body_size(http, 16384);
	evhttp_set_allowed_methods(
	    http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
		      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		      EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, serve, &x);
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(x.base, signos[i], on_signal, &x);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1) {
			log_error("cannot handle signal %d", signos[i]);
			goto done;
		}
	}
	if ((aws = aws_new(x.base)) == NULL)
		goto done;
	log_info(PROG " %s: serving on %s, environment %s, refreshing "
		      "every %llu s",
		 PORTCULLIS_VERSION, o->listen, o->environment,
		 (unsigned long long)(o->interval_ms / SEC_MS));
	if ((x.refresh = refresh_new(x.base, aws, o->interval_ms,
				     o->retry_min_ms)) == NULL) {
		log_error("out of memory");
		goto done;
	}
	if (event_base_dispatch(x.base) == -1) {
		log_error("the event loop failed");
		goto done;
	}
	rc = 0;
done:
	if (http != NULL)
		evhttp_free(http);
	aws_free(aws); /* cancels refresh's calls: no callback after this */
	refresh_free(x.refresh);
	for (i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (x.base != NULL)
		event_base_free(x.base);
	return rc;
}

int
main(int argc, char **argv)
{
	struct options o;
	int rc;

	log_set_program("portcullis-cost-exporter");
	if ((rc = parse_options(argc, argv, &o)) != -1)
		return rc;
	if (o.healthcheck)
		return healthcheck(&o);
	return run(&o);
}
