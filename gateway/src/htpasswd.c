/*
 * htpasswd.c - parsing an htpasswd file's bytes and looking users up; the
 * contracts are in htpasswd.h.
 *
 * Lines are parsed in order until the first error. Entries are then sorted
 * by user, with the line number breaking ties, so duplicates sit next to
 * each other with the first definition first. A duplicate found among the
 * lines before a syntax error is reported instead of it, as it comes first
 * in the file.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "htpasswd.h"

#define STR2(x) #x
#define STR(x) STR2(x)

#define HTPASSWD_MIN_ALLOC 16

/* What a parse is building; becomes the caller's struct htpasswd. */
struct parse {
	struct htpasswd_entry *p_entries;
	size_t p_n;
	size_t p_cap;
	char *p_err;
	size_t p_errlen;
};

static int
cmp_user(const char *a, size_t alen, const char *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);

	if (r != 0)
		return r;
	return alen < blen ? -1 : alen > blen;
}

static int
cmp_entry(const void *va, const void *vb)
{
	const struct htpasswd_entry *a = va, *b = vb;
	int r = cmp_user(a->user, strlen(a->user), b->user, strlen(b->user));

	if (r != 0)
		return r;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int fail(struct parse *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct parse *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->p_errlen == 0)
		return -1;
	n = snprintf(p->p_err, p->p_errlen, "line %u: ", line);
	if (n >= 0 && (size_t)n < p->p_errlen) {
		va_start(ap, fmt);
		vsnprintf(p->p_err + n, p->p_errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *
check_user(const char *u, size_t n)
{
	size_t i;

	if (n == 0)
		return "the user name is empty";
	if (n > HTPASSWD_USER_MAX)
		return "the user name is longer than " STR(
		    HTPASSWD_USER_MAX) " bytes";
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
			return "the user name has a control character";
	if (u[0] == ' ' || u[n - 1] == ' ')
		return "the user name starts or ends with a space";
	return NULL;
}

/* Adds user[0..ulen) and hash[0..hlen) as one allocation: "user\0hash\0". */
static int
add(struct parse *p, const char *user, size_t ulen, const char *hash,
    size_t hlen, enum pwhash_kind kind, unsigned line)
{
	struct htpasswd_entry *e;
	char *s;
	size_t cap;

	if (p->p_n == p->p_cap) {
		cap = p->p_cap == 0 ? HTPASSWD_MIN_ALLOC : p->p_cap * 2;
		if (cap > HTPASSWD_MAX_ENTRIES)
			cap = HTPASSWD_MAX_ENTRIES;
		e = reallocarray(p->p_entries, cap, sizeof(*e));
		if (e == NULL)
			return fail(p, line, "out of memory");
		p->p_entries = e;
		p->p_cap = cap;
	}
	if ((s = malloc(ulen + hlen + 2)) == NULL)
		return fail(p, line, "out of memory");
	memcpy(s, user, ulen);
	s[ulen] = '\0';
	memcpy(s + ulen + 1, hash, hlen);
	s[ulen + 1 + hlen] = '\0';
	e = &p->p_entries[p->p_n++];
	e->user = s;
	e->hash = s + ulen + 1;
	e->kind = kind;
	e->line = line;
	return 0;
}

static int
parse_line(struct parse *p, const char *s, size_t len, unsigned line,
	   bool allow_plain)
{
	const char *colon, *why;
	enum pwhash_kind kind;
	size_t ulen;

	if (memchr(s, '\0', len) != NULL)
		return fail(p, line, "NUL byte");
	if ((colon = memchr(s, ':', len)) == NULL)
		return fail(p, line, "no ':' between user and hash");
	ulen = (size_t)(colon - s);
	if ((why = check_user(s, ulen)) != NULL)
		return fail(p, line, "%s", why);
	if (pwhash_identify(colon + 1, len - ulen - 1, allow_plain, &kind,
			    &why) == -1)
		return fail(p, line, "%s", why);
	if (p->p_n == HTPASSWD_MAX_ENTRIES)
		return fail(p, line,
			    "more than " STR(HTPASSWD_MAX_ENTRIES) " entries");
	return add(p, s, ulen, colon + 1, len - ulen - 1, kind, line);
}

/*
 * Sorts the entries and reports the duplicate whose second definition
 * comes first in the file, if there is one: -1 then, else 0.
 */
static int
sort_and_check(struct parse *p)
{
	const struct htpasswd_entry *e = p->p_entries, *dup = NULL;
	size_t i;

	if (p->p_n > 1)
		qsort(p->p_entries, p->p_n, sizeof(*e), cmp_entry);
	for (i = 1; i < p->p_n; i++)
		if (strcmp(e[i - 1].user, e[i].user) == 0 &&
		    (dup == NULL || e[i].line < dup[1].line))
			dup = &e[i - 1];
	if (dup == NULL)
		return 0;
	/* Lines in a run are ascending: dup[0] is the first definition,
	 * and a third one would be later than dup[1]. */
	return fail(p, dup[1].line, "user \"%s\" is already defined on line %u",
		    dup[1].user, dup[0].line);
}

static void
free_entries(struct htpasswd_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		OPENSSL_cleanse(e[i].hash, strlen(e[i].hash));
		free(e[i].user);
	}
	free(e);
}

int
htpasswd_parse(const char *buf, size_t len, bool allow_plain,
	       struct htpasswd *out, char *err, size_t errlen)
{
	struct parse p = {.p_err = err, .p_errlen = errlen};
	const char *s = buf, *end, *nl;
	size_t n;
	unsigned line = 0;
	int rc = 0;

	out->entries = NULL;
	out->n = 0;
	if (errlen > 0)
		err[0] = '\0';
	if (len == 0)
		return 0;
	end = buf + len;
	while (s < end) {
		if (line == UINT_MAX) {
			rc = fail(&p, line, "too many lines");
			break;
		}
		line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		n = (size_t)((nl != NULL ? nl : end) - s);
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n > 0 && s[0] != '#' &&
		    (rc = parse_line(&p, s, n, line, allow_plain)) == -1)
			break;
		s = nl != NULL ? nl + 1 : end;
	}
	/* A duplicate before the failing line is the first error. */
	if (sort_and_check(&p) == -1)
		rc = -1;
	if (rc == -1) {
		free_entries(p.p_entries, p.p_n);
		return -1;
	}
	out->entries = p.p_entries;
	out->n = p.p_n;
	return 0;
}

const struct htpasswd_entry *
htpasswd_find(const struct htpasswd *h, const char *user, size_t len)
{
	size_t lo = 0, hi = h->n, mid;
	const struct htpasswd_entry *e;
	int r;

	if (len == 0)
		return NULL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		e = &h->entries[mid];
		r = cmp_user(user, len, e->user, strlen(e->user));
		if (r == 0)
			return e;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t
htpasswd_costliest(const struct htpasswd *h)
{
	uint64_t best = 0, c;
	size_t i, at = 0;

	for (i = 0; i < h->n; i++) {
		c = pwhash_cost(h->entries[i].hash, h->entries[i].kind);
		if (c > best) {
			best = c;
			at = i;
		}
	}
	return at;
}

int
htpasswd_entry_copy(struct htpasswd_entry *dst,
		    const struct htpasswd_entry *src)
{
	size_t ulen = strlen(src->user), hlen = strlen(src->hash);
	char *s;

	if ((s = malloc(ulen + hlen + 2)) == NULL)
		return -1;
	memcpy(s, src->user, ulen + 1);
	memcpy(s + ulen + 1, src->hash, hlen + 1);
	*dst = *src;
	dst->user = s;
	dst->hash = s + ulen + 1;
	return 0;
}

void
htpasswd_free(struct htpasswd *h)
{
	free_entries(h->entries, h->n);
	h->entries = NULL;
	h->n = 0;
}
