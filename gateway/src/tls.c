/*
 * tls.c - server SSL_CTXs for the TLS listeners: the protocol and cipher
 * policy, certificates (loaded, or made when missing and allowed), SNI
 * among groups of certificates, session tickets under a rotating key ring.
 *
 * A tls_context holds one SSL_CTX per group of certificates that carry the
 * same names (an RSA and an ECDSA certificate for the same names share one
 * SSL_CTX, and OpenSSL picks by the client's signature algorithms). Every
 * SSL starts on the first group's SSL_CTX (the default) and the client
 * hello callback moves it to the group the client's server name selects.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ocsp.h"
#include "sesscache.h"

/*
 * Mozilla "intermediate" for TLS 1.2, minus its DHE-RSA suites: DHE needs
 * DH parameters we do not ship (DESIGN.md: ECDHE), costs several times
 * what ECDHE does per handshake, and a client that speaks TLS 1.2 without
 * ECDHE is a rarity. So ECDHE with an AEAD (AES-GCM, ChaCha20-Poly1305).
 */
#define TLS_CIPHERS_DEFAULT                                                    \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS_ALPN_HTTP11 "http/1.1"

/* Same on every SSL_CTX of a context, so a session survives the SNI switch
 * (SSL_set_SSL_CTX copies the new SSL_CTX's id context onto the SSL). */
#define TLS_SID_CTX "portcullis"

/* A certificate or key file larger than this is a mistake, not PEM. */
#define TLS_FILE_MAX (1024 * 1024)
#define TLS_DAYS_DEFAULT 365

/*
 * Session-ticket keys: a fixed ring of slots, written only by the main
 * thread, read by handshakes in every worker, without a lock. tc_key_gen
 * counts rotations; the newest key is in slot gen % SLOTS, the previous
 * one in slot (gen - 1) % SLOTS. A rotation writes the slot of generation
 * gen + 1 (three generations old, read by no current handshake) and then
 * publishes gen + 1 with a release store. No key is freed while the
 * context lives.
 *
 * A handshake would meet a rotation writing one of its slots only if it
 * stalled across two whole rotations (hours), but even that must not be a
 * data race: the slots are arrays of atomic words read as a seqlock. The
 * reader loads gen (acquire), copies its two slots (relaxed), fences
 * (acquire) and loads gen again; the writer fences (release) before it
 * stores a slot (relaxed). If gen moved so far that the writer may have
 * reached one of the reader's slots, the copy, maybe torn, is retried
 * (tls_ticket_keys_get). Relaxed loads of aligned words are plain loads.
 */
#define TLS_TICKET_SLOTS 4
#define TLS_TICKET_NAME_LEN 16

struct tls_ticket_key {
	unsigned char tk_name[TLS_TICKET_NAME_LEN]; /* public, in the ticket */
	unsigned char tk_aes[32];		    /* AES-256-CBC key */
	unsigned char tk_hmac[32];		    /* HMAC-SHA256 key */
};

#define TLS_TICKET_WORDS (sizeof(struct tls_ticket_key) / sizeof(uint64_t))
_Static_assert(sizeof(struct tls_ticket_key) % sizeof(uint64_t) == 0,
	       "a ticket key is a whole number of words");

struct tls_names {
	char **tn_v; /* lower case, sorted, unique */
	size_t tn_n;
};

/* Certificates with one set of names, in one SSL_CTX. */
struct tls_group {
	SSL_CTX *tg_ctx;
	struct tls_names tg_names; /* the DNS SANs, or the CN if none */
};

/* A served certificate and where its OCSP staple is (NULL: none). */
struct tls_ocsp {
	X509 *to_leaf; /* the SSL_CTX's own certificate object */
	struct ocsp_slot *to_slot;
};

struct tls_context {
	atomic_uint tc_refs;
	struct tls_ocsp *tc_ocsp;    /* tc_ncerts of them */
	struct tls_group *tc_groups; /* [0] is the default */
	size_t tc_ngroups;
	struct tls_cert_info *tc_info; /* configuration order */
	size_t tc_ncerts;
	bool tc_tickets;
	EVP_CIPHER *tc_cipher; /* AES-256-CBC, fetched once */
	_Atomic uint64_t tc_keys[TLS_TICKET_SLOTS][TLS_TICKET_WORDS];
	_Atomic uint64_t tc_key_gen;
	uint64_t tc_rotation_ms;
	uint64_t tc_rotated_ms; /* main thread only */
};

/* One configured pair while the context is being built. */
struct tls_loaded {
	X509 *tl_x509;
	STACK_OF(X509) * tl_chain;
	EVP_PKEY *tl_pkey;
	struct tls_names tl_names;
	size_t tl_group;
};

/*
 * Index of the SSL ex_data slot that holds a reference on the SSL's
 * tls_context: the callbacks below read the context through it, and the
 * reference keeps the context (ticket keys, SNI table) alive as long as the
 * SSL, after a reload has dropped the context itself.
 */
static int tls_ssl_idx = -1;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static int tls_fail(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int
tls_verror(char *err, size_t cap, const char *fmt, va_list ap)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	int n = vsnprintf(err, cap, fmt, ap);

	if (reason != NULL && n >= 0 && (size_t)n < cap)
		snprintf(err + n, cap - (size_t)n, " (%s)", reason);
	ERR_clear_error();
	return -1;
}

/* tls_verror() into err[TLS_ERR_LEN]. */
static int
tls_fail(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tls_verror(err, TLS_ERR_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

static char
tls_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c;
}

/* ASCII-only, so the locale never changes what a name matches. */
static bool
tls_name_eq(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (tls_lower(a[i]) != tls_lower(b[i]))
			return false;
	return true;
}

static uint64_t
tls_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Name sets */

static int
tls_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Adds a name from a certificate, lower-cased, unless it is already there.
 * Names no client could send (empty, over 253 bytes, with a NUL) are
 * skipped. Returns 0, or -1 when out of memory.
 */
static int
tls_names_add(struct tls_names *n, const unsigned char *p, size_t len)
{
	char **v, *s;
	size_t i;

	if (len == 0 || len > 253 || memchr(p, '\0', len) != NULL)
		return 0;
	for (i = 0; i < n->tn_n; i++)
		if (strlen(n->tn_v[i]) == len &&
		    tls_name_eq(n->tn_v[i], (const char *)p, len))
			return 0;
	if ((s = malloc(len + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		s[i] = tls_lower((char)p[i]);
	s[len] = '\0';
	if ((v = realloc(n->tn_v, (n->tn_n + 1) * sizeof(*v))) == NULL) {
		free(s);
		return -1;
	}
	v[n->tn_n++] = s;
	n->tn_v = v;
	return 0;
}

static bool
tls_names_equal(const struct tls_names *a, const struct tls_names *b)
{
	size_t i;

	if (a->tn_n != b->tn_n)
		return false;
	for (i = 0; i < a->tn_n; i++)
		if (strcmp(a->tn_v[i], b->tn_v[i]) != 0)
			return false;
	return true;
}

static void
tls_names_free(struct tls_names *n)
{
	size_t i;

	for (i = 0; i < n->tn_n; i++)
		free(n->tn_v[i]);
	free(n->tn_v);
	n->tn_v = NULL;
	n->tn_n = 0;
}

/*
 * The names SNI is matched against: the DNS subjectAltNames or, when there
 * is none, the last CN (RFC 6125 section 6.4.4, as X509_check_host does).
 * Returns 0, or -1 when out of memory.
 */
static int
tls_cert_names(X509 *x, struct tls_names *n)
{
	GENERAL_NAMES *gens;
	X509_NAME *subj;
	const ASN1_STRING *s;
	unsigned char *utf8;
	int i, type, last, len, rc = 0;
	void *v;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; rc == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		v = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i),
					    &type);
		if (type != GEN_DNS)
			continue;
		s = v;
		rc = tls_names_add(n, ASN1_STRING_get0_data(s),
				   (size_t)ASN1_STRING_length(s));
	}
	GENERAL_NAMES_free(gens);
	if (rc == 0 && n->tn_n == 0) {
		subj = X509_get_subject_name(x);
		last = -1;
		i = -1;
		while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName,
						       i)) >= 0)
			last = i;
		if (last >= 0) {
			s = X509_NAME_ENTRY_get_data(
			    X509_NAME_get_entry(subj, last));
			if ((len = ASN1_STRING_to_UTF8(&utf8, s)) >= 0) {
				rc = tls_names_add(n, utf8, (size_t)len);
				OPENSSL_free(utf8);
			}
		}
	}
	if (n->tn_n > 1)
		qsort(n->tn_v, n->tn_n, sizeof(*n->tn_v), tls_names_cmp);
	return rc;
}

/*
 * Whether a certificate name matches the host the client asked for. A
 * pattern "*.example.com" matches exactly one non-empty label before
 * ".example.com" (RFC 6125 section 6.4.3, no partial wildcards).
 */
static bool
tls_name_match(const char *pat, const char *host, size_t hlen)
{
	const char *dot;
	size_t plen = strlen(pat);

	if (pat[0] == '*' && pat[1] == '.') {
		dot = memchr(host, '.', hlen);
		if (dot == NULL || dot == host)
			return false;
		hlen -= (size_t)(dot - host);
		host = dot;
		pat++;
		plen--;
	}
	return plen == hlen && tls_name_eq(pat, host, hlen);
}

/* The first group with a name matching host, or NULL. */
static const struct tls_group *
tls_group_find(const struct tls_context *t, const char *host, size_t hlen)
{
	const struct tls_group *g;
	size_t i, j;

	for (i = 0; i < t->tc_ngroups; i++) {
		g = &t->tc_groups[i];
		for (j = 0; j < g->tg_names.tn_n; j++)
			if (tls_name_match(g->tg_names.tn_v[j], host, hlen))
				return g;
	}
	return NULL;
}

/* Callbacks (worker threads, during handshakes) */

/*
 * The host_name of a server_name extension body (RFC 6066 section 3): a
 * 2-byte list length, then entries of a 1-byte type and a 2-byte length.
 * Returns 0 and the first host_name, or -1 if there is none or the body is
 * malformed (OpenSSL then rejects it when it parses the extension).
 */
static int
tls_sni_host(const unsigned char *p, size_t len, const char **host,
	     size_t *hlen)
{
	size_t n;

	if (len < 2 || (((size_t)p[0] << 8) | p[1]) != len - 2)
		return -1;
	p += 2;
	len -= 2;
	while (len >= 3) {
		n = ((size_t)p[1] << 8) | p[2];
		if (n > len - 3)
			return -1;
		if (p[0] == TLSEXT_NAMETYPE_host_name) {
			if (n == 0 || n > 255 || memchr(p + 3, '\0', n) != NULL)
				return -1;
			*host = (const char *)(p + 3);
			*hlen = n;
			return 0;
		}
		p += 3 + n;
		len -= 3 + n;
	}
	return -1;
}

/*
 * Picks the SSL_CTX by server name before anything else of the handshake
 * is decided (cipher, certificate, session). A client without SNI, or with
 * a name no certificate carries, stays on the default.
 */
static int
tls_client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const struct tls_context *t = SSL_get_ex_data(ssl, tls_ssl_idx);
	const struct tls_group *g;
	const unsigned char *ext;
	const char *host;
	size_t len, hlen;

	if (t == NULL || t->tc_ngroups < 2)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext,
				       &len))
		return SSL_CLIENT_HELLO_SUCCESS;
	if (tls_sni_host(ext, len, &host, &hlen) == -1)
		return SSL_CLIENT_HELLO_SUCCESS;
	g = tls_group_find(t, host, hlen);
	if (g == NULL || g == &t->tc_groups[0])
		return SSL_CLIENT_HELLO_SUCCESS;
	if (SSL_set_SSL_CTX(ssl, g->tg_ctx) == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/*
 * ALPN (RFC 7301): http/1.1 if the client offers it. A client that offers
 * only other protocols (say h2 alone) gets no ALPN answer instead of the
 * no_application_protocol alert of RFC 7301 section 3.2: the handshake
 * goes on without ALPN, and the gateway speaks HTTP/1.1 anyway. A client
 * that can fall back to HTTP/1.1 then works; one that cannot fails either
 * way, with its own error instead of a handshake alert.
 */
static int
tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
	    const unsigned char *in, unsigned int inlen, void *arg)
{
	const size_t want = sizeof(TLS_ALPN_HTTP11) - 1;
	unsigned int i, n;

	for (i = 0; i < inlen; i += 1 + n) {
		n = in[i];
		if (n > inlen - i - 1)
			break;
		if (n == want &&
		    memcmp(in + i + 1, TLS_ALPN_HTTP11, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * OCSP stapling (RFC 6066 section 8): called when the client asked for a
 * status, once the certificate is chosen (by SNI, then by the client's
 * signature algorithms). The staple of that certificate, if one is valid,
 * is copied for OpenSSL, which frees it with the SSL. No staple: the
 * handshake goes on without one.
 */
static int
tls_status_cb(SSL *ssl, void *arg)
{
	const struct tls_context *t = SSL_get_ex_data(ssl, tls_ssl_idx);
	X509 *x = SSL_get_certificate(ssl);
	unsigned char *der;
	size_t i, len;

	if (t == NULL || x == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 0; i < t->tc_ncerts; i++)
		if (t->tc_ocsp[i].to_leaf == x)
			break;
	if (i == t->tc_ncerts || t->tc_ocsp[i].to_slot == NULL ||
	    ocsp_slot_copy(t->tc_ocsp[i].to_slot, time(NULL), &der, &len) != 1)
		return SSL_TLSEXT_ERR_NOACK;
	if (!SSL_set_tlsext_status_ocsp_resp(ssl, der, (long)len)) {
		OPENSSL_free(der);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

static void
tls_ticket_slot_get(const struct tls_context *t, uint64_t gen,
		    struct tls_ticket_key *k)
{
	uint64_t w[TLS_TICKET_WORDS];
	size_t i;

	for (i = 0; i < TLS_TICKET_WORDS; i++)
		w[i] =
		    atomic_load_explicit(&t->tc_keys[gen % TLS_TICKET_SLOTS][i],
					 memory_order_relaxed);
	/* cppcheck-suppress uninitvar ; the loop above fills all of w */
	memcpy(k, w, sizeof(*k));
	OPENSSL_cleanse(w, sizeof(w));
}

/* Main thread only; see the ring's comment for the fence. */
static void
tls_ticket_slot_put(struct tls_context *t, uint64_t gen,
		    const struct tls_ticket_key *k)
{
	uint64_t w[TLS_TICKET_WORDS];
	size_t i;

	memcpy(w, k, sizeof(w));
	atomic_thread_fence(memory_order_release);
	for (i = 0; i < TLS_TICKET_WORDS; i++)
		atomic_store_explicit(&t->tc_keys[gen % TLS_TICKET_SLOTS][i],
				      w[i], memory_order_relaxed);
	OPENSSL_cleanse(w, sizeof(w));
}

/*
 * Copies the newest key into k[0] and the previous one into k[1] (zeroes
 * before the first rotation). Returns the generation of k[0].
 *
 * While gen reads g2, a rotation may be writing the slot of generation
 * g2 + 1; those of g1 + 1 .. g2 were written during the copy. The copy of
 * the slots of g1 and g1 - 1 is whole if none of those is the same slot:
 * g2 + 1 < g1 - 1 + SLOTS.
 */
static uint64_t
tls_ticket_keys_get(struct tls_context *t, struct tls_ticket_key k[2])
{
	uint64_t g1, g2;

	do {
		g1 = atomic_load_explicit(&t->tc_key_gen, memory_order_acquire);
		tls_ticket_slot_get(t, g1, &k[0]);
		if (g1 > 0)
			tls_ticket_slot_get(t, g1 - 1, &k[1]);
		else
			memset(&k[1], 0, sizeof(k[1]));
		atomic_thread_fence(memory_order_acquire);
		g2 = atomic_load_explicit(&t->tc_key_gen, memory_order_relaxed);
	} while (g2 + 2 >= g1 + TLS_TICKET_SLOTS);
	return g1;
}

/*
 * Session tickets (RFC 5077 format, OpenSSL's framing): encrypts under the
 * newest key; decrypts under the newest (returns 1) or the previous one
 * (returns 2: accepted, and the client gets a ticket under the newest key).
 * TLS 1.3 always gets 2: its tickets are meant for one use (RFC 8446
 * appendix C.4), and OpenSSL sends no new ticket after a resumption unless
 * told to renew, so a client would fall back to a full handshake every
 * other connection.
 * An unknown key name returns 0: a full handshake. OpenSSL calls this on
 * the SSL's initial SSL_CTX (its session_ctx), whatever SNI selected.
 */
static int
tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
	      EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_context *t = SSL_get_ex_data(ssl, tls_ssl_idx);
	struct tls_ticket_key keys[2];
	const struct tls_ticket_key *k = &keys[0];
	OSSL_PARAM params[2];
	uint64_t gen;
	int ivlen, rc = 1;

	if (t == NULL)
		return 0;
	gen = tls_ticket_keys_get(t, keys);
	if (enc) {
		ivlen = EVP_CIPHER_get_iv_length(t->tc_cipher);
		if (ivlen <= 0 || RAND_bytes(iv, ivlen) != 1 ||
		    !EVP_EncryptInit_ex2(cctx, t->tc_cipher, k->tk_aes, iv,
					 NULL)) {
			rc = -1;
			goto done;
		}
		memcpy(name, k->tk_name, TLS_TICKET_NAME_LEN);
	} else {
		if (CRYPTO_memcmp(name, k->tk_name, TLS_TICKET_NAME_LEN) != 0) {
			k = &keys[1];
			if (gen == 0 ||
			    CRYPTO_memcmp(name, k->tk_name,
					  TLS_TICKET_NAME_LEN) != 0) {
				rc = 0;
				goto done;
			}
			rc = 2;
		}
		if (SSL_version(ssl) >= TLS1_3_VERSION)
			rc = 2;
		if (!EVP_DecryptInit_ex2(cctx, t->tc_cipher, k->tk_aes, iv,
					 NULL)) {
			rc = -1;
			goto done;
		}
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(hctx, k->tk_hmac, sizeof(k->tk_hmac), params))
		rc = -1;
done:
	OPENSSL_cleanse(keys, sizeof(keys));
	return rc;
}

static void
tls_ssl_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
		void *argp)
{
	tls_context_unref(ptr);
}

/* SSL_dup copies the pointer: the copy holds its own reference. */
static int
tls_ssl_ex_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	       int idx, long argl, void *argp)
{
	tls_context_ref(*from_d);
	return 1;
}

static void
tls_init_once(void)
{
	tls_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, tls_ssl_ex_dup,
					   tls_ssl_ex_free);
}

/* Files */

/* 1 if path exists, 0 if it does not, -1 (with err) if stat fails. */
static int
tls_file_exists(const char *path, char *err)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	return tls_fail(err, "%s: %s", path, strerror(errno));
}

/* tls_verror() into err[cap]. */
static int tls_failn(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
tls_failn(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tls_verror(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

int
tls_read_small_file(const char *path, size_t max, char **out, size_t *outlen,
		    char *err, size_t errcap)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		tls_failn(err, errcap, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		tls_failn(err, errcap, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		tls_failn(err, errcap,
			  "%s: not a regular file of at most %zu bytes", path,
			  max);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		tls_failn(err, errcap, "%s: out of memory", path);
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			tls_failn(err, errcap, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break; /* shrank under us: parse what is there */
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	close(fd);
	return -1;
}

/*
 * Reads a whole file (at most TLS_FILE_MAX bytes) into a buffer the caller
 * releases with tls_buf_free(): it may hold a private key. Returns 0, or
 * -1 with err.
 */
static int
tls_read_file(const char *path, char **out, size_t *outlen, char *err)
{
	return tls_read_small_file(path, TLS_FILE_MAX, out, outlen, err,
				   TLS_ERR_LEN);
}

static void
tls_buf_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/*
 * Reads the first certificate of a PEM file and, if chain is not NULL, the
 * certificates after it. Returns 0, or -1 with err naming the file.
 */
static int
tls_read_certs(const char *path, X509 **leaf, STACK_OF(X509) * *chain,
	       char *err)
{
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x;
	unsigned long e;
	int rc = -1;

	*leaf = NULL;
	if (chain != NULL)
		*chain = NULL;
	if (tls_read_file(path, &buf, &len, err) == -1)
		return -1;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		tls_fail(err, "%s: out of memory", path);
		goto done;
	}
	if ((*leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)) == NULL) {
		tls_fail(err, "%s: no certificate in the file", path);
		goto done;
	}
	if (chain == NULL) {
		rc = 0;
		goto done;
	}
	if ((*chain = sk_X509_new_null()) == NULL) {
		tls_fail(err, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		ERR_set_mark();
		if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_pop_to_mark(); /* the end of the file */
				break;
			}
			ERR_clear_last_mark();
			tls_fail(err, "%s: certificate %d of the chain is bad",
				 path, sk_X509_num(*chain) + 2);
			goto done;
		}
		ERR_clear_last_mark();
		if (!sk_X509_push(*chain, x)) {
			X509_free(x);
			tls_fail(err, "%s: out of memory", path);
			goto done;
		}
	}
	rc = 0;
done:
	BIO_free(bio);
	tls_buf_free(buf, len);
	if (rc == -1) {
		X509_free(*leaf);
		*leaf = NULL;
		if (chain != NULL) {
			sk_X509_pop_free(*chain, X509_free);
			*chain = NULL;
		}
	}
	return rc;
}

/* Encrypted keys would need a passphrase at every start: refused, and
 * never prompted for on a terminal. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Reads a PEM private key. Returns it, or NULL with err naming the file. */
static EVP_PKEY *
tls_read_key(const char *path, char *err)
{
	char *buf = NULL;
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if (tls_read_file(path, &buf, &len, err) == -1)
		return NULL;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		tls_fail(err, "%s: out of memory", path);
		goto done;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	BIO_free(bio);
	if (pkey != NULL)
		goto done;
	if (strstr(buf, "ENCRYPTED") != NULL) {
		ERR_clear_error(); /* only our callback's refusal */
		tls_fail(err,
			 "%s: the key is encrypted (a passphrase would be "
			 "needed at every start); give it unencrypted",
			 path);
	} else {
		tls_fail(err, "%s: no private key in the file", path);
	}
done:
	tls_buf_free(buf, len);
	return pkey;
}

static const char *
tls_key_type_name(const EVP_PKEY *pkey)
{
	if (pkey == NULL)
		return "none";
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		return "ECDSA";
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		return "RSA";
	case EVP_PKEY_ED25519:
		return "Ed25519";
	case EVP_PKEY_ED448:
		return "Ed448";
	default:
		return "other";
	}
}

/* Fills info from a certificate. Returns 0, or -1 with err naming path. */
static int
tls_info_fill(X509 *x, const char *path, struct tls_cert_info *info, char *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;
	struct tm tm;
	BIGNUM *sn;
	char *hex;
	BIO *bio;
	int n;

	memset(info, 0, sizeof(*info));
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return tls_fail(err, "%s: out of memory", path);
	if (X509_NAME_print_ex(bio, X509_get_subject_name(x), 0,
			       XN_FLAG_RFC2253) < 0) {
		BIO_free(bio);
		return tls_fail(err, "%s: unprintable subject", path);
	}
	n = BIO_read(bio, info->subject, sizeof(info->subject) - 1);
	info->subject[n > 0 ? n : 0] = '\0';
	BIO_free(bio);

	if (!X509_digest(x, EVP_sha256(), md, &mdlen) ||
	    mdlen * 3 > sizeof(info->fingerprint))
		return tls_fail(err, "%s: cannot compute the fingerprint",
				path);
	/* "XX:" per byte but the last's "XX" and NUL: mdlen * 3 bytes. */
	for (i = 0; i < mdlen; i++)
		snprintf(info->fingerprint + 3 * i,
			 sizeof(info->fingerprint) - 3 * i,
			 i + 1 < mdlen ? "%02X:" : "%02X", md[i]);

	/* RFC 5280 caps serials at 20 octets: 40 hex digits; a longer one
	 * (seen in the wild) is cut, it only labels a metric. */
	if ((sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) ==
		NULL ||
	    (hex = BN_bn2hex(sn)) == NULL) {
		BN_free(sn);
		return tls_fail(err, "%s: unreadable serial number", path);
	}
	snprintf(info->serial, sizeof(info->serial), "%s", hex);
	OPENSSL_free(hex);
	BN_free(sn);

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return tls_fail(err, "%s: unreadable notAfter", path);
	info->not_after = timegm(&tm);
	info->key_type = tls_key_type_name(X509_get0_pubkey(x));
	return 0;
}

int
tls_cert_file_info(const char *cert_path, struct tls_cert_info *info, char *err)
{
	X509 *x;
	int rc;

	ERR_clear_error();
	if (tls_read_certs(cert_path, &x, NULL, err) == -1)
		return -1;
	rc = tls_info_fill(x, cert_path, info, err);
	X509_free(x);
	return rc;
}

/* Self-signed certificates */

/*
 * Whether s can go into a certificate as a DNS name: labels of letters,
 * digits, '-' and '_' (compose service names), 1 to 63 bytes, an optional
 * leading "*." label, at most 253 bytes in all.
 */
static bool
tls_dns_name_ok(const char *s)
{
	size_t label = 0, len = strlen(s);
	const char *p;

	if (len == 0 || len > 253)
		return false;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/*
 * Appends name to the subjectAltNames: an IPv4 or IPv6 literal as an
 * iPAddress, anything else as a dNSName. Returns 0 or -1 (no memory).
 */
static int
tls_san_add(GENERAL_NAMES *gens, const char *name)
{
	unsigned char ip[16];
	GENERAL_NAME *gn;
	ASN1_STRING *s = NULL;
	int iplen = 0;

	if (inet_pton(AF_INET, name, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ip) == 1)
		iplen = 16;
	if ((gn = GENERAL_NAME_new()) == NULL)
		return -1;
	if (iplen > 0) {
		if ((s = ASN1_OCTET_STRING_new()) == NULL ||
		    !ASN1_OCTET_STRING_set(s, ip, iplen))
			goto fail;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
	} else {
		if ((s = ASN1_IA5STRING_new()) == NULL ||
		    !ASN1_STRING_set(s, name, -1))
			goto fail;
		GENERAL_NAME_set0_value(gn, GEN_DNS, s);
	}
	if (!sk_GENERAL_NAME_push(gens, gn)) {
		GENERAL_NAME_free(gn);
		return -1;
	}
	return 0;
fail:
	ASN1_STRING_free(s);
	GENERAL_NAME_free(gn);
	return -1;
}

static bool
tls_is_ip(const char *name)
{
	unsigned char ip[16];

	return inet_pton(AF_INET, name, ip) == 1 ||
	       inet_pton(AF_INET6, name, ip) == 1;
}

/* Checks the names of ss; returns 0, or -1 with err naming the setting. */
static int
tls_self_signed_check(const struct tls_self_signed *ss, char *err)
{
	const char *name;
	size_t i;

	if (ss->common_name == NULL || ss->common_name[0] == '\0')
		return tls_fail(err, "self_signed.common_name: missing");
	if (ss->nalt_names > 0 && ss->alt_names == NULL)
		return tls_fail(err, "self_signed.alt_names: missing");
	if (strlen(ss->common_name) > 64)
		return tls_fail(err,
				"self_signed.common_name \"%s\": longer than "
				"64 bytes (RFC 5280 ub-common-name)",
				ss->common_name);
	for (i = 0; i <= ss->nalt_names; i++) {
		name = i == 0 ? ss->common_name : ss->alt_names[i - 1];
		if (name == NULL ||
		    (!tls_is_ip(name) && !tls_dns_name_ok(name)))
			return tls_fail(err,
					"self_signed.%s \"%s\": not a DNS name "
					"or an IP address",
					i == 0 ? "common_name" : "alt_names",
					name != NULL ? name : "(null)");
	}
	return 0;
}

/* The subjectAltName extension: the CN, then the alt names, no repeats. */
static int
tls_san_build(X509 *x, const struct tls_self_signed *ss)
{
	GENERAL_NAMES *gens;
	const char *name;
	size_t i, j;
	bool dup;
	int rc = -1;

	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return -1;
	for (i = 0; i <= ss->nalt_names; i++) {
		name = i == 0 ? ss->common_name : ss->alt_names[i - 1];
		dup = false;
		for (j = 0; j < i && !dup; j++)
			dup = strcasecmp(name, j == 0
						   ? ss->common_name
						   : ss->alt_names[j - 1]) == 0;
		if (!dup && tls_san_add(gens, name) == -1)
			goto done;
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
			      X509V3_ADD_DEFAULT) == 1)
		rc = 0;
done:
	GENERAL_NAMES_free(gens);
	return rc;
}

static int
tls_ext_add(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A self-signed server certificate for pkey (see tls_make_self_signed). */
static X509 *
tls_x509_build(const struct tls_self_signed *ss, EVP_PKEY *pkey, char *err)
{
	unsigned char serial[16];
	unsigned days = ss->days != 0 ? ss->days : TLS_DAYS_DEFAULT;
	bool rsa = ss->key_type == TLS_KEY_RSA_2048;
	X509V3_CTX v3;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	X509 *x;

	if ((x = X509_new()) == NULL || !X509_set_version(x, X509_VERSION_3))
		goto fail;
	/* RFC 5280 4.1.2.2: positive, at most 20 bytes; 126 random bits. */
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)ss->common_name,
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto fail;
	/* An hour back, for clients whose clocks run behind. */
	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, NULL) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL)
		goto fail;
	if (!X509_set_pubkey(x, pkey))
		goto fail;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if (tls_ext_add(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ==
		-1 ||
	    tls_ext_add(x, &v3, NID_key_usage,
			rsa ? "critical,digitalSignature,keyEncipherment"
			    : "critical,digitalSignature") == -1 ||
	    tls_ext_add(x, &v3, NID_ext_key_usage, "serverAuth") == -1 ||
	    tls_ext_add(x, &v3, NID_subject_key_identifier, "hash") == -1 ||
	    tls_san_build(x, ss) == -1)
		goto fail;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto fail;
	BN_free(bn);
	return x;
fail:
	tls_fail(err, "self_signed \"%s\": cannot build the certificate",
		 ss->common_name);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/*
 * Creates path (O_EXCL: an existing file is an error, never replaced) with
 * mode and writes the key, or else the certificate, as PEM. *created tells
 * whether the file now exists because of this call. The stdio buffer, which
 * held the PEM of the key, is cleansed. Returns 0, or -1 with err.
 */
static int
tls_write_new(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *x,
	      bool *created, char *err)
{
	char buf[BUFSIZ];
	FILE *fp;
	int fd, ok, saved;

	*created = false;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1 && errno == EEXIST)
		return tls_fail(err, "%s: exists; not replacing it", path);
	if (fd == -1)
		return tls_fail(err, "%s: cannot create: %s", path,
				strerror(errno));
	*created = true;
	if ((fp = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		return tls_fail(err, "%s: %s", path, strerror(saved));
	}
	/* Else stdio would keep the key in a buffer of its own, uncleansed. */
	if (setvbuf(fp, buf, _IOFBF, sizeof(buf)) != 0) {
		(void)fclose(fp); /* nothing written yet */
		return tls_fail(err, "%s: cannot set its buffer", path);
	}
	errno = 0;
	ok = pkey != NULL
		 ? PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL)
		 : PEM_write_X509(fp, x);
	if (fflush(fp) != 0 || fsync(fd) == -1)
		ok = 0;
	saved = errno;
	if (fclose(fp) != 0 && ok) {
		ok = 0;
		saved = errno;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok)
		return tls_fail(err, "%s: cannot write: %s", path,
				saved != 0 ? strerror(saved) : "PEM encoding");
	return 0;
}

int
tls_make_self_signed(const char *cert_path, const char *key_path,
		     const struct tls_self_signed *ss,
		     struct tls_cert_info *info, char *err)
{
	bool key_made = false, cert_made = false;
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;

	ERR_clear_error();
	if (strcmp(cert_path, key_path) == 0)
		return tls_fail(err,
				"%s: the certificate and the key need two "
				"files to be made",
				cert_path);
	if (tls_self_signed_check(ss, err) == -1)
		return -1;
	if (ss->key_type == TLS_KEY_RSA_2048)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (pkey == NULL) {
		tls_fail(err, "%s: cannot generate the key", key_path);
		goto fail;
	}
	if ((x = tls_x509_build(ss, pkey, err)) == NULL)
		goto fail;
	if (tls_write_new(key_path, 0600, pkey, NULL, &key_made, err) == -1 ||
	    tls_write_new(cert_path, 0644, NULL, x, &cert_made, err) == -1 ||
	    tls_info_fill(x, cert_path, info, err) == -1)
		goto fail;
	info->self_made = true;
	EVP_PKEY_free(pkey);
	X509_free(x);
	return 0;
fail:
	if (cert_made)
		unlink(cert_path);
	if (key_made)
		unlink(key_path);
	EVP_PKEY_free(pkey);
	X509_free(x);
	return -1;
}

/* Contexts */

static void
tls_loaded_free(struct tls_loaded *ld)
{
	X509_free(ld->tl_x509);
	sk_X509_pop_free(ld->tl_chain, X509_free);
	EVP_PKEY_free(ld->tl_pkey);
	tls_names_free(&ld->tl_names);
	memset(ld, 0, sizeof(*ld));
}

/*
 * Makes the pair of cc if it is missing and allowed, then reads and checks
 * it into ld and info. Returns 0, or -1 with err naming the file.
 */
static int
tls_cert_load(const struct tls_cert_config *cc, struct tls_loaded *ld,
	      struct tls_cert_info *info, char *err)
{
	bool made = false;
	int have_cert, have_key;

	if (cc->cert_path == NULL || cc->key_path == NULL)
		return tls_fail(err, "tls: a certificate needs both a "
				     "cert_path and a key_path");
	if ((have_cert = tls_file_exists(cc->cert_path, err)) == -1 ||
	    (have_key = tls_file_exists(cc->key_path, err)) == -1)
		return -1;
	if (!have_cert && !have_key) {
		if (cc->self_signed == NULL)
			return tls_fail(err,
					"%s: no such file (and no self_signed "
					"in the config)",
					cc->cert_path);
		if (tls_make_self_signed(cc->cert_path, cc->key_path,
					 cc->self_signed, info, err) == -1)
			return -1;
		made = true;
		log_info("%s: made a self-signed %s certificate for %s, "
			 "SHA-256 fingerprint %s; key in %s",
			 cc->cert_path, info->key_type,
			 cc->self_signed->common_name, info->fingerprint,
			 cc->key_path);
	} else if (!have_key) {
		return tls_fail(err,
				"%s: no such file, but %s exists (a half pair "
				"is never completed: add the key or remove "
				"the certificate)",
				cc->key_path, cc->cert_path);
	} else if (!have_cert) {
		return tls_fail(err,
				"%s: no such file, but %s exists (a half pair "
				"is never completed: add the certificate or "
				"remove the key)",
				cc->cert_path, cc->key_path);
	}

	if (tls_read_certs(cc->cert_path, &ld->tl_x509, &ld->tl_chain, err) ==
		-1 ||
	    (ld->tl_pkey = tls_read_key(cc->key_path, err)) == NULL)
		return -1;
	if (!X509_check_private_key(ld->tl_x509, ld->tl_pkey))
		return tls_fail(err, "%s: does not match %s", cc->key_path,
				cc->cert_path);
	if (tls_cert_names(ld->tl_x509, &ld->tl_names) == -1)
		return tls_fail(err, "%s: out of memory", cc->cert_path);
	if (tls_info_fill(ld->tl_x509, cc->cert_path, info, err) == -1)
		return -1;
	info->self_made = made;
	if (info->not_after < time(NULL))
		log_warn("%s: expired (subject %s); serving it anyway",
			 cc->cert_path, info->subject);
	return 0;
}

/*
 * OpenSSL skips the names it does not know in a list that has at least one
 * it knows, so a typo would quietly drop a cipher. Each name of list must
 * select something on its own: for ciphers, every element that adds
 * ciphers (not a "!", "-" or "+" operator or an "@" directive); for the
 * TLS 1.3 ciphersuites, every name. Uses ctx as scratch: the caller sets
 * the real list afterwards. Returns 0, or -1 with err naming the setting.
 */
static int
tls_cipher_names_check(SSL_CTX *ctx, const char *setting, const char *list,
		       bool suites, char *err)
{
	const char *seps = suites ? ":" : ": ,";
	const char *p = list;
	char name[128];
	size_t n;
	int ok;

	if (list[strspn(list, seps)] == '\0')
		return tls_fail(err, "%s \"%s\": empty", setting, list);
	for (; *p != '\0'; p += n) {
		p += strspn(p, seps);
		if ((n = strcspn(p, seps)) == 0)
			break;
		if (!suites && strchr("!-+@", *p) != NULL)
			continue;
		if (n >= sizeof(name))
			return tls_fail(err, "%s \"%s\": a name is too long",
					setting, list);
		memcpy(name, p, n);
		name[n] = '\0';
		ok = suites ? SSL_CTX_set_ciphersuites(ctx, name)
			    : SSL_CTX_set_cipher_list(ctx, name);
		if (!ok)
			return tls_fail(err,
					"%s \"%s\": \"%s\" selects nothing",
					setting, list, name);
	}
	return 0;
}

/* An SSL_CTX with the policy of the file comment, without certificates. */
static SSL_CTX *
tls_ctx_new(const struct tls_settings *s, char *err)
{
	const char *ciphers =
	    s->ciphers != NULL ? s->ciphers : TLS_CIPHERS_DEFAULT;
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_fail(err, "tls: cannot make an SSL_CTX");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		tls_fail(err, "tls: cannot limit the protocol versions");
		goto fail;
	}
	if (tls_cipher_names_check(ctx, "ciphers", ciphers, false, err) == -1)
		goto fail;
	if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
		tls_fail(err, "ciphers \"%s\": no usable TLS 1.2 cipher",
			 ciphers);
		goto fail;
	}
	if (s->ciphersuites != NULL) {
		if (tls_cipher_names_check(ctx, "ciphersuites", s->ciphersuites,
					   true, err) == -1)
			goto fail;
		if (!SSL_CTX_set_ciphersuites(ctx, s->ciphersuites)) {
			tls_fail(err, "ciphersuites \"%s\": refused",
				 s->ciphersuites);
			goto fail;
		}
	}
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		tls_fail(err, "tls: groups \"%s\" refused", TLS_GROUPS);
		goto fail;
	}
	/*
	 * No SSL_OP_CIPHER_SERVER_PREFERENCE: as in Mozilla intermediate,
	 * every suite offered is strong, so the client picks, and one without
	 * AES hardware can choose ChaCha20. No renegotiation (TLS 1.2; a
	 * client could make us redo handshakes on one connection), no
	 * compression (CRIME). An EOF without close_notify reads as a close:
	 * HTTP/1.1 requests are framed by Content-Length or chunked, so a
	 * truncated one is seen by the parser, and browsers often omit it.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_NO_COMPRESSION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (!s->session_tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/*
	 * The connection layer writes from evbuffer chunks that move between
	 * a retried SSL_write and the next, accepts partial writes, and keeps
	 * many idle keep-alive connections: their buffers are released.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				  SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
	/* On every SSL_CTX: OpenSSL asks the one SNI switched to. */
	if (!SSL_CTX_set_tlsext_status_cb(ctx, tls_status_cb)) {
		tls_fail(err, "tls: cannot set the OCSP status callback");
		goto fail;
	}
	/*
	 * An SSL looks up and stores sessions (and calls the ticket callback)
	 * through its session_ctx, the SSL_CTX it was made from, which
	 * SSL_set_SSL_CTX leaves alone. The session-ID cache is not OpenSSL's
	 * per-SSL_CTX one but the process's (sesscache.c), so that it outlives
	 * a reload; every SSL_CTX gets the same settings so that nothing
	 * depends on which one is asked.
	 */
	if (sesscache_attach(ctx) == -1) {
		tls_fail(err, "tls: no session cache");
		goto fail;
	}
	if (!SSL_CTX_set_session_id_context(ctx,
					    (const unsigned char *)TLS_SID_CTX,
					    sizeof(TLS_SID_CTX) - 1)) {
		tls_fail(err, "tls: cannot set the session id context");
		goto fail;
	}
	if (s->session_tickets &&
	    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb)) {
		tls_fail(err, "tls: cannot set the session ticket callback");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Puts a loaded pair into ctx, beside a pair of another key type. */
static int
tls_ctx_add_cert(SSL_CTX *ctx, struct tls_loaded *ld,
		 const struct tls_cert_config *cc, char *err)
{
	if (!SSL_CTX_use_certificate(ctx, ld->tl_x509))
		return tls_fail(err, "%s: certificate refused", cc->cert_path);
	if (!SSL_CTX_use_PrivateKey(ctx, ld->tl_pkey) ||
	    !SSL_CTX_check_private_key(ctx))
		return tls_fail(err, "%s: does not match %s", cc->key_path,
				cc->cert_path);
	if (!SSL_CTX_set1_chain(ctx, ld->tl_chain))
		return tls_fail(err, "%s: chain refused", cc->cert_path);
	return 0;
}

/*
 * The group for certificate i: the first one with the same names that has
 * no certificate of the same key type yet (OpenSSL holds one certificate
 * per key type in an SSL_CTX); t->tc_ngroups if none.
 */
static size_t
tls_group_pick(const struct tls_context *t, const struct tls_settings *s,
	       const struct tls_loaded *ld, size_t i)
{
	int type = EVP_PKEY_get_base_id(ld[i].tl_pkey);
	size_t g, k;
	bool taken;

	for (g = 0; g < t->tc_ngroups; g++) {
		if (!tls_names_equal(&t->tc_groups[g].tg_names,
				     &ld[i].tl_names))
			continue;
		taken = false;
		for (k = 0; k < i && !taken; k++)
			taken = ld[k].tl_group == g &&
				EVP_PKEY_get_base_id(ld[k].tl_pkey) == type;
		if (!taken)
			return g;
		log_warn("%s: same names and key type as %s; SNI never "
			 "selects it",
			 s->certs[i].cert_path, s->certs[k - 1].cert_path);
	}
	return t->tc_ngroups;
}

static int
tls_groups_build(struct tls_context *t, const struct tls_settings *s,
		 struct tls_loaded *ld, char *err)
{
	struct tls_group *g;
	size_t i;

	if ((t->tc_groups = calloc(s->ncerts, sizeof(*t->tc_groups))) == NULL)
		return tls_fail(err, "tls: out of memory");
	for (i = 0; i < s->ncerts; i++) {
		if (i > 0 && ld[i].tl_names.tn_n == 0)
			log_warn("%s: no DNS name in the certificate; SNI "
				 "never selects it",
				 s->certs[i].cert_path);
		ld[i].tl_group = tls_group_pick(t, s, ld, i);
		g = &t->tc_groups[ld[i].tl_group];
		if (ld[i].tl_group == t->tc_ngroups) {
			if ((g->tg_ctx = tls_ctx_new(s, err)) == NULL)
				return -1;
			t->tc_ngroups++;
			g->tg_names = ld[i].tl_names;
			ld[i].tl_names.tn_v = NULL;
			ld[i].tl_names.tn_n = 0;
		}
		if (tls_ctx_add_cert(g->tg_ctx, &ld[i], &s->certs[i], err) ==
		    -1)
			return -1;
	}
	SSL_CTX_set_client_hello_cb(t->tc_groups[0].tg_ctx, tls_client_hello_cb,
				    NULL);
	return 0;
}

/*
 * The OCSP staple source of a loaded pair, when it has one (ocsp.h).
 * Returns 0, or -1 with err naming the configuration key by its JSON path.
 */
static int
tls_ocsp_setup(const struct tls_cert_config *cc, struct tls_loaded *ld,
	       const struct tls_cert_info *info, struct tls_ocsp *o, char *err)
{
	struct ocsp_source src = {cc->ocsp_responder, cc->ocsp_file,
				  cc->cert_path,      info->subject,
				  info->key_type,     info->serial};
	char why[OCSP_ERR_LEN];

	if (!X509_up_ref(ld->tl_x509))
		return tls_fail(err, "%s: out of memory", cc->cert_path);
	o->to_leaf = ld->tl_x509;
	if (!cc->ocsp)
		return 0;
	if (ocsp_slot_make(ld->tl_x509, ld->tl_chain, &src, &o->to_slot, why) ==
	    -1)
		return tls_fail(err, "%s%s%s", cc->where,
				cc->where[0] != '\0' ? "." : "", why);
	return 0;
}

/* Fills a ticket key from the CSPRNG; 0, or -1 (key left zeroed). */
static int
tls_ticket_key_make(struct tls_ticket_key *k)
{
	if (RAND_bytes(k->tk_name, sizeof(k->tk_name)) == 1 &&
	    RAND_priv_bytes(k->tk_aes, sizeof(k->tk_aes)) == 1 &&
	    RAND_priv_bytes(k->tk_hmac, sizeof(k->tk_hmac)) == 1)
		return 0;
	OPENSSL_cleanse(k, sizeof(*k));
	return -1;
}

static void
tls_context_free(struct tls_context *t)
{
	size_t i;

	for (i = 0; t->tc_ocsp != NULL && i < t->tc_ncerts; i++) {
		X509_free(t->tc_ocsp[i].to_leaf);
		ocsp_slot_unref(t->tc_ocsp[i].to_slot);
	}
	free(t->tc_ocsp);
	for (i = 0; i < t->tc_ngroups; i++) {
		SSL_CTX_free(t->tc_groups[i].tg_ctx);
		tls_names_free(&t->tc_groups[i].tg_names);
	}
	free(t->tc_groups);
	free(t->tc_info);
	EVP_CIPHER_free(t->tc_cipher);
	OPENSSL_cleanse(t->tc_keys, sizeof(t->tc_keys));
	free(t);
}

struct tls_context *
tls_context_new(const struct tls_settings *s, char *err)
{
	struct tls_ticket_key key;
	struct tls_loaded *ld = NULL;
	struct tls_context *t;
	size_t i;

	ERR_clear_error();
	if (pthread_once(&tls_once, tls_init_once) != 0 || tls_ssl_idx < 0) {
		tls_fail(err, "tls: cannot register the SSL ex_data index");
		return NULL;
	}
	/* As many sessions as OpenSSL's own cache would hold. */
	if (sesscache_init(SSL_SESSION_CACHE_MAX_SIZE_DEFAULT) == -1) {
		tls_fail(err, "tls: out of memory for the session cache");
		return NULL;
	}
	if (s->ncerts == 0) {
		tls_fail(err, "tls: no certificate configured");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->tc_info = calloc(s->ncerts, sizeof(*t->tc_info))) == NULL ||
	    (t->tc_ocsp = calloc(s->ncerts, sizeof(*t->tc_ocsp))) == NULL ||
	    (ld = calloc(s->ncerts, sizeof(*ld))) == NULL) {
		tls_fail(err, "tls: out of memory");
		goto fail;
	}
	atomic_init(&t->tc_refs, 1);
	atomic_init(&t->tc_key_gen, 0);
	t->tc_ncerts = s->ncerts;
	t->tc_tickets = s->session_tickets;
	t->tc_rotation_ms = s->ticket_key_rotation_ms;
	t->tc_rotated_ms = tls_now_ms();
	if (s->session_tickets) {
		t->tc_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
		if (t->tc_cipher == NULL || tls_ticket_key_make(&key) == -1) {
			tls_fail(err, "tls: cannot make a session ticket key");
			goto fail;
		}
		tls_ticket_slot_put(t, 0, &key);
		OPENSSL_cleanse(&key, sizeof(key));
	}
	for (i = 0; i < s->ncerts; i++)
		if (tls_cert_load(&s->certs[i], &ld[i], &t->tc_info[i], err) ==
			-1 ||
		    tls_ocsp_setup(&s->certs[i], &ld[i], &t->tc_info[i],
				   &t->tc_ocsp[i], err) == -1)
			goto fail;
	if (tls_groups_build(t, s, ld, err) == -1)
		goto fail;
	for (i = 0; i < s->ncerts; i++)
		tls_loaded_free(&ld[i]);
	free(ld);
	return t;
fail:
	if (ld != NULL)
		for (i = 0; i < s->ncerts; i++)
			tls_loaded_free(&ld[i]);
	free(ld);
	if (t != NULL)
		tls_context_free(t);
	return NULL;
}

struct tls_context *
tls_context_ref(struct tls_context *t)
{
	if (t != NULL)
		atomic_fetch_add_explicit(&t->tc_refs, 1, memory_order_relaxed);
	return t;
}

void
tls_context_unref(struct tls_context *t)
{
	if (t != NULL && atomic_fetch_sub_explicit(&t->tc_refs, 1,
						   memory_order_acq_rel) == 1)
		tls_context_free(t);
}

SSL *
tls_context_new_ssl(struct tls_context *t)
{
	SSL *ssl;

	if ((ssl = SSL_new(t->tc_groups[0].tg_ctx)) == NULL)
		return NULL;
	if (!SSL_set_ex_data(ssl, tls_ssl_idx, tls_context_ref(t))) {
		tls_context_unref(t);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

size_t
tls_context_certs(const struct tls_context *t,
		  const struct tls_cert_info **info)
{
	*info = t->tc_info;
	return t->tc_ncerts;
}

void
tls_context_rotate_tickets(struct tls_context *t)
{
	struct tls_ticket_key k;
	uint64_t now, gen;

	if (t == NULL || !t->tc_tickets)
		return;
	now = tls_now_ms();
	if (now - t->tc_rotated_ms < t->tc_rotation_ms)
		return;
	if (tls_ticket_key_make(&k) == -1) {
		log_warn("tls: cannot make a session ticket key; the current "
			 "one stays");
		ERR_clear_error();
		return;
	}
	gen = atomic_load_explicit(&t->tc_key_gen, memory_order_relaxed);
	tls_ticket_slot_put(t, gen + 1, &k);
	OPENSSL_cleanse(&k, sizeof(k));
	atomic_store_explicit(&t->tc_key_gen, gen + 1, memory_order_release);
	t->tc_rotated_ms = now;
}

void
tls_context_ocsp_sync(const struct tls_context *t)
{
	struct ocsp_slot **slots = NULL;
	size_t i, n = 0;

	if (t != NULL) {
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): of pointers */
		slots = calloc(t->tc_ncerts, sizeof(*slots));
		if (slots == NULL) {
			log_error("tls: out of memory; OCSP staples not "
				  "refreshed");
			return;
		}
	}
	for (i = 0; t != NULL && i < t->tc_ncerts; i++)
		if (t->tc_ocsp[i].to_slot != NULL)
			slots[n++] = t->tc_ocsp[i].to_slot;
	ocsp_sync(slots, n);
	free(slots);
}

void
tls_context_keep_tickets(struct tls_context *t, const struct tls_context *old)
{
	struct tls_ticket_key k;
	uint64_t gen, g;

	if (t == NULL || old == NULL || !t->tc_tickets || !old->tc_tickets)
		return;
	/* old's only writer is this thread: its ring holds still. */
	gen = atomic_load_explicit(&old->tc_key_gen, memory_order_relaxed);
	for (g = 0; g < TLS_TICKET_SLOTS; g++) {
		tls_ticket_slot_get(old, g, &k);
		tls_ticket_slot_put(t, g, &k);
	}
	OPENSSL_cleanse(&k, sizeof(k));
	atomic_store_explicit(&t->tc_key_gen, gen, memory_order_relaxed);
	t->tc_rotated_ms = old->tc_rotated_ms;
}
