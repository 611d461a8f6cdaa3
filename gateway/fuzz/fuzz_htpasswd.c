/*
 * fuzz_htpasswd.c - libFuzzer target for htpasswd.c and the syntax side of
 * pwhash.c. Every input is parsed as a file with and without allow_plain
 * and identified as one hash; what the headers promise is checked, abort()
 * if not: an error says "line N: " and leaves nothing behind, entries are
 * sorted, unique, well-formed and found, and a hash re-identifies as its
 * kind; the costliest entry (htpasswd_costliest) costs no less than any
 * other and more than those before it, and only a yescrypt hash may cost
 * 0. pwhash_verify() runs only on the cheap kinds (sha1, plain, apr1): a
 * libcrypt hash from the input could ask for seconds of work.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "htpasswd.h"
#include "pwhash.h"

#define MAX_VERIFY 8 /* apr1 is 1000 MD5 rounds: bound the work per input */

static bool
cheap(enum pwhash_kind kind)
{
	return kind == PWHASH_SHA1 || kind == PWHASH_PLAIN ||
	       kind == PWHASH_APR1;
}

static void
check_entry(const struct htpasswd *h, const struct htpasswd_entry *e,
	    bool allow_plain, size_t i)
{
	size_t ulen = strlen(e->user), hlen = strlen(e->hash), j;
	enum pwhash_kind kind;
	const char *why;

	CHECK(ulen >= 1 && ulen <= HTPASSWD_USER_MAX);
	CHECK(e->user[0] != ' ' && e->user[ulen - 1] != ' ');
	for (j = 0; j < ulen; j++)
		CHECK((unsigned char)e->user[j] >= 0x20 && e->user[j] != 0x7f &&
		      e->user[j] != ':');
	CHECK(hlen >= 1 && hlen <= PWHASH_MAX);
	CHECK(e->kind < PWHASH_NKINDS);
	CHECK(allow_plain || e->kind != PWHASH_PLAIN);
	CHECK(e->line >= 1);
	CHECK(htpasswd_find(h, e->user, ulen) == e);
	CHECK(htpasswd_find(h, e->user, ulen - 1) == NULL ||
	      strlen(htpasswd_find(h, e->user, ulen - 1)->user) == ulen - 1);
	CHECK(pwhash_identify(e->hash, hlen, allow_plain, &kind, &why) == 0);
	CHECK(kind == e->kind);
	if (i >= MAX_VERIFY || !cheap(e->kind))
		return;
	(void)pwhash_verify(e->hash, e->kind, e->user, ulen, NULL);
	if (e->kind == PWHASH_PLAIN) {
		if (strncmp(e->hash, "{PLAIN}", 7) == 0)
			CHECK(pwhash_verify(e->hash, e->kind, e->hash + 7,
					    hlen - 7, NULL));
		else
			CHECK(pwhash_verify(e->hash, e->kind, e->hash, hlen,
					    NULL));
	}
}

/* Parses buf as a file; returns the entry count, or -1. */
static long
check_file(const char *buf, size_t size, bool allow_plain)
{
	struct htpasswd h;
	char err[128];
	size_t i, j;
	long n;

	memset(err, 'Z', sizeof(err));
	if (htpasswd_parse(buf, size, allow_plain, &h, err, sizeof(err)) ==
	    -1) {
		CHECK(h.n == 0 && h.entries == NULL);
		CHECK(strncmp(err, "line ", 5) == 0);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return -1;
	}
	for (i = 0; i < h.n; i++) {
		if (i > 0)
			CHECK(strcmp(h.entries[i - 1].user, h.entries[i].user) <
			      0);
		check_entry(&h, &h.entries[i], allow_plain, i);
	}
	/* A slice of the input as a user name: a miss, or that user. */
	if (size > 2 && h.n > 0) {
		const struct htpasswd_entry *e =
		    htpasswd_find(&h, buf + 1, size / 2);

		CHECK(e == NULL || (strlen(e->user) == size / 2 &&
				    memcmp(e->user, buf + 1, size / 2) == 0));
	}
	/* The decoy for unknown users: the first of the costliest. */
	i = htpasswd_costliest(&h);
	CHECK(h.n == 0 ? i == 0 : i < h.n);
	for (j = 0; j < h.n; j++) {
		uint64_t c = pwhash_cost(h.entries[j].hash, h.entries[j].kind);
		uint64_t top =
		    pwhash_cost(h.entries[i].hash, h.entries[i].kind);

		CHECK(j < i ? c < top : c <= top);
	}
	n = (long)h.n;
	htpasswd_free(&h);
	CHECK(h.n == 0 && h.entries == NULL);
	return n;
}

/* The whole input as one stored hash. */
static void
check_hash(const char *buf, size_t size)
{
	enum pwhash_kind strict, loose;
	const char *why = NULL;
	char *s;

	if (pwhash_identify(buf, size, false, &strict, &why) == 0) {
		CHECK(strict < PWHASH_NKINDS && strict != PWHASH_PLAIN);
		CHECK(pwhash_identify(buf, size, true, &loose, &why) == 0);
		CHECK(loose == strict);
	} else {
		CHECK(why != NULL);
		if (pwhash_identify(buf, size, true, &loose, &why) == -1)
			return;
		CHECK(loose == PWHASH_PLAIN);
		strict = loose;
	}
	if ((s = malloc(size + 1)) == NULL)
		return;
	memcpy(s, buf, size);
	s[size] = '\0';
	/* A cost whatever the kind; 0 only for yescrypt's parameters. */
	CHECK(strict == PWHASH_YESCRYPT || pwhash_cost(s, strict) > 0);
	if (cheap(strict))
		(void)pwhash_verify(s, strict, buf, size, NULL);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	long strict, loose;

	strict = check_file(buf, size, false);
	loose = check_file(buf, size, true);
	/* allow_plain only ever accepts more */
	CHECK(strict == -1 || strict == loose);
	check_hash(buf, size);
	return 0;
}
