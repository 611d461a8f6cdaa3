/*
 * test_pwhash.c - pwhash.c through pwhash.h: hashes made by real tools
 * (htpasswd, mkpasswd, openssl passwd, Python's crypt) recognised and
 * checked, near-miss passwords refused, every syntax refusal with its
 * reason, and bcrypt hashes made and checked back.
 */
#include <stdbool.h>
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
	    cmocka_unit_test(test_kind_names),
	    cmocka_unit_test(test_scratch_free_null),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
