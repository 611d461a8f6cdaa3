/*
 * auth.h - HTTP basic authentication (RFC 7617) for routes with a realm.
 *
 * A realm's credentials are loaded from its htpasswd files into an
 * immutable set that is swapped whole when a file changes; every set gets
 * a process-unique version. The request path (auth_check) runs on a worker:
 * brute-force guard, then the worker's verified-credential cache, then --
 * only on a miss -- a slow hash check on the verifier pool (verifier.h),
 * whose answer comes back to the worker's loop as mail.
 */
#ifndef PORTCULLIS_AUTH_H
#define PORTCULLIS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authcache.h"
#include "worker.h"

struct config;
struct config_errors;
struct config_realm;
struct auth_realm;
struct auth_worker;
struct pwhash_scratch;

enum auth_result {
	AUTH_OK,	  /* verified by a hash check */
	AUTH_CACHED,	  /* accepted from the cache */
	AUTH_DENIED,	  /* 401 */
	AUTH_THROTTLED,	  /* 429: the guard refuses the address */
	AUTH_UNAVAILABLE, /* 503: no credentials, or the pool is full */
	AUTH_NRESULTS,
	AUTH_PENDING = AUTH_NRESULTS /* auth_check(): answer comes later */
};

#define AUTH_USER_MAX 255

/*
 * One request waiting on the verifier pool. Made by auth_check() on the
 * worker; owned by the pool until it mails it back; freed by the worker's
 * mail handler. aw_arg is only touched by the worker (cancel sets it NULL).
 */
struct auth_wait {
	struct worker_mail aw_mail; /* first: the mail handler casts back */
	struct auth_wait *aw_next;  /* the other waiters of one check */
	struct worker *aw_w;
	uint64_t aw_peer; /* guard key of the client */
	void (*aw_done)(void *arg, enum auth_result r);
	void *aw_arg;		    /* NULL once cancelled */
	enum auth_result aw_result; /* set by the pool */
};

/* Process-wide set-up: the random HMAC key. Main thread, before workers
 * are made; 0 or -1. */
int auth_init(void);

/*
 * Loads the credentials of every realm of a parsed config into
 * realm->auth (main thread, before the config is shared). 0, or -1 with
 * errors naming the JSON path, the file and the line, e.g.
 * `realms.prom.htpasswd[1]: /etc/x: line 3: bcrypt cost 31 is outside 4..17`.
 */
int auth_build(struct config *c, struct config_errors *err);

/* `portcullis -t`: reads one realm's htpasswd files as auth_build() would,
 * keeping nothing and logging nothing; 0, or -1 with the error in err. */
int auth_check_realm(const struct config_realm *cr, struct config_errors *err);

/* Drops a reference to a realm (config_free and finished checks do). */
void auth_realm_unref(struct auth_realm *r);

/* Main thread, about once a second: reloads the realms whose files
 * changed (mtime, size or inode). A file that fails to load keeps the
 * previous credentials and is logged once per change. */
void auth_watch(const struct config *c);

struct htpasswd;

/* Main thread: a secret's new users for every realm of c naming it (with
 * their files), all or none; 0, or -1 with the reason in why[len]. */
int auth_secret_apply(const struct config *c, const char *secret,
		      const struct htpasswd *users, char *why, size_t len);

/* Users loaded in the realm now; 0 means it answers 503. */
size_t auth_realm_users(const struct auth_realm *r);

/* The scheme of the hash an unknown user is checked against now, e.g.
 * "bcrypt"; NULL when the realm has no users. Any thread. */
const char *auth_realm_decoy(struct auth_realm *r);

/* A worker's cache and HMAC context; NULL when out of memory. */
struct auth_worker *auth_worker_new(size_t cache_entries);
void auth_worker_free(struct auth_worker *aw); /* NULL is fine */

/* What a request brings: the Authorization value (NULL if none) and the
 * client's guard key. What auth_check gives back: the user name. */
struct auth_request {
	const char *authz;
	size_t authz_len;
	uint64_t peer;		      /* guard_key() of the client */
	char user[AUTH_USER_MAX + 1]; /* the claimed name, set
					 when the header decodes */
	uint32_t retry_after;	      /* seconds, with THROTTLED */
	struct auth_wait *wait;	      /* with PENDING */
};

/*
 * Worker thread. Decides what it can now (UNAVAILABLE, THROTTLED, DENIED,
 * CACHED) or hands the check to the verifier pool and returns PENDING;
 * then done(arg, result) is called later on this worker's loop with OK,
 * DENIED or UNAVAILABLE, unless auth_cancel(ar->wait) came first. The
 * Authorization value is only read during the call.
 */
enum auth_result auth_check(struct worker *w, const struct config_realm *cr,
			    struct auth_request *ar,
			    void (*done)(void *arg, enum auth_result r),
			    void *arg);

/* Worker thread: the request waiting on `wait` is gone; its answer will
 * be dropped. NULL is fine. */
void auth_cancel(struct auth_wait *wait);

/*
 * Verifier thread: checks user/pw against the realm's current set; an
 * unknown user costs one check against the set's costliest hash
 * (htpasswd_costliest, chosen when the set is built), so it takes as long
 * as the slowest known one and is always DENIED. *version gets the set's
 * version. OK, DENIED, or UNAVAILABLE when the set is empty.
 */
enum auth_result auth_realm_verify(struct auth_realm *r, const char *user,
				   size_t ulen, const char *pw, size_t pwlen,
				   struct pwhash_scratch *sc,
				   uint64_t *version);

/* The realm's guard, name, cache life, metric id (verifier use). */
struct guard *auth_realm_guard(struct auth_realm *r);
uint64_t auth_realm_cache_ttl(const struct auth_realm *r);
unsigned auth_realm_metric_id(const struct auth_realm *r);
struct auth_realm *auth_realm_ref(struct auth_realm *r);

/* Worker thread: remembers a verified key (the pool's mail handler). */
void auth_worker_remember(struct auth_worker *aw, const uint8_t *key,
			  uint64_t version, uint64_t expires_ms);

#endif
