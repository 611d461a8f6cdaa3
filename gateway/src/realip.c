/*
 * realip.c - X-Forwarded-For, read from the right as far as it is vouched
 * for.
 */
#include "realip.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The longest entry read: "[" IPv6 with a zone-less tail "]:65535". */
#define ENTRY_MAX (INET6_ADDRSTRLEN + 8)

void
realip_format(const uint8_t addr[16], char out[INET6_ADDRSTRLEN])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

	if (memcmp(addr, mapped, sizeof(mapped)) == 0)
		inet_ntop(AF_INET, addr + 12, out, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, addr, out, INET6_ADDRSTRLEN);
}

/* A port number, 0 to 65535. */
static bool
is_port(const char *p, size_t n)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v <= 65535;
}

/*
 * One list member, OWS already trimmed: "192.0.2.1", "192.0.2.1:443",
 * "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:443". 0, or -1 when it
 * is none of those (names, "unknown", obfuscated identifiers, zones).
 */
static int
parse_entry(const char *p, size_t n, uint8_t out[16])
{
	char buf[ENTRY_MAX];
	const char *colon;
	struct in_addr v4;
	size_t i;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	/* Only what addresses and ports are made of: no NUL can cut the text
	 * inet_pton() reads short of what was checked. */
	for (i = 0; i < n; i++)
		if (strchr("0123456789abcdefABCDEF.:[]", p[i]) == NULL ||
		    p[i] == '\0')
			return -1;
	if (p[0] == '[') {
		const char *close = memchr(p, ']', n);

		if (close == NULL)
			return -1;
		if ((size_t)(close - p) + 1 < n &&
		    (close[1] != ':' ||
		     !is_port(close + 2, n - (size_t)(close - p) - 2)))
			return -1;
		n = (size_t)(close - p) - 1;
		memcpy(buf, p + 1, n);
		buf[n] = '\0';
		return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
	}
	colon = memchr(p, ':', n);
	if (colon != NULL &&
	    memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) == NULL) {
		/* One colon: IPv4 with a port. */
		if (!is_port(colon + 1, n - (size_t)(colon - p) - 1))
			return -1;
		n = (size_t)(colon - p);
		colon = NULL;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (colon != NULL)
		return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
	if (inet_pton(AF_INET, buf, &v4) != 1)
		return -1;
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &v4, 4);
	return 0;
}

static bool
ows(char c)
{
	return c == ' ' || c == '\t';
}

static void
chain_put(struct realip *out, const char *s)
{
	size_t n = strlen(s);

	if (out->chain_len + n + 2 >= sizeof(out->chain))
		return; /* cannot happen: the buffer holds every hop */
	if (out->chain_len > 0) {
		memcpy(out->chain + out->chain_len, ", ", 2);
		out->chain_len += 2;
	}
	memcpy(out->chain + out->chain_len, s, n + 1);
	out->chain_len += n;
}

/* Reads one member of the list, right to left: false to stop there (the
 * client is found, or the member is bad: *bad). */
static bool
hop_read(const struct config_cidr *trusted, size_t ntrusted, const char *p,
	 size_t n, uint8_t hop[][16], size_t *nhop, bool *bad)
{
	while (n > 0 && ows(p[0]))
		p++, n--;
	while (n > 0 && ows(p[n - 1]))
		n--;
	if (n == 0)
		return true; /* an empty member: "a, , b" */
	if (parse_entry(p, n, hop[*nhop]) == -1) {
		*bad = true;
		return false;
	}
	/* An untrusted member is the client; so is the last one read when
	 * the list runs longer than REALIP_MAX_HOPS. */
	return config_cidr_any(trusted, ntrusted, hop[(*nhop)++]) &&
	       *nhop < REALIP_MAX_HOPS + 1;
}

enum realip_result
realip_find(const struct config_cidr *trusted, size_t ntrusted,
	    const uint8_t peer[16], const char *peer_text,
	    const struct http_header *headers, size_t nheaders,
	    struct realip *out, const char **why)
{
	uint8_t hop[REALIP_MAX_HOPS + 1][16];
	size_t nhop = 0, fi, b, e, i;
	bool bad = false;

	if (ntrusted == 0 || !config_cidr_any(trusted, ntrusted, peer))
		return REALIP_PEER;
	/* Every X-Forwarded-For field, last first, as one list. */
	for (fi = nheaders; fi-- > 0;) {
		const struct http_header *f = &headers[fi];

		if (f->name_len != 15 ||
		    strncasecmp(f->name, "x-forwarded-for", 15) != 0)
			continue;
		for (e = f->value_len;; e = b - 1) {
			b = e;
			while (b > 0 && f->value[b - 1] != ',')
				b--;
			if (!hop_read(trusted, ntrusted, f->value + b, e - b,
				      hop, &nhop, &bad))
				goto found;
			if (b == 0)
				break;
		}
	}
found:
	if (bad) {
		*why = "X-Forwarded-For from a trusted proxy holds something "
		       "that is not an address";
		return REALIP_BAD;
	}
	if (nhop == 0)
		return REALIP_PEER;
	memcpy(out->addr, hop[nhop - 1], 16);
	realip_format(out->addr, out->text);
	out->chain_len = 0;
	out->chain[0] = '\0';
	for (i = nhop; i-- > 0;) {
		char t[INET6_ADDRSTRLEN];

		realip_format(hop[i], t);
		chain_put(out, t);
	}
	chain_put(out, peer_text);
	return REALIP_FOUND;
}
