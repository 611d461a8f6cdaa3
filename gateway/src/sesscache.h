/*
 * sesscache.h - the TLS session-ID cache of the process.
 *
 * OpenSSL keeps its session cache inside an SSL_CTX, and a reload builds
 * new SSL_CTXs: every TLS 1.2 client that resumes by session ID (no
 * tickets) would do a full handshake after each SIGHUP. This store belongs
 * to the process instead and is attached to every SSL_CTX, so sessions
 * outlive the contexts that made them, as ticket keys already do.
 *
 * A fixed table of buckets of SESSCACHE_WAYS slots, each a serialized
 * session (DER), found by session ID; a bucket's stripe lock is held only
 * to copy bytes in or out. A full bucket gives up its session that expires
 * first. Written and read by handshakes in every worker.
 */
#ifndef PORTCULLIS_SESSCACHE_H
#define PORTCULLIS_SESSCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SESSCACHE_WAYS 4
#define SESSCACHE_ID_MAX 32   /* SSL_MAX_SSL_SESSION_ID_LENGTH */
#define SESSCACHE_DER_MAX 640 /* a larger session is not kept */

struct ssl_ctx_st;

/* Makes the store of `entries` sessions (rounded up to whole buckets).
 * Main thread, before any handshake; a second call is a no-op. 0, or -1
 * when out of memory. */
int sesscache_init(size_t entries);

/* Sets ctx's session cache to this store (server mode, OpenSSL's internal
 * cache off). 0, or -1 if sesscache_init has not succeeded. */
int sesscache_attach(struct ssl_ctx_st *ctx);

/* The store itself, exported for tests. put keeps a copy of der (a
 * session expiring at `expires`) under id; get copies the session under
 * id into buf (cap bytes) unless it expired before `now`, and returns its
 * length, or 0; forget drops it. */
void sesscache_put(const unsigned char *id, size_t idlen,
		   const unsigned char *der, size_t len, time_t expires);
size_t sesscache_get(const unsigned char *id, size_t idlen, unsigned char *buf,
		     size_t cap, time_t now);
void sesscache_forget(const unsigned char *id, size_t idlen);

#endif
