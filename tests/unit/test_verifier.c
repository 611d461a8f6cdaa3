/*
 * test_verifier.c - single flight across workers (verifier.h), through
 * auth_check() on two workers whose mail the test delivers by hand, so the
 * moment between a check's end and a worker's reading of its cache mail can
 * be held open: a request arriving then must take the finished check's
 * answer, not hash again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "pwhash.h"
#include "verifier.h"
#include "worker.h"

#define PASSWORD "single flight"

/* What a request's done callback saw. */
struct seen {
	int calls;
	enum auth_result res;
};

static void
done(void *arg, enum auth_result r)
{
	struct seen *s = arg;

	s->calls++;
	s->res = r;
}

static void
worker_setup(struct worker *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->w_mail_lock, NULL);
	w->w_mail_tail = &w->w_mail;
	w->w_notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(w->w_notify_fd != -1);
	w->w_auth = auth_worker_new(64);
	assert_non_null(w->w_auth);
}

/* The mails waiting for w, counted without delivering them. */
static size_t
mail_count(struct worker *w)
{
	struct worker_mail *m;
	size_t n = 0;

	pthread_mutex_lock(&w->w_mail_lock);
	for (m = w->w_mail; m != NULL; m = m->wm_next)
		n++;
	pthread_mutex_unlock(&w->w_mail_lock);
	return n;
}

/* Delivers w's mail in order, as its loop would. */
static void
deliver(struct worker *w)
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
worker_teardown(struct worker *w)
{
	deliver(w);
	auth_worker_free(w->w_auth);
	close(w->w_notify_fd);
	pthread_mutex_destroy(&w->w_mail_lock);
}

static enum auth_result
check(struct worker *w, const struct config_realm *cr, const char *authz,
      struct seen *s)
{
	struct auth_request ar = {.authz = authz, .authz_len = strlen(authz)};

	return auth_check(w, cr, &ar, done, s);
}

static void
test_finished_check_answers_until_every_cache_has_it(void **state)
{
	char path[] = "/tmp/test_verifier.XXXXXX", json[512], line[160];
	static struct config_errors err;
	static struct worker w[2];
	const struct config_realm *cr;
	struct seen s0 = {0}, s1 = {0}, s2 = {0};
	struct config *c;
	struct timespec pause = {0, 1000000};
	/* "Basic " base64("sid:single flight") */
	const char *authz = "Basic c2lkOnNpbmdsZSBmbGlnaHQ=";
	char hash[128];
	int fd, i;

	/* bcrypt at cost 8: long enough that nothing below races it */
	assert_int_equal(pwhash_make_bcrypt(PASSWORD, strlen(PASSWORD), 8, hash,
					    sizeof(hash)),
			 0);
	assert_true((fd = mkstemp(path)) != -1);
	snprintf(line, sizeof(line), "sid:%s\n", hash);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	assert_int_equal(close(fd), 0);
	snprintf(json, sizeof(json),
		 "{\"upstreams\": {\"p\": {\"servers\": [\"127.0.0.1:9\"]}},"
		 " \"realms\": {\"r\": {\"htpasswd\": \"%s\"}},"
		 " \"listeners\": [{\"listen\": \"127.0.0.1:8080\", \"routes\":"
		 " [{\"name\": \"p\", \"path\": \"/p/\", \"upstream\": \"p\","
		 " \"realm\": \"r\"}]}]}",
		 path);
	c = config_parse(json, strlen(json), &err);
	if (c == NULL) {
		fail_msg("%s", err.msg[0]);
		return;
	}
	assert_int_equal(auth_build(c, &err), 0);
	cr = &c->realms[0];
	worker_setup(&w[0]);
	worker_setup(&w[1]);
	assert_int_equal(verifier_start(1, w, 2), 0);

	/* Worker 0 asks; the answer comes as mail, after its cache mail. */
	assert_int_equal(check(&w[0], cr, authz, &s0), AUTH_PENDING);
	for (i = 0; mail_count(&w[0]) < 2 && i < 30000; i++)
		nanosleep(&pause, NULL);
	assert_int_equal(mail_count(&w[0]), 2);
	assert_int_equal(mail_count(&w[1]), 1); /* its cache mail, unread */

	/* Worker 1 has not read its mail: its cache misses. The finished
	 * check answers at once instead of a second hash: the answer is in
	 * its mailbox when auth_check returns, behind the cache mail. */
	assert_int_equal(check(&w[1], cr, authz, &s1), AUTH_PENDING);
	assert_int_equal(mail_count(&w[1]), 2);
	deliver(&w[1]);
	assert_int_equal(s1.calls, 1);
	assert_int_equal(s1.res, AUTH_OK);
	/* ... and worker 1's cache now has the key. */
	assert_int_equal(check(&w[1], cr, authz, &s2), AUTH_CACHED);

	deliver(&w[0]);
	assert_int_equal(s0.calls, 1);
	assert_int_equal(s0.res, AUTH_OK);
	assert_int_equal(check(&w[0], cr, authz, &s2), AUTH_CACHED);
	assert_int_equal(s2.calls, 0);

	verifier_stop();
	worker_teardown(&w[0]);
	worker_teardown(&w[1]);
	config_unref(c);
	assert_int_equal(unlink(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		test_finished_check_answers_until_every_cache_has_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
