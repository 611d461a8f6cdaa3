/*
 * test_auth.c - the pure parts of basic authentication: Authorization
 * decoding (http.h), the per-worker cache (authcache.h) and the brute-force
 * guard (guard.h), with time passed in explicitly; and realms built from
 * files and a secret's users checking unknown users against their
 * costliest hash (auth.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "authcache.h"
#include "config.h"
#include "guard.h"
#include "htpasswd.h"
#include "http.h"
#include "pwhash.h"

/* Decodes v; returns 0/-1 and leaves user and password in the buffers. */
static int
decode(const char *v, char *user, char *pw)
{
	char out[64];
	size_t ul, pl;

	if (http_basic_decode(v, strlen(v), out, sizeof(out), &ul, &pl) == -1)
		return -1;
	assert_int_equal(strlen(out), ul);
	memcpy(user, out, ul + 1);
	memcpy(pw, out + ul + 1, pl + 1);
	assert_int_equal(strlen(pw), pl);
	return 0;
}

static void
test_basic_decode(void **state)
{
	char u[64], p[64];

	/* RFC 7617 section 2's example. */
	assert_int_equal(decode("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", u, p), 0);
	assert_string_equal(u, "Aladdin");
	assert_string_equal(p, "open sesame");
	/* Scheme in any case, several spaces, no padding. */
	assert_int_equal(decode("bAsIc   QWxhZGRpbjpvcGVuIHNlc2FtZQ", u, p), 0);
	assert_string_equal(p, "open sesame");
	/* The first ':' splits; the password may hold more. */
	assert_int_equal(decode("Basic dTpwOnE=", u, p), 0); /* u:p:q */
	assert_string_equal(u, "u");
	assert_string_equal(p, "p:q");
	/* An empty password is a password. */
	assert_int_equal(decode("Basic dTo=", u, p), 0); /* u: */
	assert_string_equal(p, "");
	/* UTF-8 passes (RFC 7617 section 2.1). */
	assert_int_equal(decode("Basic dGVzdDoxMjPCow==", u, p), 0);
	assert_string_equal(p, "123\xc2\xa3");
}

static void
test_basic_decode_refusals(void **state)
{
	char u[64], p[64];
	static const char *const bad[] = {
	    "",
	    "Basic",
	    "Basic ",
	    "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
	    "BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ==",
	    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=",   /* wrong padding */
	    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ===", /* too much */
	    "Basic QWxh=ZGRp",			   /* data after padding */
	    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZ",	   /* 1 digit left over */
	    "Basic QWxhZGRp bjpv",		   /* space inside */
	    "Basic QWxhZGRpbjpv*GVu",		   /* not base64 */
	    "Basic QWxhZGRpbg==",		   /* Aladdin: no ':' */
	    "Basic OnB3",			   /* :pw, empty user */
	    "Basic dQB4OnB3",			   /* u NUL x:pw */
	    "Basic dTpwAHc=",			   /* u:p NUL w */
	    "Basic dTpwCnc=",			   /* u:p LF w */
	    "Basic dX86cHc=",			   /* u DEL :pw */
	    "Basic QWxhZGRpbjpBav",		   /* unused bits set */
	    "Basic dTpwOnF=",			   /* unused bits set */
	};
	char big[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (decode(bad[i], u, p) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
	/* More decoded bytes than the buffer holds. */
	strcpy(big, "Basic ");
	for (i = 6; i < 6 + 120; i++)
		big[i] = 'Q';
	big[i] = '\0';
	assert_int_equal(decode(big, u, p), -1);
}

static void
key_of(uint8_t *key, unsigned n)
{
	memset(key, 0, AUTHCACHE_KEY_LEN);
	memcpy(key, &n, sizeof(n));
	key[31] = (uint8_t)n;
}

static void
test_cache_hit_miss_expiry_version(void **state)
{
	struct authcache *c = authcache_new(16);
	uint8_t k1[AUTHCACHE_KEY_LEN], k2[AUTHCACHE_KEY_LEN];

	assert_non_null(c);
	key_of(k1, 1);
	key_of(k2, 2);
	assert_false(authcache_get(c, k1, 7, 1000));
	authcache_put(c, k1, 7, 1000, 2000);
	assert_true(authcache_get(c, k1, 7, 1000));
	assert_true(authcache_get(c, k1, 7, 1999));
	assert_false(authcache_get(c, k1, 7, 2000)); /* expired */
	assert_false(authcache_get(c, k1, 8, 1000)); /* credentials changed */
	assert_false(authcache_get(c, k2, 7, 1000));
	/* The same key again replaces its entry. */
	authcache_put(c, k1, 8, 1000, 5000);
	assert_true(authcache_get(c, k1, 8, 4000));
	/* Same first 8 bytes (same set), different tail: not a hit. */
	k2[0] = k1[0];
	k2[1] = k1[1];
	k2[2] = k1[2];
	k2[3] = k1[3];
	assert_false(authcache_get(c, k2, 8, 1000));
	authcache_free(c);
}

static void
test_cache_bounded_evicts_soonest(void **state)
{
	struct authcache *c = authcache_new(4); /* one set of 4 */
	uint8_t k[6][AUTHCACHE_KEY_LEN];
	unsigned i;

	for (i = 0; i < 6; i++) {
		key_of(k[i], 100 + i);
		memset(k[i], 0, 8); /* all in set 0 */
	}
	for (i = 0; i < 4; i++)
		authcache_put(c, k[i], 1, 0, 1000 + i * 100);
	for (i = 0; i < 4; i++)
		assert_true(authcache_get(c, k[i], 1, 10));
	/* A fifth evicts the one expiring first (k[0]). */
	authcache_put(c, k[4], 1, 10, 5000);
	assert_false(authcache_get(c, k[0], 1, 10));
	assert_true(authcache_get(c, k[1], 1, 10));
	assert_true(authcache_get(c, k[4], 1, 10));
	/* An expired entry is taken before a live one. */
	authcache_put(c, k[5], 1, 1150, 9000); /* k[1] expired at 1100 */
	assert_true(authcache_get(c, k[2], 1, 1150));
	assert_true(authcache_get(c, k[3], 1, 1150));
	assert_true(authcache_get(c, k[4], 1, 1150));
	assert_true(authcache_get(c, k[5], 1, 1150));
	authcache_free(c);
}

static uint64_t
v4_key(const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return guard_key((struct sockaddr *)&sin);
}

static uint64_t
v6_key(const char *ip)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	return guard_key((struct sockaddr *)&sin6);
}

static void
test_guard_keys(void **state)
{
	assert_int_equal(v4_key("10.0.0.1"), v4_key("10.0.0.1"));
	assert_int_not_equal(v4_key("10.0.0.1"), v4_key("10.0.0.2"));
	/* IPv6 counts per /64; a mapped IPv4 address is that address. */
	assert_int_equal(v6_key("2001:db8:1:2::1"), v6_key("2001:db8:1:2::ff"));
	assert_int_not_equal(v6_key("2001:db8:1:2::1"),
			     v6_key("2001:db8:1:3::1"));
	assert_int_equal(v6_key("::ffff:10.0.0.1"), v4_key("10.0.0.1"));
	assert_int_not_equal(v4_key("0.0.0.0"), 0);
}

static void
test_guard_refuses_after_limit_until_window_ends(void **state)
{
	struct guard *g = guard_new(3, 10000);
	uint64_t a = v4_key("192.0.2.1"), b = v4_key("192.0.2.2");

	assert_non_null(g);
	assert_int_equal(guard_refused(g, a, 0), 0);
	guard_failure(g, a, 1000); /* window 1000..11000 */
	guard_failure(g, a, 2000);
	assert_int_equal(guard_refused(g, a, 2000), 0);
	guard_failure(g, a, 3000);
	/* Refused until the window's end, rounded up to whole seconds. */
	assert_int_equal(guard_refused(g, a, 3000), 8);
	assert_int_equal(guard_refused(g, a, 10001), 1);
	assert_int_equal(guard_refused(g, a, 11000), 0);
	/* Another address is not affected. */
	assert_int_equal(guard_refused(g, b, 3000), 0);
	/* After the window, counting starts again. */
	guard_failure(g, a, 12000);
	guard_failure(g, a, 13000);
	assert_int_equal(guard_refused(g, a, 13000), 0);
	guard_free(g);
}

static void
test_guard_old_failures_expire_success_forgives(void **state)
{
	struct guard *g = guard_new(2, 1000);
	uint64_t a = v4_key("198.51.100.7");

	guard_failure(g, a, 0);
	guard_failure(g, a, 1500); /* the first one's window is over */
	assert_int_equal(guard_refused(g, a, 1500), 0);
	guard_success(g, a);
	guard_failure(g, a, 1600); /* forgiven: this is the first again */
	assert_int_equal(guard_refused(g, a, 1600), 0);
	guard_failure(g, a, 1700);
	assert_int_equal(guard_refused(g, a, 1700), 1);
	guard_free(g);
}

static void
test_guard_reserve_caps_checks_in_flight(void **state)
{
	struct guard *g = guard_new(3, 10000);
	uint64_t a = v4_key("192.0.2.9"), b = v4_key("192.0.2.10");

	/* Three checks may run at once; a fourth waits for one of them. */
	assert_int_equal(guard_reserve(g, a, 100), 0);
	assert_int_equal(guard_reserve(g, a, 100), 0);
	assert_int_equal(guard_reserve(g, a, 100), 0);
	assert_int_equal(guard_reserve(g, a, 100), 1);
	assert_int_equal(guard_reserve(g, b, 100), 0); /* others unaffected */
	/* Two fail: one slot left in the window. */
	guard_release(g, a);
	guard_failure(g, a, 200);
	guard_release(g, a);
	guard_failure(g, a, 200);
	assert_int_equal(guard_reserve(g, a, 300), 1); /* 2 failed + 1 */
	guard_release(g, a);
	assert_int_equal(guard_reserve(g, a, 300), 0);
	guard_release(g, a);
	guard_failure(g, a, 300); /* the third: refused to 100 + 10000 */
	assert_int_equal(guard_reserve(g, a, 400), 10);
	assert_int_equal(guard_refused(g, a, 400), 10);
	/* A new window once the refusal is over. */
	assert_int_equal(guard_reserve(g, a, 10200), 0);
	guard_free(g);
}

static void
test_guard_off_and_crowded(void **state)
{
	struct guard *off = guard_new(0, 1000), *g = guard_new(1, 60000);
	uint64_t a = v4_key("203.0.113.1");
	unsigned i;

	guard_failure(off, a, 0);
	guard_failure(off, a, 0);
	assert_int_equal(guard_refused(off, a, 0), 0);
	/* Far more addresses than slots: each is still refused right after
	 * its own failure, and the table never hands one's refusal to
	 * another that never failed. */
	for (i = 0; i < 3 * GUARD_SLOTS; i++) {
		char ip[32];
		uint64_t k;

		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255,
			 (i >> 8) & 255, i & 255);
		k = v4_key(ip);
		guard_failure(g, k, 100);
		assert_int_equal(guard_refused(g, k, 100), 60);
	}
	assert_int_equal(guard_refused(g, v4_key("172.16.0.1"), 100), 0);
	guard_free(off);
	guard_free(g);
}

/* Hashes from test_pwhash.c, where the commands that made them are. */
#define H_SHA1_PASSWORD "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=" /* "password" */
#define H_APR1_PASSWORD "$apr1$salt$Xxd1irWT9ycqoYxGFn4cb." /* "password" */
#define H_BCRYPT5 /* "correct horse" */                                        \
	"$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSCMz1AC"
#define H_YESCRYPT /* "yes crypt pw" */                                        \
	"$y$j9T$CeSthYYHZY7Ebr7Acz0sb/"                                        \
	"$6cPN7O7q4TXxo0461RLyiMwSsmHdzkKkcoiDQVlT"                            \
	"7N1"

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static struct auth_realm *
realm_named(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nrealms; i++)
		if (strcmp(c->realms[i].name, name) == 0)
			return c->realms[i].auth;
	fail_msg("no realm %s", name);
	return NULL;
}

static enum auth_result
check(struct auth_realm *r, const char *user, const char *pw,
      struct pwhash_scratch *sc)
{
	uint64_t version = 0;
	enum auth_result res;

	res = auth_realm_verify(r, user, strlen(user), pw, strlen(pw), sc,
				&version);
	assert_true(version > 0);
	return res;
}

static void
test_unknown_user_checks_costliest(void **state)
{
	char dir[] = "/tmp/test_auth.XXXXXX", f1[64], f2[64], json[1024];
	static struct config_errors err;
	struct pwhash_scratch *sc = pwhash_scratch_new();
	struct htpasswd users;
	struct auth_realm *r, *s;
	struct config *c;
	char why[256];

	assert_non_null(sc);
	assert_non_null(mkdtemp(dir));
	snprintf(f1, sizeof(f1), "%s/a.htpasswd", dir);
	snprintf(f2, sizeof(f2), "%s/b.htpasswd", dir);
	write_text(f1, "alice:" H_SHA1_PASSWORD "\nbob:" H_APR1_PASSWORD "\n");
	write_text(f2, "zed:" H_BCRYPT5 "\n");
	snprintf(json, sizeof(json),
		 "{\"upstreams\": {\"p\": {\"servers\": [\"127.0.0.1:9\"]}},"
		 " \"realms\": {\"files\": {\"htpasswd\": [\"%s\", \"%s\"]},"
		 " \"mixed\": {\"htpasswd\": \"%s\", \"aws_secret\": \"t/u\"}},"
		 " \"listeners\": [{\"listen\": \"127.0.0.1:8080\", "
		 "\"routes\": ["
		 "{\"name\": \"p\", \"path\": \"/p/\", \"upstream\": \"p\","
		 " \"realm\": \"files\"},"
		 "{\"name\": \"q\", \"path\": \"/q/\", \"upstream\": \"p\","
		 " \"realm\": \"mixed\"}]}]}",
		 f1, f2, f1);
	c = config_parse(json, strlen(json), &err);
	if (c == NULL) {
		fail_msg("%s", err.msg[0]);
		return;
	}
	assert_int_equal(auth_build(c, &err), 0);

	/* Two files merged: the costliest (bcrypt) is the second file's and
	 * the last user in the set's order. */
	r = realm_named(c, "files");
	assert_string_equal(auth_realm_decoy(r), "bcrypt");
	assert_int_equal(check(r, "alice", "password", sc), AUTH_OK);
	assert_int_equal(check(r, "zed", "correct horse", sc), AUTH_OK);
	/* an unknown user is denied, even with the decoy's own password */
	assert_int_equal(check(r, "nobody", "password", sc), AUTH_DENIED);
	assert_int_equal(check(r, "nobody", "correct horse", sc), AUTH_DENIED);
	assert_int_equal(check(r, "zed", "password", sc), AUTH_DENIED);

	/* A secret's users join a file's: its yescrypt hash takes over. */
	s = realm_named(c, "mixed");
	assert_string_equal(auth_realm_decoy(s), "apr1-md5");
	assert_int_equal(htpasswd_parse("hal:" H_YESCRYPT "\n",
					strlen("hal:" H_YESCRYPT "\n"), false,
					&users, why, sizeof(why)),
			 0);
	assert_int_equal(auth_secret_apply(c, "t/u", &users, why, sizeof(why)),
			 0);
	htpasswd_free(&users);
	assert_string_equal(auth_realm_decoy(s), "yescrypt");
	assert_string_equal(auth_realm_decoy(r), "bcrypt");
	assert_int_equal(check(s, "hal", "yes crypt pw", sc), AUTH_OK);
	assert_int_equal(check(s, "bob", "password", sc), AUTH_OK);
	assert_int_equal(check(s, "nobody", "yes crypt pw", sc), AUTH_DENIED);

	config_unref(c);
	pwhash_scratch_free(sc);
	assert_int_equal(unlink(f1), 0);
	assert_int_equal(unlink(f2), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_decode),
	    cmocka_unit_test(test_basic_decode_refusals),
	    cmocka_unit_test(test_cache_hit_miss_expiry_version),
	    cmocka_unit_test(test_cache_bounded_evicts_soonest),
	    cmocka_unit_test(test_guard_keys),
	    cmocka_unit_test(test_guard_refuses_after_limit_until_window_ends),
	    cmocka_unit_test(test_guard_old_failures_expire_success_forgives),
	    cmocka_unit_test(test_guard_reserve_caps_checks_in_flight),
	    cmocka_unit_test(test_guard_off_and_crowded),
	    cmocka_unit_test(test_unknown_user_checks_costliest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
