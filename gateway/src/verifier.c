/*
 * verifier.c - the verifier pool (see verifier.h).
 *
 * One lock guards the queue and the table of checks in flight; it is only
 * taken on a cache miss, which is about to cost a slow hash anyway. A
 * check stays in the table from submission until every worker can answer
 * its key without it: a failure leaves when it is known, a success only
 * once each worker has taken the cache mail (the check is then "done" and
 * answers newcomers at once). So no request with the same credentials
 * hashes again in between, whichever worker it reaches and whenever: not
 * while the check runs, not while its result travels to the caches, and
 * not when two workers miss at the same moment (the second submitter looks
 * again under the lock before it queues).
 */
#include "verifier.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn.h"
#include "guard.h"
#include "log.h"
#include "pwhash.h"

#define TABLE_SIZE 1024	 /* buckets of the in-flight table */
#define VERIFIER_NICE 19 /* far below the event loops, which run at 0 */

struct job {
	struct job *j_next;	    /* queue order */
	struct job *j_hnext;	    /* in-flight bucket chain */
	struct auth_realm *j_realm; /* a reference */
	uint8_t j_key[AUTHCACHE_KEY_LEN];
	struct auth_wait *j_waiters;
	uint64_t j_peer;    /* holds a guard reservation for this address */
	bool j_done;	    /* verified OK; in the table until j_mails is 0 */
	unsigned j_mails;   /* cache mails not yet taken by their worker */
	uint64_t j_version; /* the credential set a done job verified in */
	size_t j_ulen, j_pwlen;
	char j_buf[]; /* user NUL password NUL; cleansed once checked */
};

/* Mail to every worker after a success: remember the key of cm_job. */
struct cache_mail {
	struct worker_mail cm_mail; /* first */
	struct job *cm_job;	    /* done; held until its last mail */
	uint64_t cm_expires_ms;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	size_t queued;
	struct job *table[TABLE_SIZE];
	bool stop;
	bool running;
	pthread_t *threads;
	unsigned nthreads;
	struct worker *workers;
	unsigned nworkers;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static size_t
bucket(const uint8_t *key)
{
	size_t h;

	memcpy(&h, key, sizeof(h)); /* an HMAC: already uniform */
	return h % TABLE_SIZE;
}

static void
job_free(struct job *j)
{
	OPENSSL_cleanse(j->j_buf, j->j_ulen + j->j_pwlen + 2);
	auth_realm_unref(j->j_realm);
	free(j);
}

/* Removes j from the in-flight table (lock held). */
static void
table_remove(struct job *j)
{
	struct job **p = &pool.table[bucket(j->j_key)];

	while (*p != NULL && *p != j)
		p = &(*p)->j_hnext;
	if (*p == j)
		*p = j->j_hnext;
}

/* The check in flight (or done, for set `version`) of key in r; lock
 * held. */
static struct job *
table_find(const struct auth_realm *r, const uint8_t *key, uint64_t version)
{
	struct job *j;

	for (j = pool.table[bucket(key)]; j != NULL; j = j->j_hnext)
		if (j->j_realm == r &&
		    memcmp(j->j_key, key, AUTHCACHE_KEY_LEN) == 0 &&
		    (!j->j_done || j->j_version == version))
			return j;
	return NULL;
}

/* n of a done job's cache mails were taken (or never sent): the last one
 * takes it out of the table and frees it. */
static void
job_mail_done(struct job *j, unsigned n)
{
	bool last;

	pthread_mutex_lock(&pool.lock);
	j->j_mails -= n;
	last = j->j_mails == 0;
	if (last)
		table_remove(j);
	pthread_mutex_unlock(&pool.lock);
	if (last)
		job_free(j);
}

static void
cache_deliver(struct worker *w, struct worker_mail *m)
{
	struct cache_mail *cm = (struct cache_mail *)m;
	struct job *j = cm->cm_job;

	if (w->w_auth != NULL)
		auth_worker_remember(w->w_auth, j->j_key, j->j_version,
				     cm->cm_expires_ms);
	free(cm);
	job_mail_done(j, 1);
}

/*
 * Adds wait to j (lock held). A check still running answers it later; a
 * done one has its answer now: true, and the caller, once the lock is
 * released, calls answer_now().
 */
static bool
job_join(struct job *j, struct auth_wait *wait)
{
	if (j->j_done) {
		wait->aw_result = AUTH_OK;
		return true;
	}
	wait->aw_next = j->j_waiters;
	j->j_waiters = wait;
	return false;
}

/* A waiter that joined a done check: answered as its waiters were. */
static void
answer_now(struct auth_realm *r, struct auth_wait *wait)
{
	guard_success(auth_realm_guard(r), wait->aw_peer);
	worker_post(wait->aw_w, &wait->aw_mail);
}

/*
 * Hands a finished check's answer to its waiters and the caches, and
 * disposes of j: freed now, or (a success to cache) once every worker has
 * taken its mail.
 */
static void
job_answer(struct job *j, enum auth_result res, uint64_t version)
{
	struct auth_realm *r = auth_realm_ref(j->j_realm); /* for the guard */
	struct guard *g = auth_realm_guard(r);
	uint64_t ttl = auth_realm_cache_ttl(r);
	uint64_t now = conn_now_ms();
	unsigned i, lost = 0,
		    nmail = res == AUTH_OK && ttl > 0 ? pool.nworkers : 0;
	struct auth_wait *wait, *next;

	OPENSSL_cleanse(j->j_buf, j->j_ulen + j->j_pwlen + 2);
	pthread_mutex_lock(&pool.lock);
	wait = j->j_waiters;
	j->j_waiters = NULL;
	if (nmail > 0) {
		j->j_done = true;
		j->j_version = version;
		j->j_mails = nmail;
	} else {
		table_remove(j);
	}
	pthread_mutex_unlock(&pool.lock);
	guard_release(g, j->j_peer);

	/* Cache mail first: a worker reads its mail in order, so the key is
	 * cached before its waiters go on. The mails not sent still count in
	 * j_mails, so no worker can free j before they are settled here. */
	for (i = 0; i < nmail; i++) {
		struct cache_mail *cm = calloc(1, sizeof(*cm));

		if (cm == NULL) {
			lost++; /* only a cache miss later */
			continue;
		}
		cm->cm_mail.wm_fn = cache_deliver;
		cm->cm_job = j;
		cm->cm_expires_ms = now + ttl;
		worker_post(&pool.workers[i], &cm->cm_mail);
	}
	if (nmail == 0)
		job_free(j);
	else if (lost > 0)
		job_mail_done(j, lost); /* j is not ours after this */
	for (; wait != NULL; wait = next) {
		next = wait->aw_next;
		/* Every request is an attempt, even when one hash answered
		 * several, and even when its client has gone. */
		if (res == AUTH_DENIED)
			guard_failure(g, wait->aw_peer, now);
		else if (res == AUTH_OK)
			guard_success(g, wait->aw_peer);
		wait->aw_result = res;
		worker_post(wait->aw_w, &wait->aw_mail);
	}
	auth_realm_unref(r);
}

static void *
verifier_main(void *arg)
{
	struct pwhash_scratch *sc = pwhash_scratch_new();
	struct job *j;

	pthread_setname_np(pthread_self(), "pc-verifier");
	/* Per-thread on Linux: the loops win any contention for the CPU. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), VERIFIER_NICE) == -1)
		log_warn("verifier: cannot lower its priority");
	for (;;) {
		enum auth_result res;
		uint64_t version = 0;

		pthread_mutex_lock(&pool.lock);
		while (pool.head == NULL && !pool.stop)
			pthread_cond_wait(&pool.cond, &pool.lock);
		if (pool.stop) {
			pthread_mutex_unlock(&pool.lock);
			break;
		}
		j = pool.head;
		pool.head = j->j_next;
		if (pool.head == NULL)
			pool.tail = &pool.head;
		pool.queued--;
		pthread_mutex_unlock(&pool.lock);

		res = sc == NULL
			  ? AUTH_UNAVAILABLE
			  : auth_realm_verify(j->j_realm, j->j_buf, j->j_ulen,
					      j->j_buf + j->j_ulen + 1,
					      j->j_pwlen, sc, &version);
		job_answer(j, res, version);
	}
	pwhash_scratch_free(sc);
	return NULL;
}

int
verifier_start(unsigned n, struct worker *workers, unsigned nworkers)
{
	unsigned i;

	pool.tail = &pool.head;
	pool.workers = workers;
	pool.nworkers = nworkers;
	if ((pool.threads = calloc(n, sizeof(*pool.threads))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (pthread_create(&pool.threads[i], NULL, verifier_main,
				   NULL) != 0) {
			log_error("verifier: cannot start a thread");
			verifier_stop();
			return -1;
		}
		pool.nthreads++;
	}
	pool.running = true;
	return 0;
}

void
verifier_stop(void)
{
	struct job *j, *next;
	unsigned i;

	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pool.running = false;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	for (i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	/* Whatever is still queued waits for requests that are gone. */
	for (j = pool.head; j != NULL; j = next) {
		struct auth_wait *w, *wnext;

		next = j->j_next;
		for (w = j->j_waiters; w != NULL; w = wnext) {
			wnext = w->aw_next;
			free(w);
		}
		guard_release(auth_realm_guard(j->j_realm), j->j_peer);
		job_free(j);
	}
	pool.head = NULL;
	pool.tail = &pool.head;
	pool.queued = 0;
	memset(pool.table, 0, sizeof(pool.table));
}

int
verifier_submit(struct auth_realm *r, uint64_t version, const uint8_t *key,
		const char *user, size_t ulen, const char *pw, size_t pwlen,
		struct auth_wait *wait, uint64_t now_ms, uint32_t *retry_after)
{
	struct guard *g = auth_realm_guard(r);
	struct job *j, *twin;
	bool now;

	pthread_mutex_lock(&pool.lock);
	if (!pool.running) {
		pthread_mutex_unlock(&pool.lock);
		return -1;
	}
	if ((twin = table_find(r, key, version)) != NULL) {
		now = job_join(twin, wait);
		pthread_mutex_unlock(&pool.lock);
		if (now)
			answer_now(r, wait);
		return 0;
	}
	if (pool.queued >= VERIFIER_QUEUE_MAX) {
		pthread_mutex_unlock(&pool.lock);
		return -1;
	}
	pthread_mutex_unlock(&pool.lock);

	if ((*retry_after = guard_reserve(g, wait->aw_peer, now_ms)) > 0)
		return -2;
	/* Made outside the lock; looked for again under it. */
	if ((j = calloc(1, sizeof(*j) + ulen + pwlen + 2)) == NULL) {
		guard_release(g, wait->aw_peer);
		return -1;
	}
	j->j_peer = wait->aw_peer;
	j->j_realm = auth_realm_ref(r);
	memcpy(j->j_key, key, AUTHCACHE_KEY_LEN);
	memcpy(j->j_buf, user, ulen);
	memcpy(j->j_buf + ulen + 1, pw, pwlen);
	j->j_ulen = ulen;
	j->j_pwlen = pwlen;
	wait->aw_next = NULL;
	j->j_waiters = wait;

	pthread_mutex_lock(&pool.lock);
	twin = pool.running ? table_find(r, key, version) : NULL;
	if (!pool.running || twin != NULL ||
	    pool.queued >= VERIFIER_QUEUE_MAX) {
		/* Gone, full, or another worker queued the same check
		 * meanwhile: join that one instead of hashing twice. */
		now = twin != NULL && job_join(twin, wait);
		pthread_mutex_unlock(&pool.lock);
		j->j_waiters = NULL;
		guard_release(g, j->j_peer);
		job_free(j);
		if (now)
			answer_now(r, wait);
		return twin != NULL ? 0 : -1;
	}
	j->j_hnext = pool.table[bucket(key)];
	pool.table[bucket(key)] = j;
	*pool.tail = j;
	pool.tail = &j->j_next;
	pool.queued++;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}
