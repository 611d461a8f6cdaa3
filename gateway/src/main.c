/*
 * main.c - command line, startup, signals (HUP reload, TERM/INT drain),
 * and shutdown. The main thread owns signals, reloads and the admin
 * listener; workers own the traffic.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "aws.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "ocsp.h"
#include "passwd.h"
#include "ratelimit.h"
#include "secrets.h"
#include "sockcheck.h"
#include "verifier.h"
#include "worker.h"

struct gateway {
	const char *config_path;
	char *pid_file; /* written at start, removed at exit; NULL: none */
	struct config *cfg;
	struct event_base *base;
	struct worker *workers;
	unsigned nworkers;
	struct metrics_shard **shards;
	struct event *drain_timer;
	struct event *drain_poll;
	_Atomic unsigned finished;
	bool draining;
};

static void pid_file_remove(const struct gateway *gw);

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: portcullis -c FILE       run in the foreground\n"
		"       portcullis -t -c FILE    check the config and exit\n"
		"       portcullis -s reload|reopen|stop -c FILE\n"
		"                                signal the gateway whose "
		"pid_file FILE\n"
		"                                names: HUP (after checking "
		"FILE), USR1,\n"
		"                                TERM (and wait for it to "
		"drain)\n"
		"       portcullis passwd [-C COST] USER\n"
		"                                print an htpasswd line "
		"(bcrypt);\n"
		"                                password from stdin\n"
		"       portcullis passwd -v|-D|-f FILE USER\n"
		"                                check USER's password "
		"(exit 3 wrong),\n"
		"                                delete or set USER in FILE\n"
		"       portcullis secret get NAME [KEY]\n"
		"                                print a Secrets Manager "
		"secret (or one\n"
		"                                JSON key of it); exit 3 "
		"not found,\n"
		"                                4 access denied, 5 no "
		"credentials\n"
		"       portcullis --version\n");
}

static void
print_errors(const char *path, const struct config_errors *err)
{
	size_t i;

	for (i = 0; i < err->n; i++)
		log_error("%s: %s", path, err->msg[i]);
	if (err->dropped > 0)
		log_error("%s: %zu more error(s) not shown", path,
			  err->dropped);
}

/* Listeners are bound once; a reload may change anything but them. */
static int
reload_compatible(const struct config *old, const struct config *new)
{
	size_t i;
	int ok = 0;

	if (old->nlisteners != new->nlisteners) {
		log_error("listeners: adding or removing listeners needs a "
			  "restart (%zu now, %zu in the new config)",
			  old->nlisteners, new->nlisteners);
		return -1;
	}
	for (i = 0; i < new->nlisteners; i++) {
		if (strcmp(old->listeners[i].listen,
			   new->listeners[i].listen) != 0) {
			log_error("listeners[%zu].listen: changing \"%s\" to "
				  "\"%s\" needs a restart",
				  i, old->listeners[i].listen,
				  new->listeners[i].listen);
			ok = -1;
		}
	}
	if (strcmp(old->admin_listen, new->admin_listen) != 0) {
		log_error("admin.listen: changing it needs a restart");
		ok = -1;
	}
	for (i = 0; i < old->nresolvers || i < new->nresolvers; i++) {
		if (i >= old->nresolvers || i >= new->nresolvers ||
		    strcmp(old->resolvers[i].host, new->resolvers[i].host) !=
			0 ||
		    strcmp(old->resolvers[i].port, new->resolvers[i].port) !=
			0) {
			log_warn("resolvers: changes take effect at the next "
				 "restart");
			break;
		}
	}
	if (old->auth.verifier_threads != new->auth.verifier_threads ||
	    old->auth.cache_entries != new->auth.cache_entries)
		log_warn("auth: verifier_threads and cache_entries take "
			 "effect at the next restart");
	if (old->workers != new->workers)
		log_warn("workers: the new count (%u) takes effect at the next "
			 "restart; keeping %u",
			 new->workers, old->workers);
	return ok;
}

static bool
same_path(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
reload(struct gateway *gw)
{
	struct config_errors *err = calloc(1, sizeof(*err));
	char tls_err[TLS_ERR_LEN];
	struct config *cfg;
	unsigned i;

	if (err == NULL) {
		log_error("reload: out of memory; keeping the running config");
		admin_reload_result(false);
		return;
	}
	cfg = config_load(gw->config_path, err);
	if (cfg == NULL) {
		print_errors(gw->config_path, err);
		log_error("reload: %s is invalid; keeping the running config",
			  gw->config_path);
		admin_reload_result(false);
		free(err);
		return;
	}
	free(err);
	/* Certificates are re-read too; a broken new pair keeps the old
	 * config (and its certificates) whole. */
	if (config_build_tls(cfg, tls_err) == -1) {
		log_error("reload: %s; keeping the running config and "
			  "certificates",
			  tls_err);
		config_unref(cfg);
		admin_reload_result(false);
		return;
	}
	/* Tickets issued before the reload still resume after it. */
	tls_context_keep_tickets(cfg->tls_ctx, gw->cfg->tls_ctx);
	if (reload_compatible(gw->cfg, cfg) == -1 ||
	    metrics_register(cfg) == -1 ||
	    ratelimit_build(cfg, gw->cfg) == -1) {
		log_error("reload: keeping the running config");
		config_unref(cfg);
		admin_reload_result(false);
		return;
	}
	/* htpasswd files are re-read; a broken one keeps the old config. */
	if ((err = calloc(1, sizeof(*err))) == NULL ||
	    auth_build(cfg, err) == -1) {
		if (err != NULL)
			print_errors(gw->config_path, err);
		log_error("reload: keeping the running config and credentials");
		free(err);
		config_unref(cfg);
		admin_reload_result(false);
		return;
	}
	free(err);
	/* Servers the new config keeps keep their health. */
	if (health_build(cfg, gw->cfg) == -1) {
		log_error("reload: out of memory; keeping the running config");
		config_unref(cfg);
		admin_reload_result(false);
		return;
	}
	for (i = 0; i < gw->nworkers; i++)
		worker_publish(&gw->workers[i], cfg);
	health_switch(cfg);
	admin_set_config(cfg);
	if (!same_path(gw->cfg->access_log_path, cfg->access_log_path))
		log_access_reopen(cfg->access_log_path);
	if (!same_path(gw->cfg->pid_file, cfg->pid_file))
		log_warn("pid_file: a new path takes effect at the next "
			 "restart; still %s",
			 gw->cfg->pid_file != NULL ? gw->cfg->pid_file
						   : "none");
	config_unref(gw->cfg);
	gw->cfg = cfg;
	secrets_sync(cfg); /* SIGHUP fetches every secret again */
	/* The same certificate from the same responder keeps its staple. */
	tls_context_ocsp_sync(cfg->tls_ctx);
	admin_reload_result(true);
	log_info("reload: %s loaded", gw->config_path);
}

static void
drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	unsigned i, done = 0;

	/* A worker's loop returns once its last session is gone. */
	for (i = 0; i < gw->nworkers; i++)
		if (event_base_got_exit(gw->workers[i].w_base))
			done++;
	if (done == gw->nworkers)
		event_base_loopexit(gw->base, NULL);
}

static void
drain_expired(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	log_warn("drain: timeout reached with requests still in flight; "
		 "exiting anyway (exit status 3: they were cut)");
	pid_file_remove(gw);
	fflush(NULL);
	log_stop();
	_exit(3);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tv, poll = {0, 50 * 1000};
	unsigned i;

	if (sig == SIGHUP) {
		log_info("SIGHUP: reloading %s", gw->config_path);
		notify_reloading();
		reload(gw);
		notify_reload_done(admin_last_reload_ok());
		return;
	}
	if (sig == SIGUSR1) {
		/* logrotate's convention: the file was moved; open it anew. */
		if (gw->cfg->access_log_path != NULL)
			log_access_reopen(gw->cfg->access_log_path);
		else
			log_info("SIGUSR1: the access log goes to stdout; "
				 "nothing to reopen");
		return;
	}
	if (gw->draining)
		return;
	gw->draining = true;
	log_info("%s: draining in-flight requests (up to %llu ms)",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT",
		 (unsigned long long)gw->cfg->drain_timeout_ms);
	admin_set_draining();
	notify_stopping(gw->cfg->drain_timeout_ms);
	for (i = 0; i < gw->nworkers; i++)
		worker_drain(&gw->workers[i]);
	tv.tv_sec = (time_t)(gw->cfg->drain_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(gw->cfg->drain_timeout_ms % 1000) * 1000;
	gw->drain_timer = evtimer_new(gw->base, drain_expired, gw);
	gw->drain_poll = event_new(gw->base, -1, EV_PERSIST, drain_poll, gw);
	evtimer_add(gw->drain_timer, &tv);
	evtimer_add(gw->drain_poll, &poll);
}

/*
 * The systemd watchdog's question, at half its interval: has every
 * worker's loop answered the last ping? A worker whose loop has ended (a
 * drain) counts as answered, as does one not started yet. Then each gets a
 * new ping. A silent worker means no WATCHDOG=1, so that systemd restarts
 * a gateway one of whose loops hangs, not only one whose main loop does.
 */
static bool
workers_alive(void *arg)
{
	struct gateway *gw = arg;
	bool all = true;
	unsigned i;

	for (i = 0; i < gw->nworkers; i++) {
		struct worker *w = &gw->workers[i];

		if (!worker_answered(w) && !event_base_got_exit(w->w_base)) {
			log_error("watchdog: worker %u has not answered since "
				  "the last check; not telling systemd that "
				  "the gateway is alive",
				  w->w_id);
			all = false;
		}
		worker_ping(w);
	}
	return all;
}

/* A fetched secret's users for the running config's realms. */
static int
apply_secret(void *arg, const char *name, const struct htpasswd *users,
	     char *why, size_t len)
{
	struct gateway *gw = arg;

	return auth_secret_apply(gw->cfg, name, users, why, len);
}

static void
watch_files(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	auth_watch(gw->cfg);
}

static void
trim_memory(evutil_socket_t fd, short what, void *arg)
{
	worker_memory_trim();
}

static void
rotate_tickets(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	if (gw->cfg->tls_ctx != NULL)
		tls_context_rotate_tickets(gw->cfg->tls_ctx);
}

/* Was an error already recorded under the JSON path `prefix` (itself,
 * or something inside it)? -t checks the files only of what parsed. */
static bool
errors_under(const struct config_errors *err, const char *prefix)
{
	size_t i, n = strlen(prefix);

	for (i = 0; i < err->n; i++)
		if (strncmp(err->msg[i], prefix, n) == 0 &&
		    (err->msg[i][n] == ':' || err->msg[i][n] == '.' ||
		     err->msg[i][n] == '['))
			return true;
	return false;
}

/*
 * Records a certificate's error under `at`, or under the deeper JSON path
 * the message starts with ("tls.certificates[1].ocsp_file: ...").
 */
static void
tls_error(struct config_errors *err, const char *at, const char *msg)
{
	size_t n = strlen(at);
	const char *colon;
	char path[96];

	colon = strstr(msg, ": ");
	if (strncmp(msg, at, n) == 0 && msg[n] == '.' && colon != NULL &&
	    (size_t)(colon - msg) < sizeof(path)) {
		snprintf(path, sizeof(path), "%.*s", (int)(colon - msg), msg);
		config_error(err, path, "%s", colon + 2);
		return;
	}
	config_error(err, at, "%s", msg);
}

/*
 * -t checks certificates without making any: a pair that exists is loaded
 * and matched; a missing pair is fine only with self_signed. Each pair is
 * tried alone, so every broken one is named; then all of them together.
 */
static void
check_certificates(const char *path, const struct config *cfg,
		   struct config_errors *err)
{
	const struct tls_settings *ts = &cfg->tls.settings;
	struct tls_settings probe = *ts, one;
	char tls_err[TLS_ERR_LEN], at[48];
	struct tls_context *t;
	size_t i, n = 0, bad = 0;
	bool any_tls = false;

	for (i = 0; i < cfg->nlisteners; i++)
		any_tls = any_tls || cfg->listeners[i].tls;
	if (!any_tls || ts->ncerts == 0)
		return;
	probe.certs = calloc(ts->ncerts, sizeof(*probe.certs));
	if (probe.certs == NULL) {
		config_error(err, "(internal)", "out of memory");
		return;
	}
	for (i = 0; i < ts->ncerts; i++) {
		const struct tls_cert_config *cc = &ts->certs[i];

		snprintf(at, sizeof(at), "tls.certificates[%zu]", i);
		if (cc->cert_path == NULL || cc->key_path == NULL ||
		    errors_under(err, at))
			continue;
		if (access(cc->cert_path, F_OK) != 0 &&
		    access(cc->key_path, F_OK) != 0 &&
		    cc->self_signed != NULL) {
			printf("portcullis: %s: %s: %s and %s will be made at "
			       "start (self_signed)\n",
			       path, at, cc->cert_path, cc->key_path);
			continue;
		}
		probe.certs[n] = *cc; /* must load as it is */
		probe.certs[n].self_signed = NULL;
		one = *ts;
		one.certs = &probe.certs[n];
		one.ncerts = 1;
		if ((t = tls_context_new(&one, tls_err)) == NULL) {
			tls_error(err, at, tls_err);
			bad++;
		}
		tls_context_unref(t);
		n++;
	}
	probe.ncerts = n;
	if (n > 1 && bad == 0) {
		if ((t = tls_context_new(&probe, tls_err)) == NULL)
			config_error(err, "tls.certificates", "%s", tls_err);
		tls_context_unref(t);
	}
	free(probe.certs);
}

/* -t: can the gateway write `file` (the pid file, the access log)? */
static void
check_writable(const char *key, const char *file, struct config_errors *err)
{
	char dir[4096];
	char *slash;

	if (file == NULL)
		return;
	if (access(file, F_OK) == 0) {
		if (access(file, W_OK) != 0)
			config_error(err, key, "%s: %s", file, strerror(errno));
		return;
	}
	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	if (access(dir, W_OK) != 0)
		config_error(err, key, "cannot make %s: directory %s: %s", file,
			     dir, strerror(errno));
}

/*
 * portcullis -t: every error in one run. The structure first; then, for
 * every part that parsed without error (even when others did not), the
 * files it names: htpasswd files, certificates, where the pid file and the
 * access log go. Exit 0 or 1.
 */
static int
check_config(const char *path)
{
	struct config_errors *err = calloc(1, sizeof(*err));
	struct config *cfg;
	char at[CONFIG_NAME_MAX + 16];
	size_t i, j;
	int rc = 1;

	if (err == NULL)
		return 1;
	if ((cfg = config_load_partial(path, err)) == NULL)
		goto done;
	/* Each realm's files, every broken one named... */
	for (i = 0; i < cfg->nrealms; i++) {
		const struct config_realm *cr = &cfg->realms[i];
		bool whole = cr->name != NULL;

		for (j = 0; j < cr->nhtpasswd; j++)
			whole = whole && cr->htpasswd[j] != NULL;
		snprintf(at, sizeof(at), "realms.%s", whole ? cr->name : "");
		if (whole && cr->nhtpasswd > 0 && !errors_under(err, at))
			auth_check_realm(cr, err);
	}
	/* ...and when all is well, the same load as at start, with its note
	 * on each realm. */
	if (err->n == 0 && err->dropped == 0)
		auth_build(cfg, err);
	check_certificates(path, cfg, err); /* each pair that parsed */
	if (!errors_under(err, "pid_file"))
		check_writable("pid_file", cfg->pid_file, err);
	if (!errors_under(err, "access_log"))
		check_writable("access_log", cfg->access_log_path, err);
	if (err->n == 0 && err->dropped == 0) {
		printf("portcullis: %s: configuration is valid\n", path);
		rc = 0;
	}
done:
	print_errors(path, err);
	config_unref(cfg);
	free(err);
	return rc;
}

/*
 * After the workers have bound: refuses to run when another process listens
 * on one of our addresses too, having bound it between sockcheck_free()
 * and our bind (sockcheck.h). 0 or -1 (logged).
 */
static int
listeners_alone(const struct gateway *gw)
{
	size_t i, n = 0, cap = (size_t)gw->nworkers * gw->cfg->nlisteners;
	uint64_t *own = calloc(cap > 0 ? cap : 1, sizeof(*own));
	const struct worker *w;
	unsigned j;
	int rc;

	if (own == NULL) {
		log_error("out of memory checking the listeners");
		return -1;
	}
	for (j = 0; j < gw->nworkers; j++) {
		w = &gw->workers[j];
		for (i = 0; i < w->w_nlisteners && n < cap; i++)
			if (sockcheck_inode(
				evconnlistener_get_fd(w->w_listeners[i]),
				&own[n]) == 0)
				n++;
	}
	rc = sockcheck_alone(gw->cfg, own, n);
	free(own);
	return rc;
}

/* Writes our PID to gw->pid_file: a temporary file renamed over it, so a
 * reader sees the old content or the new, never a part. 0 or -1 (logged). */
static int
pid_file_write(const struct gateway *gw)
{
	char tmp[4200], line[24];
	int fd, n;

	if (gw->pid_file == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", gw->pid_file, (long)getpid());
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0644);
	if (fd == -1 || write(fd, line, (size_t)n) != n || close(fd) == -1 ||
	    rename(tmp, gw->pid_file) == -1) {
		log_error("pid_file: cannot write %s: %s", gw->pid_file,
			  strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Removes the pid file at exit, unless another process has rewritten it. */
static void
pid_file_remove(const struct gateway *gw)
{
	char buf[24];
	ssize_t n;
	int fd;

	if (gw->pid_file == NULL ||
	    (fd = open(gw->pid_file, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (strtol(buf, NULL, 10) == (long)getpid())
			unlink(gw->pid_file);
	}
}

static int
run(const char *path)
{
	struct gateway gw;
	struct config_errors *err;
	struct event *sigs[4] = {NULL, NULL, NULL, NULL}, *tickets = NULL;
	struct event *trim = NULL;
	struct timeval ten = {10, 0};
	struct event *watch = NULL;
	struct timeval second = {1, 0};
	bool verifiers = false;
	static const int signos[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
	struct timeval minute = {60, 0};
	char tls_err[TLS_ERR_LEN];
	unsigned i, inited = 0, started = 0;
	int rc = 1;

	log_set_timestamps(true); /* a daemon from here on */
	memset(&gw, 0, sizeof(gw));
	gw.config_path = path;
	if ((err = calloc(1, sizeof(*err))) == NULL)
		return 1;
	gw.cfg = config_load(path, err);
	if (gw.cfg == NULL) {
		print_errors(path, err);
		free(err);
		return 1;
	}
	free(err);
	/* No other process may listen where we will: SO_REUSEPORT would let
	 * it and us share the connections. Checked before anything is bound
	 * or made (a self-signed certificate). */
	if (sockcheck_free(gw.cfg, SOCKCHECK_GRACE_MS) == -1)
		goto done;
	if (config_build_tls(gw.cfg, tls_err) == -1) {
		log_error("%s", tls_err);
		goto done;
	}
	if (gw.cfg->access_log_path != NULL &&
	    log_access_open(gw.cfg->access_log_path, tls_err,
			    sizeof(tls_err)) == -1) {
		log_error("access_log: %s", tls_err);
		goto done;
	}
	if (gw.cfg->pid_file != NULL &&
	    (gw.pid_file = strdup(gw.cfg->pid_file)) == NULL)
		goto done;
	metrics_init();
	if (metrics_register(gw.cfg) == -1) {
		log_error("too many distinct route, realm or upstream server "
			  "names");
		goto done;
	}
	if (auth_init() == -1)
		goto done;
	if ((err = calloc(1, sizeof(*err))) == NULL)
		goto done;
	if (auth_build(gw.cfg, err) == -1) {
		print_errors(path, err);
		free(err);
		goto done;
	}
	free(err);
	if (ratelimit_build(gw.cfg, NULL) == -1) {
		log_error("out of memory for the rate limits");
		goto done;
	}
	if (health_build(gw.cfg, NULL) == -1) {
		log_error("out of memory");
		goto done;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		log_warn("cannot ignore SIGPIPE: %s", strerror(errno));
	/* No evthread_use_pthreads(): no event base is touched by two
	 * threads (workers are woken through an eventfd), so libevent runs
	 * without locks. */
	if ((gw.base = event_base_new()) == NULL) {
		log_error("cannot set up the event loop");
		goto done;
	}
	gw.nworkers = gw.cfg->workers;
	gw.workers = calloc(gw.nworkers, sizeof(*gw.workers));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	gw.shards = calloc(gw.nworkers, sizeof(*gw.shards));
	if (gw.workers == NULL || gw.shards == NULL)
		goto done;
	/* Bind everything before the first accept: failures are fatal here. */
	for (; inited < gw.nworkers; inited++) {
		if (worker_init(&gw.workers[inited], inited, gw.cfg) == -1) {
			inited++; /* partly made: worker_free() takes it */
			goto done;
		}
		gw.shards[inited] = gw.workers[inited].w_metrics;
	}
	if (listeners_alone(&gw) == -1)
		goto done;
	if (admin_start(gw.base, gw.cfg, gw.shards, gw.nworkers) == -1)
		goto done;
	if (health_start(gw.base, gw.cfg) == -1)
		goto done;
	if (verifier_start(gw.cfg->auth.verifier_threads, gw.workers,
			   gw.nworkers) == -1)
		goto done;
	if (secrets_init(gw.base, apply_secret, &gw) == -1 ||
	    ocsp_init(gw.base) == -1)
		goto done;
	verifiers = true;
	/* htpasswd files are watched for changes once a second. */
	watch = event_new(gw.base, -1, EV_PERSIST, watch_files, &gw);
	if (watch == NULL || evtimer_add(watch, &second) == -1) {
		log_error("cannot set up the credential file watch");
		goto done;
	}
	for (i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(gw.base, signos[i], on_signal, &gw);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1) {
			log_error("cannot handle signal %d", signos[i]);
			goto done;
		}
	}
	/* Session-ticket keys rotate on their interval, checked each minute. */
	tickets = event_new(gw.base, -1, EV_PERSIST, rotate_tickets, &gw);
	if (tickets == NULL || evtimer_add(tickets, &minute) == -1) {
		log_error("cannot set up the ticket key timer");
		goto done;
	}
	/* Memory a crowd of connections left behind goes back every 10 s. */
	trim = event_new(gw.base, -1, EV_PERSIST, trim_memory, NULL);
	if (trim == NULL || evtimer_add(trim, &ten) == -1) {
		log_error("cannot set up the memory timer");
		goto done;
	}
	if (notify_watchdog_start(gw.base, workers_alive, &gw) == -1)
		goto done;
	if (log_start() == -1) {
		log_error("cannot start the log writer");
		goto done;
	}
	for (; started < gw.nworkers; started++)
		if (worker_start(&gw.workers[started]) == -1)
			goto done;
	if (pid_file_write(&gw) == -1)
		goto done;
	admin_set_started();
	secrets_sync(gw.cfg);
	/* OCSP responses are fetched in the background: TLS is served at
	 * once, without a staple until the first one verifies. */
	tls_context_ocsp_sync(gw.cfg->tls_ctx);
	log_info("portcullis %s: pid %ld, %u worker(s), %zu listener(s), "
		 "admin on %s",
		 PORTCULLIS_VERSION, (long)getpid(), gw.nworkers,
		 gw.cfg->nlisteners, gw.cfg->admin_listen);
	notify_ready(gw.nworkers, gw.cfg->nlisteners);

	event_base_dispatch(gw.base);
	rc = 0;
	log_info("drained; exiting");
done:
	/* One teardown for a clean exit and for a failed start alike. */
	for (i = 0; i < started; i++) {
		if (rc != 0)
			worker_drain(&gw.workers[i]);
		worker_join(&gw.workers[i]);
	}
	/* No verifier may mail a worker that is being freed. */
	if (verifiers)
		verifier_stop();
	for (i = 0; i < inited; i++)
		worker_free(&gw.workers[i]);
	admin_stop();
	health_stop();
	secrets_free();
	ocsp_free();
	for (i = 0; i < 4; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (tickets != NULL)
		event_free(tickets);
	if (trim != NULL)
		event_free(trim);
	notify_watchdog_stop();
	if (watch != NULL)
		event_free(watch);
	if (gw.drain_timer != NULL)
		event_free(gw.drain_timer);
	if (gw.drain_poll != NULL)
		event_free(gw.drain_poll);
	if (gw.base != NULL)
		event_base_free(gw.base);
	pid_file_remove(&gw);
	free(gw.pid_file);
	log_stop();
	for (i = 0; i < inited; i++)
		metrics_shard_free(gw.shards[i]);
	free(gw.shards);
	free(gw.workers);
	config_unref(gw.cfg);
	return rc;
}

/* The PID in a pid file, or -1 after saying why not. */
static long
pid_file_read(const char *file)
{
	char buf[32], *end;
	ssize_t n;
	long pid;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		log_error("pid_file %s: %s%s", file, strerror(errno),
			  errno == ENOENT ? " (is the gateway running?)" : "");
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (n <= 0 || errno != 0 || pid <= 1 ||
	    (*end != '\n' && *end != '\0')) {
		log_error("pid_file %s: holds no process id", file);
		return -1;
	}
	return pid;
}

/* Is process `pid` a portcullis? Its command name, as the kernel keeps it,
 * tells a live gateway from a PID a stale pid file names. */
static bool
is_portcullis(long pid, char *comm, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(comm, len, "?");
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	n = read(fd, comm, len - 1);
	close(fd);
	comm[n > 0 ? n : 0] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "portcullis") == 0;
}

/*
 * portcullis -s reload|reopen|stop -c FILE: signals the gateway whose PID
 * the config's pid_file holds. A reload is sent only when FILE passes -t,
 * so a typo is reported here, not in the running gateway's log; a stop
 * waits until the process has drained and gone.
 */
static int
signal_cmd(const char *path, const char *what)
{
	static const struct {
		const char *name;
		int sig;
		const char *sig_name;
	} ops[] = {{"reload", SIGHUP, "SIGHUP"},
		   {"reopen", SIGUSR1, "SIGUSR1"},
		   {"stop", SIGTERM, "SIGTERM"}};
	struct config_errors *err = calloc(1, sizeof(*err));
	struct config *cfg = NULL;
	struct pollfd wait;
	uint64_t limit_ms;
	char comm[32];
	size_t i;
	long pid;
	int rc = 1, n, pidfd = -1;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(what, ops[i].name) == 0)
			break;
	if (i == sizeof(ops) / sizeof(ops[0])) {
		log_error("-s %s: the signals are reload, reopen and stop",
			  what);
		free(err);
		return 2;
	}
	if (err == NULL)
		return 1;
	/* Where the PID is, from the part of the config that parses. */
	if ((cfg = config_load_partial(path, err)) == NULL) {
		print_errors(path, err);
		goto done;
	}
	if (cfg->pid_file == NULL) {
		log_error("%s: no pid_file in the config, so the running "
			  "gateway cannot be found; set \"pid_file\" (and "
			  "restart), or signal its PID yourself",
			  path);
		goto done;
	}
	if ((pid = pid_file_read(cfg->pid_file)) == -1)
		goto done;
	/* A pidfd names this process and no later one with its PID: what
	 * is checked below is what is signalled and waited for. */
	if ((pidfd = pidfd_open((pid_t)pid, 0)) == -1) {
		if (errno == ESRCH)
			log_error("pid_file %s names pid %ld, which is not "
				  "running (the file is stale)",
				  cfg->pid_file, pid);
		else
			log_error("pid %ld: %s", pid, strerror(errno));
		goto done;
	}
	if (!is_portcullis(pid, comm, sizeof(comm))) {
		log_error("pid_file %s names pid %ld, which is \"%s\", not "
			  "portcullis (the file is stale); not signalling it",
			  cfg->pid_file, pid, comm);
		goto done;
	}
	if (ops[i].sig == SIGHUP && check_config(path) != 0) {
		log_error("not reloading pid %ld: %s has errors; the gateway "
			  "keeps its running config",
			  pid, path);
		goto done;
	}
	if (pidfd_send_signal(pidfd, ops[i].sig, NULL, 0) == -1) {
		log_error("%s to pid %ld: %s", ops[i].sig_name, pid,
			  strerror(errno));
		goto done;
	}
	log_info("sent %s (%s) to pid %ld", ops[i].sig_name, what, pid);
	rc = 0;
	if (ops[i].sig != SIGTERM)
		goto done;
	/* It drains for up to drain_timeout; a little more, then give up.
	 * The pidfd becomes readable when the process has exited. */
	limit_ms = cfg->drain_timeout_ms + 5000;
	wait.fd = pidfd;
	wait.events = POLLIN;
	do
		n = poll(&wait, 1,
			 limit_ms > INT_MAX ? INT_MAX : (int)limit_ms);
	while (n == -1 && errno == EINTR);
	if (n == 1) {
		log_info("pid %ld has stopped", pid);
	} else {
		log_error("pid %ld is still running %llu s after SIGTERM", pid,
			  (unsigned long long)(limit_ms / 1000));
		rc = 1;
	}
done:
	if (pidfd != -1)
		close(pidfd);
	config_unref(cfg);
	free(err);
	return rc;
}

/* Exit codes of `portcullis secret get`, for scripts. */
enum {
	SECRET_OK = 0,
	SECRET_FAILED = 1,
	SECRET_USAGE = 2,
	SECRET_NOT_FOUND = 3,
	SECRET_DENIED = 4,
	SECRET_NO_CREDENTIALS = 5,
};

struct secret_get {
	struct event_base *base;
	const char *name, *key;
	int rc;
};

/* Prints the value (a string as is, anything else as JSON), with a newline
 * only for a terminal, so `> file` holds exactly the secret. */
static int
secret_print(const char *v, size_t len)
{
	if (fwrite(v, 1, len, stdout) != len ||
	    (isatty(STDOUT_FILENO) && fputc('\n', stdout) == EOF) ||
	    fflush(stdout) != 0)
		return SECRET_FAILED;
	return SECRET_OK;
}

static int
secret_key(const struct secret_get *g, const char *text)
{
	cJSON *j = cJSON_Parse(text), *v;
	char *out;
	int rc;

	if (!cJSON_IsObject(j)) {
		fprintf(stderr,
			"portcullis secret: %s is not a JSON object; "
			"print it whole without KEY\n",
			g->name);
		cJSON_Delete(j);
		return SECRET_FAILED;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, g->key);
	if (v == NULL) {
		fprintf(stderr, "portcullis secret: %s has no key \"%s\"\n",
			g->name, g->key);
		rc = SECRET_NOT_FOUND;
	} else if (cJSON_IsString(v)) {
		rc = secret_print(v->valuestring, strlen(v->valuestring));
	} else if ((out = cJSON_PrintUnformatted(v)) != NULL) {
		rc = secret_print(out, strlen(out));
		OPENSSL_cleanse(out, strlen(out));
		free(out);
	} else {
		rc = SECRET_FAILED;
	}
	cJSON_Delete(j);
	return rc;
}

static void
secret_done(void *arg, const struct aws_result *r)
{
	struct secret_get *g = arg;
	const cJSON *s;
	cJSON *j;

	event_base_loopbreak(g->base);
	if (r->status != AWS_OK) {
		fprintf(stderr, "portcullis secret: %s: %s%s%s\n", g->name,
			r->error, r->message[0] != '\0' ? ": " : "",
			r->message);
		g->rc = r->status == AWS_NOT_FOUND ? SECRET_NOT_FOUND
			: r->status == AWS_DENIED  ? SECRET_DENIED
			: r->status == AWS_NO_CREDENTIALS
			    ? SECRET_NO_CREDENTIALS
			    : SECRET_FAILED;
		return;
	}
	j = cJSON_ParseWithLength(r->body, r->body_len);
	s = cJSON_GetObjectItemCaseSensitive(j, "SecretString");
	if (!cJSON_IsString(s)) {
		fprintf(stderr,
			"portcullis secret: %s: the answer has no SecretString "
			"(binary secrets are not supported)\n",
			g->name);
		g->rc = SECRET_FAILED;
	} else if (g->key != NULL) {
		g->rc = secret_key(g, s->valuestring);
	} else {
		g->rc = secret_print(s->valuestring, strlen(s->valuestring));
	}
	if (cJSON_IsString(s))
		OPENSSL_cleanse(s->valuestring, strlen(s->valuestring));
	cJSON_Delete(j);
}

/* portcullis secret get NAME [KEY], through the gateway's own client. */
static int
secret_cmd(int argc, char **argv)
{
	struct secret_get g = {NULL, NULL, NULL, SECRET_FAILED};
	struct aws *a = NULL;
	cJSON *req;
	char *body = NULL;

	if ((argc != 4 && argc != 5) || strcmp(argv[2], "get") != 0) {
		usage(stderr);
		return SECRET_USAGE;
	}
	g.name = argv[3];
	g.key = argc == 5 ? argv[4] : NULL;
	if ((req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(req, "SecretId", g.name) == NULL ||
	    (body = cJSON_PrintUnformatted(req)) == NULL ||
	    (g.base = event_base_new()) == NULL ||
	    (a = aws_new(g.base)) == NULL ||
	    aws_call(a, "secretsmanager", "secretsmanager.GetSecretValue", body,
		     secret_done, &g) == -1) {
		fprintf(stderr,
			"portcullis secret: cannot start the request\n");
		goto done;
	}
	event_base_dispatch(g.base);
done:
	aws_free(a);
	if (g.base != NULL)
		event_base_free(g.base);
	cJSON_Delete(req);
	free(body);
	log_stop();
	return g.rc;
}

int
main(int argc, char **argv)
{
	const char *path = NULL, *sig = NULL;
	bool test = false;
	int opt;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("portcullis %s (libevent %s, %s)\n", PORTCULLIS_VERSION,
		       event_get_version(), OPENSSL_VERSION_TEXT);
		return 0;
	}
	if (argc == 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "secret") == 0)
		return secret_cmd(argc, argv);
	while ((opt = getopt(argc, argv, "c:ts:")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 's':
			sig = optarg;
			break;
		case 't':
			test = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc || (test && sig != NULL)) {
		usage(stderr);
		return 2;
	}
	if (sig != NULL)
		return signal_cmd(path, sig);
	return test ? check_config(path) : run(path);
}
