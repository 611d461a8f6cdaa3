/*
 * upstream.c - addresses, round robin over usable servers, and the idle
 * pool (one list per server, so that reuse follows the balancing).
 */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "health.h"
#include "log.h"

#define ADDRS_PER_SERVER 8

struct upstream_server {
	struct upstream *sv_up;
	const struct config_hostport *sv_hp;
	struct sockaddr_storage sv_addr[ADDRS_PER_SERVER];
	socklen_t sv_addrlen[ADDRS_PER_SERVER];
	size_t sv_naddr;
	struct evdns_getaddrinfo_request *sv_req;
	struct event *sv_timer; /* next re-resolution */
	bool sv_logged_fail;
	size_t sv_idx; /* in u_cfg->servers and u_cfg->health */
	struct health_server *sv_health; /* NULL: always usable */
	char sv_label[300];		 /* "host:port" as written, for logs */
	TAILQ_HEAD(, upstream_conn) sv_idle; /* warmest first */
};

struct upstream {
	const struct config_upstream *u_cfg;
	struct event_base *u_base;
	struct evdns_base *u_dns;
	struct metrics_shard *u_metrics;
	struct upstream_server *u_servers;
	size_t u_rr;	  /* next server/address, round robin */
	unsigned u_nidle; /* idle connections of every server */
};

static void resolve(struct upstream_server *sv);
static void upstream_drop_idle(struct upstream *u);

static void
format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(out, len, "%s:%u", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(out, len, "[%s]:%u", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

static void
resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct upstream_server *sv = arg;
	struct upstream *u = sv->sv_up;
	struct timeval tv;
	struct sockaddr_storage new_addr[ADDRS_PER_SERVER];
	socklen_t new_len[ADDRS_PER_SERVER];
	struct evutil_addrinfo *ai;
	size_t n = 0;

	memset(new_addr, 0, sizeof(new_addr));
	memset(new_len, 0, sizeof(new_len));
	sv->sv_req = NULL;
	if (err == EVUTIL_EAI_CANCEL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	if (err != 0) {
		/* Keep the last good addresses; say so once per outage. */
		if (!sv->sv_logged_fail)
			log_warn("upstream %s: cannot resolve \"%s\": %s%s",
				 u->u_cfg->name, sv->sv_hp->host,
				 evutil_gai_strerror(err),
				 sv->sv_naddr ? " (keeping old addresses)"
					      : "");
		sv->sv_logged_fail = true;
	} else {
		for (ai = res; ai != NULL && n < ADDRS_PER_SERVER;
		     ai = ai->ai_next) {
			if (ai->ai_addrlen > sizeof(new_addr[0]))
				continue;
			memcpy(&new_addr[n], ai->ai_addr, ai->ai_addrlen);
			new_len[n++] = (socklen_t)ai->ai_addrlen;
		}
		if (n > 0) {
			bool changed = n != sv->sv_naddr;
			size_t i;

			for (i = 0; i < n && !changed; i++)
				changed = sv->sv_addrlen[i] != new_len[i] ||
					  memcmp(&sv->sv_addr[i], &new_addr[i],
						 new_len[i]) != 0;
			/* Idle connections may lead to an address that is
			 * gone; new ones use the new set. */
			if (changed && sv->sv_naddr > 0)
				upstream_drop_idle(u);
			if (changed || sv->sv_logged_fail)
				log_info("upstream %s: \"%s\" resolved to %zu "
					 "address(es)",
					 u->u_cfg->name, sv->sv_hp->host, n);
			memcpy(sv->sv_addr, new_addr, sizeof(new_addr));
			memcpy(sv->sv_addrlen, new_len, sizeof(new_len));
			sv->sv_naddr = n;
			sv->sv_logged_fail = false;
			health_resolved(sv->sv_health);
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	/* Retry a failure sooner than a success is refreshed. */
	tv.tv_sec = (long)(u->u_cfg->resolve_interval_ms / 1000);
	tv.tv_usec = (long)(u->u_cfg->resolve_interval_ms % 1000) * 1000;
	if (n == 0 && tv.tv_sec > 1) {
		tv.tv_sec = 1;
		tv.tv_usec = 0;
	}
	evtimer_add(sv->sv_timer, &tv);
}

static void
resolve_timer(evutil_socket_t fd, short what, void *arg)
{
	resolve(arg);
}

static void
resolve(struct upstream_server *sv)
{
	struct evutil_addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	/* The callback may run before this returns (hosts file). */
	sv->sv_req = evdns_getaddrinfo(sv->sv_up->u_dns, sv->sv_hp->host,
				       sv->sv_hp->port, &hints, resolved, sv);
}

struct upstream *
upstream_new(struct event_base *base, struct evdns_base *dns,
	     const struct config_upstream *cu, struct metrics_shard *m)
{
	struct upstream *u;
	size_t i;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->u_cfg = cu;
	u->u_base = base;
	u->u_dns = dns;
	u->u_metrics = m;
	if ((u->u_servers = calloc(cu->nservers,
				   sizeof(struct upstream_server))) == NULL) {
		free(u);
		return NULL;
	}
	for (i = 0; i < cu->nservers; i++) {
		struct upstream_server *sv = &u->u_servers[i];

		sv->sv_up = u;
		sv->sv_hp = &cu->servers[i];
		sv->sv_idx = i;
		sv->sv_health = cu->health != NULL ? &cu->health[i] : NULL;
		config_hostport_str(sv->sv_hp, sv->sv_label,
				    sizeof(sv->sv_label));
		TAILQ_INIT(&sv->sv_idle);
		if (sv->sv_hp->numeric) {
			memcpy(&sv->sv_addr[0], &sv->sv_hp->addr,
			       sv->sv_hp->addrlen);
			sv->sv_addrlen[0] = sv->sv_hp->addrlen;
			sv->sv_naddr = 1;
			continue;
		}
		sv->sv_timer = evtimer_new(base, resolve_timer, sv);
		if (sv->sv_timer == NULL || dns == NULL) {
			log_error("upstream %s: cannot resolve \"%s\": no "
				  "resolver",
				  cu->name, sv->sv_hp->host);
			continue;
		}
		resolve(sv);
	}
	return u;
}

static void
uconn_free(struct upstream_conn *c)
{
	struct upstream *u = c->uc_up;

	if (c->uc_idle) {
		TAILQ_REMOVE(&c->uc_sv->sv_idle, c, uc_entry);
		u->u_nidle--;
	}
	conn_free(c->uc_conn);
	free(c);
}

/* Closes every idle connection of the pool. */
static void
upstream_drop_idle(struct upstream *u)
{
	struct upstream_conn *c, *next;
	size_t i;

	/* uconn_free takes c out of its list; its next is read before. */
	for (i = 0; i < u->u_cfg->nservers; i++)
		for (c = TAILQ_FIRST(&u->u_servers[i].sv_idle); c != NULL;
		     c = next) {
			next = TAILQ_NEXT(c, uc_entry);
			uconn_free(c);
		}
}

void
upstream_free(struct upstream *u)
{
	size_t i;

	if (u == NULL)
		return;
	upstream_drop_idle(u);
	for (i = 0; i < u->u_cfg->nservers; i++) {
		struct upstream_server *sv = &u->u_servers[i];

		if (sv->sv_req != NULL)
			evdns_getaddrinfo_cancel(sv->sv_req);
		if (sv->sv_timer != NULL)
			event_free(sv->sv_timer);
	}
	free(u->u_servers);
	free(u);
}

/*
 * The next address in round-robin order over every resolved address of
 * every usable server, skipping `avoid`'s (unless it is the only usable
 * one and `same_ok`). 0; -1 when no server has an address; -2 when none
 * is usable.
 */
static int
next_addr(struct upstream *u, const struct upstream_server *avoid, bool same_ok,
	  struct upstream_server **svp, const struct sockaddr **sa,
	  socklen_t *len)
{
	struct upstream_server *fallback = NULL;
	size_t i, total = 0, k, step, fk = 0;

	for (i = 0; i < u->u_cfg->nservers; i++)
		total += u->u_servers[i].sv_naddr;
	if (total == 0)
		return -1;
	for (step = 0; step < total; step++) {
		struct upstream_server *sv = NULL;

		k = (u->u_rr + step) % total;
		for (i = 0; i < u->u_cfg->nservers; i++) {
			sv = &u->u_servers[i];
			if (k < sv->sv_naddr)
				break;
			k -= sv->sv_naddr;
		}
		if (sv == NULL || !health_usable(sv->sv_health))
			continue;
		if (sv == avoid) {
			if (fallback == NULL) {
				fallback = sv;
				fk = k;
			}
			continue;
		}
		u->u_rr += step + 1;
		*svp = sv;
		*sa = (const struct sockaddr *)&sv->sv_addr[k];
		*len = sv->sv_addrlen[k];
		return 0;
	}
	if (fallback == NULL || !same_ok)
		return -2;
	u->u_rr++;
	*svp = fallback;
	*sa = (const struct sockaddr *)&fallback->sv_addr[fk];
	*len = fallback->sv_addrlen[fk];
	return 0;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Counts a failed connect to sv (and may eject it, see health.h). */
static void
server_connect_failed(struct upstream *u, struct upstream_server *sv,
		      enum metrics_upstream_error why)
{
	metrics_server_error(u->u_metrics, sv->sv_hp->metric_id, why);
	if (health_connect_failed(u->u_cfg, sv->sv_idx))
		log_warn("upstream %s server %s: ejected for %llums after %u "
			 "connect failures in a row",
			 u->u_cfg->name, sv->sv_label,
			 (unsigned long long)u->u_cfg->eject_ms,
			 u->u_cfg->max_fails);
}

/* An idle connection got bytes, EOF, an error or its keep-alive timeout:
 * it is no longer usable. */
static void
idle_read(struct conn *cn, void *arg)
{
	uconn_free(arg);
}

static void
idle_event(struct conn *cn, int what, void *arg)
{
	uconn_free(arg);
}

/* Takes sv's warmest idle connection, if it has one. */
static struct upstream_conn *
idle_take(struct upstream *u, struct upstream_server *sv)
{
	struct upstream_conn *c = TAILQ_FIRST(&sv->sv_idle);

	if (c == NULL)
		return NULL;
	TAILQ_REMOVE(&sv->sv_idle, c, uc_entry);
	u->u_nidle--;
	c->uc_idle = false;
	c->uc_reused = true;
	conn_setcb(c->uc_conn, NULL, NULL, NULL, NULL);
	conn_timeout(c->uc_conn, 0);
	return c;
}

struct upstream_conn *
upstream_get(struct upstream *u, const struct upstream_conn *after,
	     const char *reqid, enum metrics_upstream_error *why)
{
	const struct upstream_server *avoid =
	    after != NULL ? after->uc_sv : NULL;
	/* A pooled connection that went stale says nothing about its
	 * server; a failed connect does. */
	bool same_ok = after == NULL || after->uc_reused;
	struct upstream_server *sv;
	struct upstream_conn *c;
	const struct sockaddr *sa;
	socklen_t salen;
	size_t tries;
	int r;

	/* One try per server at most: a connect refused at once moves on. */
	for (tries = 0; tries < u->u_cfg->nservers; tries++) {
		if ((r = next_addr(u, avoid, same_ok, &sv, &sa, &salen)) != 0) {
			if (tries > 0)
				break; /* keep the CONNECT of the last try */
			*why = r == -2 ? METRICS_UPERR_UNHEALTHY
				       : METRICS_UPERR_DNS;
			return NULL;
		}
		metrics_server_request(u->u_metrics, sv->sv_hp->metric_id);
		if (after == NULL && (c = idle_take(u, sv)) != NULL)
			return c;
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			*why = METRICS_UPERR_CONNECT;
			return NULL;
		}
		c->uc_up = u;
		c->uc_sv = sv;
		format_addr(sa, c->uc_addr, sizeof(c->uc_addr));
		c->uc_t0_ns = now_ns();
		if ((c->uc_conn = conn_connect(u->u_base, sa, salen)) != NULL)
			return c;
		log_req(LOG_WARN, reqid, "upstream %s server %s: connect: %s",
			u->u_cfg->name, c->uc_addr, strerror(errno));
		free(c);
		server_connect_failed(u, sv, METRICS_UPERR_CONNECT);
		avoid = sv;
		same_ok = false;
	}
	*why = METRICS_UPERR_CONNECT;
	return NULL;
}

void
upstream_connected(struct upstream_conn *c)
{
	struct upstream *u = c->uc_up;

	c->uc_connected = true;
	metrics_server_connect(u->u_metrics, c->uc_sv->sv_hp->metric_id,
			       (double)(now_ns() - c->uc_t0_ns) / 1e9);
	health_connect_ok(u->u_cfg, c->uc_sv->sv_idx);
}

void
upstream_failed(struct upstream_conn *c, enum metrics_upstream_error why)
{
	if (!c->uc_connected)
		server_connect_failed(c->uc_up, c->uc_sv, why);
	else
		metrics_server_error(c->uc_up->u_metrics,
				     c->uc_sv->sv_hp->metric_id, why);
}

void
upstream_put(struct upstream_conn *c)
{
	struct upstream *u = c->uc_up;

	if (u->u_nidle >= u->u_cfg->keepalive ||
	    evbuffer_get_length(conn_in(c->uc_conn)) > 0) {
		uconn_free(c);
		return;
	}
	c->uc_idle = true;
	TAILQ_INSERT_HEAD(&c->uc_sv->sv_idle, c, uc_entry); /* warmest first */
	u->u_nidle++;
	conn_setcb(c->uc_conn, idle_read, NULL, idle_event, c);
	conn_read_limit(c->uc_conn, 0);
	conn_read(c->uc_conn, true);
	conn_timeout(c->uc_conn, u->u_cfg->keepalive_timeout_ms);
}

void
upstream_close(struct upstream_conn *c)
{
	if (c != NULL)
		uconn_free(c);
}

const struct config_upstream *
upstream_config(const struct upstream *u)
{
	return u->u_cfg;
}
