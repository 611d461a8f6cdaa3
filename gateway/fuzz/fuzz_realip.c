/*
 * fuzz_realip.c - libFuzzer target for realip_find(): what a client or a
 * proxy writes in X-Forwarded-For. The input's first byte picks the peer
 * (trusted or not, IPv4 or IPv6); the rest is header fields, one per line,
 * "name:value" (a line without ':' is an X-Forwarded-For value). Checked,
 * with a reader of this file's own:
 *   - an untrusted peer is always its own client;
 *   - otherwise the answer, and the client, are the oracle's: the list's
 *     members read from the right (blanks skipped) past trusted addresses,
 *     REALIP_MAX_HOPS of them at most; a member read that is no address
 *     is BAD; no member at all is the peer;
 *   - FOUND: the chain is "client, hops..., peer", every member an
 *     address in canonical text, every hop trusted, the client's text and
 *     address agree.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "fuzz.h"
#include "realip.h"

#define MAX_FIELDS 32

static struct config_cidr trusted[3];
static bool ready;

static void
setup(void)
{
	const char *why;

	CHECK(config_parse_cidr("10.0.0.0/8", &trusted[0], &why) == 0);
	CHECK(config_parse_cidr("2001:db8::/32", &trusted[1], &why) == 0);
	CHECK(config_parse_cidr("127.0.0.1", &trusted[2], &why) == 0);
	ready = true;
}

/* Splits "a, b" at ", " into members; returns how many. */
static size_t
members(char *chain, char *out[], size_t max)
{
	size_t n = 0;
	char *p = chain, *comma;

	while (n < max) {
		out[n++] = p;
		if ((comma = strstr(p, ", ")) == NULL)
			break;
		*comma = '\0';
		p = comma + 2;
	}
	return n;
}

/* Canonical text of an address, and its 16 bytes. */
static bool
canonical(const char *t, uint8_t a[16])
{
	char back[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (inet_pton(AF_INET, t, &v4) == 1) {
		memset(a, 0, 16);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &v4, 4);
	} else if (inet_pton(AF_INET6, t, a) != 1) {
		return false;
	}
	realip_format(a, back);
	return strcmp(back, t) == 0;
}

/* The oracle's list: every member of every X-Forwarded-For field, left
 * to right, blanks left out. */
struct list {
	const char *p[4096];
	size_t n[4096];
	size_t count;
};

static void
flatten(const struct http_header *h, size_t nh, struct list *l)
{
	size_t i, j, b;

	l->count = 0;
	for (i = 0; i < nh; i++) {
		if (h[i].name_len != 15 ||
		    strncasecmp(h[i].name, "x-forwarded-for", 15) != 0)
			continue;
		for (b = 0, j = 0; j <= h[i].value_len; j++) {
			size_t s = b, e = j;

			if (j < h[i].value_len && h[i].value[j] != ',')
				continue;
			b = j + 1;
			while (s < e &&
			       (h[i].value[s] == ' ' || h[i].value[s] == '\t'))
				s++;
			while (e > s && (h[i].value[e - 1] == ' ' ||
					 h[i].value[e - 1] == '\t'))
				e--;
			if (e > s && l->count < 4096) {
				l->p[l->count] = h[i].value + s;
				l->n[l->count++] = e - s;
			}
		}
	}
}

/* The oracle's port: 1 to 5 digits, at most 65535. */
static bool
oracle_port(const char *t)
{
	size_t k = strlen(t), i;

	if (k < 1 || k > 5)
		return false;
	for (i = 0; i < k; i++)
		if (t[i] < '0' || t[i] > '9')
			return false;
	return strtol(t, NULL, 10) <= 65535;
}

/* The oracle's reading of one member: an address, bracketed or not, with
 * or without a port after it. */
static bool
oracle_addr(const char *p, size_t n, uint8_t a[16])
{
	char t[80];
	struct in_addr v4;

	if (n >= sizeof(t) || memchr(p, '\0', n) != NULL)
		return false;
	memcpy(t, p, n);
	t[n] = '\0';
	if (t[0] == '[') {
		char *close = strchr(t, ']');

		if (close == NULL)
			return false;
		if (close[1] != '\0' &&
		    (close[1] != ':' || !oracle_port(close + 2)))
			return false;
		*close = '\0';
		return inet_pton(AF_INET6, t + 1, a) == 1;
	}
	if (strchr(t, ':') != NULL && strchr(t, ':') == strrchr(t, ':')) {
		char *c = strchr(t, ':');

		if (!oracle_port(c + 1))
			return false;
		*c = '\0';
	}
	if (strchr(t, ':') != NULL)
		return inet_pton(AF_INET6, t, a) == 1;
	if (inet_pton(AF_INET, t, &v4) != 1)
		return false;
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	memcpy(a + 12, &v4, 4);
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *peers[] = {"10.1.2.3", "192.0.2.7", "2001:db8::5",
				      "2001:db9::5"};
	struct http_header h[MAX_FIELDS];
	static struct realip out;
	char copy[REALIP_CHAIN_MAX], *m[REALIP_MAX_HOPS + 4];
	static struct list list;
	uint8_t peer[16], a[16], client[16];
	enum realip_result want;
	size_t nhop;
	const char *why = NULL, *peer_text, *p, *end;
	size_t nh = 0, nm, i;
	enum realip_result r;
	bool peer_trusted;

	if (!ready)
		setup();
	if (size == 0)
		return 0;
	peer_text = peers[data[0] & 3];
	CHECK(canonical(peer_text, peer));
	peer_trusted = config_cidr_any(trusted, 3, peer);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end && nh < MAX_FIELDS) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl != NULL ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(e - p));

		if (colon == NULL) {
			h[nh] = (struct http_header){"X-Forwarded-For", 15, p,
						     (size_t)(e - p)};
		} else {
			h[nh] = (struct http_header){p, (size_t)(colon - p),
						     colon + 1,
						     (size_t)(e - colon - 1)};
		}
		nh++;
		p = e + 1;
	}
	memset(&out, 0xa5, sizeof(out));
	r = realip_find(trusted, 3, peer, peer_text, h, nh, &out, &why);
	if (!peer_trusted) {
		CHECK(r == REALIP_PEER);
		return 0;
	}
	flatten(h, nh, &list);
	/* The oracle: from the right, past trusted addresses, at most
	 * REALIP_MAX_HOPS of them. */
	want = REALIP_PEER;
	for (i = list.count, nhop = 0; i-- > 0;) {
		if (!oracle_addr(list.p[i], list.n[i], a)) {
			want = REALIP_BAD;
			break;
		}
		want = REALIP_FOUND;
		memcpy(client, a, 16);
		if (!config_cidr_any(trusted, 3, a) ||
		    ++nhop == REALIP_MAX_HOPS + 1)
			break;
	}
	CHECK(r == want);
	if (r == REALIP_BAD)
		CHECK(why != NULL && why[0] != '\0');
	if (r != REALIP_FOUND)
		return 0;
	CHECK(memcmp(client, out.addr, 16) == 0);
	CHECK(out.chain_len == strlen(out.chain));
	CHECK(out.chain_len < sizeof(copy));
	memcpy(copy, out.chain, out.chain_len + 1);
	nm = members(copy, m, REALIP_MAX_HOPS + 4);
	CHECK(nm >= 2 && nm <= REALIP_MAX_HOPS + 2);
	CHECK(strcmp(m[nm - 1], peer_text) == 0);
	CHECK(strcmp(m[0], out.text) == 0);
	CHECK(canonical(out.text, a) && memcmp(a, out.addr, 16) == 0);
	for (i = 1; i + 1 < nm; i++)
		CHECK(canonical(m[i], a) && config_cidr_any(trusted, 3, a));
	return 0;
}
