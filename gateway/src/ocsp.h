/*
 * ocsp.h - OCSP stapling (RFC 6066 section 8, RFC 6960, RFC 5019): one
 * slot per served certificate that can have a staple, filled from the
 * responder its authorityInfoAccess names (or a configured one) by the
 * main thread's loop, or from a file, and read by handshakes in every
 * worker.
 *
 * Sharing: a slot holds an atomic pointer to an immutable staple. The main
 * thread publishes a new one with an exchange and retires the old one; a
 * handshake counts itself in the slot's readers while it loads the pointer
 * and copies the bytes. A retired staple is freed once the main thread
 * sees no reader (seq_cst: a reader counted after the exchange can only
 * load the new pointer), so a handshake never takes a lock and never sees
 * a freed buffer.
 *
 * What may be stapled: a response that parses, says "successful", is
 * signed by the issuer or by a responder the issuer delegated to
 * (OCSPSigning), answers for this certificate with "good" or "revoked",
 * and is between thisUpdate and nextUpdate. A revoked status is stapled,
 * as the CA said it, and logged as an error. Anything else is dropped and
 * counted, never stapled.
 */
#ifndef PORTCULLIS_OCSP_H
#define PORTCULLIS_OCSP_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct event_base;
struct evbuffer;
struct ocsp_slot;

#define OCSP_ERR_LEN 256
#define OCSP_LEEWAY_S 300 /* clock skew allowed on thisUpdate/nextUpdate */

/* What a response says about one certificate. */
enum ocsp_cert_status {
	OCSP_GOOD,
	OCSP_REVOKED,
};

struct ocsp_facts {
	enum ocsp_cert_status status;
	time_t this_update;
	time_t next_update; /* 0: the response has none */
};

/*
 * Checks a DER OCSPResponse for leaf, issued by issuer, at time now (see
 * the file comment): chain holds the certificates that came with the leaf
 * (untrusted; the issuer is the trust anchor). Returns 0 and the facts,
 * or -1 with the reason in why[OCSP_ERR_LEN]. No I/O; OpenSSL parses the
 * DER.
 */
int ocsp_response_check(const unsigned char *der, size_t len, X509 *leaf,
			X509 *issuer, STACK_OF(X509) * chain, time_t now,
			struct ocsp_facts *f, char *why);

/* The issuer of leaf among chain, or NULL (self-signed, or not there). */
X509 *ocsp_issuer(X509 *leaf, STACK_OF(X509) * chain);

/* Where a certificate's staple comes from, and its metric labels. */
struct ocsp_source {
	const char *responder; /* URL overriding the AIA one; NULL: AIA */
	const char *file;      /* DER response file; NULL: fetch */
	const char *cert_path; /* for log lines */
	const char *subject, *key_type, *serial; /* labels */
};

/*
 * Makes the slot of a certificate: 0 with *out NULL when there is nothing
 * to staple (no responder, or no issuer: logged when it looks like a
 * mistake), 0 with a slot (one reference for the caller), or -1 with
 * err[OCSP_ERR_LEN] starting with the configuration key at fault
 * ("ocsp_file: ..."). A file is read and checked now, and must hold a
 * stapleable response. Once ocsp_init() has run, a slot fetching for the
 * same certificate from the same responder is shared (its staple survives
 * a reload). Main thread.
 */
int ocsp_slot_make(X509 *leaf, STACK_OF(X509) * chain,
		   const struct ocsp_source *src, struct ocsp_slot **out,
		   char *err);

struct ocsp_slot *ocsp_slot_ref(struct ocsp_slot *s);

/* Drops a reference; any thread. NULL is fine. */
void ocsp_slot_unref(struct ocsp_slot *s);

/*
 * A copy of the slot's staple in OPENSSL_malloc'd memory (for
 * SSL_set_tlsext_status_ocsp_resp, which takes it): 1 with *der and *len,
 * or 0 when there is none valid at now. Any thread; no lock.
 */
int ocsp_slot_copy(struct ocsp_slot *s, time_t now, unsigned char **der,
		   size_t *len);

/* Main thread, once, before ocsp_sync: fetches run on base. 0 or -1. */
int ocsp_init(struct event_base *base);

/*
 * Main thread: the slots of the context now serving (NULLs skipped) are
 * the ones kept up to date; a new one is fetched at once, in the
 * background. Slots no longer listed stop.
 */
void ocsp_sync(struct ocsp_slot *const *slots, size_t n);

/* Appends the portcullis_tls_ocsp_* metrics (main thread). */
void ocsp_render(struct evbuffer *out);

/* Stops every fetch and timer (main thread). */
void ocsp_free(void);

#endif
