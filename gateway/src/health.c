/*
 * health.c - per-server health state, the rise/fall rule, passive
 * ejection, and the active checker on the main thread's loop.
 *
 * A check is one HTTP/1.1 GET on a new connection ("Connection: close"),
 * driven by a conn (conn.c) and read with the gateway's own response
 * parser (http.c): no blocking call, no second HTTP implementation. One
 * check per server at a time; the next starts `interval` after the last
 * one ended. A name is resolved on the main thread's own resolver at each
 * check and the check goes to its first address.
 */
#include "health.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* A check's response head; its fields need room for one per 4 bytes
 * (http.h). Health endpoints answer with a few. */
#define HEALTH_MAX_HEAD 8192
#define HEALTH_LABEL_LEN 300

static const char *const result_name[HEALTH_N] = {
    "ok", "status", "timeout", "connect", "invalid", "dns"};

/* One server being checked; main thread only. */
struct health_target {
	struct health_server *ht_hs;
	const struct config_upstream *ht_cu;
	const struct config_hostport *ht_hp;
	char ht_label[HEALTH_LABEL_LEN]; /* "host:port" as written */
	struct event *ht_timer; /* next check, or the running one's end */
	struct conn *ht_conn;
	struct evdns_getaddrinfo_request *ht_dns;
	bool ht_running;
	bool ht_connected;
};

static struct {
	struct event_base *base;
	struct evdns_base *dns;
	struct health_target *t;
	size_t n;
	struct http_header fields[HEALTH_MAX_HEAD / 4];
} checker;

static void check_start(evutil_socket_t fd, short what, void *arg);

const char *
health_result_name(enum health_result r)
{
	return r < HEALTH_N ? result_name[r] : "?";
}

bool
health_step(bool up, bool passed, unsigned rise, unsigned fall, unsigned *run)
{
	if (passed == up) {
		*run = 0;
		return up;
	}
	if (++*run < (up ? fall : rise))
		return up;
	*run = 0;
	return !up;
}

bool
health_usable(struct health_server *hs)
{
	uint64_t until;

	if (hs == NULL)
		return true;
	if (!atomic_load_explicit(&hs->hs_up, memory_order_relaxed))
		return false;
	until =
	    atomic_load_explicit(&hs->hs_ejected_until, memory_order_relaxed);
	if (until == 0)
		return true;
	if (conn_now_ms() < until)
		return false;
	/* Over: the first to see it clears it (once per ejection), so the
	 * clock is read again only at the next one. A new ejection stored
	 * meanwhile is left alone. */
	atomic_compare_exchange_strong_explicit(&hs->hs_ejected_until, &until,
						0, memory_order_relaxed,
						memory_order_relaxed);
	return true;
}

bool
health_upstream_usable(const struct config_upstream *cu)
{
	size_t i;

	if (cu->health == NULL)
		return true;
	for (i = 0; i < cu->nservers; i++)
		if (health_usable(&cu->health[i]))
			return true;
	return false;
}

void
health_resolved(struct health_server *hs)
{
	/* A load first: once set, re-resolutions write nothing. */
	if (hs != NULL &&
	    !atomic_load_explicit(&hs->hs_resolved, memory_order_relaxed))
		atomic_store_explicit(&hs->hs_resolved, true,
				      memory_order_relaxed);
}

bool
health_upstream_resolved(const struct config_upstream *cu)
{
	size_t i;

	if (cu->health == NULL)
		return true;
	for (i = 0; i < cu->nservers; i++)
		if (atomic_load_explicit(&cu->health[i].hs_resolved,
					 memory_order_relaxed))
			return true;
	return false;
}

bool
health_connect_failed(const struct config_upstream *cu, size_t i)
{
	struct health_server *hs;
	unsigned n;

	/* With one server there is nowhere else to go: like nginx, it is
	 * never ejected (its active checks still apply). */
	if (cu->health == NULL || cu->max_fails == 0 || cu->nservers < 2)
		return false;
	hs = &cu->health[i];
	n = atomic_fetch_add_explicit(&hs->hs_fails, 1, memory_order_relaxed) +
	    1;
	if (n < cu->max_fails)
		return false;
	atomic_store_explicit(&hs->hs_fails, 0, memory_order_relaxed);
	atomic_store_explicit(&hs->hs_ejected_until,
			      conn_now_ms() + cu->eject_ms,
			      memory_order_relaxed);
	return true;
}

void
health_connect_ok(const struct config_upstream *cu, size_t i)
{
	struct health_server *hs;

	if (cu->health == NULL)
		return;
	hs = &cu->health[i];
	/* A load first: the common case writes nothing shared. */
	if (atomic_load_explicit(&hs->hs_fails, memory_order_relaxed) != 0)
		atomic_store_explicit(&hs->hs_fails, 0, memory_order_relaxed);
}

/* The old config's state of server `hp` of upstream `name`, or NULL. */
static const struct health_server *
old_state(const struct config *old, const char *name,
	  const struct config_hostport *hp, const struct config_upstream **ou)
{
	char a[HEALTH_LABEL_LEN], b[HEALTH_LABEL_LEN];
	size_t i, j;

	if (old == NULL)
		return NULL;
	config_hostport_str(hp, a, sizeof(a));
	for (i = 0; i < old->nupstreams; i++) {
		const struct config_upstream *u = &old->upstreams[i];

		if (strcmp(u->name, name) != 0 || u->health == NULL)
			continue;
		for (j = 0; j < u->nservers; j++) {
			config_hostport_str(&u->servers[j], b, sizeof(b));
			if (strcmp(a, b) == 0) {
				*ou = u;
				return &u->health[j];
			}
		}
	}
	return NULL;
}

int
health_build(struct config *c, const struct config *old)
{
	size_t i, j;
	int r;

	for (i = 0; i < c->nupstreams; i++) {
		struct config_upstream *u = &c->upstreams[i];

		u->health = calloc(u->nservers, sizeof(*u->health));
		if (u->health == NULL)
			return -1;
		for (j = 0; j < u->nservers; j++) {
			struct health_server *hs = &u->health[j];
			const struct config_upstream *ou = NULL;
			const struct health_server *o =
			    old_state(old, u->name, &u->servers[j], &ou);
			bool up = true;

			atomic_init(&hs->hs_ejected_until, 0);
			atomic_init(&hs->hs_fails, 0);
			atomic_init(
			    &hs->hs_resolved,
			    u->servers[j].numeric ||
				(o != NULL && atomic_load(&o->hs_resolved)));
			for (r = 0; r < HEALTH_N; r++)
				atomic_init(&hs->hs_checks[r], 0);
			if (o != NULL) {
				for (r = 0; r < HEALTH_N; r++)
					atomic_init(
					    &hs->hs_checks[r],
					    atomic_load(&o->hs_checks[r]));
				/* Without checks nothing would bring a
				 * down server back: only checked state is
				 * carried to a checked server. */
				if (u->check.enabled && ou->check.enabled) {
					up = atomic_load(&o->hs_up);
					hs->hs_run = o->hs_run;
				}
				if (u->max_fails > 0) {
					atomic_init(
					    &hs->hs_ejected_until,
					    atomic_load(&o->hs_ejected_until));
					atomic_init(&hs->hs_fails,
						    atomic_load(&o->hs_fails));
				}
			}
			atomic_init(&hs->hs_up, up);
		}
	}
	return 0;
}

/* Ends the running check of t (if any) and frees what it holds. */
static void
check_cancel(struct health_target *t)
{
	struct evdns_getaddrinfo_request *req = t->ht_dns;

	t->ht_dns = NULL;
	if (req != NULL)
		evdns_getaddrinfo_cancel(req); /* its callback ignores it */
	conn_free(t->ht_conn);
	t->ht_conn = NULL;
	t->ht_running = false;
	t->ht_connected = false;
}

/* Records a check's outcome, applies rise/fall, logs a change of verdict,
 * and schedules the next check. */
static void
check_done(struct health_target *t, enum health_result r, int status)
{
	const struct config_health_check *hc = &t->ht_cu->check;
	struct health_server *hs = t->ht_hs;
	struct timeval tv;
	bool up = atomic_load(&hs->hs_up), now;

	check_cancel(t);
	atomic_store_explicit(
	    &hs->hs_checks[r],
	    atomic_load_explicit(&hs->hs_checks[r], memory_order_relaxed) + 1,
	    memory_order_relaxed);
	now = health_step(up, r == HEALTH_OK, hc->rise, hc->fall, &hs->hs_run);
	if (r != HEALTH_OK)
		log_msg(LOG_DEBUG, "upstream %s server %s: check failed: %s%s",
			t->ht_cu->name, t->ht_label, result_name[r],
			r == HEALTH_STATUS ? " (unexpected status)" : "");
	if (now != up) {
		atomic_store_explicit(&hs->hs_up, now, memory_order_release);
		if (now)
			log_info("upstream %s server %s: up after %u passed "
				 "check(s)",
				 t->ht_cu->name, t->ht_label, hc->rise);
		else if (r == HEALTH_STATUS)
			log_warn("upstream %s server %s: down after %u failed "
				 "check(s), the last answered %d",
				 t->ht_cu->name, t->ht_label, hc->fall, status);
		else
			log_warn("upstream %s server %s: down after %u failed "
				 "check(s), the last: %s",
				 t->ht_cu->name, t->ht_label, hc->fall,
				 result_name[r]);
	}
	tv.tv_sec = (time_t)(hc->interval_ms / 1000);
	tv.tv_usec = (suseconds_t)(hc->interval_ms % 1000) * 1000;
	evtimer_del(t->ht_timer); /* the running check's deadline */
	evtimer_add(t->ht_timer, &tv);
}

/* Response bytes arrived: a complete head decides. */
static void
check_read(struct conn *c, void *arg)
{
	struct health_target *t = arg;
	struct evbuffer *in = conn_in(c);
	struct http_limits lim = {HEALTH_MAX_HEAD, HEALTH_MAX_HEAD,
				  HEALTH_MAX_HEAD / 4};
	struct http_response res;
	size_t len;
	const char *buf;
	int n;

	for (;;) {
		len = evbuffer_get_length(in);
		if (len > HEALTH_MAX_HEAD + 1)
			len = HEALTH_MAX_HEAD + 1;
		buf = (const char *)evbuffer_pullup(in, (ssize_t)len);
		memset(&res, 0, sizeof(res));
		res.headers = checker.fields;
		n = http_parse_response(buf, len, &lim, false, &res);
		if (n == -2)
			return; /* more to come, or EOF ends it */
		if (n < 0) {
			check_done(t, HEALTH_INVALID, 0);
			return;
		}
		if (res.status > 199)
			break;
		/* An interim answer is not the answer (RFC 9110 15.2). */
		evbuffer_drain(in, (size_t)n);
	}
	check_done(t,
		   config_status_in(t->ht_cu->check.expect, res.status)
		       ? HEALTH_OK
		       : HEALTH_STATUS,
		   res.status);
}

static void
check_event(struct conn *c, int what, void *arg)
{
	struct health_target *t = arg;

	if (what & CONN_CONNECTED) {
		t->ht_connected = true;
		return;
	}
	/* The timer, not the conn, times a check out; anything else before
	 * a complete head is a failure. */
	check_done(t, t->ht_connected ? HEALTH_INVALID : HEALTH_CONNECT, 0);
}

static void
check_connect(struct health_target *t, const struct sockaddr *sa, socklen_t len)
{
	const struct config_health_check *hc = &t->ht_cu->check;

	if ((t->ht_conn = conn_connect(checker.base, sa, len)) == NULL) {
		check_done(t, HEALTH_CONNECT, 0);
		return;
	}
	conn_setcb(t->ht_conn, check_read, NULL, check_event, t);
	conn_read(t->ht_conn, true);
	evbuffer_add_printf(conn_out(t->ht_conn),
			    "GET %s HTTP/1.1\r\n"
			    "Host: %s\r\n"
			    "User-Agent: portcullis-health/%s\r\n"
			    "Accept: */*\r\n"
			    "Connection: close\r\n\r\n",
			    hc->path, hc->host != NULL ? hc->host : t->ht_label,
			    PORTCULLIS_VERSION);
	conn_flush(t->ht_conn);
}

static void
check_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct health_target *t = arg;

	if (err == EVUTIL_EAI_CANCEL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	t->ht_dns = NULL;
	if (err != 0 || res == NULL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		check_done(t, HEALTH_DNS, 0);
		return;
	}
	check_connect(t, res->ai_addr, (socklen_t)res->ai_addrlen);
	evutil_freeaddrinfo(res);
}

/* The timer: a check is due, or the running one is out of time. */
static void
check_start(evutil_socket_t fd, short what, void *arg)
{
	struct health_target *t = arg;
	struct evutil_addrinfo hints;
	struct timeval tv;
	uint64_t ms = t->ht_cu->check.timeout_ms;

	if (t->ht_running) {
		check_done(t, HEALTH_TIMEOUT, 0);
		return;
	}
	t->ht_running = true;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(t->ht_timer, &tv);
	if (t->ht_hp->numeric) {
		check_connect(t, (const struct sockaddr *)&t->ht_hp->addr,
			      t->ht_hp->addrlen);
		return;
	}
	if (checker.dns == NULL) {
		check_done(t, HEALTH_DNS, 0);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	/* The callback may run before this returns (hosts file); it then
	 * returns NULL. */
	t->ht_dns =
	    evdns_getaddrinfo(checker.dns, t->ht_hp->host, t->ht_hp->port,
			      &hints, check_resolved, t);
}

static void
targets_free(void)
{
	size_t i;

	for (i = 0; i < checker.n; i++) {
		check_cancel(&checker.t[i]);
		if (checker.t[i].ht_timer != NULL)
			event_free(checker.t[i].ht_timer);
	}
	free(checker.t);
	checker.t = NULL;
	checker.n = 0;
}

/* Makes a target for every server of every checked upstream of c, each
 * due at once. 0, or -1 when out of memory. */
static int
targets_make(struct config *c)
{
	struct timeval now = {0, 0};
	size_t i, j, n = 0;

	for (i = 0; i < c->nupstreams; i++)
		if (c->upstreams[i].check.enabled)
			n += c->upstreams[i].nservers;
	if (n == 0)
		return 0;
	if ((checker.t = calloc(n, sizeof(*checker.t))) == NULL)
		return -1;
	for (i = 0; i < c->nupstreams; i++) {
		const struct config_upstream *u = &c->upstreams[i];

		if (!u->check.enabled)
			continue;
		for (j = 0; j < u->nservers; j++) {
			struct health_target *t = &checker.t[checker.n++];

			t->ht_hs = &u->health[j];
			t->ht_cu = u;
			t->ht_hp = &u->servers[j];
			config_hostport_str(t->ht_hp, t->ht_label,
					    sizeof(t->ht_label));
			t->ht_timer = evtimer_new(checker.base, check_start, t);
			if (t->ht_timer == NULL)
				return -1;
			evtimer_add(t->ht_timer, &now);
		}
	}
	return 0;
}

int
health_start(struct event_base *base, struct config *c)
{
	checker.base = base;
	checker.dns = worker_resolver(base, c);
	if (checker.dns == NULL)
		log_warn("health checks: no resolver; checks of servers given "
			 "by name fail");
	if (targets_make(c) == -1) {
		log_error("health checks: out of memory");
		return -1;
	}
	return 0;
}

void
health_switch(struct config *c)
{
	targets_free();
	if (targets_make(c) == -1)
		log_error("health checks: out of memory; some servers of the "
			  "new config are not checked");
}

void
health_stop(void)
{
	targets_free();
	if (checker.dns != NULL)
		evdns_base_free(checker.dns, 1);
	checker.dns = NULL;
	checker.base = NULL;
}

void
health_render(struct evbuffer *out, const struct config *c)
{
	size_t i, j;
	int r;

	evbuffer_add_printf(
	    out, "# HELP portcullis_upstream_server_up Whether the server "
		 "takes requests: 1 unless its active checks took it down or "
		 "connect failures ejected it.\n"
		 "# TYPE portcullis_upstream_server_up gauge\n");
	for (i = 0; i < c->nupstreams; i++) {
		const struct config_upstream *u = &c->upstreams[i];

		for (j = 0; j < u->nservers; j++) {
			evbuffer_add_printf(out,
					    "portcullis_upstream_server_up");
			metrics_server_labels(out, u->name, &u->servers[j]);
			evbuffer_add_printf(out, "} %d\n",
					    health_usable(u->health != NULL
							      ? &u->health[j]
							      : NULL));
		}
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_upstream_health_checks_total Active "
		 "health checks, by upstream, server and result (ok, status, "
		 "timeout, connect, invalid, dns).\n"
		 "# TYPE portcullis_upstream_health_checks_total counter\n");
	for (i = 0; i < c->nupstreams; i++) {
		const struct config_upstream *u = &c->upstreams[i];

		if (!u->check.enabled || u->health == NULL)
			continue;
		for (j = 0; j < u->nservers; j++)
			for (r = 0; r < HEALTH_N; r++) {
				evbuffer_add_printf(
				    out, "portcullis_upstream_health_checks_"
					 "total");
				metrics_server_labels(out, u->name,
						      &u->servers[j]);
				evbuffer_add_printf(
				    out, ",result=\"%s\"} %llu\n",
				    result_name[r],
				    (unsigned long long)atomic_load_explicit(
					&u->health[j].hs_checks[r],
					memory_order_relaxed));
			}
	}
}
