/*
 * main.c - command line, startup, signals (HUP reload, TERM/INT drain),
 * and shutdown. The main thread owns signals, reloads and the admin
 * listener; workers own the traffic.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "aws.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pwhash.h"
#include "secrets.h"
#include "sockcheck.h"
#include "verifier.h"
#include "worker.h"

struct gateway {
	const char *config_path;
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

static void
usage(FILE *f)
{
	fprintf(f, "usage: portcullis -c FILE       run in the foreground\n"
		   "       portcullis -t -c FILE    check the config and exit\n"
		   "       portcullis passwd [-C COST] USER\n"
		   "                                print an htpasswd line "
		   "(bcrypt);\n"
		   "                                password from stdin\n"
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
	    metrics_register(cfg) == -1) {
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
	for (i = 0; i < gw->nworkers; i++)
		worker_publish(&gw->workers[i], cfg);
	admin_set_config(cfg);
	config_unref(gw->cfg);
	gw->cfg = cfg;
	secrets_sync(cfg); /* SIGHUP fetches every secret again */
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
		 "exiting anyway");
	fflush(NULL);
	log_stop();
	_exit(0);
	(void)gw;
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
	if (sig == SIGUSR1)
		return; /* logs go to stdout/stderr; nothing to reopen */
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
rotate_tickets(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	if (gw->cfg->tls_ctx != NULL)
		tls_context_rotate_tickets(gw->cfg->tls_ctx);
}

/*
 * -t checks certificates without making any: a pair that exists is loaded
 * and matched; a missing pair is fine only with self_signed.
 */
static int
check_certificates(const char *path, const struct config *cfg)
{
	const struct tls_settings *ts = &cfg->tls.settings;
	struct tls_settings probe = *ts;
	char err[TLS_ERR_LEN];
	struct tls_context *t;
	size_t i, n = 0;
	int bad = 0;

	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].tls)
			break;
	if (i == cfg->nlisteners)
		return 0;
	probe.certs = calloc(ts->ncerts, sizeof(*probe.certs));
	if (probe.certs == NULL)
		return -1;
	for (i = 0; i < ts->ncerts; i++) {
		const struct tls_cert_config *cc = &ts->certs[i];
		bool have_cert = access(cc->cert_path, F_OK) == 0;
		bool have_key = access(cc->key_path, F_OK) == 0;

		if (have_cert || have_key || cc->self_signed == NULL) {
			probe.certs[n++] = *cc; /* must load as it is */
			continue;
		}
		printf("portcullis: %s: tls.certificates[%zu]: %s and %s will "
		       "be made at start (self_signed)\n",
		       path, i, cc->cert_path, cc->key_path);
	}
	probe.ncerts = n;
	if (n > 0) {
		for (i = 0; i < n; i++)
			probe.certs[i].self_signed = NULL;
		if ((t = tls_context_new(&probe, err)) == NULL) {
			log_error("%s: %s", path, err);
			bad = -1;
		}
		tls_context_unref(t);
	}
	free(probe.certs);
	return bad;
}

static int
check_config(const char *path)
{
	struct config_errors *err = calloc(1, sizeof(*err));
	struct config *cfg;

	if (err == NULL)
		return 1;
	cfg = config_load(path, err);
	if (cfg == NULL) {
		print_errors(path, err);
		free(err);
		return 1;
	}
	memset(err, 0, sizeof(*err));
	if (auth_build(cfg, err) == -1) {
		print_errors(path, err);
		free(err);
		config_unref(cfg);
		return 1;
	}
	free(err);
	if (check_certificates(path, cfg) == -1) {
		config_unref(cfg);
		return 1;
	}
	config_unref(cfg);
	printf("portcullis: %s: configuration is valid\n", path);
	return 0;
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

static int
run(const char *path)
{
	struct gateway gw;
	struct config_errors *err;
	struct event *sigs[4] = {NULL, NULL, NULL, NULL}, *tickets = NULL;
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
	metrics_init();
	if (metrics_register(gw.cfg) == -1) {
		log_error("too many distinct route or realm names");
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
	if (verifier_start(gw.cfg->auth.verifier_threads, gw.workers,
			   gw.nworkers) == -1)
		goto done;
	if (secrets_init(gw.base, apply_secret, &gw) == -1)
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
	if (notify_watchdog_start(gw.base) == -1)
		goto done;
	if (log_start() == -1) {
		log_error("cannot start the log writer");
		goto done;
	}
	for (; started < gw.nworkers; started++)
		if (worker_start(&gw.workers[started]) == -1)
			goto done;
	admin_set_started();
	secrets_sync(gw.cfg);
	log_info("portcullis %s: %u worker(s), %zu listener(s), admin on %s",
		 PORTCULLIS_VERSION, gw.nworkers, gw.cfg->nlisteners,
		 gw.cfg->admin_listen);
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
	secrets_free();
	for (i = 0; i < 4; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (tickets != NULL)
		event_free(tickets);
	notify_watchdog_stop();
	if (watch != NULL)
		event_free(watch);
	if (gw.drain_timer != NULL)
		event_free(gw.drain_timer);
	if (gw.drain_poll != NULL)
		event_free(gw.drain_poll);
	if (gw.base != NULL)
		event_base_free(gw.base);
	log_stop();
	for (i = 0; i < inited; i++)
		metrics_shard_free(gw.shards[i]);
	free(gw.shards);
	free(gw.workers);
	config_unref(gw.cfg);
	return rc;
}

/* Reads one line of at most cap - 1 bytes from stdin, without its end;
 * with a terminal, asks twice without echo. 0 or -1. */
static int
read_password(char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	char again[1024];
	size_t n;
	int rc = -1;

	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fputs("Password: ", stderr);
	}
	if (fgets(buf, (int)cap, stdin) == NULL) {
		fprintf(stderr, "portcullis passwd: no password on stdin\n");
		goto done;
	}
	n = strlen(buf);
	if (n == cap - 1 && buf[n - 1] != '\n') {
		fprintf(stderr, "portcullis passwd: password too long\n");
		goto done;
	}
	/* Only the line's end goes: "\n" or "\r\n". */
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	*len = n;
	if (tty) {
		fputs("\nAgain: ", stderr);
		if (fgets(again, sizeof(again), stdin) == NULL)
			goto done;
		again[strcspn(again, "\r\n")] = '\0';
		fputs("\n", stderr);
		if (strcmp(buf, again) != 0) {
			fprintf(stderr,
				"portcullis passwd: passwords differ\n");
			goto done;
		}
	}
	rc = 0;
done:
	OPENSSL_cleanse(again, sizeof(again));
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/* portcullis passwd [-C COST] USER: prints "USER:$2y$..." for htpasswd. */
static int
passwd_cmd(int argc, char **argv)
{
	char pw[1024], hash[PWHASH_MAX];
	unsigned long cost = 10;
	const char *user, *p;
	size_t len = 0;
	char *end;
	int opt, rc = 2;

	optind = 2;
	while ((opt = getopt(argc, argv, "C:")) != -1) {
		if (opt != 'C') {
			usage(stderr);
			return 2;
		}
		errno = 0;
		cost = strtoul(optarg, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    cost < PWHASH_BCRYPT_MIN_COST ||
		    cost > PWHASH_BCRYPT_MAX_COST) {
			fprintf(stderr,
				"portcullis passwd: -C must be %d to %d\n",
				PWHASH_BCRYPT_MIN_COST, PWHASH_BCRYPT_MAX_COST);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	user = argv[optind];
	for (p = user; *p != '\0'; p++)
		if (*p == ':' || (unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (*user == '\0' || *p != '\0' || strlen(user) > AUTH_USER_MAX) {
		fprintf(stderr,
			"portcullis passwd: a user name is 1 to %d "
			"bytes without ':' or control characters\n",
			AUTH_USER_MAX);
		return 2;
	}
	if (read_password(pw, sizeof(pw), &len) == -1)
		goto done;
	if (len == 0) {
		fprintf(stderr, "portcullis passwd: empty password refused\n");
		goto done;
	}
	for (p = pw; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (*p != '\0' || strlen(pw) != len) {
		/* RFC 7617 section 2: basic auth cannot carry them. */
		fprintf(stderr, "portcullis passwd: the password has a control "
				"character; basic auth cannot send it\n");
		goto done;
	}
	if (pwhash_make_bcrypt(pw, len, (unsigned)cost, hash, sizeof(hash)) ==
	    -1) {
		fprintf(stderr,
			"portcullis passwd: cannot make a bcrypt hash\n");
		goto done;
	}
	printf("%s:%s\n", user, hash);
	rc = fflush(stdout) == 0 ? 0 : 1;
done:
	OPENSSL_cleanse(pw, sizeof(pw));
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
	const char *path = NULL;
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
		return passwd_cmd(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "secret") == 0)
		return secret_cmd(argc, argv);
	while ((opt = getopt(argc, argv, "c:t")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	return test ? check_config(path) : run(path);
}
