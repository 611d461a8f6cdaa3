/*
 * pwhash.c - recognising, checking and making the password hashes of
 * htpasswd files; the contracts are in pwhash.h.
 *
 * libcrypt does the crypt(3) family. Apache's "$apr1$" (md5-crypt under
 * another magic string) and "{SHA}" are done here with OpenSSL's EVP, as
 * libcrypt knows neither. pwhash_verify() re-checks the syntax of what it
 * is given, so a hash of another kind or a malformed one fails closed.
 */
#include <crypt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "pwhash.h"

#define STR2(x) #x
#define STR(x) STR2(x)

#define BCRYPT_LEN 60	    /* "$2y$" cost "$" 22 salt + 31 digest chars */
#define MD5_SALT_MAX 8	    /* longer salts are cut by the algorithm */
#define MD5_DIGEST 22	    /* 16 bytes in crypt base64 */
#define MD5_ROUNDS 1000	    /* fixed by md5-crypt */
#define SHA_SALT_MAX 16	    /* longer salts are cut by the algorithm */
#define SHA_ROUNDS_MIN 1000 /* libcrypt refuses fewer */
#define SHA256_DIGEST 43    /* 32 bytes in crypt base64 */
#define SHA512_DIGEST 86    /* 64 bytes in crypt base64 */
#define YESCRYPT_DIGEST 43  /* 32 bytes in crypt base64 */
#define DES_LEN 13	    /* 2 salt + 11 digest chars */
#define SHA1_LEN 20
#define SHA1_B64 28	   /* base64 of 20 bytes: 27 chars and one '=' */
#define SCHEME_NAME_MAX 16 /* longest "{NAME}" taken for a scheme */

#define PREFIX_SHA1 "{SHA}"
#define PREFIX_PLAIN "{PLAIN}"
#define MAGIC_APR1 "$apr1$"

struct pwhash_scratch {
	struct crypt_data sc_cd; /* input holds the NUL-terminated password */
};

/* The crypt(3) base64 alphabet, in the order md5-crypt encodes with. */
static const char crypt64[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char *const kind_names[PWHASH_NKINDS] = {
    [PWHASH_BCRYPT] = "bcrypt",
    [PWHASH_MD5CRYPT] = "md5-crypt",
    [PWHASH_SHA256CRYPT] = "sha256-crypt",
    [PWHASH_SHA512CRYPT] = "sha512-crypt",
    [PWHASH_YESCRYPT] = "yescrypt",
    [PWHASH_APR1] = "apr1-md5",
    [PWHASH_SHA1] = "sha1",
    [PWHASH_PLAIN] = "plain",
};

/* Reasons that name a limit, spelled from the limit itself. */
static const char why_bcrypt_len[] =
    "bcrypt hash is not " STR(BCRYPT_LEN) " bytes";
static const char why_bcrypt_cost[] = "bcrypt cost is outside " STR(
    PWHASH_BCRYPT_MIN_COST) ".." STR(PWHASH_BCRYPT_MAX_COST);
static const char why_md5_salt[] =
    "md5-crypt salt is not 1.." STR(MD5_SALT_MAX) " bytes";
static const char why_md5_digest[] =
    "md5-crypt digest is not " STR(MD5_DIGEST) " bytes";
static const char why_sha_rounds[] = "sha-crypt rounds are outside " STR(
    SHA_ROUNDS_MIN) ".." STR(PWHASH_SHACRYPT_MAX_ROUNDS);
static const char why_sha_salt[] =
    "sha-crypt salt is longer than " STR(SHA_SALT_MAX) " bytes";
static const char why_sha256_digest[] =
    "sha256-crypt digest is not " STR(SHA256_DIGEST) " bytes";
static const char why_sha512_digest[] =
    "sha512-crypt digest is not " STR(SHA512_DIGEST) " bytes";
static const char why_yescrypt_digest[] =
    "yescrypt digest is not " STR(YESCRYPT_DIGEST) " bytes";
static const char why_too_long[] =
    "the hash is longer than " STR(PWHASH_MAX) " bytes";

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALNUM(c)                                                            \
	(IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'z') ||                          \
	 ((c) >= 'A' && (c) <= 'Z'))
#define IS_CRYPT64(c) (IS_ALNUM(c) || (c) == '.' || (c) == '/')
#define IS_BASE64(c) (IS_ALNUM(c) || (c) == '+' || (c) == '/')

static int
fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

static bool
has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

static bool
all_crypt64(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!IS_CRYPT64(s[i]))
			return false;
	return true;
}

/* A salt byte libcrypt takes for md5-crypt and sha-crypt: printable ASCII
 * but for the separators and specials it refuses. */
static bool
all_salt(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || strchr("$:;*!\\", s[i]))
			return false;
	return true;
}

/* Length of the field s[0..) up to the next '$' within len, or -1. */
static int
field(const char *s, size_t len, size_t *n)
{
	const char *d = memchr(s, '$', len);

	if (d == NULL)
		return -1;
	*n = (size_t)(d - s);
	return 0;
}

/* "$2y$", "$2b$", "$2a$": two-digit cost, '$', 53 crypt64 chars. */
static int
check_bcrypt(const char *s, size_t len, const char **why)
{
	unsigned cost;

	if (len != BCRYPT_LEN)
		return fail(why, why_bcrypt_len);
	if (!IS_DIGIT(s[4]) || !IS_DIGIT(s[5]) || s[6] != '$')
		return fail(why, "bcrypt cost is not two digits");
	cost = (unsigned)(s[4] - '0') * 10 + (unsigned)(s[5] - '0');
	if (cost < PWHASH_BCRYPT_MIN_COST || cost > PWHASH_BCRYPT_MAX_COST)
		return fail(why, why_bcrypt_cost);
	if (!all_crypt64(s + 7, BCRYPT_LEN - 7))
		return fail(why, "bcrypt hash has a byte outside its alphabet");
	return 0;
}

/* After "$1$" or "$apr1$": salt of 1..8, '$', 22 crypt64 chars. */
static int
check_md5(const char *s, size_t len, const char **why)
{
	size_t n;

	if (field(s, len, &n) == -1)
		return fail(why, "md5-crypt hash has no '$' after the salt");
	if (n == 0 || n > MD5_SALT_MAX)
		return fail(why, why_md5_salt);
	if (!all_salt(s, n))
		return fail(why, "md5-crypt salt has an invalid byte");
	s += n + 1;
	len -= n + 1;
	if (len != MD5_DIGEST)
		return fail(why, why_md5_digest);
	if (!all_crypt64(s, len))
		return fail(why,
			    "md5-crypt digest has a byte outside its alphabet");
	return 0;
}

/* "rounds=N$" with N a decimal without leading zeros, as libcrypt wants. */
static int
check_rounds(const char *s, size_t len, size_t *used, const char **why)
{
	unsigned long v = 0;
	size_t i, n;

	if (field(s, len, &n) == -1 || n == 0 || (s[0] == '0' && n > 1))
		return fail(why, "sha-crypt rounds= is not a decimal number");
	for (i = 0; i < n; i++) {
		if (!IS_DIGIT(s[i]))
			return fail(
			    why, "sha-crypt rounds= is not a decimal number");
		if (v <= PWHASH_SHACRYPT_MAX_ROUNDS)
			v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < SHA_ROUNDS_MIN || v > PWHASH_SHACRYPT_MAX_ROUNDS)
		return fail(why, why_sha_rounds);
	*used = n + 1;
	return 0;
}

/* After "$5$" or "$6$": [rounds=N$] salt of 0..16, '$', digest chars. */
static int
check_sha(const char *s, size_t len, size_t digest, const char **why)
{
	static const char rounds[] = "rounds=";
	size_t n;

	if (has_prefix(s, len, rounds)) {
		s += sizeof(rounds) - 1;
		len -= sizeof(rounds) - 1;
		if (check_rounds(s, len, &n, why) == -1)
			return -1;
		s += n;
		len -= n;
	}
	if (field(s, len, &n) == -1)
		return fail(why, "sha-crypt hash has no '$' after the salt");
	if (n > SHA_SALT_MAX)
		return fail(why, why_sha_salt);
	if (!all_salt(s, n))
		return fail(why, "sha-crypt salt has an invalid byte");
	s += n + 1;
	len -= n + 1;
	if (len != digest)
		return fail(why, digest == SHA256_DIGEST ? why_sha256_digest
							 : why_sha512_digest);
	if (!all_crypt64(s, len))
		return fail(why,
			    "sha-crypt digest has a byte outside its alphabet");
	return 0;
}

/* After "$y$": params '$' salt '$' 43 chars, all non-empty crypt64. */
static int
check_yescrypt(const char *s, size_t len, const char **why)
{
	size_t n;

	if (field(s, len, &n) == -1 || n == 0 || !all_crypt64(s, n))
		return fail(why, "yescrypt parameters are missing or invalid");
	s += n + 1;
	len -= n + 1;
	if (field(s, len, &n) == -1 || n == 0 || !all_crypt64(s, n))
		return fail(why, "yescrypt salt is missing or invalid");
	s += n + 1;
	len -= n + 1;
	if (len != YESCRYPT_DIGEST)
		return fail(why, why_yescrypt_digest);
	if (!all_crypt64(s, len))
		return fail(why,
			    "yescrypt digest has a byte outside its alphabet");
	return 0;
}

/* A value starting with '$': "$id$..." of a supported id, or an error. */
static int
identify_crypt(const char *s, size_t len, enum pwhash_kind *kind,
	       const char **why)
{
	size_t n;

	if (field(s + 1, len - 1, &n) == -1)
		return fail(why, "unsupported hash scheme");
	if (n == 2 && s[1] == '2' &&
	    (s[2] == 'y' || s[2] == 'b' || s[2] == 'a')) {
		*kind = PWHASH_BCRYPT;
		return check_bcrypt(s, len, why);
	}
	if (n == 1 && s[1] == '1') {
		*kind = PWHASH_MD5CRYPT;
		return check_md5(s + 3, len - 3, why);
	}
	if (has_prefix(s, len, MAGIC_APR1)) {
		*kind = PWHASH_APR1;
		return check_md5(s + 6, len - 6, why);
	}
	if (n == 1 && s[1] == '5') {
		*kind = PWHASH_SHA256CRYPT;
		return check_sha(s + 3, len - 3, SHA256_DIGEST, why);
	}
	if (n == 1 && s[1] == '6') {
		*kind = PWHASH_SHA512CRYPT;
		return check_sha(s + 3, len - 3, SHA512_DIGEST, why);
	}
	if (n == 1 && s[1] == 'y') {
		*kind = PWHASH_YESCRYPT;
		return check_yescrypt(s + 3, len - 3, why);
	}
	return fail(why, "unsupported hash scheme");
}

/* "{SHA}" then the padded base64 of 20 bytes. */
static int
check_sha1(const char *s, size_t len, const char **why)
{
	size_t i;

	if (len != SHA1_B64 || s[SHA1_B64 - 1] != '=')
		return fail(why, "{SHA} value is not the base64 of 20 bytes");
	for (i = 0; i < SHA1_B64 - 1; i++)
		if (!IS_BASE64(s[i]))
			return fail(why,
				    "{SHA} value has a byte outside base64");
	return 0;
}

/* "{NAME}" at the start, as LDAP-style schemes ({SSHA}, {MD5}) are
 * written: an unsupported scheme, not a password. */
static bool
looks_like_scheme(const char *s, size_t len)
{
	size_t i;

	for (i = 1; i < len && i <= SCHEME_NAME_MAX + 1; i++) {
		if (s[i] == '}')
			return i > 1;
		if (!IS_ALNUM(s[i]) && s[i] != '-' && s[i] != '_' &&
		    s[i] != '.')
			return false;
	}
	return false;
}

int
pwhash_identify(const char *s, size_t len, bool allow_plain,
		enum pwhash_kind *kind, const char **why)
{
	size_t i;

	if (len == 0)
		return fail(why, "the hash is empty");
	if (len > PWHASH_MAX)
		return fail(why, why_too_long);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(why, "the hash has a control character");
	if (s[0] == '$')
		return identify_crypt(s, len, kind, why);
	if (has_prefix(s, len, PREFIX_SHA1)) {
		*kind = PWHASH_SHA1;
		return check_sha1(s + sizeof(PREFIX_SHA1) - 1,
				  len - (sizeof(PREFIX_SHA1) - 1), why);
	}
	if (has_prefix(s, len, PREFIX_PLAIN)) {
		if (!allow_plain)
			return fail(why, "plain-text passwords need "
					 "\"allow_plaintext\"");
		if (len == sizeof(PREFIX_PLAIN) - 1)
			return fail(why, "the {PLAIN} password is empty");
		*kind = PWHASH_PLAIN;
		return 0;
	}
	if (s[0] == '{' && looks_like_scheme(s, len))
		return fail(why, "unsupported hash scheme");
	if (!allow_plain && len == DES_LEN && all_crypt64(s, len))
		return fail(why, "DES crypt hashes are not supported");
	if (!allow_plain)
		return fail(why, "not a known hash scheme; plain-text "
				 "passwords need \"allow_plaintext\"");
	*kind = PWHASH_PLAIN;
	return 0;
}

static char *
put64(char *p, unsigned long v, int n)
{
	while (n-- > 0) {
		*p++ = crypt64[v & 0x3f];
		v >>= 6;
	}
	return p;
}

static int
md5_add(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -1;
}

/*
 * md5-crypt, which Apache reuses under the magic "$apr1$": A = MD5(pw salt
 * pw); B = MD5(pw magic salt, A repeated over pwlen bytes, then for each
 * bit of pwlen from the lowest a NUL if it is set, pw[0] if not); then
 * 1000 rounds, each hashing the previous digest with pw and salt in an
 * order set by the round number. The final 16 bytes go out as 22 crypt64
 * chars, 3 bytes at a time in a fixed order. 0, or -1 if OpenSSL fails.
 */
static int
md5crypt(const char *pw, size_t pwlen, const char *magic, const char *salt,
	 size_t saltlen, char out[MD5_DIGEST])
{
	static const unsigned char order[5][3] = {
	    {0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
	const EVP_MD *md5 = EVP_md5();
	EVP_MD_CTX *ctx;
	unsigned char sum[16];
	unsigned int n;
	size_t i, k;
	char *p = out;
	int rc = -1;

	if (md5 == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, md5, NULL) != 1 ||
	    md5_add(ctx, pw, pwlen) == -1 ||
	    md5_add(ctx, salt, saltlen) == -1 ||
	    md5_add(ctx, pw, pwlen) == -1 ||
	    EVP_DigestFinal_ex(ctx, sum, &n) != 1)
		goto done;

	if (EVP_DigestInit_ex(ctx, md5, NULL) != 1 ||
	    md5_add(ctx, pw, pwlen) == -1 ||
	    md5_add(ctx, magic, strlen(magic)) == -1 ||
	    md5_add(ctx, salt, saltlen) == -1)
		goto done;
	for (i = pwlen; i > 0; i -= k) {
		k = i < sizeof(sum) ? i : sizeof(sum);
		if (md5_add(ctx, sum, k) == -1)
			goto done;
	}
	for (i = pwlen; i > 0; i >>= 1)
		if (md5_add(ctx, (i & 1) ? "" : pw, 1) == -1)
			goto done;
	if (EVP_DigestFinal_ex(ctx, sum, &n) != 1)
		goto done;

	for (i = 0; i < MD5_ROUNDS; i++) {
		if (EVP_DigestInit_ex(ctx, md5, NULL) != 1)
			goto done;
		if ((i & 1 ? md5_add(ctx, pw, pwlen)
			   : md5_add(ctx, sum, sizeof(sum))) == -1)
			goto done;
		if (i % 3 != 0 && md5_add(ctx, salt, saltlen) == -1)
			goto done;
		if (i % 7 != 0 && md5_add(ctx, pw, pwlen) == -1)
			goto done;
		if ((i & 1 ? md5_add(ctx, sum, sizeof(sum))
			   : md5_add(ctx, pw, pwlen)) == -1)
			goto done;
		if (EVP_DigestFinal_ex(ctx, sum, &n) != 1)
			goto done;
	}

	for (i = 0; i < 5; i++)
		p = put64(p,
			  (unsigned long)sum[order[i][0]] << 16 |
			      (unsigned long)sum[order[i][1]] << 8 |
			      sum[order[i][2]],
			  4);
	put64(p, sum[11], 2);
	rc = 0;
done:
	OPENSSL_cleanse(sum, sizeof(sum));
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* stored is a well-formed "$apr1$salt$digest" of length len. */
static bool
verify_apr1(const char *stored, size_t len, const char *pw, size_t pwlen)
{
	const char *salt = stored + sizeof(MAGIC_APR1) - 1;
	char out[MD5_DIGEST];
	size_t saltlen = len - (sizeof(MAGIC_APR1) - 1) - 1 - MD5_DIGEST;
	bool ok;

	if (md5crypt(pw, pwlen, MAGIC_APR1, salt, saltlen, out) == -1)
		return false;
	ok = CRYPTO_memcmp(out, stored + len - MD5_DIGEST, MD5_DIGEST) == 0;
	OPENSSL_cleanse(out, sizeof(out));
	return ok;
}

/* stored is a well-formed "{SHA}" value. */
static bool
verify_sha1(const char *stored, const char *pw, size_t pwlen)
{
	unsigned char want[SHA1_B64 / 4 * 3], got[EVP_MAX_MD_SIZE];
	unsigned int n;
	bool ok;

	/* EVP_DecodeBlock counts the '=' pad as a zero byte: 21, not 20. */
	if (EVP_DecodeBlock(
		want, (const unsigned char *)stored + sizeof(PREFIX_SHA1) - 1,
		SHA1_B64) != (int)sizeof(want))
		return false;
	if (EVP_Digest(pw, pwlen, got, &n, EVP_sha1(), NULL) != 1 ||
	    n != SHA1_LEN) {
		OPENSSL_cleanse(got, sizeof(got));
		return false;
	}
	ok = CRYPTO_memcmp(got, want, SHA1_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

/* stored is plain text, with or without "{PLAIN}". */
static bool
verify_plain(const char *stored, size_t len, const char *pw, size_t pwlen)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int na, nb;
	bool ok;

	if (has_prefix(stored, len, PREFIX_PLAIN)) {
		stored += sizeof(PREFIX_PLAIN) - 1;
		len -= sizeof(PREFIX_PLAIN) - 1;
	}
	ok = EVP_Digest(stored, len, a, &na, EVP_sha256(), NULL) == 1 &&
	     EVP_Digest(pw, pwlen, b, &nb, EVP_sha256(), NULL) == 1 &&
	     na == nb && CRYPTO_memcmp(a, b, na) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return ok;
}

static bool
verify_crypt(const char *stored, size_t len, const char *pw, size_t pwlen,
	     struct pwhash_scratch *sc)
{
	struct crypt_data *cd;
	const char *out;
	bool ok;

	if (sc == NULL)
		return false;
	cd = &sc->sc_cd;
	if (pwlen >= sizeof(cd->input))
		return false;
	memcpy(cd->input, pw, pwlen);
	cd->input[pwlen] = '\0';
	out = crypt_rn(cd->input, stored, cd, (int)sizeof(*cd));
	ok = out != NULL && out[0] != '*' && strlen(out) == len &&
	     CRYPTO_memcmp(out, stored, len) == 0;
	OPENSSL_cleanse(cd->input, sizeof(cd->input));
	OPENSSL_cleanse(cd->output, sizeof(cd->output));
	return ok;
}

struct pwhash_scratch *
pwhash_scratch_new(void)
{
	return calloc(1, sizeof(struct pwhash_scratch));
}

void
pwhash_scratch_free(struct pwhash_scratch *sc)
{
	if (sc == NULL)
		return;
	OPENSSL_cleanse(sc, sizeof(*sc));
	free(sc);
}

bool
pwhash_verify(const char *stored, enum pwhash_kind kind, const char *pw,
	      size_t pwlen, struct pwhash_scratch *sc)
{
	enum pwhash_kind k;
	const char *why;
	size_t len;

	if (stored == NULL || (pw == NULL && pwlen > 0) ||
	    (pwlen > 0 && memchr(pw, '\0', pwlen) != NULL))
		return false;
	if (pw == NULL)
		pw = "";
	len = strnlen(stored, PWHASH_MAX + 1);
	if (pwhash_identify(stored, len, kind == PWHASH_PLAIN, &k, &why) ==
		-1 ||
	    k != kind)
		return false;
	switch (kind) {
	case PWHASH_APR1:
		return verify_apr1(stored, len, pw, pwlen);
	case PWHASH_SHA1:
		return verify_sha1(stored, pw, pwlen);
	case PWHASH_PLAIN:
		return verify_plain(stored, len, pw, pwlen);
	default:
		return verify_crypt(stored, len, pw, pwlen, sc);
	}
}

/* crypt_rn() of pw with a fresh salt for `prefix` at `count` into out. */
static int
make_hash(const char *prefix, unsigned long count, const char *pw, size_t pwlen,
	  char *out, size_t cap)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	size_t n;
	int rc = -1;

	if (out == NULL || (pw == NULL && pwlen > 0) ||
	    (pwlen > 0 && memchr(pw, '\0', pwlen) != NULL))
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	if (pwlen >= sizeof(cd->input))
		goto done;
	if (pwlen > 0)
		memcpy(cd->input, pw, pwlen);
	cd->input[pwlen] = '\0';
	if (crypt_gensalt_rn(prefix, count, NULL, 0, setting,
			     (int)sizeof(setting)) == NULL)
		goto done;
	h = crypt_rn(cd->input, setting, cd, (int)sizeof(*cd));
	if (h == NULL || h[0] == '*' || (n = strlen(h)) >= cap)
		goto done;
	memcpy(out, h, n + 1);
	rc = 0;
done:
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return rc;
}

int
pwhash_make_bcrypt(const char *pw, size_t pwlen, unsigned cost, char *out,
		   size_t cap)
{
	if (cost < PWHASH_BCRYPT_MIN_COST || cost > PWHASH_BCRYPT_MAX_COST)
		return -1;
	return make_hash("$2y$", cost, pw, pwlen, out, cap);
}

int
pwhash_make_sha512(const char *pw, size_t pwlen, unsigned rounds, char *out,
		   size_t cap)
{
	if (rounds < 1000 || rounds > PWHASH_SHACRYPT_MAX_ROUNDS)
		return -1;
	return make_hash("$6$", rounds, pw, pwlen, out, cap);
}

/*
 * The cost model of pwhash_cost(), in microseconds of one check as
 * measured once (pwhash_verify() in a loop, two runs, a wrong password) on
 * a shared 2-core x86-64 Xeon VM with Debian 12's libxcrypt 4.4.33 and
 * OpenSSL 3.0:
 *
 *   {SHA}, plain text          0.4 - 0.8     -> 1
 *   md5-crypt (libcrypt)       111 - 114     -> 115, fixed: 1000 rounds
 *   apr1 (OpenSSL EVP, here)   343 - 345     -> 340, fixed: 1000 rounds
 *   sha256-crypt, 5000 rounds  1134 - 1238   -> rounds / 4
 *   sha512-crypt, 5000 rounds  1598 - 1634   -> rounds / 3
 *   bcrypt cost 4 / 10 / 11    0.98 / 53-56 / 111-120 ms -> 54 << cost
 *   yescrypt "j7T" / "j9T"     3.3-3.6 / 13.2-17.5 ms    (below)
 *
 * yescrypt's time is its memory passes: N blocks of 128 * r bytes written
 * once (smix1), then N * L read-modify-writes (smix2). Fitting "j/T",
 * "j7T", "j9T", "jD5.7" and t = 1, 5 gives ~0.09 us per N * r for the
 * first pass, ~0.055 for each later one, and ~100 us of fixed cost; the
 * default "j9T" (N 4096, r 32) is then 14 ms. The classic flavours ("."
 * scrypt, "/" yescrypt's WORM) cost ~1.5 times as much per pass and run
 * their p lanes one after another (".9T.1", p 5: 114 ms), where yescrypt
 * proper splits N between its lanes ("j9T.1" costs as "j9T").
 *
 * So bcrypt 10 (55 ms) > yescrypt j9T (14 ms) > sha512-crypt 5000 (1.7
 * ms) > sha256-crypt 5000 > apr1 > md5-crypt > {SHA}, as measured.
 */
#define COST_TRIVIAL 1
#define COST_MD5CRYPT 115
#define COST_APR1 340
#define COST_SHA256_DIV 4
#define COST_SHA512_DIV 3
#define SHA_ROUNDS_DEFAULT 5000 /* sha-crypt without rounds= */
#define COST_BCRYPT_UNIT 54
#define COST_Y_FIXED 100
#define COST_Y_FIRST 96 /* smix1 per N * r, in 1/1080 us */
#define COST_Y_LATER 60 /* each smix2 pass per N * r, in 1/1080 us */
#define COST_Y_DIV 1080
#define Y_FLAVOR_SCRYPT 0 /* "." */
#define Y_FLAVOR_WORM 1	  /* "/" */
#define Y_FLAVOR_RW 47	  /* "j": the only yescrypt flavour libcrypt runs */

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static int
crypt64_index(char c)
{
	const char *p = c != '\0' ? strchr(crypt64, c) : NULL;

	return p != NULL ? (int)(p - crypt64) : -1;
}

/*
 * One number of yescrypt's parameter string at *s (before end), plus min.
 * The index c of the first character in the crypt64 alphabet says how
 * many follow: 0..47 none, 48..55 one, 56..59 two, 60..61 three, 62 four,
 * 63 five. Values are counted up through those groups in order (48 one-
 * character values, then 8 * 64 two-character ones, ...); within a group,
 * c's place is the high digit and the characters after it the lower ones,
 * six bits each, most significant first. 0 with *v and *s moved on, or -1.
 */
static int
y_number(const char **s, const char *end, uint32_t min, uint32_t *v)
{
	static const unsigned char group[] = {48, 8, 4, 2, 1, 1};
	const char *p = *s;
	uint64_t n = min, unit = 1, low = 0;
	int c, d, first = 0;
	size_t k, i;

	if (p >= end || (c = crypt64_index(*p++)) == -1)
		return -1;
	for (k = 0; c >= first + group[k]; k++) {
		n += group[k] * unit;
		first += group[k];
		unit *= 64;
	}
	for (i = 0; i < k; i++) {
		if (p >= end || (d = crypt64_index(*p++)) == -1)
			return -1;
		low = low * 64 + (unsigned)d;
	}
	n += (uint64_t)(c - first) * unit + low;
	if (n > UINT32_MAX)
		return -1;
	*v = (uint32_t)n;
	*s = p;
	return 0;
}

/*
 * After "$y$": flavour, log2(N), r, then optionally a bit set saying
 * which of p (1), t (2), g (4) and a ROM size (8) follow. The model above;
 * 0 for what libcrypt refuses (another flavour, N under 4, g, a ROM).
 */
static uint64_t
cost_yescrypt(const char *s)
{
	const char *end = strchr(s, '$');
	uint32_t flavor, nlog2, r, have = 0, p = 1, t = 0;
	uint64_t passes, w;
	bool rw;

	if (end == NULL || y_number(&s, end, 0, &flavor) == -1 ||
	    y_number(&s, end, 1, &nlog2) == -1 ||
	    y_number(&s, end, 1, &r) == -1)
		return 0;
	if (s < end && y_number(&s, end, 1, &have) == -1)
		return 0;
	if ((have & 1) != 0 && y_number(&s, end, 2, &p) == -1)
		return 0;
	if ((have & 2) != 0 && y_number(&s, end, 1, &t) == -1)
		return 0;
	if (s != end || (have & ~3u) != 0 || nlog2 < 2 || nlog2 > 63 ||
	    (flavor != Y_FLAVOR_SCRYPT && flavor != Y_FLAVOR_WORM &&
	     flavor != Y_FLAVOR_RW))
		return 0;
	rw = flavor == Y_FLAVOR_RW;
	/* smix2's passes over N, in sixths: N/3, 2N/3 or (t - 1) N for
	 * yescrypt proper; N, 1.5 N or t N for the classic flavours. */
	if (rw)
		passes = t == 0 ? 2 : t == 1 ? 4 : 6 * ((uint64_t)t - 1);
	else
		passes = t == 0 ? 6 : t == 1 ? 9 : 6 * (uint64_t)t;
	w = sat_mul(r, COST_Y_FIRST + COST_Y_LATER * passes / 6);
	if (!rw)
		w = sat_mul(sat_mul(w, p), 3) / 2;
	if (w > UINT64_MAX >> nlog2)
		return UINT64_MAX;
	return (w << nlog2) / COST_Y_DIV + COST_Y_FIXED;
}

/* After "$5$" or "$6$": the rounds= value, or the default without one. */
static uint64_t
sha_rounds(const char *s)
{
	static const char rounds[] = "rounds=";
	uint64_t v = 0;

	if (strncmp(s, rounds, sizeof(rounds) - 1) != 0)
		return SHA_ROUNDS_DEFAULT;
	for (s += sizeof(rounds) - 1; IS_DIGIT(*s); s++)
		if ((v = v * 10 + (uint64_t)(*s - '0')) >
		    PWHASH_SHACRYPT_MAX_ROUNDS)
			return 0;
	return *s == '$' ? v : 0;
}

uint64_t
pwhash_cost(const char *stored, enum pwhash_kind kind)
{
	enum pwhash_kind k;
	const char *why;
	size_t len;

	if (stored == NULL)
		return 0;
	len = strnlen(stored, PWHASH_MAX + 1);
	if (pwhash_identify(stored, len, kind == PWHASH_PLAIN, &k, &why) ==
		-1 ||
	    k != kind)
		return 0;
	switch (kind) {
	case PWHASH_BCRYPT:
		return (uint64_t)COST_BCRYPT_UNIT
		       << ((stored[4] - '0') * 10 + (stored[5] - '0'));
	case PWHASH_MD5CRYPT:
		return COST_MD5CRYPT;
	case PWHASH_APR1:
		return COST_APR1;
	case PWHASH_SHA256CRYPT:
		return sha_rounds(stored + 3) / COST_SHA256_DIV;
	case PWHASH_SHA512CRYPT:
		return sha_rounds(stored + 3) / COST_SHA512_DIV;
	case PWHASH_YESCRYPT:
		return cost_yescrypt(stored + 3);
	case PWHASH_SHA1:
	case PWHASH_PLAIN:
		return COST_TRIVIAL;
	default:
		return 0;
	}
}

const char *
pwhash_kind_name(enum pwhash_kind kind)
{
	if ((unsigned)kind >= PWHASH_NKINDS)
		return "unknown";
	return kind_names[kind];
}
