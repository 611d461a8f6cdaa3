/*
 * test_htpasswd.c - htpasswd.c through htpasswd.h: a file mixing every
 * format read back entry by entry, lookups that must miss, every error
 * with its exact "line N: ..." text, a large file, and which entry an
 * unknown user is checked against (htpasswd_costliest).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "htpasswd.h"

/* Hashes from test_pwhash.c, where the commands that made them are. */
#define H_BCRYPT "$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSCMz1AC"
#define H_APR1 "$apr1$salt$Xxd1irWT9ycqoYxGFn4cb."
#define H_SHA1 "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
#define H_MD5 "$1$sOhcwBda$RkYZZ2Wk5H6XhzA52dtow1"
#define H_SHA256                                                               \
	"$5$oak57GGOs65xKGSa$pTzl03v72PS68sS0/hy.9uQ7nCoi1YBX3aqL76ScAy8"
#define H_SHA512                                                               \
	"$6$MkXjteUbZ79OSKrF$jqahdMuyiHsAsV/hlqT7aM6F.rcqx/"                   \
	"RC3a84oPAsJCuEUXH0m"                                                  \
	"xW.SegD6HFDq8Ssm40ULLp70Nfy/rbmLzyp80"
#define H_YESCRYPT                                                             \
	"$y$j9T$CeSthYYHZY7Ebr7Acz0sb/"                                        \
	"$6cPN7O7q4TXxo0461RLyiMwSsmHdzkKkcoiDQVl"                             \
	"T7N1"
#define H_BCRYPT_A                                                             \
	"$2a$05$MG/T8ZxJaSFaH/4pkmH0gOwFr5yXjJqAdieCKzhcQkAGEJXnOrEza"
#define H_BCRYPT_B                                                             \
	"$2b$05$oHLZjRK4Qe6yLiPsKBIuVe79DE39Az.x8lJrWV4vnuSNU/7T9TiqO"
#define H_SHA512_6000                                                          \
	"$6$rounds=6000$0GHkuTgzhuM4.CWy$DTgtADB.z0CMNsMm/Bwp2hDgawWN/"        \
	"1h1YKwuE"                                                             \
	"7UBOdoTTinjtIA4BkmeBr.eiZPnY61mTgzX1gEqkkMSTP6UR."
#define H_SHA512_5000                                                          \
	"$6$rounds=5000$Qx9dW2mZ$"                                             \
	"6M4gqO1k1AoQh9kMJmAurkKhbpD7WXHyWwGD35xlsRnM5"                        \
	"E/eRy/VEBoHww18lQd/an6muxws6t4dF5rvM6oOa0"
/* yescrypt with g set, which libcrypt refuses: costs 0 (pwhash_cost) */
#define H_YESCRYPT_G                                                           \
	"$y$j9T1.$Qx9dW2mZhT5pLm1a$hmkNhtrxmk169aVIQ7WeiAOe/"                  \
	"VS3QAuNVjZYYBt6PXC"
#define H_BCRYPT_COST31                                                        \
	"$2y$31$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSCMz1AC"

static struct htpasswd h;
static char err[256];

static int
parse_n(const char *buf, size_t len, bool allow_plain)
{
	memset(err, 'Z', sizeof(err));
	return htpasswd_parse(buf, len, allow_plain, &h, err, sizeof(err));
}

static int
parse(const char *buf, bool allow_plain)
{
	return parse_n(buf, strlen(buf), allow_plain);
}

static const struct htpasswd_entry *
find(const char *user)
{
	return htpasswd_find(&h, user, strlen(user));
}

/* buf[0..len) is refused with exactly `want`, quoting no `secret`. */
static void
assert_error_n(const char *buf, size_t len, bool allow_plain, const char *want,
	       const char *secret)
{
	assert_int_equal(parse_n(buf, len, allow_plain), -1);
	assert_string_equal(err, want);
	assert_int_equal(h.n, 0);
	assert_null(h.entries);
	if (secret != NULL)
		assert_null(strstr(err, secret));
}

static void
assert_error(const char *buf, bool allow_plain, const char *want,
	     const char *secret)
{
	assert_error_n(buf, strlen(buf), allow_plain, want, secret);
}

static void
assert_entry(const char *user, const char *hash, enum pwhash_kind kind,
	     unsigned line)
{
	const struct htpasswd_entry *e = find(user);

	assert_non_null(e);
	assert_string_equal(e->user, user);
	assert_string_equal(e->hash, hash);
	assert_int_equal(e->kind, kind);
	assert_int_equal(e->line, line);
}

static const char mixed[] = "# users of the test gateway\r\n"
			    "\r\n"
			    "alice:" H_BCRYPT "\r\n"
			    "bob:" H_APR1 "\n"
			    "\n"
			    "carol:" H_SHA1 "\n"
			    "#eve:" H_SHA1 "\n"
			    "dave:" H_SHA512 "\r\n"
			    "Émile:" H_MD5 "\n"
			    "fred:{PLAIN}fred pw\n"
			    "gus:" H_SHA256 "\n"
			    "#\n"
			    "hal:" H_YESCRYPT;

static void
test_mixed(void **state)
{
	struct pwhash_scratch *sc = pwhash_scratch_new();
	const struct htpasswd_entry *e;
	size_t i;

	assert_non_null(sc);
	assert_int_equal(parse(mixed, true), 0);
	assert_string_equal(err, "");
	assert_int_equal(h.n, 8);
	assert_entry("alice", H_BCRYPT, PWHASH_BCRYPT, 3);
	assert_entry("bob", H_APR1, PWHASH_APR1, 4);
	assert_entry("carol", H_SHA1, PWHASH_SHA1, 6);
	assert_entry("dave", H_SHA512, PWHASH_SHA512CRYPT, 8);
	assert_entry("Émile", H_MD5, PWHASH_MD5CRYPT, 9);
	assert_entry("fred", "{PLAIN}fred pw", PWHASH_PLAIN, 10);
	assert_entry("gus", H_SHA256, PWHASH_SHA256CRYPT, 11);
	assert_entry("hal", H_YESCRYPT, PWHASH_YESCRYPT, 13);
	assert_null(find("eve"));
	assert_null(find("#eve"));

	/* sorted in memcmp order, as the lookup needs */
	for (i = 1; i < h.n; i++)
		assert_true(strcmp(h.entries[i - 1].user, h.entries[i].user) <
			    0);

	/* the stored hashes are usable as they are: no '\r' kept */
	e = find("alice");
	assert_true(pwhash_verify(e->hash, e->kind, "correct horse", 13, sc));
	e = find("dave");
	assert_true(pwhash_verify(e->hash, e->kind, "swordfish", 9, sc));
	e = find("fred");
	assert_true(pwhash_verify(e->hash, e->kind, "fred pw", 7, sc));
	e = find("bob");
	assert_false(pwhash_verify(e->hash, e->kind, "fred pw", 7, sc));

	htpasswd_free(&h);
	assert_int_equal(h.n, 0);
	assert_null(h.entries);
	pwhash_scratch_free(sc);
}

static void
test_find_misses(void **state)
{
	assert_int_equal(parse(mixed, true), 0);
	assert_null(find("alic"));
	assert_null(find("alicex"));
	assert_null(find("Alice"));
	assert_null(find("a"));
	assert_null(find("zzz"));
	assert_null(find(""));
	assert_null(htpasswd_find(&h, "alice", 0));
	assert_null(htpasswd_find(&h, "alice\0", 6));
	assert_non_null(htpasswd_find(&h, "alicex", 5));
	htpasswd_free(&h);
	assert_null(find("alice"));
}

static void
test_empty_files(void **state)
{
	assert_int_equal(parse_n("", 0, false), 0);
	assert_int_equal(h.n, 0);
	assert_null(find("alice"));
	htpasswd_free(&h);
	assert_int_equal(parse("# nobody\n\n\r\n#x:y\n", false), 0);
	assert_int_equal(h.n, 0);
	htpasswd_free(&h);
}

static void
test_plain_needs_allow(void **state)
{
	assert_error("alice:" H_BCRYPT "\nfred:{PLAIN}fred pw\n", false,
		     "line 2: plain-text passwords need \"allow_plaintext\"",
		     "fred pw");
	assert_error("alice:" H_BCRYPT "\n\nfred:fred pw\n", false,
		     "line 3: not a known hash scheme; plain-text passwords "
		     "need \"allow_plaintext\"",
		     "fred pw");
	assert_error("des:abJnggxhB/yWI\n", false,
		     "line 1: DES crypt hashes are not supported", "abJngg");
	assert_int_equal(parse("des:abJnggxhB/yWI\n", true), 0);
	assert_entry("des", "abJnggxhB/yWI", PWHASH_PLAIN, 1);
	htpasswd_free(&h);
}

static void
test_line_errors(void **state)
{
	assert_error("alice\n", false, "line 1: no ':' between user and hash",
		     NULL);
	assert_error("  \n", false, "line 1: no ':' between user and hash",
		     NULL);
	assert_error("# c\n:" H_SHA1 "\n", false,
		     "line 2: the user name is empty", "W6ph5");
	assert_error("alice:\n", false, "line 1: the hash is empty", NULL);
	assert_error("alice:" H_SHA1 "\r\r\n", false,
		     "line 1: the hash has a control character", "W6ph5");
	assert_error("al\tice:" H_SHA1 "\n", false,
		     "line 1: the user name has a control character", "W6ph5");
	assert_error("al\x7f"
		     "ice:" H_SHA1 "\n",
		     false, "line 1: the user name has a control character",
		     "W6ph5");
	assert_error(" alice:" H_SHA1 "\n", false,
		     "line 1: the user name starts or ends with a space",
		     "W6ph5");
	assert_error("alice :" H_SHA1 "\n", false,
		     "line 1: the user name starts or ends with a space",
		     "W6ph5");
	assert_error("bob:" H_APR1 "\nalice:" H_BCRYPT_COST31 "\n", false,
		     "line 2: bcrypt cost is outside 4..17", "lVwBw");
	assert_error("alice:$7$abc$defghijk\n", true,
		     "line 1: unsupported hash scheme", "defghijk");
	assert_error("alice:$apr1$salt$Xxd1irWT9ycqoYxGFn4c\n", false,
		     "line 1: md5-crypt digest is not 22 bytes", "Xxd1irWT");
	assert_error_n("bob:" H_APR1 "\nal\0ice:" H_SHA1 "\n",
		       sizeof("bob:" H_APR1 "\nal\0ice:" H_SHA1 "\n") - 1,
		       false, "line 2: NUL byte", "W6ph5");
	assert_error_n("alice:{PLAIN}se\0cret\n", 21, true, "line 1: NUL byte",
		       "se");
}

static void
test_user_length(void **state)
{
	char buf[512];

	memset(buf, 'u', HTPASSWD_USER_MAX);
	snprintf(buf + HTPASSWD_USER_MAX, sizeof(buf) - HTPASSWD_USER_MAX,
		 ":%s\n", H_SHA1);
	assert_int_equal(parse(buf, false), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(strlen(h.entries[0].user), HTPASSWD_USER_MAX);
	htpasswd_free(&h);

	memset(buf, 'u', HTPASSWD_USER_MAX + 1);
	snprintf(buf + HTPASSWD_USER_MAX + 1,
		 sizeof(buf) - HTPASSWD_USER_MAX - 1, ":%s\n", H_SHA1);
	assert_error(buf, false,
		     "line 1: the user name is longer than 255 bytes", "W6ph5");
}

static void
test_hash_length(void **state)
{
	char buf[PWHASH_MAX + 64];

	/* the hash starts at buf + 2 */
	memcpy(buf, "u:{PLAIN}", 9);
	memset(buf + 9, 'p', sizeof(buf) - 9);
	buf[2 + PWHASH_MAX + 1] = '\0';
	assert_error(buf, true, "line 1: the hash is longer than 256 bytes",
		     "pppppppp");
	buf[2 + PWHASH_MAX] = '\0';
	assert_int_equal(parse(buf, true), 0);
	assert_int_equal(strlen(h.entries[0].hash), PWHASH_MAX);
	htpasswd_free(&h);
}

static void
test_duplicates(void **state)
{
	assert_error(
	    "# 1\nbob:" H_APR1 "\n\n\n\nalice:" H_BCRYPT "\nbob:" H_SHA1 "\n",
	    false, "line 7: user \"bob\" is already defined on line 2", "Xxd1");
	/* the first duplicate in the file, not in sort order */
	assert_error("zed:" H_SHA1 "\nbob:" H_SHA1 "\nbob:" H_SHA1
		     "\nzed:" H_SHA1 "\n",
		     false, "line 3: user \"bob\" is already defined on line 2",
		     "W6ph5");
	assert_error("zed:" H_SHA1 "\nbob:" H_SHA1 "\nzed:" H_SHA1
		     "\nbob:" H_SHA1 "\n",
		     false, "line 3: user \"zed\" is already defined on line 1",
		     "W6ph5");
	/* three definitions: the second is the error */
	assert_error("bob:" H_SHA1 "\nbob:" H_SHA1 "\nbob:" H_SHA1 "\n", false,
		     "line 2: user \"bob\" is already defined on line 1",
		     "W6ph5");
	/* names differing by length or case are distinct */
	assert_int_equal(parse("bob:" H_SHA1 "\nbobb:" H_SHA1 "\nBob:" H_SHA1
			       "\nbo:" H_SHA1 "\n",
			       false),
			 0);
	assert_int_equal(h.n, 4);
	assert_non_null(find("bo"));
	assert_non_null(find("bob"));
	assert_non_null(find("bobb"));
	assert_non_null(find("Bob"));
	htpasswd_free(&h);
}

/* The first error in the file wins, whichever check finds it. */
static void
test_first_error(void **state)
{
	assert_error("bob:" H_SHA1 "\nbob:" H_SHA1 "\nalice\n", false,
		     "line 2: user \"bob\" is already defined on line 1",
		     "W6ph5");
	assert_error("bob:" H_SHA1 "\nalice\nbob:" H_SHA1 "\n", false,
		     "line 2: no ':' between user and hash", "W6ph5");
}

static void
test_small_err_buffer(void **state)
{
	char small[12];

	memset(small, 'Z', sizeof(small));
	assert_int_equal(
	    htpasswd_parse("alice\n", 6, false, &h, small, sizeof(small)), -1);
	assert_string_equal(small, "line 1: no ");
	memset(small, 'Z', sizeof(small));
	assert_int_equal(htpasswd_parse("alice\n", 6, false, &h, small, 5), -1);
	assert_string_equal(small, "line");
	assert_int_equal(htpasswd_parse("alice\n", 6, false, &h, NULL, 0), -1);
	assert_int_equal(h.n, 0);
}

static void
test_many_entries(void **state)
{
	const size_t n = 10000;
	size_t i, len = 0, cap = n * 48;
	char *buf = malloc(cap), user[16];
	const struct htpasswd_entry *e;

	assert_non_null(buf);
	/* written in descending order so that sorting matters */
	for (i = n; i-- > 0;)
		len += (size_t)snprintf(buf + len, cap - len, "user%zu:%s\n",
					i * 7, H_SHA1);
	assert_int_equal(parse_n(buf, len, false), 0);
	assert_int_equal(h.n, n);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i * 7);
		e = find(user);
		assert_non_null(e);
		assert_string_equal(e->user, user);
		assert_int_equal(e->line, n - i);
		snprintf(user, sizeof(user), "user%zu", i * 7 + 1);
		assert_null(find(user));
	}
	htpasswd_free(&h);
	assert_int_equal(h.n, 0);
	free(buf);
}

static void
test_too_many_entries(void **state)
{
	const size_t n = HTPASSWD_MAX_ENTRIES + 1;
	size_t i, len = 0, cap = n * 48;
	char *buf = malloc(cap);

	assert_non_null(buf);
	len += (size_t)snprintf(buf, cap, "# header\n");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "u%zu:%s\n", i,
					H_SHA1);
	assert_error_n(buf, len, false, "line 100002: more than 100000 entries",
		       "W6ph5");
	/* exactly the maximum is fine */
	len -= strlen("u100000:" H_SHA1 "\n");
	assert_int_equal(parse_n(buf, len, false), 0);
	assert_int_equal(h.n, HTPASSWD_MAX_ENTRIES);
	htpasswd_free(&h);
	free(buf);
}

/* Parses text and returns the user htpasswd_costliest() picks. */
static const char *
costliest(const char *text)
{
	size_t i;

	assert_int_equal(parse(text, true), 0);
	assert_true(h.n > 0);
	i = htpasswd_costliest(&h);
	assert_true(i < h.n);
	return h.entries[i].user;
}

static void
test_costliest(void **state)
{
	char text[512], b4[128];

	/* the mixed file: yescrypt's default beats bcrypt 5 and the rest */
	assert_string_equal(costliest(mixed), "hal");
	htpasswd_free(&h);

	/* the costliest last in the set's (sorted) order, first in the
	 * file */
	assert_string_equal(costliest("zed:" H_BCRYPT "\n"
				      "amy:" H_SHA1 "\n"
				      "bob:" H_APR1 "\n"),
			    "zed");
	assert_int_equal(htpasswd_costliest(&h), h.n - 1);
	htpasswd_free(&h);

	/* ... and first */
	assert_string_equal(costliest("bob:" H_MD5 "\n"
				      "cal:" H_SHA512 "\n"
				      "amy:" H_YESCRYPT "\n"),
			    "amy");
	assert_int_equal(htpasswd_costliest(&h), 0);
	htpasswd_free(&h);

	/* a tie goes to the first in the set's order, whatever the file's */
	assert_string_equal(costliest("cal:" H_BCRYPT_B "\n"
				      "ben:" H_BCRYPT_A "\n"
				      "dan:" H_SHA256 "\n"
				      "amy:" H_BCRYPT "\n"),
			    "amy");
	htpasswd_free(&h);
	assert_string_equal(costliest("cal:" H_SHA512 "\n"
				      "ben:" H_SHA512_5000 "\n"),
			    "ben");
	htpasswd_free(&h);

	/* within a scheme the parameters decide, and they can put
	 * sha512-crypt above bcrypt */
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 4, b4, sizeof(b4)), 0);
	snprintf(text, sizeof(text), "a:%s\nb:%s\nc:%s\n", H_SHA512, b4,
		 H_SHA512_6000);
	assert_string_equal(costliest(text), "c");
	htpasswd_free(&h);

	/* a hash libcrypt would refuse at once is never chosen */
	assert_string_equal(costliest("a:" H_YESCRYPT_G "\n"
				      "b:{PLAIN}b pw\n"),
			    "b");
	htpasswd_free(&h);

	/* no entries: 0, and nothing is read */
	assert_int_equal(parse("# none\n", false), 0);
	assert_int_equal(htpasswd_costliest(&h), 0);
	htpasswd_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mixed),
	    cmocka_unit_test(test_find_misses),
	    cmocka_unit_test(test_empty_files),
	    cmocka_unit_test(test_plain_needs_allow),
	    cmocka_unit_test(test_line_errors),
	    cmocka_unit_test(test_user_length),
	    cmocka_unit_test(test_hash_length),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_first_error),
	    cmocka_unit_test(test_small_err_buffer),
	    cmocka_unit_test(test_many_entries),
	    cmocka_unit_test(test_too_many_entries),
	    cmocka_unit_test(test_costliest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
