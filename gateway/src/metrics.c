/*
 * metrics.c - shards, the route-name registry, and the text exposition.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 14
#define NCODES 500 /* 100..599 */
#define MAX_LISTENERS 64

/* Prometheus's default buckets plus a tail to its 2-minute query timeout. */
static const double bucket_le[NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
static const char *const bucket_label[NBUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1",     "2.5",  "5",     "10",   "30",  "60",   "120"};
static const char *const method_label[METRICS_NMETHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"};
static const char *const tls_label[METRICS_TLS_N] = {"ok", "failed", "timeout"};
static const char *const cut_label[METRICS_CUT_N] = {
    "upstream_truncated", "upstream_reset", "upstream_timeout",
    "upstream_framing",	  "client_aborted", "send_timeout",
    "client_body",	  "internal"};
static const char *const rejected_label[METRICS_REJECTED_N] = {
    "max_connections", "no_fd"};
static const char *const uperr_label[METRICS_UPERR_N] = {
    "connect",		"timeout", "reset",
    "invalid_response", "dns",	   "no_healthy_server"};
/* Connects take far less than requests: from half a millisecond on. */
static const double connect_le[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
					    0.025,  0.05,  0.1,	   0.25,  0.5,
					    1,	    2.5,   5,	   10};
static const char *const connect_label[NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",	 "1",	  "2.5",  "5",	   "10"};
#define SERVER_ERRORS 4 /* connect, timeout, reset, invalid_response */
static const char *const denied_label[METRICS_DENIED_N] = {"deny_list",
							   "not_allowed"};

typedef _Atomic uint64_t counter_t; /* written by one thread only */

struct histogram {
	counter_t bucket[NBUCKETS + 1]; /* per bucket, not cumulative */
	counter_t sum_ns;
};

struct route_stats {
	counter_t requests[METRICS_NMETHODS][NCODES];
	struct histogram duration;
	struct histogram upstream;
	counter_t upstream_errors[METRICS_UPERR_N];
	counter_t denied[METRICS_DENIED_N];
	counter_t limited;
	counter_t incomplete[METRICS_CUT_N];
	counter_t bytes_in;
	counter_t bytes_out;
};

#define NAUTH 5 /* auth results: ok cached denied throttled unavailable */

static const char *const auth_label[NAUTH] = {"ok", "cached", "denied",
					      "throttled", "unavailable"};

struct server_stats {
	counter_t requests;
	counter_t errors[SERVER_ERRORS];
	struct histogram connect; /* buckets of connect_le */
};

struct metrics_shard {
	_Atomic(struct route_stats *) routes[METRICS_MAX_ROUTES];
	_Atomic(struct server_stats *) servers[METRICS_MAX_SERVERS];
	counter_t auth[METRICS_MAX_REALMS][NAUTH];
	_Atomic int64_t conn_active[MAX_LISTENERS];
	counter_t conn_accepted[MAX_LISTENERS];
	counter_t tls[MAX_LISTENERS][METRICS_TLS_N];
	counter_t tls_errors[MAX_LISTENERS];
	counter_t rejected[MAX_LISTENERS][METRICS_REJECTED_N];
};

/* Registry of route names; written by the main thread only. */
static char *registry[METRICS_MAX_ROUTES];
static unsigned registry_n;

/* Realm names likewise; hash checks are counted process-wide (they run on
 * the verifier pool, which has no shard). */
static char *realm_registry[METRICS_MAX_REALMS];
static unsigned realm_registry_n;
static _Atomic uint64_t verifications[METRICS_MAX_REALMS];

/* Upstream servers, keyed "upstream host:port" (a name holds no space). */
static char *server_registry[METRICS_MAX_SERVERS];
static unsigned server_registry_n;

static inline void
bump(counter_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t
get(counter_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void
metrics_init(void)
{
	if (registry_n == 0)
		registry[registry_n++] = strdup("_none");
}

/* The id of `name` in a registry of names[*n] (at most max), added when
 * new. 0, or -1 when the registry is full. */
static int
registry_id(char **names, unsigned *n, unsigned max, const char *name,
	    unsigned *id)
{
	unsigned i;

	for (i = 0; i < *n; i++) {
		if (strcmp(names[i], name) == 0) {
			*id = i;
			return 0;
		}
	}
	if (*n == max || (names[*n] = strdup(name)) == NULL)
		return -1;
	*id = (*n)++;
	return 0;
}

int
metrics_register(struct config *c)
{
	size_t i, j;

	metrics_init();
	for (i = 0; i < c->nrealms; i++)
		if (registry_id(realm_registry, &realm_registry_n,
				METRICS_MAX_REALMS, c->realms[i].name,
				&c->realms[i].metric_id) == -1)
			return -1;
	for (i = 0; i < c->nlisteners; i++) {
		for (j = 0; j < c->listeners[i].nroutes; j++) {
			struct config_route *r = &c->listeners[i].routes[j];

			if (registry_id(registry, &registry_n,
					METRICS_MAX_ROUTES, r->name,
					&r->metric_id) == -1)
				return -1;
		}
	}
	for (i = 0; i < c->nupstreams; i++) {
		struct config_upstream *u = &c->upstreams[i];

		for (j = 0; j < u->nservers; j++) {
			char key[CONFIG_NAME_MAX + 300], hp[300];

			config_hostport_str(&u->servers[j], hp, sizeof(hp));
			snprintf(key, sizeof(key), "%s %s", u->name, hp);
			if (registry_id(server_registry, &server_registry_n,
					METRICS_MAX_SERVERS, key,
					&u->servers[j].metric_id) == -1)
				return -1;
		}
	}
	return 0;
}

struct metrics_shard *
metrics_shard_new(void)
{
	return calloc(1, sizeof(struct metrics_shard));
}

void
metrics_shard_free(struct metrics_shard *s)
{
	unsigned i;

	if (s == NULL)
		return;
	for (i = 0; i < METRICS_MAX_ROUTES; i++)
		free(atomic_load(&s->routes[i]));
	for (i = 0; i < METRICS_MAX_SERVERS; i++)
		free(atomic_load(&s->servers[i]));
	free(s);
}

enum metrics_method
metrics_method(const char *m, size_t len)
{
	int i;

	for (i = 0; i < METRICS_OTHER; i++) {
		if (strlen(method_label[i]) == len &&
		    memcmp(method_label[i], m, len) == 0)
			return (enum metrics_method)i;
	}
	return METRICS_OTHER;
}

/* The owner's stats for a route, made on first use (once per route). */
static struct route_stats *
route_of(struct metrics_shard *s, unsigned id)
{
	struct route_stats *r;

	if (id >= METRICS_MAX_ROUTES)
		return NULL;
	r = atomic_load_explicit(&s->routes[id], memory_order_relaxed);
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return NULL;
		atomic_store_explicit(&s->routes[id], r, memory_order_release);
	}
	return r;
}

/* The owner's stats for an upstream server, made on first use. */
static struct server_stats *
server_of(struct metrics_shard *s, unsigned id)
{
	struct server_stats *r;

	if (id >= METRICS_MAX_SERVERS)
		return NULL;
	r = atomic_load_explicit(&s->servers[id], memory_order_relaxed);
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return NULL;
		atomic_store_explicit(&s->servers[id], r, memory_order_release);
	}
	return r;
}

static void
observe_in(struct histogram *h, const double *le, double seconds)
{
	int i = 0;

	while (i < NBUCKETS && seconds > le[i])
		i++;
	bump(&h->bucket[i], 1);
	bump(&h->sum_ns, seconds > 0 ? (uint64_t)(seconds * 1e9) : 0);
}

void
metrics_server_request(struct metrics_shard *s, unsigned id)
{
	struct server_stats *r = server_of(s, id);

	if (r != NULL)
		bump(&r->requests, 1);
}

void
metrics_server_error(struct metrics_shard *s, unsigned id,
		     enum metrics_upstream_error why)
{
	struct server_stats *r = server_of(s, id);

	if (r != NULL && why < SERVER_ERRORS)
		bump(&r->errors[why], 1);
}

void
metrics_server_connect(struct metrics_shard *s, unsigned id, double seconds)
{
	struct server_stats *r = server_of(s, id);

	if (r != NULL)
		observe_in(&r->connect, connect_le, seconds);
}

static void
observe(struct histogram *h, double seconds)
{
	observe_in(h, bucket_le, seconds);
}

void
metrics_request(struct metrics_shard *s, unsigned id, enum metrics_method m,
		int code, double seconds, double upstream_seconds,
		uint64_t bytes_in, uint64_t bytes_out)
{
	struct route_stats *r = route_of(s, id);

	if (r == NULL)
		return;
	if (code >= 100 && code <= 599)
		bump(&r->requests[m][code - 100], 1);
	observe(&r->duration, seconds);
	if (upstream_seconds >= 0)
		observe(&r->upstream, upstream_seconds);
	bump(&r->bytes_in, bytes_in);
	bump(&r->bytes_out, bytes_out);
}

void
metrics_denied(struct metrics_shard *s, unsigned id, enum metrics_denied why)
{
	struct route_stats *r = route_of(s, id);

	if (r != NULL)
		bump(&r->denied[why], 1);
}

const char *
metrics_cut_name(enum metrics_cut why)
{
	return why >= 0 && why < METRICS_CUT_N ? cut_label[why] : NULL;
}

void
metrics_incomplete(struct metrics_shard *s, unsigned id, enum metrics_cut why)
{
	struct route_stats *r = route_of(s, id);

	if (r != NULL && why >= 0 && why < METRICS_CUT_N)
		bump(&r->incomplete[why], 1);
}

void
metrics_limited(struct metrics_shard *s, unsigned id)
{
	struct route_stats *r = route_of(s, id);

	if (r != NULL)
		bump(&r->limited, 1);
}

void
metrics_upstream_error(struct metrics_shard *s, unsigned id,
		       enum metrics_upstream_error why)
{
	struct route_stats *r = route_of(s, id);

	if (r != NULL)
		bump(&r->upstream_errors[why], 1);
}

void
metrics_auth(struct metrics_shard *s, unsigned realm, unsigned result)
{
	if (realm < METRICS_MAX_REALMS && result < NAUTH)
		bump(&s->auth[realm][result], 1);
}

void
metrics_auth_verification(unsigned realm)
{
	if (realm < METRICS_MAX_REALMS)
		atomic_fetch_add_explicit(&verifications[realm], 1,
					  memory_order_relaxed);
}

void
metrics_tls_handshake(struct metrics_shard *s, unsigned listener,
		      enum metrics_tls_result r)
{
	if (listener < MAX_LISTENERS)
		bump(&s->tls[listener][r], 1);
}

void
metrics_tls_error(struct metrics_shard *s, unsigned listener)
{
	if (listener < MAX_LISTENERS)
		bump(&s->tls_errors[listener], 1);
}

static counter_t admin_rejected[METRICS_REJECTED_N];

void
metrics_rejected_admin(enum metrics_rejected why, uint64_t n)
{
	bump(&admin_rejected[why], n);
}

void
metrics_rejected(struct metrics_shard *s, unsigned listener,
		 enum metrics_rejected why, uint64_t n)
{
	if (listener < MAX_LISTENERS)
		bump(&s->rejected[listener][why], n);
}

void
metrics_connection(struct metrics_shard *s, unsigned listener, int delta,
		   bool accepted)
{
	if (listener >= MAX_LISTENERS)
		return;
	atomic_store_explicit(&s->conn_active[listener],
			      atomic_load_explicit(&s->conn_active[listener],
						   memory_order_relaxed) +
				  delta,
			      memory_order_relaxed);
	if (accepted)
		bump(&s->conn_accepted[listener], 1);
}

/* Sum of one route's stats over every shard; false if no shard has it. */
static bool
route_sum(struct metrics_shard *const *shards, unsigned n, unsigned id,
	  struct route_stats *sum)
{
	bool any = false;
	unsigned i;
	int m, c, b;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		struct route_stats *r = atomic_load_explicit(
		    &shards[i]->routes[id], memory_order_acquire);

		if (r == NULL)
			continue;
		any = true;
		for (m = 0; m < METRICS_NMETHODS; m++)
			for (c = 0; c < NCODES; c++)
				bump(&sum->requests[m][c],
				     get(&r->requests[m][c]));
		for (b = 0; b <= NBUCKETS; b++) {
			bump(&sum->duration.bucket[b],
			     get(&r->duration.bucket[b]));
			bump(&sum->upstream.bucket[b],
			     get(&r->upstream.bucket[b]));
		}
		bump(&sum->duration.sum_ns, get(&r->duration.sum_ns));
		bump(&sum->upstream.sum_ns, get(&r->upstream.sum_ns));
		for (b = 0; b < METRICS_UPERR_N; b++)
			bump(&sum->upstream_errors[b],
			     get(&r->upstream_errors[b]));
		for (b = 0; b < METRICS_DENIED_N; b++)
			bump(&sum->denied[b], get(&r->denied[b]));
		bump(&sum->limited, get(&r->limited));
		for (b = 0; b < METRICS_CUT_N; b++)
			bump(&sum->incomplete[b], get(&r->incomplete[b]));
		bump(&sum->bytes_in, get(&r->bytes_in));
		bump(&sum->bytes_out, get(&r->bytes_out));
	}
	return any;
}

static void
render_histogram(struct evbuffer *out, const char *name, const char *route,
		 struct histogram *h)
{
	uint64_t cum = 0;
	int b;

	for (b = 0; b < NBUCKETS; b++) {
		cum += get(&h->bucket[b]);
		evbuffer_add_printf(
		    out, "%s_bucket{route=\"%s\",le=\"%s\"} %llu\n", name,
		    route, bucket_label[b], (unsigned long long)cum);
	}
	cum += get(&h->bucket[NBUCKETS]);
	evbuffer_add_printf(out, "%s_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
			    name, route, (unsigned long long)cum);
	evbuffer_add_printf(out, "%s_sum{route=\"%s\"} %.9f\n", name, route,
			    (double)get(&h->sum_ns) / 1e9);
	evbuffer_add_printf(out, "%s_count{route=\"%s\"} %llu\n", name, route,
			    (unsigned long long)cum);
}

/* Sum of one server's stats over every shard. */
static void
server_sum(struct metrics_shard *const *shards, unsigned n, unsigned id,
	   struct server_stats *sum)
{
	unsigned i;
	int b;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n && id < METRICS_MAX_SERVERS; i++) {
		struct server_stats *r = atomic_load_explicit(
		    &shards[i]->servers[id], memory_order_acquire);

		if (r == NULL)
			continue;
		bump(&sum->requests, get(&r->requests));
		for (b = 0; b < SERVER_ERRORS; b++)
			bump(&sum->errors[b], get(&r->errors[b]));
		for (b = 0; b <= NBUCKETS; b++)
			bump(&sum->connect.bucket[b],
			     get(&r->connect.bucket[b]));
		bump(&sum->connect.sum_ns, get(&r->connect.sum_ns));
	}
}

void
metrics_server_labels(struct evbuffer *out, const char *name,
		      const struct config_hostport *hp)
{
	char label[300];

	config_hostport_str(hp, label, sizeof(label));
	evbuffer_add(out, "{upstream=\"", 11);
	metrics_label_value(out, name);
	evbuffer_add(out, "\",server=\"", 10);
	metrics_label_value(out, label);
	evbuffer_add(out, "\"", 1);
}

/* The per-server series of every server of c (bounded by the config,
 * present from the start at zero). */
static void
render_servers(struct evbuffer *out, struct metrics_shard *const *shards,
	       unsigned nshards, const struct config *c)
{
	static const char conn[] = "portcullis_upstream_server_connect_seconds";
	struct server_stats sum;
	size_t i, j;
	int b, pass;

	for (pass = 0; pass < 3; pass++) {
		if (pass == 0)
			evbuffer_add_printf(
			    out,
			    "# HELP portcullis_upstream_server_requests_total "
			    "Requests handed to each upstream server (a "
			    "retry counts on the server it went to).\n"
			    "# TYPE portcullis_upstream_server_requests_total "
			    "counter\n");
		else if (pass == 1)
			evbuffer_add_printf(
			    out,
			    "# HELP portcullis_upstream_server_errors_total "
			    "Failures of each upstream server, by reason "
			    "(connect, timeout, reset), also those a retry "
			    "on another server hid from the client.\n"
			    "# TYPE portcullis_upstream_server_errors_total "
			    "counter\n");
		else
			evbuffer_add_printf(out,
					    "# HELP %s Time to connect to each "
					    "upstream server.\n"
					    "# TYPE %s histogram\n",
					    conn, conn);
		for (i = 0; i < c->nupstreams; i++) {
			const struct config_upstream *u = &c->upstreams[i];

			for (j = 0; j < u->nservers; j++) {
				const struct config_hostport *hp =
				    &u->servers[j];
				uint64_t cum = 0;

				server_sum(shards, nshards, hp->metric_id,
					   &sum);
				if (pass == 0) {
					evbuffer_add_printf(
					    out, "portcullis_upstream_server_"
						 "requests_total");
					metrics_server_labels(out, u->name, hp);
					evbuffer_add_printf(
					    out, "} %llu\n",
					    (unsigned long long)get(
						&sum.requests));
					continue;
				}
				if (pass == 1) {
					for (b = 0; b < SERVER_ERRORS; b++) {
						evbuffer_add_printf(
						    out, "portcullis_upstream_"
							 "server_errors_total");
						metrics_server_labels(
						    out, u->name, hp);
						evbuffer_add_printf(
						    out,
						    ",reason=\"%s\"} %llu\n",
						    uperr_label[b],
						    (unsigned long long)get(
							&sum.errors[b]));
					}
					continue;
				}
				for (b = 0; b <= NBUCKETS; b++) {
					cum += get(&sum.connect.bucket[b]);
					evbuffer_add_printf(out, "%s_bucket",
							    conn);
					metrics_server_labels(out, u->name, hp);
					evbuffer_add_printf(
					    out, ",le=\"%s\"} %llu\n",
					    b < NBUCKETS ? connect_label[b]
							 : "+Inf",
					    (unsigned long long)cum);
				}
				evbuffer_add_printf(out, "%s_sum", conn);
				metrics_server_labels(out, u->name, hp);
				evbuffer_add_printf(
				    out, "} %.9f\n",
				    (double)get(&sum.connect.sum_ns) / 1e9);
				evbuffer_add_printf(out, "%s_count", conn);
				metrics_server_labels(out, u->name, hp);
				evbuffer_add_printf(out, "} %llu\n",
						    (unsigned long long)cum);
			}
		}
	}
}

void
metrics_label_value(struct evbuffer *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

void
metrics_render(struct evbuffer *out, struct metrics_shard *const *shards,
	       unsigned nshards, const struct config *c)
{
	static struct route_stats sums[1]; /* main thread only; 40 KiB */
	static bool configured[METRICS_MAX_ROUTES];
	struct route_stats *sum = &sums[0];
	unsigned id, i;
	size_t l;
	int m, code, b;

	evbuffer_add_printf(out,
			    "# HELP portcullis_http_requests_total Requests "
			    "answered, by route, method and status code.\n"
			    "# TYPE portcullis_http_requests_total counter\n");
	for (id = 0; id < registry_n; id++) {
		if (!route_sum(shards, nshards, id, sum))
			continue;
		for (m = 0; m < METRICS_NMETHODS; m++)
			for (code = 0; code < NCODES; code++) {
				uint64_t v = get(&sum->requests[m][code]);

				if (v == 0)
					continue;
				evbuffer_add_printf(
				    out,
				    "portcullis_http_requests_total{route=\"%"
				    "s\",method=\"%s\",code=\"%d\"} %llu\n",
				    registry[id], method_label[m], code + 100,
				    (unsigned long long)v);
			}
	}
	/* The series the SLO rules read are there from the start for every
	 * configured route, zero until its first request: an idle route is
	 * not a missing one, and a route's first 5xx is an increase from 0
	 * that rate() sees (a series born at 1 would hide it). */
	memset(configured, 0, sizeof(configured));
	for (l = 0; l < c->nlisteners; l++)
		for (i = 0; i < c->listeners[l].nroutes; i++)
			configured[c->listeners[l].routes[i].metric_id] = true;
	evbuffer_add_printf(
	    out, "# HELP portcullis_http_responses_total Responses sent, by "
		 "route and status class; every configured route has all "
		 "five classes from the start.\n"
		 "# TYPE portcullis_http_responses_total counter\n");
	for (id = 0; id < registry_n; id++) {
		uint64_t class[5] = {0};
		int k;

		if (!route_sum(shards, nshards, id, sum) && !configured[id])
			continue;
		for (m = 0; m < METRICS_NMETHODS; m++)
			for (code = 0; code < NCODES; code++)
				class[code / 100] +=
				    get(&sum->requests[m][code]);
		for (k = 0; k < 5; k++)
			evbuffer_add_printf(
			    out,
			    "portcullis_http_responses_total{route=\"%s\","
			    "class=\"%dxx\"} %llu\n",
			    registry[id], k + 1, (unsigned long long)class[k]);
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_http_request_duration_seconds Time from "
		 "the first byte of a request to the last byte of its "
		 "response.\n"
		 "# TYPE portcullis_http_request_duration_seconds histogram\n");
	for (id = 0; id < registry_n; id++)
		if (route_sum(shards, nshards, id, sum) || configured[id])
			render_histogram(
			    out, "portcullis_http_request_duration_seconds",
			    registry[id], &sum->duration);
	evbuffer_add_printf(
	    out,
	    "# HELP portcullis_upstream_response_duration_seconds Time from "
	    "sending a request upstream to the end of its response.\n"
	    "# TYPE portcullis_upstream_response_duration_seconds "
	    "histogram\n");
	for (id = 0; id < registry_n; id++)
		if (route_sum(shards, nshards, id, sum) || configured[id])
			render_histogram(
			    out,
			    "portcullis_upstream_response_duration_seconds",
			    registry[id], &sum->upstream);
	evbuffer_add_printf(
	    out, "# HELP portcullis_upstream_errors_total Upstream "
		 "failures, by route and reason.\n"
		 "# TYPE portcullis_upstream_errors_total counter\n");
	for (id = 0; id < registry_n; id++) {
		if (!route_sum(shards, nshards, id, sum))
			continue;
		for (b = 0; b < METRICS_UPERR_N; b++)
			evbuffer_add_printf(
			    out,
			    "portcullis_upstream_errors_total{route=\"%s\","
			    "reason=\"%s\"} %llu\n",
			    registry[id], uperr_label[b],
			    (unsigned long long)get(&sum->upstream_errors[b]));
	}
	render_servers(out, shards, nshards, c);
	evbuffer_add_printf(
	    out, "# HELP portcullis_http_requests_denied_total Requests "
		 "refused with 403 for the client's address, by route and "
		 "reason (deny_list, not_allowed).\n"
		 "# TYPE portcullis_http_requests_denied_total counter\n");
	for (id = 0; id < registry_n; id++) {
		if (!route_sum(shards, nshards, id, sum) && !configured[id])
			continue;
		for (b = 0; b < METRICS_DENIED_N; b++)
			evbuffer_add_printf(
			    out,
			    "portcullis_http_requests_denied_total{route=\"%"
			    "s\","
			    "reason=\"%s\"} %llu\n",
			    registry[id], denied_label[b],
			    (unsigned long long)get(&sum->denied[b]));
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_http_requests_incomplete_total Requests "
		 "that ended before their response was whole, by route and "
		 "reason; each is also in portcullis_http_requests_total.\n"
		 "# TYPE portcullis_http_requests_incomplete_total counter\n");
	for (id = 0; id < registry_n; id++) {
		if (!route_sum(shards, nshards, id, sum) && !configured[id])
			continue;
		for (b = 0; b < METRICS_CUT_N; b++)
			evbuffer_add_printf(
			    out,
			    "portcullis_http_requests_incomplete_total{route="
			    "\"%s\",reason=\"%s\"} %llu\n",
			    registry[id], cut_label[b],
			    (unsigned long long)get(&sum->incomplete[b]));
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_http_requests_limited_total Requests "
		 "refused with 429 by the route's rate limit.\n"
		 "# TYPE portcullis_http_requests_limited_total counter\n");
	for (id = 0; id < registry_n; id++)
		if (route_sum(shards, nshards, id, sum) || configured[id])
			evbuffer_add_printf(
			    out,
			    "portcullis_http_requests_limited_total{route=\"%"
			    "s\"}"
			    " %llu\n",
			    registry[id],
			    (unsigned long long)get(&sum->limited));
	evbuffer_add_printf(
	    out,
	    "# HELP portcullis_http_request_size_bytes_total Request bytes "
	    "received, by route.\n"
	    "# TYPE portcullis_http_request_size_bytes_total counter\n");
	for (id = 0; id < registry_n; id++)
		if (route_sum(shards, nshards, id, sum))
			evbuffer_add_printf(
			    out,
			    "portcullis_http_request_size_bytes_total{route=\"%"
			    "s\"} "
			    "%llu\n",
			    registry[id],
			    (unsigned long long)get(&sum->bytes_in));
	evbuffer_add_printf(
	    out,
	    "# HELP portcullis_http_response_size_bytes_total Response bytes "
	    "sent, by route.\n"
	    "# TYPE portcullis_http_response_size_bytes_total counter\n");
	for (id = 0; id < registry_n; id++)
		if (route_sum(shards, nshards, id, sum))
			evbuffer_add_printf(
			    out,
			    "portcullis_http_response_size_bytes_total{route="
			    "\"%s\"}"
			    " %llu\n",
			    registry[id],
			    (unsigned long long)get(&sum->bytes_out));

	evbuffer_add_printf(
	    out, "# HELP portcullis_connections_active Client connections "
		 "open, by listener.\n"
		 "# TYPE portcullis_connections_active gauge\n");
	for (l = 0; l < c->nlisteners && l < MAX_LISTENERS; l++) {
		int64_t v = 0;

		for (i = 0; i < nshards; i++)
			v += atomic_load_explicit(&shards[i]->conn_active[l],
						  memory_order_relaxed);
		evbuffer_add_printf(
		    out,
		    "portcullis_connections_active{listener=\"%s\"} %lld\n",
		    c->listeners[l].listen, (long long)v);
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_connections_accepted_total Client "
		 "connections accepted, by listener.\n"
		 "# TYPE portcullis_connections_accepted_total counter\n");
	for (l = 0; l < c->nlisteners && l < MAX_LISTENERS; l++) {
		uint64_t v = 0;

		for (i = 0; i < nshards; i++)
			v += get(&shards[i]->conn_accepted[l]);
		evbuffer_add_printf(out,
				    "portcullis_connections_accepted_total{"
				    "listener=\"%s\"} %llu\n",
				    c->listeners[l].listen,
				    (unsigned long long)v);
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_connections_rejected_total Client "
		 "connections answered 503 and closed at accept, by listener "
		 "and reason (max_connections, no_fd).\n"
		 "# TYPE portcullis_connections_rejected_total counter\n");
	for (l = 0; l < c->nlisteners && l < MAX_LISTENERS; l++) {
		int r;

		for (r = 0; r < METRICS_REJECTED_N; r++) {
			uint64_t v = 0;

			for (i = 0; i < nshards; i++)
				v += get(&shards[i]->rejected[l][r]);
			evbuffer_add_printf(
			    out,
			    "portcullis_connections_rejected_total{listener="
			    "\"%s\",reason=\"%s\"} %llu\n",
			    c->listeners[l].listen, rejected_label[r],
			    (unsigned long long)v);
		}
	}
	for (l = 0; l < METRICS_REJECTED_N; l++)
		evbuffer_add_printf(
		    out,
		    "portcullis_connections_rejected_total{"
		    "listener=\"%s\",reason=\"%s\"} %llu\n",
		    c->admin_listen, rejected_label[l],
		    (unsigned long long)get(&admin_rejected[l]));
	evbuffer_add_printf(
	    out, "# HELP portcullis_tls_handshakes_total TLS handshakes, by "
		 "listener and result (ok, failed, timeout).\n"
		 "# TYPE portcullis_tls_handshakes_total counter\n");
	for (l = 0; l < c->nlisteners && l < MAX_LISTENERS; l++) {
		int r;

		if (!c->listeners[l].tls)
			continue;
		for (r = 0; r < METRICS_TLS_N; r++) {
			uint64_t v = 0;

			for (i = 0; i < nshards; i++)
				v += get(&shards[i]->tls[l][r]);
			evbuffer_add_printf(
			    out,
			    "portcullis_tls_handshakes_total{listener=\"%s\","
			    "result=\"%s\"} %llu\n",
			    c->listeners[l].listen, tls_label[r],
			    (unsigned long long)v);
		}
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_tls_errors_total TLS protocol errors on "
		 "established connections (after the handshake), by "
		 "listener.\n"
		 "# TYPE portcullis_tls_errors_total counter\n");
	for (l = 0; l < c->nlisteners && l < MAX_LISTENERS; l++) {
		uint64_t v = 0;

		if (!c->listeners[l].tls)
			continue;
		for (i = 0; i < nshards; i++)
			v += get(&shards[i]->tls_errors[l]);
		evbuffer_add_printf(
		    out, "portcullis_tls_errors_total{listener=\"%s\"} %llu\n",
		    c->listeners[l].listen, (unsigned long long)v);
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_auth_requests_total Requests to "
		 "authenticated routes, by realm and result (ok: verified by "
		 "a hash check, cached, denied, throttled, unavailable).\n"
		 "# TYPE portcullis_auth_requests_total counter\n");
	for (l = 0; l < c->nrealms; l++) {
		unsigned rid = c->realms[l].metric_id;
		int r;

		for (r = 0; r < NAUTH && rid < METRICS_MAX_REALMS; r++) {
			uint64_t v = 0;

			for (i = 0; i < nshards; i++)
				v += get(&shards[i]->auth[rid][r]);
			evbuffer_add_printf(
			    out,
			    "portcullis_auth_requests_total{realm=\"%s\","
			    "result=\"%s\"} %llu\n",
			    c->realms[l].name, auth_label[r],
			    (unsigned long long)v);
		}
	}
	evbuffer_add_printf(
	    out, "# HELP portcullis_auth_verifications_total Password hashes "
		 "computed, by realm (cache misses that reached the verifier "
		 "pool).\n"
		 "# TYPE portcullis_auth_verifications_total counter\n");
	for (l = 0; l < c->nrealms; l++) {
		unsigned rid = c->realms[l].metric_id;

		if (rid < METRICS_MAX_REALMS)
			evbuffer_add_printf(
			    out,
			    "portcullis_auth_verifications_total{realm=\"%s\"}"
			    " %llu\n",
			    c->realms[l].name,
			    (unsigned long long)atomic_load_explicit(
				&verifications[rid], memory_order_relaxed));
	}
}
