/*
 * auth.c - realms: loading and reloading their credentials, and the
 * request path of basic authentication (see auth.h).
 *
 * A realm's credential set is immutable and reference-counted under the
 * realm's lock; the lock is taken only to load a set or to start a slow
 * check, never on the cached path. Workers read the set's version and its
 * user count through atomics.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "guard.h"
#include "htpasswd.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "secrets.h"
#include "verifier.h"

#define AUTH_FILE_MAX (16u << 20) /* an htpasswd file; 100k bcrypt lines */
#define AUTH_DECODED_MAX 1024	  /* user:password after base64 */

struct creds {
	unsigned refs; /* under the realm's lock */
	uint64_t version;
	struct htpasswd h; /* every file's entries, sorted */
	/* In h: the costliest hash (htpasswd_costliest), which unknown users
	 * are checked against; NULL when h is empty. */
	const struct htpasswd_entry *decoy;
};

/* What identifies a file's contents without reading them. */
struct stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool ok; /* stat() worked */
};

struct auth_realm {
	atomic_int ar_refs;
	char *ar_name;
	size_t ar_name_len;
	uint64_t ar_ttl_ms;
	unsigned ar_metric_id;
	struct guard *ar_guard;
	pthread_mutex_t ar_lock;
	struct creds *ar_creds; /* under ar_lock */
	_Atomic uint64_t ar_version;
	atomic_size_t ar_users;
	/* Main thread only: what was loaded, and what last failed. */
	struct stamp *ar_loaded;
	struct stamp *ar_failed;
	size_t ar_nfiles;
};

struct auth_worker {
	struct authcache *aw_cache;
	EVP_MAC_CTX *aw_mac;
};

static uint8_t hmac_key[32];
static _Atomic uint64_t next_version = 1;

int
auth_init(void)
{
	if (RAND_bytes(hmac_key, sizeof(hmac_key)) != 1) {
		log_error("auth: no randomness for the cache key");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ loading */

static void
creds_free(struct creds *cs)
{
	if (cs == NULL)
		return;
	htpasswd_free(&cs->h);
	free(cs);
}

/* Drops a reference taken under the realm's lock. */
static void
creds_release(struct auth_realm *r, struct creds *cs)
{
	bool last;

	pthread_mutex_lock(&r->ar_lock);
	last = --cs->refs == 0;
	pthread_mutex_unlock(&r->ar_lock);
	if (last)
		creds_free(cs);
}

static void
stamp_of(const struct stat *st, struct stamp *s)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
	s->ok = true;
}

static bool
stamp_same(const struct stamp *a, const struct stamp *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Reads a whole regular file; 0 with *buf (malloc'd, NUL-terminated), or
 * -1 with the reason in why[len]. */
static int
read_file(const char *path, char **buf, size_t *n, struct stamp *st_out,
	  char *why, size_t len)
{
	struct stat st;
	ssize_t got;
	size_t have = 0;
	int fd;

	*buf = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > (off_t)AUTH_FILE_MAX) {
		snprintf(why, len, "%s: larger than %u MiB", path,
			 AUTH_FILE_MAX >> 20);
		goto fail;
	}
	if ((*buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(why, len, "%s: out of memory", path);
		goto fail;
	}
	while (have < (size_t)st.st_size) {
		got = read(fd, *buf + have, (size_t)st.st_size - have);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			snprintf(why, len, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break; /* shrank under us: take what is there */
		have += (size_t)got;
	}
	(*buf)[have] = '\0';
	*n = have;
	stamp_of(&st, st_out);
	close(fd);
	return 0;
fail:
	free(*buf);
	*buf = NULL;
	close(fd);
	return -1;
}

/* htpasswd.h's order: bytes, then the shorter name first. */
static int
user_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int c = memcmp(a, b, la < lb ? la : lb);

	return c != 0 ? c : (la > lb) - (la < lb);
}

struct sourced {
	struct htpasswd_entry e;
	size_t file;
};

static int
sourced_cmp(const void *a, const void *b)
{
	const struct sourced *x = a, *y = b;
	int c = user_cmp(x->e.user, y->e.user);

	if (c != 0)
		return c;
	return (x->file > y->file) - (x->file < y->file);
}

/*
 * Loads every file of a realm, and the users of its secret (`extra`, may be
 * NULL; `extra_label` names them in errors), into a new set. 0 with *out,
 * or -1 with the failing source's index in *bad (nfiles: the secret) and
 * "FILE: line N: reason" in why[len]. stamps[] receives each file's stamp
 * (also for the failing one).
 */
static int
creds_load(char *const *files, size_t nfiles, bool allow_plain,
	   const struct htpasswd *extra, const char *extra_label,
	   struct creds **out, struct stamp *stamps, size_t *bad, char *why,
	   size_t len)
{
	struct htpasswd *parts = calloc(nfiles + 1, sizeof(*parts));
	struct sourced *all = NULL;
	struct creds *cs = NULL;
	char perr[200];
	size_t i, j, k = 0, total = 0;

	*out = NULL;
	if (parts == NULL) {
		snprintf(why, len, "out of memory");
		*bad = 0;
		return -1;
	}
	for (i = 0; i < nfiles; i++) {
		char *buf;
		size_t n;
		int rc;

		memset(&stamps[i], 0, sizeof(stamps[i]));
		if (read_file(files[i], &buf, &n, &stamps[i], why, len) == -1)
			goto fail;
		rc = htpasswd_parse(buf, n, allow_plain, &parts[i], perr,
				    sizeof(perr));
		OPENSSL_cleanse(buf, n);
		free(buf);
		if (rc == -1) {
			snprintf(why, len, "%s: %s", files[i], perr);
			goto fail;
		}
		total += parts[i].n;
	}
	/* The secret's users, copied: its source keeps its own. The source
	 * takes plain text from anyone; the realm decides here. */
	if (extra != NULL && extra->n > 0) {
		if ((parts[nfiles].entries = calloc(
			 extra->n, sizeof(*parts[nfiles].entries))) == NULL) {
			snprintf(why, len, "out of memory");
			goto fail;
		}
		for (j = 0; j < extra->n; j++) {
			struct htpasswd_entry *e = &parts[nfiles].entries[j];

			if (extra->entries[j].kind == PWHASH_PLAIN &&
			    !allow_plain) {
				snprintf(why, len,
					 "%s: line %u: plain-text passwords "
					 "need \"allow_plaintext\"",
					 extra_label, extra->entries[j].line);
				i = nfiles;
				goto fail;
			}
			if (htpasswd_entry_copy(e, &extra->entries[j]) == -1) {
				snprintf(why, len, "out of memory");
				goto fail;
			}
			parts[nfiles].n++;
		}
		total += extra->n;
	}
	if ((cs = calloc(1, sizeof(*cs))) == NULL ||
	    (all = calloc(total > 0 ? total : 1, sizeof(*all))) == NULL) {
		snprintf(why, len, "out of memory");
		i = 0;
		goto fail;
	}
	for (i = 0; i <= nfiles; i++)
		for (j = 0; j < parts[i].n; j++) {
			all[k].e = parts[i].entries[j];
			all[k++].file = i;
		}
	if (total > 0)
		qsort(all, total, sizeof(*all), sourced_cmp);
	for (k = 1; k < total; k++) {
		if (user_cmp(all[k - 1].e.user, all[k].e.user) != 0)
			continue;
		i = all[k].file;
		snprintf(why, len,
			 "%s: line %u: user \"%.64s\" is already defined in "
			 "%s (line %u)",
			 i == nfiles ? extra_label : files[i], all[k].e.line,
			 all[k].e.user,
			 all[k - 1].file == nfiles ? extra_label
						   : files[all[k - 1].file],
			 all[k - 1].e.line);
		free(all);
		all = NULL;
		goto fail;
	}
	if (total > 0 &&
	    (cs->h.entries = calloc(total, sizeof(*cs->h.entries))) == NULL) {
		snprintf(why, len, "out of memory");
		free(all);
		all = NULL;
		i = 0;
		goto fail;
	}
	/* The strings move into the merged set; the parts keep none. */
	for (k = 0; k < total; k++)
		cs->h.entries[k] = all[k].e;
	cs->h.n = total;
	/* Once per set, not per request: what an unknown user costs. */
	if (total > 0)
		cs->decoy = &cs->h.entries[htpasswd_costliest(&cs->h)];
	for (i = 0; i <= nfiles; i++) {
		free(parts[i].entries);
		parts[i].entries = NULL;
		parts[i].n = 0;
	}
	free(all);
	free(parts);
	cs->refs = 1;
	cs->version = atomic_fetch_add(&next_version, 1);
	*out = cs;
	return 0;
fail:
	*bad = i;
	for (j = 0; j <= nfiles; j++)
		htpasswd_free(&parts[j]);
	free(parts);
	free(cs);
	return -1;
}

/* The scheme of a set's decoy hash, for the log. */
static const char *
decoy_name(const struct creds *cs)
{
	return cs->decoy != NULL ? pwhash_kind_name(cs->decoy->kind) : "no";
}

/* Installs a new set, taking over the caller's reference; the old one
 * goes with its last check. */
static void
realm_swap(struct auth_realm *r, struct creds *cs)
{
	struct creds *old;
	bool last = false;

	pthread_mutex_lock(&r->ar_lock);
	old = r->ar_creds;
	r->ar_creds = cs;
	atomic_store(&r->ar_version, cs->version);
	atomic_store(&r->ar_users, cs->h.n);
	if (old != NULL)
		last = --old->refs == 0;
	pthread_mutex_unlock(&r->ar_lock);
	if (last)
		creds_free(old);
}

static struct auth_realm *
realm_new(const struct config_realm *cr)
{
	struct auth_realm *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	atomic_init(&r->ar_refs, 1);
	pthread_mutex_init(&r->ar_lock, NULL);
	r->ar_name = strdup(cr->name);
	r->ar_name_len = strlen(cr->name);
	r->ar_ttl_ms = cr->cache_ttl_ms;
	r->ar_metric_id = cr->metric_id;
	r->ar_guard = guard_new(cr->max_failures, cr->failure_window_ms);
	r->ar_nfiles = cr->nhtpasswd;
	r->ar_loaded = calloc(cr->nhtpasswd, sizeof(*r->ar_loaded));
	r->ar_failed = calloc(cr->nhtpasswd, sizeof(*r->ar_failed));
	if (r->ar_name == NULL || r->ar_guard == NULL || r->ar_loaded == NULL ||
	    r->ar_failed == NULL) {
		auth_realm_unref(r);
		return NULL;
	}
	return r;
}

struct auth_realm *
auth_realm_ref(struct auth_realm *r)
{
	atomic_fetch_add(&r->ar_refs, 1);
	return r;
}

void
auth_realm_unref(struct auth_realm *r)
{
	if (r == NULL || atomic_fetch_sub(&r->ar_refs, 1) != 1)
		return;
	if (r->ar_creds != NULL && --r->ar_creds->refs == 0)
		creds_free(r->ar_creds);
	guard_free(r->ar_guard);
	pthread_mutex_destroy(&r->ar_lock);
	free(r->ar_loaded);
	free(r->ar_failed);
	free(r->ar_name);
	free(r);
}

/* "secret NAME", how a realm's secret is named in its errors. */
static const char *
secret_label(char *buf, size_t len, const struct config_realm *cr)
{
	snprintf(buf, len, "secret %s",
		 cr->aws_secret != NULL ? cr->aws_secret : "");
	return buf;
}

/* The JSON path of a realm's i-th file, as the config wrote it. */
static void
file_path(char *buf, size_t len, const struct config_realm *cr, size_t i)
{
	if (i == cr->nhtpasswd)
		snprintf(buf, len, "realms.%s.aws_secret", cr->name);
	else if (!cr->htpasswd_list)
		snprintf(buf, len, "realms.%s.htpasswd", cr->name);
	else
		snprintf(buf, len, "realms.%s.htpasswd[%zu]", cr->name, i);
}

int
auth_build(struct config *c, struct config_errors *err)
{
	char why[CONFIG_ERROR_LEN], path[160], label[2100];
	size_t i, bad;
	int rc = 0;

	for (i = 0; i < c->nrealms; i++) {
		struct config_realm *cr = &c->realms[i];
		struct auth_realm *r;
		struct creds *cs;

		if ((r = realm_new(cr)) == NULL) {
			config_error(err, "(internal)", "out of memory");
			return -1;
		}
		cr->auth = r;
		if (creds_load(cr->htpasswd, cr->nhtpasswd, cr->allow_plaintext,
			       secrets_users(cr->aws_secret),
			       secret_label(label, sizeof(label), cr), &cs,
			       r->ar_loaded, &bad, why, sizeof(why)) == -1) {
			file_path(path, sizeof(path), cr, bad);
			config_error(err, path, "%s", why);
			rc = -1;
			continue;
		}
		if (cs->h.n == 0 && cr->aws_secret != NULL)
			log_info("realm \"%s\": no users yet; secret %s is "
				 "fetched once the gateway runs",
				 cr->name, cr->aws_secret);
		else if (cs->h.n == 0)
			log_warn("realm \"%s\": no users in its htpasswd "
				 "file(s); its routes answer 503 until some "
				 "are added",
				 cr->name);
		else
			log_info("realm \"%s\": %zu user(s) loaded; unknown "
				 "users are checked against its costliest hash "
				 "(%s)",
				 cr->name, cs->h.n, decoy_name(cs));
		realm_swap(r, cs); /* the realm takes the load's reference */
	}
	return rc;
}

int
auth_check_realm(const struct config_realm *cr, struct config_errors *err)
{
	char why[CONFIG_ERROR_LEN], path[160];
	struct stamp *stamps = calloc(cr->nhtpasswd + 1, sizeof(*stamps));
	struct creds *cs = NULL;
	size_t i, bad;
	int rc = 0;

	if (stamps == NULL) {
		config_error(err, "(internal)", "out of memory");
		return -1;
	}
	/* Each file alone, so that every broken one is named (a secret's
	 * users are not fetched here, so there is no label for them)... */
	for (i = 0; i < cr->nhtpasswd; i++) {
		if (creds_load(&cr->htpasswd[i], 1, cr->allow_plaintext, NULL,
			       "", &cs, stamps, &bad, why, sizeof(why)) == -1) {
			file_path(path, sizeof(path), cr, i);
			config_error(err, path, "%s", why);
			rc = -1;
		}
		creds_free(cs);
		cs = NULL;
	}
	/* ...then together: a user defined in two of them. */
	if (rc == 0 && cr->nhtpasswd > 1 &&
	    creds_load(cr->htpasswd, cr->nhtpasswd, cr->allow_plaintext, NULL,
		       "", &cs, stamps, &bad, why, sizeof(why)) == -1) {
		file_path(path, sizeof(path), cr, bad);
		config_error(err, path, "%s", why);
		rc = -1;
	}
	creds_free(cs);
	free(stamps);
	return rc;
}

/* Re-reads a realm whose files changed; keeps the old set on failure. */
static void
realm_reload(const struct config_realm *cr, struct auth_realm *r,
	     struct stamp *now)
{
	struct stamp *got = calloc(r->ar_nfiles, sizeof(*got));
	char why[CONFIG_ERROR_LEN], label[2100];
	struct creds *cs;
	size_t bad;

	if (got == NULL)
		return;
	if (creds_load(cr->htpasswd, cr->nhtpasswd, cr->allow_plaintext,
		       secrets_users(cr->aws_secret),
		       secret_label(label, sizeof(label), cr), &cs, got, &bad,
		       why, sizeof(why)) == -1) {
		/* Once per change of the files, not once a second. */
		if (memcmp(r->ar_failed, now, r->ar_nfiles * sizeof(*now)) != 0)
			log_error("realm \"%s\": %s; keeping the %zu user(s) "
				  "loaded before",
				  cr->name, why, atomic_load(&r->ar_users));
		memcpy(r->ar_failed, now, r->ar_nfiles * sizeof(*now));
		free(got);
		return;
	}
	memcpy(r->ar_loaded, got, r->ar_nfiles * sizeof(*got));
	memset(r->ar_failed, 0, r->ar_nfiles * sizeof(*r->ar_failed));
	log_info("realm \"%s\": credentials reloaded: %zu user(s); cached "
		 "verifications dropped; unknown users are checked against its "
		 "costliest hash (%s)",
		 cr->name, cs->h.n, decoy_name(cs));
	realm_swap(r, cs);
	free(got);
}

void
auth_watch(const struct config *c)
{
	size_t i, j;

	for (i = 0; i < c->nrealms; i++) {
		const struct config_realm *cr = &c->realms[i];
		struct auth_realm *r = cr->auth;
		struct stamp *now;
		bool changed = false;

		if (r == NULL ||
		    (now = calloc(r->ar_nfiles, sizeof(*now))) == NULL)
			continue;
		for (j = 0; j < r->ar_nfiles; j++) {
			struct stat st;

			/* stat() is memset-stable: unknown fields stay 0 so
			 * stamps compare as bytes too. */
			if (stat(cr->htpasswd[j], &st) == 0)
				stamp_of(&st, &now[j]);
			if (!stamp_same(&now[j], &r->ar_loaded[j]))
				changed = true;
		}
		if (changed &&
		    memcmp(r->ar_failed, now, r->ar_nfiles * sizeof(*now)) != 0)
			realm_reload(cr, r, now);
		free(now);
	}
}

int
auth_secret_apply(const struct config *c, const char *secret,
		  const struct htpasswd *users, char *why, size_t len)
{
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	struct creds **next = calloc(c->nrealms, sizeof(*next));
	struct stamp *got;
	size_t i, bad;
	int rc = 0;

	if (next == NULL) {
		snprintf(why, len, "out of memory");
		return -1;
	}
	/* Every realm naming the secret takes the new users, or none does. */
	for (i = 0; i < c->nrealms && rc == 0; i++) {
		const struct config_realm *cr = &c->realms[i];

		if (cr->aws_secret == NULL ||
		    strcmp(cr->aws_secret, secret) != 0)
			continue;
		if ((got = calloc(cr->nhtpasswd + 1, sizeof(*got))) == NULL ||
		    creds_load(cr->htpasswd, cr->nhtpasswd, cr->allow_plaintext,
			       users, "its new value", &next[i], got, &bad, why,
			       len) == -1) {
			if (got == NULL)
				snprintf(why, len, "out of memory");
			rc = -1;
		}
		free(got);
	}
	for (i = 0; i < c->nrealms; i++) {
		if (next[i] == NULL)
			continue;
		if (rc == 0) {
			log_info("realm \"%s\": %zu user(s) with secret %s; "
				 "cached verifications dropped; unknown users "
				 "are checked against its costliest hash (%s)",
				 c->realms[i].name, next[i]->h.n, secret,
				 decoy_name(next[i]));
			realm_swap(c->realms[i].auth, next[i]);
		} else {
			creds_free(next[i]);
		}
	}
	free(next);
	return rc;
}

size_t
auth_realm_users(const struct auth_realm *r)
{
	return r == NULL ? 0 : atomic_load(&((struct auth_realm *)r)->ar_users);
}

const char *
auth_realm_decoy(struct auth_realm *r)
{
	const char *name = NULL;

	pthread_mutex_lock(&r->ar_lock);
	if (r->ar_creds != NULL && r->ar_creds->decoy != NULL)
		name = pwhash_kind_name(r->ar_creds->decoy->kind);
	pthread_mutex_unlock(&r->ar_lock);
	return name;
}

struct guard *
auth_realm_guard(struct auth_realm *r)
{
	return r->ar_guard;
}

uint64_t
auth_realm_cache_ttl(const struct auth_realm *r)
{
	return r->ar_ttl_ms;
}

unsigned
auth_realm_metric_id(const struct auth_realm *r)
{
	return r->ar_metric_id;
}

/* ---------------------------------------------------------- verifying */

enum auth_result
auth_realm_verify(struct auth_realm *r, const char *user, size_t ulen,
		  const char *pw, size_t pwlen, struct pwhash_scratch *sc,
		  uint64_t *version)
{
	const struct htpasswd_entry *e, *check;
	struct creds *cs;
	bool ok;

	pthread_mutex_lock(&r->ar_lock);
	cs = r->ar_creds;
	if (cs != NULL)
		cs->refs++;
	pthread_mutex_unlock(&r->ar_lock);
	if (cs == NULL || cs->h.n == 0) {
		if (cs != NULL)
			creds_release(r, cs);
		return AUTH_UNAVAILABLE;
	}
	*version = cs->version;
	e = htpasswd_find(&cs->h, user, ulen);
	/* An unknown user is checked against the set's costliest hash, its
	 * answer thrown away, so a miss takes as long as the slowest known
	 * user and the time does not tell whether the user exists. */
	check = e != NULL ? e : cs->decoy;
	ok =
	    pwhash_verify(check->hash, check->kind, pw, pwlen, sc) && e != NULL;
	metrics_auth_verification(r->ar_metric_id);
	creds_release(r, cs);
	return ok ? AUTH_OK : AUTH_DENIED;
}

/* ------------------------------------------------------ request path */

struct auth_worker *
auth_worker_new(size_t cache_entries)
{
	struct auth_worker *aw = calloc(1, sizeof(*aw));
	OSSL_PARAM params[2];
	EVP_MAC *mac;

	if (aw == NULL)
		return NULL;
	aw->aw_cache = authcache_new(cache_entries);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac != NULL)
		aw->aw_mac = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (aw->aw_cache == NULL || aw->aw_mac == NULL ||
	    EVP_MAC_init(aw->aw_mac, hmac_key, sizeof(hmac_key), params) != 1) {
		auth_worker_free(aw);
		return NULL;
	}
	return aw;
}

void
auth_worker_free(struct auth_worker *aw)
{
	if (aw == NULL)
		return;
	authcache_free(aw->aw_cache);
	EVP_MAC_CTX_free(aw->aw_mac);
	free(aw);
}

void
auth_worker_remember(struct auth_worker *aw, const uint8_t *key,
		     uint64_t version, uint64_t expires_ms)
{
	authcache_put(aw->aw_cache, key, version, conn_now_ms(), expires_ms);
}

/* HMAC-SHA256(process key, realm name NUL Authorization value). */
static int
cache_key(struct auth_worker *aw, const struct auth_realm *r, const char *v,
	  size_t len, uint8_t *key)
{
	size_t n;

	/* Re-initialising with no key keeps the key already set. */
	if (EVP_MAC_init(aw->aw_mac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(aw->aw_mac, (const unsigned char *)r->ar_name,
			   r->ar_name_len + 1) != 1 ||
	    EVP_MAC_update(aw->aw_mac, (const unsigned char *)v, len) != 1 ||
	    EVP_MAC_final(aw->aw_mac, key, &n, AUTHCACHE_KEY_LEN) != 1 ||
	    n != AUTHCACHE_KEY_LEN)
		return -1;
	return 0;
}

/* Mail handler: a check came back for a request on this worker. */
static void
wait_deliver(struct worker *w, struct worker_mail *m)
{
	struct auth_wait *wait = (struct auth_wait *)m;

	if (wait->aw_arg != NULL)
		wait->aw_done(wait->aw_arg, wait->aw_result);
	free(wait);
}

enum auth_result
auth_check(struct worker *w, const struct config_realm *cr,
	   struct auth_request *ar, void (*done)(void *arg, enum auth_result r),
	   void *arg)
{
	struct auth_realm *r = cr->auth;
	struct auth_worker *aw = w->w_auth;
	uint64_t now = conn_now_ms();
	char buf[AUTH_DECODED_MAX];
	uint8_t key[AUTHCACHE_KEY_LEN];
	struct auth_wait *wait;
	size_t ulen, pwlen;
	uint64_t version;
	enum auth_result res;

	ar->wait = NULL;
	ar->user[0] = '\0';
	if (atomic_load_explicit(&r->ar_users, memory_order_relaxed) == 0)
		return AUTH_UNAVAILABLE;
	if ((ar->retry_after = guard_refused(r->ar_guard, ar->peer, now)) > 0)
		return AUTH_THROTTLED;
	if (ar->authz == NULL)
		return AUTH_DENIED;
	if (http_basic_decode(ar->authz, ar->authz_len, buf, sizeof(buf), &ulen,
			      &pwlen) == -1 ||
	    ulen > AUTH_USER_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return AUTH_DENIED;
	}
	memcpy(ar->user, buf, ulen + 1);
	res = AUTH_UNAVAILABLE;
	if (cache_key(aw, r, ar->authz, ar->authz_len, key) == -1)
		goto done;
	version = atomic_load_explicit(&r->ar_version, memory_order_relaxed);
	if (r->ar_ttl_ms > 0 &&
	    authcache_get(aw->aw_cache, key, version, now)) {
		res = AUTH_CACHED;
		goto done;
	}
	if ((wait = calloc(1, sizeof(*wait))) == NULL)
		goto done;
	wait->aw_mail.wm_fn = wait_deliver;
	wait->aw_w = w;
	wait->aw_peer = ar->peer;
	wait->aw_done = done;
	wait->aw_arg = arg;
	switch (verifier_submit(r, version, key, buf, ulen, buf + ulen + 1,
				pwlen, wait, now, &ar->retry_after)) {
	case 0:
		break;
	case -2:
		free(wait);
		res = AUTH_THROTTLED;
		goto done;
	default:
		free(wait);
		goto done;
	}
	ar->wait = wait;
	res = AUTH_PENDING;
done:
	OPENSSL_cleanse(buf, ulen + pwlen + 2);
	return res;
}

void
auth_cancel(struct auth_wait *wait)
{
	if (wait != NULL)
		wait->aw_arg = NULL;
}
