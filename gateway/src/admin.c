/*
 * admin.c - evhttp is plenty for a scrape every few seconds; it runs on
 * the main thread's loop, never on a worker's.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/opensslv.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "auth.h"
#include "conn.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "ocsp.h"
#include "overload.h"
#include "secrets.h"
#include "tls.h"

static struct evhttp *admin_http;
static struct config *admin_cfg;
static struct metrics_shard *const *admin_shards;
static unsigned admin_nshards;
static bool admin_draining;
static bool admin_started; /* every worker runs */
static bool admin_reload_ok = true;
static time_t admin_reload_time;

static void
reply(struct evhttp_request *req, int code, const char *type,
      struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", type);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable",
			  body);
}

/* The standard process_* metrics, from /proc/self. */
static void
render_process(struct evbuffer *b)
{
	unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
	long long rss = 0, boot = 0;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl = {0, 0};
	char line[256], stat[1024];
	struct dirent *e;
	unsigned fds = 0;
	const char *p;
	FILE *f;
	DIR *d;

	/* proc(5): fields 14, 15, 22, 23 and 24, after the command's ")";
	 * all five or none. */
	if ((f = fopen("/proc/self/stat", "r")) != NULL) {
		if (fgets(stat, sizeof(stat), f) == NULL ||
		    (p = strrchr(stat, ')')) == NULL ||
		    /* NOLINTNEXTLINE(cert-err34-c): the kernel's own numbers */
		    sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			   "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu "
			   "%lld",
			   &utime, &stime, &start, &vsize, &rss) != 5) {
			utime = stime = start = vsize = 0;
			rss = 0;
		}
		(void)fclose(f); /* read only */
	}
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "btime ", 6) == 0) {
				boot = strtoll(line + 6, NULL, 10);
				break;
			}
		(void)fclose(f); /* read only */
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--; /* the directory stream's own */
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	evbuffer_add_printf(
	    b,
	    "# HELP process_cpu_seconds_total User and system CPU time.\n"
	    "# TYPE process_cpu_seconds_total counter\n"
	    "process_cpu_seconds_total %.2f\n"
	    "# HELP process_resident_memory_bytes Resident memory.\n"
	    "# TYPE process_resident_memory_bytes gauge\n"
	    "process_resident_memory_bytes %lld\n"
	    "# HELP process_virtual_memory_bytes Virtual memory.\n"
	    "# TYPE process_virtual_memory_bytes gauge\n"
	    "process_virtual_memory_bytes %llu\n"
	    "# HELP process_start_time_seconds Start time since the epoch.\n"
	    "# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %.2f\n"
	    "# HELP process_open_fds Open file descriptors.\n"
	    "# TYPE process_open_fds gauge\n"
	    "process_open_fds %u\n"
	    "# HELP process_max_fds Limit of open file descriptors.\n"
	    "# TYPE process_max_fds gauge\n"
	    "process_max_fds %llu\n",
	    (double)(utime + stime) / (double)tick, rss * page, vsize,
	    (double)boot + (double)start / (double)tick, fds,
	    (unsigned long long)rl.rlim_cur);
}

/*
 * Whether the client takes gzip: an Accept-Encoding element "gzip" (or
 * "*") whose q is not zero (RFC 9110 section 12.5.3).
 */
static bool
accepts_gzip(struct evhttp_request *req)
{
	const char *p = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Accept-Encoding");

	while (p != NULL && *p != '\0') {
		size_t n;
		const char *q;

		p += strspn(p, " \t,");
		n = strcspn(p, " \t;,");
		q = p + n;
		q += strspn(q, " \t");
		if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
		    (n == 1 && *p == '*')) {
			/* ";q=0", ";q=0.0"... refuse; any other weight takes */
			if (*q == ';') {
				q++;
				q += strspn(q, " \t");
				if (strncasecmp(q, "q=", 2) == 0 &&
				    strtod(q + 2, NULL) == 0.0)
					return false;
			}
			return true;
		}
		p = strchr(p, ',');
	}
	return false;
}

/* Replaces the contents of b with their gzip encoding; 0 or -1. */
static int
gzip_buffer(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	uLong cap = compressBound((uLong)len) + 32;
	unsigned char *in = evbuffer_pullup(b, -1), *out;
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if ((out = malloc(cap)) == NULL)
		return -1;
	/* windowBits 15 + 16: a gzip wrapper rather than zlib's. */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(out);
		return -1;
	}
	z.next_in = in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return -1;
	}
	evbuffer_drain(b, len);
	evbuffer_add(b, out, z.total_out);
	free(out);
	return 0;
}

/* When each TLS listener's certificates expire. */
static void
render_certificates(struct evbuffer *b)
{
	const struct tls_cert_info *info;
	size_t i, j, n;

	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_certificate_expiry_timestamp_seconds "
	       "When a served certificate expires (notAfter), one series "
	       "per certificate: dual ECDSA and RSA certificates for the "
	       "same names differ by key_type and serial.\n"
	       "# TYPE portcullis_tls_certificate_expiry_timestamp_seconds "
	       "gauge\n");
	if (admin_cfg->tls_ctx == NULL)
		return;
	n = tls_context_certs(admin_cfg->tls_ctx, &info);
	for (i = 0; i < admin_cfg->nlisteners; i++) {
		if (!admin_cfg->listeners[i].tls)
			continue;
		for (j = 0; j < n; j++) {
			evbuffer_add_printf(
			    b,
			    "portcullis_tls_certificate_expiry_timestamp_"
			    "seconds{listener=\"%s\",subject=\"",
			    admin_cfg->listeners[i].listen);
			metrics_label_value(b, info[j].subject);
			evbuffer_add_printf(
			    b, "\",key_type=\"%s\",serial=\"%s\"} %lld\n",
			    info[j].key_type, info[j].serial,
			    (long long)info[j].not_after);
		}
	}
}

static void
serve_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	metrics_render(b, admin_shards, admin_nshards, admin_cfg);
	health_render(b, admin_cfg);
	secrets_render(b);
	render_process(b);
	render_certificates(b);
	ocsp_render(b);
	evbuffer_add_printf(
	    b,
	    "# HELP portcullis_config_last_reload_successful Whether the "
	    "last configuration reload succeeded.\n"
	    "# TYPE portcullis_config_last_reload_successful gauge\n"
	    "portcullis_config_last_reload_successful %d\n"
	    "# HELP portcullis_config_last_reload_success_timestamp_seconds "
	    "When the configuration was last loaded.\n"
	    "# TYPE portcullis_config_last_reload_success_timestamp_seconds "
	    "gauge\n"
	    "portcullis_config_last_reload_success_timestamp_seconds %lld\n"
	    "# HELP portcullis_log_dropped_total Log lines dropped because a "
	    "log ring was full or a sink (stdout, stderr, the access log "
	    "file) would not take them.\n"
	    "# TYPE portcullis_log_dropped_total counter\n"
	    "portcullis_log_dropped_total %llu\n"
	    "# HELP portcullis_build_info Version of portcullis and of the "
	    "libraries it runs on.\n"
	    "# TYPE portcullis_build_info gauge\n"
	    "portcullis_build_info{version=\"%s\",openssl=\"%s\","
	    "libevent=\"%s\"} 1\n",
	    admin_reload_ok ? 1 : 0, (long long)admin_reload_time,
	    (unsigned long long)log_dropped(), PORTCULLIS_VERSION,
	    OPENSSL_VERSION_STR, event_get_version());
	evhttp_add_header(evhttp_request_get_output_headers(req), "Vary",
			  "Accept-Encoding");
	if (accepts_gzip(req) && gzip_buffer(b) == 0)
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Content-Encoding", "gzip");
	reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

static void
serve_text(struct evhttp_request *req, int code, const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, text, strlen(text));
	reply(req, code, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

static void
serve_healthz(struct evhttp_request *req, void *arg)
{
	serve_text(req, 200, "ok\n");
}

static void reason_add(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends to the string in buf[size]; what does not fit is cut. */
static void
reason_add(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

static void
serve_readyz(struct evhttp_request *req, void *arg)
{
	/* Every reason that applies, one per line, so an operator sees them
	 * all at once. */
	char why[4096] = "";
	size_t i;

	if (!admin_started)
		reason_add(why, sizeof(why),
			   "not ready: starting: workers are not running "
			   "yet\n");
	if (admin_draining)
		reason_add(why, sizeof(why),
			   "not ready: draining: SIGTERM received, finishing "
			   "in-flight requests\n");
	for (i = 0; i < admin_cfg->nrealms; i++) {
		const struct config_realm *r = &admin_cfg->realms[i];

		if (auth_realm_users(r->auth) == 0)
			reason_add(why, sizeof(why),
				   "not ready: realm \"%s\" has no "
				   "credentials loaded\n",
				   r->name);
	}
	for (i = 0; i < admin_cfg->nupstreams; i++) {
		const struct config_upstream *u = &admin_cfg->upstreams[i];

		if (!u->required_for_ready)
			continue;
		if (!health_upstream_resolved(u))
			reason_add(why, sizeof(why),
				   "not ready: upstream \"%s\": no server "
				   "name has resolved yet (DNS)\n",
				   u->name);
		else if (!health_upstream_usable(u))
			reason_add(why, sizeof(why),
				   "not ready: upstream \"%s\" has no healthy "
				   "server (%zu down)\n",
				   u->name, u->nservers);
	}
	if (why[0] != '\0')
		serve_text(req, 503, why);
	else
		serve_text(req, 200, "ready\n");
}

static void
serve_other(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 404, NULL);
}

static struct evconnlistener *admin_listener;
static struct event *admin_pause;
static int admin_spare = -1;
static struct overload_note admin_nofd, admin_error;

static void
admin_resume(evutil_socket_t fd, short what, void *arg)
{
	if (admin_listener != NULL)
		evconnlistener_enable(admin_listener);
}

/* As a traffic listener does (worker.c): pause 100 ms; out of
 * descriptors, answer what is pending with the spare one; log rarely. */
static void
admin_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval tv = {0, 100 * 1000};
	int err = errno;
	uint64_t n, shed;

	if (overload_out_of_fds(err)) {
		shed =
		    overload_shed(evconnlistener_get_fd(l), &admin_spare, 64);
		metrics_rejected_admin(METRICS_REJECTED_NO_FD, shed);
		if (overload_note_due(&admin_nofd, shed, conn_now_ms(), 10000,
				      &n))
			log_error("admin.listen %s: accept: %s; %llu "
				  "connection(s) answered 503 since the last "
				  "line",
				  admin_cfg->admin_listen, strerror(err),
				  (unsigned long long)n);
	} else if (overload_note_due(&admin_error, 1, conn_now_ms(), 10000,
				     &n)) {
		log_error("admin.listen %s: accept: %s (%llu time(s) since the "
			  "last line)",
			  admin_cfg->admin_listen, strerror(err),
			  (unsigned long long)n);
	}
	evconnlistener_disable(l);
	evtimer_add(admin_pause, &tv);
}

int
admin_start(struct event_base *base, struct config *cfg,
	    struct metrics_shard *const *shards, unsigned nshards)
{
	struct evhttp_bound_socket *bound;
	struct config_hostport hp;
	unsigned short port;
	const char *why;

	admin_cfg = config_ref(cfg);
	admin_shards = shards;
	admin_nshards = nshards;
	admin_reload_time = time(NULL);
	if ((admin_http = evhttp_new(base)) == NULL)
		return -1;
	evhttp_set_allowed_methods(admin_http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(admin_http, "/metrics", serve_metrics, NULL);
	evhttp_set_cb(admin_http, "/healthz", serve_healthz, NULL);
	evhttp_set_cb(admin_http, "/readyz", serve_readyz, NULL);
	evhttp_set_gencb(admin_http, serve_other, NULL);
	evhttp_set_timeout(admin_http, 10);
	if (config_parse_hostport(cfg->admin_listen, &hp, &why) == -1) {
		log_error("admin.listen: %s", why);
		return -1;
	}
	port = (unsigned short)strtoul(hp.port, NULL, 10); /* 1 to 65535 */
	if ((bound = evhttp_bind_socket_with_handle(admin_http, hp.host,
						    port)) == NULL) {
		/* sockcheck.c has explained the usual causes before any
		 * bind; what is left (a race, a limit) has its errno. */
		log_error("admin.listen: cannot listen on %s: %s",
			  cfg->admin_listen, strerror(errno));
		free(hp.host);
		return -1;
	}
	free(hp.host);
	/* Without an error callback, libevent's listener would log and retry
	 * an accept that fails for want of descriptors, at full speed. */
	admin_listener = evhttp_bound_socket_get_listener(bound);
	admin_spare = overload_spare_open();
	if ((admin_pause = evtimer_new(base, admin_resume, NULL)) == NULL)
		return -1;
	evconnlistener_set_error_cb(admin_listener, admin_accept_error);
	return 0;
}

void
admin_set_config(struct config *cfg)
{
	config_unref(admin_cfg);
	admin_cfg = config_ref(cfg);
}

void
admin_set_started(void)
{
	admin_started = true;
}

void
admin_set_draining(void)
{
	admin_draining = true;
}

void
admin_reload_result(bool ok)
{
	admin_reload_ok = ok;
	if (ok)
		admin_reload_time = time(NULL);
}

bool
admin_last_reload_ok(void)
{
	return admin_reload_ok;
}

void
admin_stop(void)
{
	if (admin_http != NULL)
		evhttp_free(admin_http);
	admin_http = NULL;
	admin_listener = NULL; /* evhttp's, freed with it */
	if (admin_pause != NULL)
		event_free(admin_pause);
	admin_pause = NULL;
	if (admin_spare != -1)
		close(admin_spare);
	admin_spare = -1;
	config_unref(admin_cfg);
	admin_cfg = NULL;
}
