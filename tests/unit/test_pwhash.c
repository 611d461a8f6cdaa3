/*
 * test_pwhash.c - pwhash.c through pwhash.h: hashes made by real tools
 * (htpasswd, mkpasswd, openssl passwd, Python's crypt) recognised and
 * checked, near-miss passwords refused, every syntax refusal with its
 * reason, bcrypt hashes made and checked back, and the cost model ordering
 * schemes and parameters (never a clock).
 */
#include <crypt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pwhash.h"

struct vector {
	const char *hash;
	const char *pw;
	enum pwhash_kind kind;
};

/*
 * Made once with the tool in each comment; the passwords are test strings.
 */
static const struct vector vectors[] = {
    /* htpasswd -nbB -C 5 u 'correct horse' (Apache 2.4: "$2y$") */
    {"$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSCMz1AC",
     "correct horse", PWHASH_BCRYPT},
    /* mkpasswd -m bcrypt-a 'battery staple' */
    {"$2a$05$MG/T8ZxJaSFaH/4pkmH0gOwFr5yXjJqAdieCKzhcQkAGEJXnOrEza",
     "battery staple", PWHASH_BCRYPT},
    /* mkpasswd -m bcrypt 'tr0ub4dor&3' */
    {"$2b$05$oHLZjRK4Qe6yLiPsKBIuVe79DE39Az.x8lJrWV4vnuSNU/7T9TiqO",
     "tr0ub4dor&3", PWHASH_BCRYPT},
    /* openssl passwd -1 'open sesame' */
    {"$1$sOhcwBda$RkYZZ2Wk5H6XhzA52dtow1", "open sesame", PWHASH_MD5CRYPT},
    /* openssl passwd -5 'hunter22' */
    {"$5$oak57GGOs65xKGSa$pTzl03v72PS68sS0/hy.9uQ7nCoi1YBX3aqL76ScAy8",
     "hunter22", PWHASH_SHA256CRYPT},
    /* mkpasswd -m sha256crypt -R 1000 'rounds pw' */
    {"$5$rounds=1000$3PlU/S7tZJ26higW$"
     "AvsExWDfbbb3Tg8FXlQKegivv/Ff0muaBtGI88rSn48",
     "rounds pw", PWHASH_SHA256CRYPT},
    /* crypt.crypt('empty salt', '$5$$') */
    {"$5$$qu3REWa/3sl1BuquQ3B23Cna49jUWzQNbVo5saPx3d1", "empty salt",
     PWHASH_SHA256CRYPT},
    /* openssl passwd -6 'swordfish' */
    {"$6$MkXjteUbZ79OSKrF$jqahdMuyiHsAsV/hlqT7aM6F.rcqx/RC3a84oPAsJCuEUXH0m"
     "xW.SegD6HFDq8Ssm40ULLp70Nfy/rbmLzyp80",
     "swordfish", PWHASH_SHA512CRYPT},
    /* mkpasswd -m sha512crypt -R 6000 'rounds pw' (-R 5000, the default,
     * prints no rounds=) */
    {"$6$rounds=6000$0GHkuTgzhuM4.CWy$DTgtADB.z0CMNsMm/Bwp2hDgawWN/1h1YKwuE"
     "7UBOdoTTinjtIA4BkmeBr.eiZPnY61mTgzX1gEqkkMSTP6UR.",
     "rounds pw", PWHASH_SHA512CRYPT},
    /* crypt.crypt('rounds pw', '$6$rounds=5000$Qx9dW2mZ$') */
    {"$6$rounds=5000$Qx9dW2mZ$6M4gqO1k1AoQh9kMJmAurkKhbpD7WXHyWwGD35xlsRnM5"
     "E/eRy/VEBoHww18lQd/an6muxws6t4dF5rvM6oOa0",
     "rounds pw", PWHASH_SHA512CRYPT},
    /* mkpasswd -m yescrypt 'yes crypt pw' */
    {"$y$j9T$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSsmHdzkKkcoiDQVlT"
     "7N1",
     "yes crypt pw", PWHASH_YESCRYPT},
    /* mkpasswd -m yescrypt -R 3 'gamma ray' */
    {"$y$j7T$A5l.gLQJp1ZVnHAEuLrE00$bpNFQUE8j/OZvx6n8WQfke18xGd9Hkc8Ru3RTqv"
     "8eE8",
     "gamma ray", PWHASH_YESCRYPT},
    /* crypt.crypt('delta wing', '$y$jD5.7$Qx9dW2mZhT5pLm1a$'): longer
     * parameters */
    {"$y$jD5.7$Qx9dW2mZhT5pLm1a$hmkNhtrxmk169aVIQ7WeiAOe/VS3QAuNVjZYYBt6PXC",
     "delta wing", PWHASH_YESCRYPT},
    /* openssl passwd -apr1 'letmein now' */
    {"$apr1$hYxdJ4uS$jFYgle9HEWINA9m5HS.y..", "letmein now", PWHASH_APR1},
    /* openssl passwd -apr1 -salt salt password */
    {"$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.", "password", PWHASH_APR1},
    /* htpasswd -nbs u 'sha one pw' */
    {"{SHA}TY3Kv9GJ0KLKF+4qPUvO3qJaYas=", "sha one pw", PWHASH_SHA1},
    /* htpasswd -nbs u password */
    {"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password", PWHASH_SHA1},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

#define APR1_PASSWORD "$apr1$salt$Xxd1irWT9ycqoYxGFn4cb."
#define SHA1_PASSWORD "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
#define BCRYPT_TAIL "lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSCMz1AC"
#define SHA512_DIGEST                                                          \
	"jqahdMuyiHsAsV/hlqT7aM6F.rcqx/"                                       \
	"RC3a84oPAsJCuEUXH0mxW.SegD6HFDq8Ssm40ULL"                             \
	"p70Nfy/rbmLzyp80"

static struct pwhash_scratch *sc;

static int
setup(void **state)
{
	sc = pwhash_scratch_new();
	return sc == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	pwhash_scratch_free(sc);
	sc = NULL;
	return 0;
}

static bool
verify(const char *hash, enum pwhash_kind kind, const char *pw)
{
	return pwhash_verify(hash, kind, pw, strlen(pw), sc);
}

/* Identifies s, expecting kind. */
static void
assert_kind(const char *s, bool allow_plain, enum pwhash_kind want)
{
	enum pwhash_kind kind = PWHASH_NKINDS;
	const char *why = NULL;

	if (pwhash_identify(s, strlen(s), allow_plain, &kind, &why) != 0)
		print_message("refused %s: %s\n", s, why);
	assert_int_equal(
	    pwhash_identify(s, strlen(s), allow_plain, &kind, &why), 0);
	assert_int_equal(kind, want);
}

/* Refuses s with a reason holding `word` and not s itself. */
static void
assert_refused_n(const char *s, size_t len, bool allow_plain, const char *word)
{
	enum pwhash_kind kind;
	const char *why = NULL;
	char tail[9];

	assert_int_equal(pwhash_identify(s, len, allow_plain, &kind, &why), -1);
	assert_non_null(why);
	if (strstr(why, word) == NULL)
		print_message("reason \"%s\" lacks \"%s\"\n", why, word);
	assert_non_null(strstr(why, word));
	/* cppcheck-suppress pointerOutOfBoundsCond ; s holds len bytes */
	if (len >= 8 && memchr(s + len - 8, '\0', 8) == NULL) {
		memcpy(tail, s + len - 8, 8);
		tail[8] = '\0';
		assert_null(strstr(why, tail));
	}
}

static void
assert_refused(const char *s, bool allow_plain, const char *word)
{
	assert_refused_n(s, strlen(s), allow_plain, word);
}

static void
test_vectors_identify(void **state)
{
	size_t i;

	for (i = 0; i < NVECTORS; i++) {
		assert_kind(vectors[i].hash, false, vectors[i].kind);
		assert_kind(vectors[i].hash, true, vectors[i].kind);
	}
}

static void
test_vectors_verify(void **state)
{
	char buf[128];
	const char *pw;
	size_t i, n;

	for (i = 0; i < NVECTORS; i++) {
		pw = vectors[i].pw;
		n = strlen(pw);
		assert_true(n > 1 && n + 2 < sizeof(buf));
		if (!verify(vectors[i].hash, vectors[i].kind, pw))
			print_message("rejected %s\n", vectors[i].hash);
		assert_true(verify(vectors[i].hash, vectors[i].kind, pw));

		/* One character changed, at the start and at the end. */
		memcpy(buf, pw, n + 1);
		buf[0] ^= 0x01;
		assert_false(verify(vectors[i].hash, vectors[i].kind, buf));
		buf[0] ^= 0x01;
		buf[n - 1] ^= 0x01;
		assert_false(verify(vectors[i].hash, vectors[i].kind, buf));
		buf[n - 1] ^= 0x01;

		/* A prefix, one more character, nothing. */
		assert_false(pwhash_verify(vectors[i].hash, vectors[i].kind, pw,
					   n - 1, sc));
		memcpy(buf + n, "x", 2);
		assert_false(verify(vectors[i].hash, vectors[i].kind, buf));
		assert_false(verify(vectors[i].hash, vectors[i].kind, ""));
	}
}

/* Apache's documented vectors for "password", and close misses. */
static void
test_known_password(void **state)
{
	assert_true(verify(APR1_PASSWORD, PWHASH_APR1, "password"));
	assert_true(verify(SHA1_PASSWORD, PWHASH_SHA1, "password"));
	assert_false(verify(APR1_PASSWORD, PWHASH_APR1, "passwordx"));
	assert_false(verify(SHA1_PASSWORD, PWHASH_SHA1, "passwordx"));
	assert_false(verify(APR1_PASSWORD, PWHASH_APR1, ""));
	assert_false(verify(SHA1_PASSWORD, PWHASH_SHA1, ""));
	assert_false(verify(APR1_PASSWORD, PWHASH_APR1, "Password"));
	assert_false(verify(SHA1_PASSWORD, PWHASH_SHA1, "Password"));
	/* the last byte of the SHA-1 differs ('g' -> 'k' in its base64) */
	assert_false(verify("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9k=", PWHASH_SHA1,
			    "password"));
	/* the last or first character of the apr1 digest, or its salt */
	assert_false(verify("$apr1$salt$Xxd1irWT9ycqoYxGFn4cb/", PWHASH_APR1,
			    "password"));
	assert_false(verify("$apr1$salt$Yxd1irWT9ycqoYxGFn4cb.", PWHASH_APR1,
			    "password"));
	assert_false(verify("$apr1$salu$Xxd1irWT9ycqoYxGFn4cb.", PWHASH_APR1,
			    "password"));
	/* the first byte of the SHA-1 differs */
	assert_false(verify("{SHA}X6ph5Mm5Pz8GgiULbPgzG37mj9g=", PWHASH_SHA1,
			    "password"));
}

static void
test_truncated(void **state)
{
	assert_refused("$apr1$salt$Xxd1irWT9ycqoYxGFn4c", false, "22 bytes");
	assert_false(
	    verify("$apr1$salt$Xxd1irWT9ycqoYxGFn4c", PWHASH_APR1, "password"));
	/* base64 of "foo\n": 4 bytes, not 20 */
	assert_refused("{SHA}Zm9vCg==", false, "20 bytes");
	assert_false(verify("{SHA}Zm9vCg==", PWHASH_SHA1, "password"));
	assert_refused("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g", false, "20 bytes");
	assert_false(verify("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g", PWHASH_SHA1,
			    "password"));
	assert_refused("$2y$05$" BCRYPT_TAIL "x", false, "60 bytes");
	assert_false(
	    verify("$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkk"
		   "CSCMz1A",
		   PWHASH_BCRYPT, "correct horse"));
}

/* A hash is only checked as the kind it is. */
static void
test_wrong_kind(void **state)
{
	assert_false(verify(APR1_PASSWORD, PWHASH_MD5CRYPT, "password"));
	assert_false(verify(SHA1_PASSWORD, PWHASH_PLAIN, "password"));
	assert_false(verify(SHA1_PASSWORD, PWHASH_PLAIN, SHA1_PASSWORD));
	assert_false(verify(vectors[0].hash, PWHASH_PLAIN, vectors[0].hash));
	assert_false(
	    verify(vectors[0].hash, PWHASH_SHA512CRYPT, "correct horse"));
	assert_false(verify(vectors[0].hash, PWHASH_NKINDS, "correct horse"));
	assert_true(verify(vectors[0].hash, PWHASH_BCRYPT, "correct horse"));
	/* libcrypt kinds need the scratch */
	assert_false(pwhash_verify(vectors[0].hash, PWHASH_BCRYPT,
				   "correct horse", 13, NULL));
	assert_true(
	    pwhash_verify(APR1_PASSWORD, PWHASH_APR1, "password", 8, NULL));
}

static void
test_nul_in_password(void **state)
{
	assert_false(
	    pwhash_verify(SHA1_PASSWORD, PWHASH_SHA1, "password\0", 9, sc));
	assert_false(
	    pwhash_verify(APR1_PASSWORD, PWHASH_APR1, "password\0", 9, sc));
	assert_false(
	    pwhash_verify(APR1_PASSWORD, PWHASH_APR1, "pass\0word", 9, sc));
	assert_false(pwhash_verify(vectors[0].hash, PWHASH_BCRYPT,
				   "correct horse\0", 14, sc));
	assert_false(
	    pwhash_verify("{PLAIN}secret", PWHASH_PLAIN, "secret\0", 7, sc));
	assert_false(
	    pwhash_verify("{PLAIN}secret", PWHASH_PLAIN, "\0secret", 7, sc));
	/* the same passwords without the NUL still match */
	assert_true(
	    pwhash_verify(SHA1_PASSWORD, PWHASH_SHA1, "password\0", 8, sc));
	assert_true(
	    pwhash_verify("{PLAIN}secret", PWHASH_PLAIN, "secret\0", 6, sc));
}

static void
test_long_password(void **state)
{
	char pw[2048];

	memset(pw, 'a', sizeof(pw));
	assert_false(
	    pwhash_verify(vectors[0].hash, PWHASH_BCRYPT, pw, sizeof(pw), sc));
	assert_false(pwhash_verify(vectors[4].hash, PWHASH_SHA256CRYPT, pw,
				   sizeof(pw), sc));
	assert_false(
	    pwhash_verify(APR1_PASSWORD, PWHASH_APR1, pw, sizeof(pw), sc));
	assert_false(
	    pwhash_verify(SHA1_PASSWORD, PWHASH_SHA1, pw, sizeof(pw), sc));
}

static void
test_make_bcrypt(void **state)
{
	char a[128], b[128];

	assert_int_equal(pwhash_make_bcrypt("made pw", 7, 4, a, sizeof(a)), 0);
	assert_int_equal(pwhash_make_bcrypt("made pw", 7, 4, b, sizeof(b)), 0);
	assert_int_equal(strlen(a), 60);
	assert_memory_equal(a, "$2y$04$", 7);
	assert_kind(a, false, PWHASH_BCRYPT);
	assert_kind(b, false, PWHASH_BCRYPT);
	assert_true(verify(a, PWHASH_BCRYPT, "made pw"));
	assert_true(verify(b, PWHASH_BCRYPT, "made pw"));
	assert_false(verify(a, PWHASH_BCRYPT, "made pW"));
	assert_false(verify(a, PWHASH_BCRYPT, "made p"));
	assert_false(verify(a, PWHASH_BCRYPT, ""));
	/* different salts: the 22 characters after "$2y$04$" */
	assert_true(memcmp(a + 7, b + 7, 22) != 0);

	assert_int_equal(pwhash_make_bcrypt("", 0, 4, a, sizeof(a)), 0);
	assert_true(verify(a, PWHASH_BCRYPT, ""));
	assert_false(verify(a, PWHASH_BCRYPT, "x"));
}

static void
test_make_bcrypt_refusals(void **state)
{
	char out[128], big[600];
	size_t i;

	memset(out, 'z', sizeof(out));
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 3, out, sizeof(out)), -1);
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 18, out, sizeof(out)), -1);
	assert_int_equal(pwhash_make_bcrypt("p\0w", 3, 4, out, sizeof(out)),
			 -1);
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 4, out, 60), -1);
	for (i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 'z');
	memset(big, 'a', sizeof(big));
	assert_int_equal(
	    pwhash_make_bcrypt(big, sizeof(big), 4, out, sizeof(out)), -1);
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 4, out, 61), 0);
	assert_int_equal(strlen(out), 60);
}

static void
test_refuse_bcrypt(void **state)
{
	assert_refused("$2y$31$" BCRYPT_TAIL, false, "cost");
	assert_refused("$2y$31$" BCRYPT_TAIL, false, "4..17");
	assert_refused("$2y$03$" BCRYPT_TAIL, false, "cost");
	assert_refused("$2y$18$" BCRYPT_TAIL, false, "cost");
	assert_kind("$2y$17$" BCRYPT_TAIL, false, PWHASH_BCRYPT);
	assert_kind("$2y$04$" BCRYPT_TAIL, false, PWHASH_BCRYPT);
	assert_refused("$2y$5$" BCRYPT_TAIL "A", false, "two digits");
	assert_refused("$2y$x5$" BCRYPT_TAIL, false, "two digits");
	assert_refused("$2y$05$" BCRYPT_TAIL "A", false, "60 bytes");
	assert_refused("$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkk",
		       false, "60 bytes");
	assert_refused("$2y$05$lVwBw+ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSC"
		       "Mz1AC",
		       false, "alphabet");
	assert_refused("$2y$05$lVwBw/ho9cw9Fq0YNkPnseUg7dMHEnT0fjdq05DL4ZJkkCSC"
		       "Mz1A$",
		       false, "alphabet");
	/* other bcrypt ids are not taken */
	assert_refused("$2x$05$" BCRYPT_TAIL, true, "unsupported");
	assert_refused("$2$05$" BCRYPT_TAIL, true, "unsupported");
}

static void
test_refuse_md5(void **state)
{
	assert_refused("$1$$RkYZZ2Wk5H6XhzA52dtow1", false, "1..8");
	assert_refused("$1$sOhcwBdaX$RkYZZ2Wk5H6XhzA52dtow1", false, "1..8");
	assert_refused("$apr1$salt:x$Xxd1irWT9ycqoYxGFn4cb.", false,
		       "invalid byte");
	assert_refused("$apr1$saltXxd1irWT9ycqoYxGFn4cb.", false, "no '$'");
	assert_refused("$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.A", false, "22 bytes");
	assert_refused("$apr1$salt$Xxd1irWT9ycqoYxGFn4cb+", false, "alphabet");
	assert_refused("$1$sOhcwBda$RkYZZ2Wk5H6XhzA52dtow1$", false,
		       "22 bytes");
}

static void
test_refuse_sha(void **state)
{
	assert_refused("$6$rounds=999$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		       "rounds");
	assert_refused("$6$rounds=999$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		       "1000..1000000");
	assert_refused("$6$rounds=2000000$MkXjteUbZ79OSKrF$" SHA512_DIGEST,
		       false, "rounds");
	assert_refused("$6$rounds=99999999999999999999999$x$" SHA512_DIGEST,
		       false, "rounds");
	assert_refused("$6$rounds=01000$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		       "decimal");
	assert_refused("$6$rounds=$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		       "decimal");
	assert_refused("$6$rounds=1e4$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		       "decimal");
	assert_kind("$6$rounds=1000000$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false,
		    PWHASH_SHA512CRYPT);
	assert_kind("$6$$" SHA512_DIGEST, false, PWHASH_SHA512CRYPT);
	assert_refused("$6$MkXjteUbZ79OSKrFx$" SHA512_DIGEST, false,
		       "longer than 16");
	assert_refused("$6$MkXj;teUbZ$" SHA512_DIGEST, false, "invalid byte");
	assert_refused("$6$MkXjteUbZ79OSKrF" SHA512_DIGEST, false, "no '$'");
	assert_refused("$6$MkXjteUbZ79OSKrF$" SHA512_DIGEST "a", false,
		       "86 bytes");
	assert_refused("$5$MkXjteUbZ79OSKrF$" SHA512_DIGEST, false, "43 bytes");
	assert_refused("$6$MkXjteUbZ79OSKrF$" SHA512_DIGEST "a", false,
		       "86 bytes");
	assert_refused("$5$oak57GGOs65xKGSa$pTzl03v72PS68sS0/hy.9uQ7nCoi1YBX3aq"
		       "L76ScAy_",
		       false, "alphabet");
}

static void
test_refuse_yescrypt(void **state)
{
	assert_refused("$y$$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSsmHd"
		       "zkKkcoiDQVlT7N1",
		       false, "parameters");
	assert_refused("$y$j9T$$6cPN7O7q4TXxo0461RLyiMwSsmHdzkKkcoiDQVlT7N1",
		       false, "salt");
	assert_refused("$y$j9T$CeSthYYHZY7Ebr7Acz0sb/6cPN7O7q4TXxo0461RLyiMwSs"
		       "mHdzkKkcoiDQVlT7N1",
		       false, "salt");
	assert_refused("$y$j9T$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSs"
		       "mHdzkKkcoiDQVlT7N",
		       false, "43 bytes");
	assert_refused("$y$j9T$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSs"
		       "mHdzkKkcoiDQVlT7N1$",
		       false, "43 bytes");
	assert_refused("$y$j9T$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSs"
		       "mHdzkKkcoiDQVlT7N-",
		       false, "alphabet");
	assert_refused("$y$j=T$CeSthYYHZY7Ebr7Acz0sb/$6cPN7O7q4TXxo0461RLyiMwSs"
		       "mHdzkKkcoiDQVlT7N1",
		       false, "parameters");
}

static void
test_refuse_sha1(void **state)
{
	assert_refused("{SHA}", false, "20 bytes");
	assert_refused("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g==", false, "20 bytes");
	assert_refused("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9gA", false, "20 bytes");
	assert_refused("{SHA}W6ph5Mm5Pz8GgiU.bPgzG37mj9g=", false, "base64");
}

static void
test_refuse_schemes(void **state)
{
	assert_refused("$7$x$y", false, "unsupported");
	assert_refused("$7$x$y", true, "unsupported");
	assert_refused("$gy$j9T$abc$def", true, "unsupported");
	assert_refused("$sha1$40000$salt$hash", true, "unsupported");
	assert_refused("$", true, "unsupported");
	assert_refused("$apr1", true, "unsupported");
	assert_refused("{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", true,
		       "unsupported");
	assert_refused("{sha}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", true,
		       "unsupported");
}

static void
test_refuse_general(void **state)
{
	char big[PWHASH_MAX + 2];
	enum pwhash_kind kind;
	const char *why;

	assert_refused_n("", 0, true, "empty");
	memset(big, 'a', sizeof(big));
	assert_refused_n(big, PWHASH_MAX + 1, true, "longer than 256");
	assert_int_equal(pwhash_identify(big, PWHASH_MAX, true, &kind, &why),
			 0);
	assert_int_equal(kind, PWHASH_PLAIN);
	assert_refused("secret\tpw", true, "control");
	assert_refused("$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.\r", true, "control");
	assert_refused_n("sec\0ret", 7, true, "control");
	assert_refused("secret\x7f", true, "control");
}

static void
test_des_and_plain(void **state)
{
	assert_refused("abJnggxhB/yWI", false, "DES");
	assert_refused("{PLAIN}x", false, "allow_plaintext");
	assert_refused("secret", false, "allow_plaintext");
	assert_refused("{PLAIN}", true, "empty");
	assert_kind("abJnggxhB/yWI", true, PWHASH_PLAIN);
	assert_kind("{PLAIN}x", true, PWHASH_PLAIN);
	assert_kind("secret", true, PWHASH_PLAIN);
	assert_kind("{PLAIN}{SSHA}x", true, PWHASH_PLAIN);

	assert_true(verify("{PLAIN}secret", PWHASH_PLAIN, "secret"));
	assert_false(verify("{PLAIN}secret", PWHASH_PLAIN, "secre"));
	assert_false(verify("{PLAIN}secret", PWHASH_PLAIN, "secret2"));
	assert_false(verify("{PLAIN}secret", PWHASH_PLAIN, "{PLAIN}secret"));
	assert_false(verify("{PLAIN}secret", PWHASH_PLAIN, ""));
	assert_true(verify("secret", PWHASH_PLAIN, "secret"));
	assert_false(verify("secret", PWHASH_PLAIN, "Secret"));
	assert_true(verify("abJnggxhB/yWI", PWHASH_PLAIN, "abJnggxhB/yWI"));
	assert_true(verify("{PLAIN}{SSHA}x", PWHASH_PLAIN, "{SSHA}x"));
}

/* Vectors of the table above, by name, for the cost tests. */
#define V_MD5 "$1$sOhcwBda$RkYZZ2Wk5H6XhzA52dtow1"
#define V_SHA256                                                               \
	"$5$oak57GGOs65xKGSa$pTzl03v72PS68sS0/hy.9uQ7nCoi1YBX3aqL76ScAy8"
#define V_SHA256_1000                                                          \
	"$5$rounds=1000$3PlU/S7tZJ26higW$"                                     \
	"AvsExWDfbbb3Tg8FXlQKegivv/Ff0muaBtGI88rSn48"
#define V_SHA512                                                               \
	"$6$MkXjteUbZ79OSKrF$jqahdMuyiHsAsV/hlqT7aM6F.rcqx/"                   \
	"RC3a84oPAsJCuEUXH0m"                                                  \
	"xW.SegD6HFDq8Ssm40ULLp70Nfy/rbmLzyp80"
#define V_SHA512_5000                                                          \
	"$6$rounds=5000$Qx9dW2mZ$"                                             \
	"6M4gqO1k1AoQh9kMJmAurkKhbpD7WXHyWwGD35xlsRnM5"                        \
	"E/eRy/VEBoHww18lQd/an6muxws6t4dF5rvM6oOa0"
#define V_YESCRYPT_J9T                                                         \
	"$y$j9T$CeSthYYHZY7Ebr7Acz0sb/"                                        \
	"$6cPN7O7q4TXxo0461RLyiMwSsmHdzkKkcoiDQVlT"                            \
	"7N1"
#define V_YESCRYPT_J7T                                                         \
	"$y$j7T$A5l.gLQJp1ZVnHAEuLrE00$bpNFQUE8j/"                             \
	"OZvx6n8WQfke18xGd9Hkc8Ru3RTqv"                                        \
	"8eE8"
#define V_YESCRYPT_P11                                                         \
	"$y$jD5.7$Qx9dW2mZhT5pLm1a$hmkNhtrxmk169aVIQ7WeiAOe/"                  \
	"VS3QAuNVjZYYBt6PXC"
/* A salt and digest to build yescrypt strings libcrypt would refuse. */
#define Y_TAIL "$Qx9dW2mZhT5pLm1a$hmkNhtrxmk169aVIQ7WeiAOe/VS3QAuNVjZYYBt6PXC"

static uint64_t
cost(const char *hash, enum pwhash_kind kind)
{
	return pwhash_cost(hash, kind);
}

/* A yescrypt hash that libcrypt makes now with these parameters. */
static uint64_t
ycost(const char *params)
{
	static struct crypt_data cd;
	char setting[64];
	const char *h;

	snprintf(setting, sizeof(setting), "$y$%s$Qx9dW2mZhT5pLm1a$", params);
	h = crypt_rn("yes pw", setting, &cd, (int)sizeof(cd));
	assert_non_null(h);
	if (h[0] == '*')
		print_message("libcrypt refused %s\n", setting);
	assert_true(h[0] == '$');
	assert_kind(h, false, PWHASH_YESCRYPT);
	return cost(h, PWHASH_YESCRYPT);
}

static void
test_cost_across_schemes(void **state)
{
	char b10[128];
	uint64_t plain, sha1, md5, apr1, sha256, sha512, y7, y9, bc5, bc10;

	plain = cost("{PLAIN}plain pw", PWHASH_PLAIN);
	assert_int_equal(cost("no scheme pw", PWHASH_PLAIN), plain);
	sha1 = cost(SHA1_PASSWORD, PWHASH_SHA1);
	md5 = cost(V_MD5, PWHASH_MD5CRYPT);
	apr1 = cost(APR1_PASSWORD, PWHASH_APR1);
	sha256 = cost(V_SHA256, PWHASH_SHA256CRYPT);
	sha512 = cost(V_SHA512, PWHASH_SHA512CRYPT);
	y7 = cost(V_YESCRYPT_J7T, PWHASH_YESCRYPT);
	y9 = cost(V_YESCRYPT_J9T, PWHASH_YESCRYPT);
	bc5 = cost(vectors[0].hash, PWHASH_BCRYPT);
	assert_int_equal(pwhash_make_bcrypt("ten", 3, 10, b10, sizeof(b10)), 0);
	bc10 = cost(b10, PWHASH_BCRYPT);

	/* The order measured on the reference machine (pwhash.c). */
	assert_true(plain > 0);
	assert_int_equal(sha1, plain);
	assert_true(sha1 < md5);
	assert_true(md5 < apr1); /* apr1 is done with OpenSSL's EVP, slower */
	assert_true(apr1 < sha256);
	assert_true(sha256 < sha512);
	assert_true(sha512 < bc5);
	assert_true(bc5 < y7);
	assert_true(y7 < y9);
	assert_true(y9 < bc10);

	/* And the ratios, to an order of magnitude: bcrypt 10 ~4 times
	 * yescrypt's default, itself ~8 times sha512-crypt's default. */
	assert_true(bc10 / y9 >= 2 && bc10 / y9 <= 8);
	assert_true(y9 / sha512 >= 4 && y9 / sha512 <= 16);
	assert_true(apr1 / sha1 >= 100);
}

static void
test_cost_parameters(void **state)
{
	char b4[128], b5[128], b6[128], s1[256], s5[256], s20[256];
	char b17[] = "$2y$17$" BCRYPT_TAIL;
	uint64_t y9;

	/* bcrypt doubles with each step of its cost, up to the most taken. */
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 4, b4, sizeof(b4)), 0);
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 5, b5, sizeof(b5)), 0);
	assert_int_equal(pwhash_make_bcrypt("pw", 2, 6, b6, sizeof(b6)), 0);
	assert_int_equal(cost(b5, PWHASH_BCRYPT), 2 * cost(b4, PWHASH_BCRYPT));
	assert_int_equal(cost(b6, PWHASH_BCRYPT), 2 * cost(b5, PWHASH_BCRYPT));
	assert_int_equal(cost(b17, PWHASH_BCRYPT), cost(b4, PWHASH_BCRYPT)
						       << 13);

	/* sha-crypt: linear in rounds; none written means 5000. */
	assert_int_equal(pwhash_make_sha512("pw", 2, 1000, s1, sizeof(s1)), 0);
	assert_int_equal(pwhash_make_sha512("pw", 2, 5000, s5, sizeof(s5)), 0);
	assert_int_equal(pwhash_make_sha512("pw", 2, 20000, s20, sizeof(s20)),
			 0);
	assert_true(cost(s1, PWHASH_SHA512CRYPT) <
		    cost(s5, PWHASH_SHA512CRYPT));
	assert_true(cost(s20, PWHASH_SHA512CRYPT) >=
		    4 * cost(s5, PWHASH_SHA512CRYPT));
	assert_int_equal(cost(V_SHA512, PWHASH_SHA512CRYPT),
			 cost(V_SHA512_5000, PWHASH_SHA512CRYPT));
	assert_int_equal(cost(s5, PWHASH_SHA512CRYPT),
			 cost(V_SHA512, PWHASH_SHA512CRYPT));
	assert_true(cost(V_SHA256_1000, PWHASH_SHA256CRYPT) <
		    cost(V_SHA256, PWHASH_SHA256CRYPT));

	/* yescrypt: N ("9" is 2^12) and r ("T" is 32) multiply. */
	y9 = ycost("j9T");
	assert_int_equal(y9, cost(V_YESCRYPT_J9T, PWHASH_YESCRYPT));
	assert_true(ycost("j8T") < y9);
	assert_true(ycost("jAT") > y9 * 19 / 10);
	assert_true(ycost("j95") < y9 / 3); /* r 8 */
	/* r 49 takes two characters ("k."): 49/32 of r 32 */
	assert_true(ycost("j9k.") > y9 * 3 / 2 && ycost("j9k.") < y9 * 8 / 5);
	/* yescrypt proper splits N between its p lanes ... */
	assert_int_equal(ycost("j9T.1"), y9); /* p 5 */
	assert_true(cost(V_YESCRYPT_P11, PWHASH_YESCRYPT) >
		    3 * y9); /* N 2^16, r 8 */
	/* ... and more time (t) means more passes */
	assert_true(ycost("j9T/.") > y9);		  /* t 1 */
	assert_true(ycost("j9T/2") > 2 * ycost("j9T/.")); /* t 5 */
	/* the classic flavours cost more per pass and run p lanes each */
	assert_true(ycost(".9T") > 3 * y9 / 2);
	assert_true(ycost("/9T") > 3 * y9 / 2);
	assert_true(ycost(".9T.1") >= 4 * ycost(".9T"));
}

static void
test_cost_unusable(void **state)
{
	/* libcrypt refuses these, at once: not worth a decoy's place */
	assert_int_equal(cost("$y$j9T1." Y_TAIL, PWHASH_YESCRYPT), 0); /* g */
	assert_int_equal(cost("$y$j9T5." Y_TAIL, PWHASH_YESCRYPT), 0); /* ROM */
	assert_int_equal(cost("$y$j.T" Y_TAIL, PWHASH_YESCRYPT), 0);   /* N 2 */
	assert_int_equal(cost("$y$i9T" Y_TAIL, PWHASH_YESCRYPT), 0);
	assert_int_equal(cost("$y$j9z" Y_TAIL, PWHASH_YESCRYPT), 0); /* cut */
	assert_int_equal(cost("$y$j9T.1." Y_TAIL, PWHASH_YESCRYPT), 0);
	/* N 2^63: the estimate saturates instead of wrapping */
	assert_int_equal(cost("$y$jkCT" Y_TAIL, PWHASH_YESCRYPT), UINT64_MAX);
	/* a kind that does not match, a malformed hash, nothing */
	assert_int_equal(cost(vectors[0].hash, PWHASH_SHA512CRYPT), 0);
	assert_int_equal(cost("$2y$05$short", PWHASH_BCRYPT), 0);
	assert_int_equal(cost("{PLAIN}x", PWHASH_SHA1), 0);
	assert_int_equal(cost(NULL, PWHASH_PLAIN), 0);
	assert_int_equal(cost(V_MD5, PWHASH_NKINDS), 0);
}

static void
test_kind_names(void **state)
{
	assert_string_equal(pwhash_kind_name(PWHASH_BCRYPT), "bcrypt");
	assert_string_equal(pwhash_kind_name(PWHASH_MD5CRYPT), "md5-crypt");
	assert_string_equal(pwhash_kind_name(PWHASH_SHA256CRYPT),
			    "sha256-crypt");
	assert_string_equal(pwhash_kind_name(PWHASH_SHA512CRYPT),
			    "sha512-crypt");
	assert_string_equal(pwhash_kind_name(PWHASH_YESCRYPT), "yescrypt");
	assert_string_equal(pwhash_kind_name(PWHASH_APR1), "apr1-md5");
	assert_string_equal(pwhash_kind_name(PWHASH_SHA1), "sha1");
	assert_string_equal(pwhash_kind_name(PWHASH_PLAIN), "plain");
	assert_string_equal(pwhash_kind_name(PWHASH_NKINDS), "unknown");
}

static void
test_scratch_free_null(void **state)
{
	pwhash_scratch_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_identify),
	    cmocka_unit_test(test_vectors_verify),
	    cmocka_unit_test(test_known_password),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_wrong_kind),
	    cmocka_unit_test(test_nul_in_password),
	    cmocka_unit_test(test_long_password),
	    cmocka_unit_test(test_make_bcrypt),
	    cmocka_unit_test(test_make_bcrypt_refusals),
	    cmocka_unit_test(test_refuse_bcrypt),
	    cmocka_unit_test(test_refuse_md5),
	    cmocka_unit_test(test_refuse_sha),
	    cmocka_unit_test(test_refuse_yescrypt),
	    cmocka_unit_test(test_refuse_sha1),
	    cmocka_unit_test(test_refuse_schemes),
	    cmocka_unit_test(test_refuse_general),
	    cmocka_unit_test(test_des_and_plain),
	    cmocka_unit_test(test_cost_across_schemes),
	    cmocka_unit_test(test_cost_parameters),
	    cmocka_unit_test(test_cost_unusable),
	    cmocka_unit_test(test_kind_names),
	    cmocka_unit_test(test_scratch_free_null),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
