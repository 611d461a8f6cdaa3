/*
 * pwhash.h - the password hashes htpasswd files hold: recognising a stored
 * hash, checking a password against it, making bcrypt hashes.
 *
 * Pure apart from libcrypt (crypt_rn) and OpenSSL; no I/O, no logging.
 * Thread-safe: each thread passes its own scratch. Nothing here ever puts a
 * password or a hash into a message.
 */
#ifndef PORTCULLIS_PWHASH_H
#define PORTCULLIS_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PWHASH_MAX 256 /* longest stored hash accepted, in bytes */
#define PWHASH_BCRYPT_MIN_COST 4
#define PWHASH_BCRYPT_MAX_COST 17 /* ~6 s per check here; htpasswd's -C max */
#define PWHASH_SHACRYPT_MAX_ROUNDS 1000000

enum pwhash_kind {
	PWHASH_BCRYPT,	    /* $2y$ $2b$ $2a$ (libcrypt) */
	PWHASH_MD5CRYPT,    /* $1$ (libcrypt) */
	PWHASH_SHA256CRYPT, /* $5$ (libcrypt) */
	PWHASH_SHA512CRYPT, /* $6$ (libcrypt) */
	PWHASH_YESCRYPT,    /* $y$ (libcrypt) */
	PWHASH_APR1,	    /* $apr1$: Apache's MD5 (OpenSSL) */
	PWHASH_SHA1,	    /* {SHA}base64(SHA-1(pw)) (OpenSSL) */
	PWHASH_PLAIN,	    /* {PLAIN}text, or text with no scheme */
	PWHASH_NKINDS
};

/* Per-thread working memory for pwhash_verify() (libcrypt's crypt_data is
 * ~32 KiB, too big for a stack). */
struct pwhash_scratch;

struct pwhash_scratch *pwhash_scratch_new(void);
void pwhash_scratch_free(struct pwhash_scratch *sc); /* NULL is fine */

/*
 * Classifies the stored hash s[0..len) and checks its whole syntax (scheme,
 * cost bounds, salt and digest lengths and alphabets). Returns 0 with *kind
 * set, or -1 with a static reason in *why (e.g. "bcrypt cost is outside
 * 4..17"), never quoting the hash. Plain text -- "{PLAIN}..." or a value with
 * no known scheme -- is PWHASH_PLAIN only when allow_plain; otherwise it is
 * an error that says allow_plaintext would accept it. A value that starts
 * with '$' or "{NAME}" (LDAP style, e.g. "{SSHA}") names a scheme, so an
 * unknown one is an error even with allow_plain ("{PLAIN}" escapes such a
 * password). Traditional DES crypt is not supported (it is
 * indistinguishable from 13 bytes of plain text). Control characters are
 * refused in every kind.
 */
int pwhash_identify(const char *s, size_t len, bool allow_plain,
		    enum pwhash_kind *kind, const char **why);

/*
 * True when pw[0..pwlen) matches `stored` (NUL-terminated, of a kind that
 * pwhash_identify() returned). The final comparison is constant-time
 * (CRYPTO_memcmp over equal lengths; plain text is compared as SHA-256
 * digests so its length does not leak). A malformed stored hash, a hash of
 * another kind, or a password containing a NUL byte never matches; nor
 * does a libcrypt kind when sc is NULL (the others do not use it) or pw is
 * 512 bytes or longer (libcrypt's limit).
 */
bool pwhash_verify(const char *stored, enum pwhash_kind kind, const char *pw,
		   size_t pwlen, struct pwhash_scratch *sc);

/*
 * Writes a bcrypt ($2y$) hash of pw[0..pwlen) at `cost` into out[cap] with a
 * salt from the OS's random generator; bcrypt reads only the first 72
 * bytes of pw. 0, or -1 (bad cost, NUL in pw, pw of 512 bytes or more, no
 * randomness, cap too small, i.e. under 61).
 */
int pwhash_make_bcrypt(const char *pw, size_t pwlen, unsigned cost, char *out,
		       size_t cap);

/* The same for sha512-crypt ($6$) at `rounds` (1000..max): quick enough
 * to hash a password in memory on a control thread. */
int pwhash_make_sha512(const char *pw, size_t pwlen, unsigned rounds, char *out,
		       size_t cap);

/*
 * What checking a password against `stored` (NUL-terminated, of a kind that
 * pwhash_identify() returned) costs, estimated from the scheme and the
 * parameters written in the hash, never by timing it: about microseconds
 * on the machine the model was measured on (pwhash.c), so values of
 * different schemes compare right to an order of magnitude. 0 when the
 * hash cannot be checked at all (parameters libcrypt refuses, a malformed
 * hash, a kind that does not match); UINT64_MAX when the estimate
 * overflows. Pure.
 */
uint64_t pwhash_cost(const char *stored, enum pwhash_kind kind);

/* "bcrypt", "sha512-crypt", ... for logs and errors. */
const char *pwhash_kind_name(enum pwhash_kind kind);

#endif
