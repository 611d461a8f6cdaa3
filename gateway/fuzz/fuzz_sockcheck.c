/*
 * fuzz_sockcheck.c - libFuzzer target for sockcheck_parse_line() and
 * sockcheck_overlaps(). Checks what sockcheck.h promises, abort() if not:
 * a parsed line has a family of its own with no bytes past an IPv4
 * address and a one-byte state; written back in the kernel's format it
 * parses to the same entry; it overlaps its own address in every mode, and
 * the same address on another port in none.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "sockcheck.h"

/* e as the kernel prints it: "sl: local remote st ... uid timeout inode". */
static size_t
format(const struct sockcheck_entry *e, char *out, size_t cap)
{
	size_t i, n = e->se_family == AF_INET ? 4 : 16, o;
	uint32_t w;

	o = (size_t)snprintf(out, cap, "0: ");
	for (i = 0; i < n; i += 4) {
		memcpy(&w, e->se_addr + i, sizeof(w));
		o += (size_t)snprintf(out + o, cap - o, "%08X", w);
	}
	o += (size_t)snprintf(out + o, cap - o, ":%04X ", e->se_port);
	for (i = 0; i < n; i += 4)
		o += (size_t)snprintf(out + o, cap - o, "00000000");
	o += (size_t)snprintf(out + o, cap - o,
			      ":0000 %02X 0:0 0:0 0 %u 0 %llu", e->se_state,
			      e->se_uid, (unsigned long long)e->se_inode);
	return o;
}

/* e's own address and port, or that port plus `shift`, as a sockaddr. */
static const struct sockaddr *
own_addr(const struct sockcheck_entry *e, unsigned shift,
	 struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	uint16_t port = htons((uint16_t)(e->se_port + shift));

	memset(ss, 0, sizeof(*ss));
	if (e->se_family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		memcpy(&sin->sin_addr, e->se_addr, 4);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		memcpy(&sin6->sin6_addr, e->se_addr, 16);
	}
	return (const struct sockaddr *)ss;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zero[12];
	struct sockcheck_entry e, again;
	struct sockaddr_storage ss;
	char line[256];
	size_t n;

	if (sockcheck_parse_line((const char *)data, size, &e) == -1)
		return 0;
	CHECK(e.se_family == AF_INET || e.se_family == AF_INET6);
	CHECK(e.se_family == AF_INET6 || memcmp(e.se_addr + 4, zero, 12) == 0);
	CHECK(e.se_state <= 0xff);

	n = format(&e, line, sizeof(line));
	CHECK(n < sizeof(line));
	CHECK(sockcheck_parse_line(line, n, &again) == 0);
	CHECK(again.se_family == e.se_family && again.se_port == e.se_port &&
	      again.se_state == e.se_state && again.se_uid == e.se_uid &&
	      again.se_inode == e.se_inode &&
	      memcmp(again.se_addr, e.se_addr, sizeof(e.se_addr)) == 0);

	CHECK(sockcheck_overlaps(&e, own_addr(&e, 0, &ss), false));
	CHECK(sockcheck_overlaps(&e, own_addr(&e, 0, &ss), true));
	CHECK(!sockcheck_overlaps(&e, own_addr(&e, 1, &ss), false));
	CHECK(!sockcheck_overlaps(&e, own_addr(&e, 1, &ss), true));
	return 0;
}
