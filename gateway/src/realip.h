/*
 * realip.h - the client behind trusted proxies: X-Forwarded-For read from
 * the right, one hop at a time, as far as the hops are proxies the listener
 * trusts.
 *
 * Each proxy appends the address of whoever connected to it. So the last
 * entry was written by the peer (a trusted proxy); if that entry is a
 * trusted proxy too, the one before it was written by that proxy, and so
 * on. The first entry that is not a trusted proxy is the client: anything
 * left of it was written by the client or by proxies nobody vouches for,
 * and is never read.
 */
#ifndef PORTCULLIS_REALIP_H
#define PORTCULLIS_REALIP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"

/* Trusted proxies walked over at most; past them the leftmost one read
 * stands for the client. */
#define REALIP_MAX_HOPS 16

/* The X-Forwarded-For the upstream gets: client, hops, peer. */
#define REALIP_CHAIN_MAX ((REALIP_MAX_HOPS + 2) * (INET6_ADDRSTRLEN + 2))

enum realip_result {
	REALIP_PEER,  /* the peer is the client (not trusted, or no field) */
	REALIP_FOUND, /* out holds the client behind the peer */
	REALIP_BAD,   /* a trusted hop wrote what is not an address */
};

struct realip {
	uint8_t addr[16];	      /* the client, as config_addr16 */
	char text[INET6_ADDRSTRLEN];  /* the client, IPv4 without ::ffff: */
	char chain[REALIP_CHAIN_MAX]; /* "client, hop, ..., peer" */
	size_t chain_len;
};

/*
 * Finds the client of a request that came from `peer` (config_addr16 form,
 * text `peer_text`). Only when the peer is in `trusted` are the request's
 * X-Forwarded-For fields read (all of them, in order, as one list). On
 * REALIP_BAD, *why says what was wrong.
 */
enum realip_result realip_find(const struct config_cidr *trusted,
			       size_t ntrusted, const uint8_t peer[16],
			       const char *peer_text,
			       const struct http_header *headers,
			       size_t nheaders, struct realip *out,
			       const char **why);

/* Writes an address kept as config_addr16 as text (IPv4-mapped as IPv4). */
void realip_format(const uint8_t addr[16], char out[INET6_ADDRSTRLEN]);

#endif
