/*
 * worker.c - worker threads, their listeners and config generations.
 */
#include "worker.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "overload.h"
#include "proxy.h"
#include "upstream.h"

#define WORKER_LOG_RING (1024 * 1024)
#define WORKER_TRIM_AFTER 256 /* connections gone since the peak */

/* Client connections of the whole process, against max_connections: one
 * atomic add per connection, none per request. */
static atomic_size_t worker_conns;
/* The most connections open at once since worker_memory_trim() last
 * looked: a CAS only when a new peak is set. */
static atomic_size_t worker_conns_peak;

struct listener_ctx {
	struct worker *lc_w;
	unsigned lc_idx;
	struct event *lc_pause;	       /* re-enables accept after an error */
	struct overload_note lc_full;  /* refused over max_connections */
	struct overload_note lc_nofd;  /* refused out of descriptors */
	struct overload_note lc_error; /* other accept errors */
};

#define OVERLOAD_LOG_MS 10000 /* one line per listener and cause */
#define OVERLOAD_SHED_MAX 64  /* answered per accept error */

static struct wgen *
wgen_new(struct worker *w, struct config *cfg)
{
	struct wgen *g;
	size_t i;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->g_cfg = config_ref(cfg);
	g->g_w = w;
	g->g_refs = 1; /* held by w->w_gen while current */
	g->g_up =
	    calloc(cfg->nupstreams ? cfg->nupstreams : 1,
		   sizeof(*g->g_up)); /* NOLINT(bugprone-sizeof-expression):
					 an array of pointers */
	if (g->g_up == NULL)
		goto fail;
	for (i = 0; i < cfg->nupstreams; i++)
		if ((g->g_up[i] =
			 upstream_new(w->w_base, w->w_dns, &cfg->upstreams[i],
				      w->w_metrics)) == NULL)
			goto fail;
	return g;
fail:
	g->g_refs = 0;
	wgen_release(g);
	return NULL;
}

struct wgen *
wgen_acquire(struct worker *w)
{
	w->w_gen->g_refs++;
	return w->w_gen;
}

void
wgen_release(struct wgen *g)
{
	size_t i;

	if (g->g_refs > 0 && --g->g_refs > 0)
		return;
	if (g->g_up != NULL)
		for (i = 0; i < g->g_cfg->nupstreams; i++)
			upstream_free(g->g_up[i]);
	free(g->g_up);
	config_unref(g->g_cfg);
	free(g);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
	  int salen, void *arg)
{
	struct listener_ctx *ctx = arg;
	struct worker *w = ctx->lc_w;

	uint64_t n;
	size_t open = atomic_fetch_add(&worker_conns, 1) + 1, peak;

	peak = atomic_load_explicit(&worker_conns_peak, memory_order_relaxed);
	while (open > peak && !atomic_compare_exchange_weak_explicit(
				  &worker_conns_peak, &peak, open,
				  memory_order_relaxed, memory_order_relaxed))
		;
	if (open > w->w_gen->g_cfg->max_connections) {
		atomic_fetch_sub(&worker_conns, 1);
		proxy_refuse(w, fd);
		metrics_rejected(w->w_metrics, ctx->lc_idx,
				 METRICS_REJECTED_MAX_CONNECTIONS, 1);
		if (overload_note_due(&ctx->lc_full, 1, conn_now_ms(),
				      OVERLOAD_LOG_MS, &n))
			log_warn("listener %s: %llu connection(s) answered "
				 "503: max_connections (%zu) reached",
				 w->w_gen->g_cfg->listeners[ctx->lc_idx].listen,
				 (unsigned long long)n,
				 w->w_gen->g_cfg->max_connections);
		return;
	}
	if (proxy_accept(w, ctx->lc_idx, fd, sa, (socklen_t)salen) == -1)
		atomic_fetch_sub(&worker_conns, 1);
}

void
worker_memory_trim(void)
{
	size_t now = atomic_load(&worker_conns);
	size_t peak = atomic_exchange(&worker_conns_peak, now);

	/* glibc keeps freed memory in the workers' arenas: after a crowd of
	 * connections (slow readers, a flood) has gone, give it back. */
	if (peak >= now + WORKER_TRIM_AFTER)
		malloc_trim(0);
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener_ctx *ctx = arg;

	if (!ctx->lc_w->w_draining)
		evconnlistener_enable(ctx->lc_w->w_listeners[ctx->lc_idx]);
}

/* accept() failed: pause this listener for 100 ms instead of spinning on
 * it. Out of descriptors, the pending connections are first answered 503
 * with the worker's spare descriptor (overload.h). Logged once per
 * OVERLOAD_LOG_MS per cause, with a count. */
static void
accept_error(struct evconnlistener *l, void *arg)
{
	struct listener_ctx *ctx = arg;
	struct worker *w = ctx->lc_w;
	const char *name = w->w_gen->g_cfg->listeners[ctx->lc_idx].listen;
	struct timeval tv = {0, 100 * 1000};
	int err = errno;
	uint64_t n, shed;

	if (overload_out_of_fds(err)) {
		shed = overload_shed(evconnlistener_get_fd(l), &w->w_spare,
				     OVERLOAD_SHED_MAX);
		metrics_rejected(w->w_metrics, ctx->lc_idx,
				 METRICS_REJECTED_NO_FD, shed);
		if (overload_note_due(&ctx->lc_nofd, shed, conn_now_ms(),
				      OVERLOAD_LOG_MS, &n))
			log_error("listener %s: accept: %s; %llu "
				  "connection(s) answered 503 since the last "
				  "line (raise the descriptor limit, "
				  "LimitNOFILE=, or lower max_connections)",
				  name, strerror(err), (unsigned long long)n);
	} else if (overload_note_due(&ctx->lc_error, 1, conn_now_ms(),
				     OVERLOAD_LOG_MS, &n)) {
		log_error("listener %s: accept: %s (%llu time(s) since the "
			  "last line)",
			  name, strerror(err), (unsigned long long)n);
	}
	evconnlistener_disable(l);
	evtimer_add(ctx->lc_pause, &tv);
}

static void
listeners_close(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->w_nlisteners; i++) {
		struct listener_ctx *ctx = w->w_lctx[i];

		if (w->w_listeners[i] != NULL)
			evconnlistener_free(w->w_listeners[i]);
		w->w_listeners[i] = NULL;
		if (ctx != NULL)
			event_free(ctx->lc_pause);
		free(ctx);
		w->w_lctx[i] = NULL;
	}
}

static void
drain_start(struct worker *w)
{
	w->w_draining = true;
	listeners_close(w);
	proxy_drain_all(w);
	if (w->w_nsessions == 0)
		event_base_loopexit(w->w_base, NULL);
}

/* Hands every queued message to its handler, oldest first. */
static void
mail_deliver(struct worker *w)
{
	struct worker_mail *m, *next;

	pthread_mutex_lock(&w->w_mail_lock);
	m = w->w_mail;
	w->w_mail = NULL;
	w->w_mail_tail = &w->w_mail;
	pthread_mutex_unlock(&w->w_mail_lock);
	for (; m != NULL; m = next) {
		next = m->wm_next;
		m->wm_fn(w, m);
	}
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct config *cfg;
	uint64_t n;

	if (read(w->w_notify_fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("worker %u: eventfd read: %s", w->w_id,
			 strerror(errno));
	atomic_store(&w->w_pong, atomic_load(&w->w_ping));
	mail_deliver(w);
	cfg = atomic_exchange(&w->w_pending, NULL);

	if (cfg != NULL) {
		struct wgen *g = wgen_new(w, cfg);

		config_unref(cfg);
		if (g == NULL) {
			log_error("worker %u: out of memory taking the new "
				  "config; keeping the old one",
				  w->w_id);
		} else {
			struct wgen *old = w->w_gen;

			w->w_gen = g;
			wgen_release(old);
		}
	}
	if (atomic_load(&w->w_drain_req) && !w->w_draining)
		drain_start(w);
}

/*
 * The worker's resolver: the configured servers, or the system's. Without
 * either (a bare container) names fail to resolve and their routes answer
 * 502 until they do; numeric upstreams are unaffected.
 */
struct evdns_base *
worker_resolver(struct event_base *base, const struct config *cfg)
{
	struct evdns_base *dns;
	size_t i;

	if (cfg->nresolvers == 0) {
		dns =
		    evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					     EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (dns == NULL) /* no usable resolv.conf */
			dns = evdns_base_new(base, 0);
		return dns;
	}
	if ((dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) ==
	    NULL)
		return NULL;
	evdns_base_load_hosts(dns, NULL);
	for (i = 0; i < cfg->nresolvers; i++) {
		const struct config_hostport *r = &cfg->resolvers[i];

		if (evdns_base_nameserver_sockaddr_add(
			dns, (const struct sockaddr *)&r->addr, r->addrlen,
			0) != 0)
			log_warn("resolvers[%zu]: cannot use %s:%s", i, r->host,
				 r->port);
	}
	return dns;
}

int
worker_init(struct worker *w, unsigned id, struct config *cfg)
{
	struct event_config *ecfg;
	unsigned char rnd[8];
	size_t i;

	memset(w, 0, sizeof(*w));
	w->w_notify_fd = -1;
	/* Kept for the day the process runs out of descriptors. */
	w->w_spare = overload_spare_open();
	w->w_id = id;
	pthread_mutex_init(&w->w_mail_lock, NULL);
	w->w_mail_tail = &w->w_mail;
	TAILQ_INIT(&w->w_sessions);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		log_error("getrandom: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(&w->w_idprefix[2 * i], 3, "%02x", rnd[i]);
	/* The changelist folds an add and a delete of the same event within
	 * one loop turn into nothing instead of two epoll_ctl calls. */
	if ((ecfg = event_config_new()) == NULL)
		return -1;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->w_base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (w->w_base == NULL) {
		log_error("worker %u: cannot make an event base", id);
		return -1;
	}
	if ((w->w_dns = worker_resolver(w->w_base, cfg)) == NULL)
		return -1;
	/* An eventfd, not event_active() from the main thread: libevent then
	 * needs no locks, and the request path takes none. */
	w->w_notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->w_notify_fd == -1) {
		log_error("worker %u: eventfd: %s", id, strerror(errno));
		return -1;
	}
	w->w_notify = event_new(w->w_base, w->w_notify_fd, EV_READ | EV_PERSIST,
				notify_cb, w);
	if (w->w_notify != NULL)
		event_add(w->w_notify, NULL);
	w->w_metrics = metrics_shard_new();
	w->w_auth = auth_worker_new(cfg->auth.cache_entries);
	w->w_gen = wgen_new(w, cfg);
	w->w_nlisteners = cfg->nlisteners;
	/* NOLINTBEGIN(bugprone-sizeof-expression): arrays of pointers */
	w->w_listeners = calloc(cfg->nlisteners, sizeof(*w->w_listeners));
	w->w_lctx = calloc(cfg->nlisteners, sizeof(*w->w_lctx));
	/* NOLINTEND(bugprone-sizeof-expression) */
	w->w_fields = calloc(PROXY_MAX_RESPONSE_FIELDS, sizeof(*w->w_fields));
	if (w->w_notify == NULL || w->w_metrics == NULL || w->w_auth == NULL ||
	    w->w_gen == NULL || w->w_listeners == NULL || w->w_lctx == NULL ||
	    w->w_fields == NULL) {
		log_error("worker %u: out of memory", id);
		return -1;
	}
	for (i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];
		struct listener_ctx *ctx = calloc(1, sizeof(*ctx));

		if (ctx == NULL)
			return -1;
		ctx->lc_w = w;
		ctx->lc_idx = (unsigned)i;
		ctx->lc_pause = evtimer_new(w->w_base, accept_resume, ctx);
		w->w_lctx[i] = ctx;
		w->w_listeners[i] = evconnlistener_new_bind(
		    w->w_base, accept_cb, ctx,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
			LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
		    1024, (const struct sockaddr *)&l->addr, (int)l->addrlen);
		if (w->w_listeners[i] == NULL || ctx->lc_pause == NULL) {
			log_error("listeners[%zu]: cannot listen on %s: %s", i,
				  l->listen, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(w->w_listeners[i], accept_error);
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	/* "pc-worker-N" in top -H, ps -L and /proc/PID/task/TID/comm. */
	snprintf(name, sizeof(name), "pc-worker-%u", w->w_id);
	pthread_setname_np(pthread_self(), name);
	if (log_ring_attach(WORKER_LOG_RING) == -1)
		log_warn("worker %u: no log ring; logging directly", w->w_id);
	event_base_dispatch(w->w_base);
	return NULL;
}

int
worker_start(struct worker *w)
{
	int rc = pthread_create(&w->w_thread, NULL, worker_main, w);

	if (rc != 0) {
		log_error("worker %u: cannot start a thread: %s", w->w_id,
			  strerror(rc));
		return -1;
	}
	return 0;
}

/* Wakes the worker's loop from another thread. */
static void
worker_poke(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->w_notify_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_error("worker %u: eventfd write: %s", w->w_id,
			  strerror(errno));
}

void
worker_ping(struct worker *w)
{
	atomic_fetch_add(&w->w_ping, 1);
	worker_poke(w);
}

bool
worker_answered(const struct worker *w)
{
	return atomic_load(&w->w_pong) == atomic_load(&w->w_ping);
}

void
worker_publish(struct worker *w, struct config *cfg)
{
	struct config *old = atomic_exchange(&w->w_pending, config_ref(cfg));

	config_unref(old); /* one the worker never took */
	worker_poke(w);
}

void
worker_post(struct worker *w, struct worker_mail *m)
{
	m->wm_next = NULL;
	pthread_mutex_lock(&w->w_mail_lock);
	*w->w_mail_tail = m;
	w->w_mail_tail = &m->wm_next;
	pthread_mutex_unlock(&w->w_mail_lock);
	worker_poke(w);
}

void
worker_drain(struct worker *w)
{
	atomic_store(&w->w_drain_req, true);
	worker_poke(w);
}

void
worker_session_gone(struct worker *w)
{
	atomic_fetch_sub(&worker_conns, 1);
	if (w->w_draining && w->w_nsessions == 0)
		event_base_loopexit(w->w_base, NULL);
}

void
worker_join(struct worker *w)
{
	pthread_join(w->w_thread, NULL);
}

void
worker_free(struct worker *w)
{
	if (w->w_lctx != NULL && w->w_listeners != NULL)
		listeners_close(w);
	if (w->w_mail_tail != NULL)
		mail_deliver(w); /* no session is left to take any of it */
	auth_worker_free(w->w_auth);
	w->w_auth = NULL;
	config_unref(atomic_exchange(&w->w_pending, NULL));
	if (w->w_gen != NULL)
		wgen_release(w->w_gen);
	w->w_gen = NULL;
	free(w->w_listeners);
	w->w_listeners = NULL;
	free(w->w_lctx);
	w->w_lctx = NULL;
	free(w->w_fields);
	w->w_fields = NULL;
	if (w->w_notify != NULL)
		event_free(w->w_notify);
	w->w_notify = NULL;
	if (w->w_notify_fd != -1)
		close(w->w_notify_fd);
	w->w_notify_fd = -1;
	if (w->w_spare != -1)
		close(w->w_spare);
	w->w_spare = -1;
	if (w->w_dns != NULL)
		evdns_base_free(w->w_dns, 0);
	w->w_dns = NULL;
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	w->w_base = NULL;
	if (w->w_mail_tail != NULL)
		pthread_mutex_destroy(&w->w_mail_lock);
	w->w_mail_tail = NULL;
}
