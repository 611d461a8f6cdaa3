/*
 * bench/wrk_tls_shim.c — LD_PRELOAD shim for wrk's https runs (bench/run.sh).
 *
 * Built by run.sh into its temp dir at run time:
 *   gcc -O2 -shared -fPIC -o wrk_tls_shim.so wrk_tls_shim.c -ldl -lssl -lcrypto
 *
 * 1. Full handshakes on every new connection. wrk (4.1) reconnects with
 *    SSL_shutdown + SSL_clear on the same SSL object, and SSL_clear keeps the
 *    session of a cleanly shut down connection: the next SSL_connect offers it
 *    (TLS 1.3 PSK / TLS 1.2 ticket or session id) and every server here
 *    resumes it. Checked with nginx logging $ssl_session_reused: without the
 *    shim, 4 full handshakes and 6559 resumed ones in a 2 s "Connection:
 *    close" run. Resumption skips the certificate signature, the expensive
 *    part (above all with RSA), so the shim drops the session right after
 *    SSL_clear: every reconnect is a full handshake.
 * 2. Client-side proof, per wrk process: counts the completed handshakes,
 *    full and resumed (SSL_session_reused), and notes the protocol, cipher,
 *    key-exchange group and server key type of the first one (and how many
 *    later ones negotiated a different cipher). With BENCH_TLS_STATS=FILE it
 *    writes, at exit, one line:
 *      full<TAB>resumed<TAB>other_cipher<TAB>protocol cipher group keytype
 *
 * Nothing else changes: what wrk sends and reads is untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static unsigned long n_full, n_resumed, n_other;
static const SSL_CIPHER *first_cipher;
static char first_desc[256];

int
SSL_clear(SSL *s)
{
	static int (*real)(SSL *);
	int r;

	if (real == NULL)
		real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
	r = real(s);
	SSL_set_session(s, NULL); /* no resumption on the next connect */
	return r;
}

static void
describe(SSL *s)
{
	X509 *peer = SSL_get0_peer_certificate(s);
	EVP_PKEY *pk = peer ? X509_get0_pubkey(peer) : NULL;
	int id = pk ? EVP_PKEY_get_base_id(pk) : 0;
	const char *group = SSL_group_to_name(s, SSL_get_negotiated_group(s));
	const char *key = id == EVP_PKEY_EC    ? "ECDSA"
			  : id == EVP_PKEY_RSA ? "RSA"
					       : "?";

	snprintf(first_desc, sizeof first_desc, "%s %s %s %s-%d",
		 SSL_get_version(s),
		 SSL_CIPHER_get_name(SSL_get_current_cipher(s)),
		 group ? group : "?", key, pk ? EVP_PKEY_get_bits(pk) : 0);
}

int
SSL_connect(SSL *s)
{
	static int (*real)(SSL *);
	const SSL_CIPHER *c;
	int r;

	if (real == NULL)
		real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
	r = real(s);
	if (r != 1)
		return r;
	c = SSL_get_current_cipher(s);
	if (__atomic_load_n(&first_cipher, __ATOMIC_ACQUIRE) == NULL) {
		const SSL_CIPHER *none = NULL;

		if (__atomic_compare_exchange_n(&first_cipher, &none, c, 0,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			describe(s);
	} else if (c != first_cipher) {
		__atomic_add_fetch(&n_other, 1, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(SSL_session_reused(s) ? &n_resumed : &n_full, 1,
			   __ATOMIC_RELAXED);
	return r;
}

__attribute__((destructor)) static void
report(void)
{
	const char *path = getenv("BENCH_TLS_STATS");
	FILE *f;

	if (path == NULL || *path == '\0' || (f = fopen(path, "w")) == NULL)
		return;
	fprintf(f, "%lu\t%lu\t%lu\t%s\n", n_full, n_resumed, n_other,
		first_desc[0] ? first_desc : "-");
	fclose(f);
}
