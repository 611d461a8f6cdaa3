/*
 * sesscache.c - the TLS session-ID cache of the process (see sesscache.h).
 */
#include "sesscache.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NSTRIPES 64

struct slot {
	time_t expires; /* 0: empty */
	unsigned char idlen;
	unsigned char id[SESSCACHE_ID_MAX];
	unsigned short len;
	unsigned char der[SESSCACHE_DER_MAX];
};

static struct slot *slots;
static size_t nbuckets;
static pthread_mutex_t stripe[NSTRIPES];

int
sesscache_init(size_t entries)
{
	size_t i;

	if (slots != NULL)
		return 0;
	nbuckets = (entries + SESSCACHE_WAYS - 1) / SESSCACHE_WAYS;
	if (nbuckets == 0)
		nbuckets = 1;
	/* Zero pages: only the slots in use become resident. */
	if ((slots = calloc(nbuckets * SESSCACHE_WAYS, sizeof(*slots))) == NULL)
		return -1;
	for (i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&stripe[i], NULL);
	return 0;
}

/* FNV-1a. IDs are the server's random bytes; a client only chooses the
 * IDs it looks up, which costs it one bucket's scan. */
static size_t
bucket_of(const unsigned char *id, size_t idlen)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < idlen; i++)
		h = (h ^ id[i]) * 1099511628211ULL;
	return (size_t)(h % nbuckets);
}

static bool
same_id(const struct slot *s, const unsigned char *id, size_t idlen)
{
	return s->expires != 0 && s->idlen == idlen &&
	       CRYPTO_memcmp(s->id, id, idlen) == 0;
}

static void
slot_clear(struct slot *s)
{
	OPENSSL_cleanse(s, sizeof(*s)); /* a session holds its master key */
}

void
sesscache_put(const unsigned char *id, size_t idlen, const unsigned char *der,
	      size_t len, time_t expires)
{
	struct slot *b, *victim;
	size_t k;
	int w;

	if (slots == NULL || idlen == 0 || idlen > SESSCACHE_ID_MAX ||
	    len == 0 || len > SESSCACHE_DER_MAX || expires <= 0)
		return;
	k = bucket_of(id, idlen);
	b = &slots[k * SESSCACHE_WAYS];
	pthread_mutex_lock(&stripe[k % NSTRIPES]);
	victim = &b[0];
	for (w = 0; w < SESSCACHE_WAYS; w++) {
		if (same_id(&b[w], id, idlen) || b[w].expires == 0) {
			victim = &b[w];
			break;
		}
		if (b[w].expires < victim->expires)
			victim = &b[w];
	}
	slot_clear(victim);
	victim->expires = expires;
	victim->idlen = (unsigned char)idlen;
	memcpy(victim->id, id, idlen);
	victim->len = (unsigned short)len;
	memcpy(victim->der, der, len);
	pthread_mutex_unlock(&stripe[k % NSTRIPES]);
}

size_t
sesscache_get(const unsigned char *id, size_t idlen, unsigned char *buf,
	      size_t cap, time_t now)
{
	struct slot *b;
	size_t k, n = 0;
	int w;

	if (slots == NULL || idlen == 0 || idlen > SESSCACHE_ID_MAX)
		return 0;
	k = bucket_of(id, idlen);
	b = &slots[k * SESSCACHE_WAYS];
	pthread_mutex_lock(&stripe[k % NSTRIPES]);
	for (w = 0; w < SESSCACHE_WAYS; w++) {
		if (!same_id(&b[w], id, idlen))
			continue;
		if (b[w].expires <= now)
			slot_clear(&b[w]);
		else if (b[w].len <= cap) {
			memcpy(buf, b[w].der, b[w].len);
			n = b[w].len;
		}
		break;
	}
	pthread_mutex_unlock(&stripe[k % NSTRIPES]);
	return n;
}

void
sesscache_forget(const unsigned char *id, size_t idlen)
{
	struct slot *b;
	size_t k;
	int w;

	if (slots == NULL || idlen == 0 || idlen > SESSCACHE_ID_MAX)
		return;
	k = bucket_of(id, idlen);
	b = &slots[k * SESSCACHE_WAYS];
	pthread_mutex_lock(&stripe[k % NSTRIPES]);
	for (w = 0; w < SESSCACHE_WAYS; w++)
		if (same_id(&b[w], id, idlen))
			slot_clear(&b[w]);
	pthread_mutex_unlock(&stripe[k % NSTRIPES]);
}

/* OpenSSL's callbacks. */

static int
on_new(SSL *ssl, SSL_SESSION *sess)
{
	unsigned char der[SESSCACHE_DER_MAX], *p = der;
	const unsigned char *id;
	unsigned int idlen;
	int n;

	/* A TLS 1.3 session behind a stateless ticket resumes from the
	 * ticket, never by this ID: OpenSSL still announces it (twice per
	 * handshake), and storing it would only push out sessions that need
	 * the store. */
	if (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION &&
	    (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0)
		return 0;
	id = SSL_SESSION_get_id(sess, &idlen);
	n = i2d_SSL_SESSION(sess, NULL);
	if (n > 0 && n <= (int)sizeof(der) && i2d_SSL_SESSION(sess, &p) == n)
		sesscache_put(id, idlen, der, (size_t)n,
			      (time_t)(SSL_SESSION_get_time(sess) +
				       SSL_SESSION_get_timeout(sess)));
	OPENSSL_cleanse(der, sizeof(der));
	return 0; /* the store kept a copy, not the reference */
}

static SSL_SESSION *
on_get(SSL *ssl, const unsigned char *id, int idlen, int *copy)
{
	unsigned char der[SESSCACHE_DER_MAX];
	const unsigned char *p = der;
	SSL_SESSION *sess = NULL;
	size_t n;

	(void)ssl;
	*copy = 0; /* a new object: its one reference is OpenSSL's */
	if (idlen <= 0)
		return NULL;
	n = sesscache_get(id, (size_t)idlen, der, sizeof(der), time(NULL));
	if (n > 0)
		sess = d2i_SSL_SESSION(NULL, &p, (long)n);
	OPENSSL_cleanse(der, sizeof(der));
	return sess;
}

static void
on_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
	const unsigned char *id;
	unsigned int idlen;

	(void)ctx;
	id = SSL_SESSION_get_id(sess, &idlen);
	sesscache_forget(id, idlen);
}

int
sesscache_attach(SSL_CTX *ctx)
{
	if (slots == NULL)
		return -1;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER |
						SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, on_new);
	SSL_CTX_sess_set_get_cb(ctx, on_get);
	SSL_CTX_sess_set_remove_cb(ctx, on_remove);
	return 0;
}
