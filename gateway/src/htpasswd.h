/*
 * htpasswd.h - the htpasswd file format: parsing a file's bytes into
 * entries, looking a user up. Pure: no I/O, no logging; the caller reads
 * the file and names it in errors.
 *
 * Format: one "user:hash" per line; blank lines and lines whose first byte
 * is '#' are skipped; "\r\n" endings are accepted; a last line without a
 * newline is accepted. The hash is everything after the first ':' and must
 * pass pwhash_identify().
 */
#ifndef PORTCULLIS_HTPASSWD_H
#define PORTCULLIS_HTPASSWD_H

#include <stdbool.h>
#include <stddef.h>

#include "pwhash.h"

#define HTPASSWD_USER_MAX 255 /* bytes */
#define HTPASSWD_MAX_ENTRIES 100000

struct htpasswd_entry {
	char *user; /* NUL-terminated; 1..HTPASSWD_USER_MAX bytes, no control
		       characters, no ':' */
	char *hash; /* NUL-terminated stored hash, as in the file; it lives in
		       the same allocation as user (freed with it) */
	enum pwhash_kind kind;
	unsigned line; /* 1-based line in its file */
};

/* Entries sorted by user (memcmp order, shorter first on a tie) so lookups
 * are a binary search. Owns every string. */
struct htpasswd {
	struct htpasswd_entry *entries;
	size_t n;
};

/*
 * Parses buf[0..len) into *out (which it initialises). 0, or -1 with
 * "line N: reason" in err[errlen] (truncated to fit; errlen 0 is fine) --
 * the first error in the file only -- and *out empty. Errors: no ':',
 * empty or over-long user, control characters in the user, a user starting
 * or ending with a space, a hash pwhash_identify() refuses (its reason), a
 * user defined twice ("line 7: user \"bob\" is already defined on line
 * 2"), a NUL byte, more than HTPASSWD_MAX_ENTRIES entries. Never quotes a
 * hash.
 */
int htpasswd_parse(const char *buf, size_t len, bool allow_plain,
		   struct htpasswd *out, char *err, size_t errlen);

/* The entry for user[0..len), or NULL. */
const struct htpasswd_entry *htpasswd_find(const struct htpasswd *h,
					   const char *user, size_t len);

/*
 * The index of the entry whose hash costs most to check (pwhash_cost()),
 * the first of them on a tie; 0 for an empty set. An unknown user is
 * checked against it, so that a miss costs the realm's slowest check.
 */
size_t htpasswd_costliest(const struct htpasswd *h);

/* Copies an entry into dst, in the layout htpasswd_free() frees (user and
 * hash in one allocation). 0 or -1. */
int htpasswd_entry_copy(struct htpasswd_entry *dst,
			const struct htpasswd_entry *src);

/* Frees every entry (cleansing the hashes); *h is left empty. */
void htpasswd_free(struct htpasswd *h);

#endif
