/*
 * test_tls.c - self-made certificates (fields, modes, never overwriting),
 * loading and its errors, and real in-memory handshakes against the
 * contexts: SNI, RSA beside ECDSA, protocol and cipher policy, ALPN,
 * session tickets across key rotations, and the session cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tls.h"

#define PATH_LEN 512

static char tmpdir[] = "/tmp/test_tls.XXXXXX";

/*
 * The SNI context, built once: a.test (ECDSA, the default), b.test, an RSA
 * certificate for a.test (grouped with the first), and a wildcard.
 */
enum { SNI_A, SNI_B, SNI_A_RSA, SNI_WILD, SNI_N };
static struct tls_context *sni;

static char *
tmp_path(char *buf, const char *name)
{
	snprintf(buf, PATH_LEN, "%s/%s", tmpdir, name);
	return buf;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static bool
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* A certificate config for name.crt / name.key in the temp dir. */
struct pair {
	char crt[PATH_LEN];
	char key[PATH_LEN];
	char *alt[4];
	struct tls_self_signed ss;
	struct tls_cert_config cc;
};

static void
pair_init(struct pair *p, const char *name, const char *cn,
	  enum tls_key_type type, bool self_signed)
{
	char file[128];

	memset(p, 0, sizeof(*p));
	snprintf(file, sizeof(file), "%s.crt", name);
	tmp_path(p->crt, file);
	snprintf(file, sizeof(file), "%s.key", name);
	tmp_path(p->key, file);
	p->ss.common_name = (char *)cn;
	p->ss.alt_names = p->alt;
	p->ss.key_type = type;
	p->cc.cert_path = p->crt;
	p->cc.key_path = p->key;
	p->cc.self_signed = self_signed ? &p->ss : NULL;
}

static struct tls_settings
settings_for(struct tls_cert_config *certs, size_t n)
{
	struct tls_settings s = {
	    .certs = certs,
	    .ncerts = n,
	    .session_tickets = true,
	    .ticket_key_rotation_ms = 12 * 3600 * 1000,
	};

	return s;
}

static void
fingerprint_of(X509 *x, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n, i;

	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	assert_true(outlen >= n * 3);
	for (i = 0; i < n; i++)
		snprintf(out + 3 * i, outlen - 3 * i,
			 i + 1 < n ? "%02X:" : "%02X", md[i]);
}

static X509 *
read_cert(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	(void)fclose(fp);
	assert_non_null(x);
	return x;
}

/* Handshakes */

struct client {
	const char *sni;
	const char *sigalgs;
	const char *ciphers;
	int max_version;
	const unsigned char *alpn; /* wire format */
	unsigned int alpn_len;
	SSL_SESSION *session;
	bool weak; /* security level 0, to offer TLS 1.1 at all */
};

struct result {
	SSL *cli;
	SSL *srv;
	unsigned long srv_err; /* the server's first error, if it failed */
};

static SSL_CTX *client_ctx;

static bool
side_failed(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);

	return rc <= 0 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

/*
 * Connects a client with the options c to a server SSL of t over a BIO
 * pair, and steps both until both are done or one fails. After success the
 * client reads once, which takes in the TLS 1.3 session tickets. Returns 0
 * or -1; r holds both SSLs either way (end_result frees them).
 */
static int
connect_to(struct tls_context *t, const struct client *c, struct result *r)
{
	BIO *bc, *bs;
	char byte;
	int i, rc, rs;

	memset(r, 0, sizeof(*r));
	ERR_clear_error();
	r->srv = tls_context_new_ssl(t);
	assert_non_null(r->srv);
	r->cli = SSL_new(client_ctx);
	assert_non_null(r->cli);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(r->cli, bc, bc);
	SSL_set_bio(r->srv, bs, bs);
	SSL_set_connect_state(r->cli);
	if (c->weak) {
		SSL_set_security_level(r->cli, 0);
		assert_int_equal(
		    SSL_set_cipher_list(r->cli, "DEFAULT:@SECLEVEL=0"), 1);
	}
	if (c->sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(r->cli, c->sni), 1);
	if (c->sigalgs != NULL)
		assert_int_equal(SSL_set1_sigalgs_list(r->cli, c->sigalgs), 1);
	if (c->ciphers != NULL)
		assert_int_equal(SSL_set_cipher_list(r->cli, c->ciphers), 1);
	if (c->max_version != 0)
		assert_int_equal(
		    SSL_set_max_proto_version(r->cli, c->max_version), 1);
	if (c->alpn != NULL)
		assert_int_equal(
		    SSL_set_alpn_protos(r->cli, c->alpn, c->alpn_len), 0);
	if (c->session != NULL)
		assert_int_equal(SSL_set_session(r->cli, c->session), 1);

	for (i = 0; i < 100; i++) {
		rc = SSL_do_handshake(r->cli);
		if (side_failed(r->cli, rc))
			return -1;
		rs = SSL_do_handshake(r->srv);
		if (side_failed(r->srv, rs)) {
			r->srv_err = ERR_peek_error();
			return -1;
		}
		if (rc == 1 && rs == 1) {
			rc = SSL_read(r->cli, &byte, 1);
			assert_int_equal(SSL_get_error(r->cli, rc),
					 SSL_ERROR_WANT_READ);
			return 0;
		}
	}
	return -1;
}

/*
 * Frees both ends, after a close_notify from each if the handshake
 * finished: OpenSSL drops the session of an SSL freed without one.
 */
static void
end_result(struct result *r)
{
	if (r->cli != NULL && SSL_is_init_finished(r->cli))
		SSL_shutdown(r->cli);
	if (r->srv != NULL && SSL_is_init_finished(r->srv))
		SSL_shutdown(r->srv);
	SSL_free(r->cli);
	SSL_free(r->srv);
	ERR_clear_error();
}

/* Which certificate of t the client got, by fingerprint; -1 if none. */
static int
served_cert(struct tls_context *t, SSL *cli)
{
	const struct tls_cert_info *info;
	char fp[96];
	size_t i, n;
	X509 *peer;

	if ((peer = SSL_get1_peer_certificate(cli)) == NULL)
		return -1;
	fingerprint_of(peer, fp, sizeof(fp));
	X509_free(peer);
	n = tls_context_certs(t, &info);
	for (i = 0; i < n; i++)
		if (strcmp(info[i].fingerprint, fp) == 0)
			return (int)i;
	return -1;
}

/* The certificate served for SNI name (NULL: no SNI); -1 on failure. */
static int
cert_for_sni(const char *name)
{
	struct client c = {.sni = name};
	struct result r;
	int which = -1;

	if (connect_to(sni, &c, &r) == 0)
		which = served_cert(sni, r.cli);
	end_result(&r);
	return which;
}

/* Self-made certificates */

static void
test_self_signed_ecdsa_fields(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN], fp[96];
	const GENERAL_NAME *gn;
	GENERAL_NAMES *gens;
	BASIC_CONSTRAINTS *bc;
	const ASN1_STRING *s;
	struct stat st;
	struct pair p;
	time_t want;
	int i, crit, type, ndns = 0, nip = 0;
	BIGNUM *serial;
	X509 *x;

	pair_init(&p, "ec", "gw.test", TLS_KEY_ECDSA_P256, true);
	p.alt[0] = "localhost";
	p.alt[1] = "127.0.0.1";
	p.alt[2] = "::1";
	p.alt[3] = "GW.test"; /* the CN again: not repeated */
	p.ss.nalt_names = 4;
	p.ss.days = 30;
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &info, err),
			 0);

	assert_int_equal(stat(p.key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	x = read_cert(p.crt);

	assert_string_equal(info.subject, "CN=gw.test");
	assert_string_equal(info.key_type, "ECDSA");
	assert_true(info.self_made);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 256);
	want = time(NULL) + 30 * 86400;
	assert_true(info.not_after > want - 7200 &&
		    info.not_after < want + 7200);

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 4);
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		s = GENERAL_NAME_get0_value(gn, &type);
		if (type == GEN_DNS) {
			ndns++;
			assert_true(
			    strcmp((const char *)ASN1_STRING_get0_data(s),
				   "gw.test") == 0 ||
			    strcmp((const char *)ASN1_STRING_get0_data(s),
				   "localhost") == 0);
		} else {
			assert_int_equal(type, GEN_IPADD);
			nip++;
			if (ASN1_STRING_length(s) == 4)
				assert_memory_equal(ASN1_STRING_get0_data(s),
						    "\x7f\0\0\x01", 4);
			else
				assert_int_equal(ASN1_STRING_length(s), 16);
		}
	}
	assert_int_equal(ndns, 2);
	assert_int_equal(nip, 2);
	GENERAL_NAMES_free(gens);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(bc->ca, 0);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(X509_get_version(x), X509_VERSION_3);

	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_non_null(serial);
	assert_false(BN_is_negative(serial));
	assert_int_equal(BN_num_bytes(serial), 16);
	BN_free(serial);

	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	fingerprint_of(x, fp, sizeof(fp));
	assert_string_equal(info.fingerprint, fp);
	X509_free(x);
}

static void
test_self_signed_rsa_2048(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN];
	struct pair p;
	X509 *x;

	pair_init(&p, "rsa", "rsa.test", TLS_KEY_RSA_2048, true);
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &info, err),
			 0);
	assert_string_equal(info.key_type, "RSA");
	x = read_cert(p.crt);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(x)),
			 EVP_PKEY_RSA);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 2048);
	assert_int_equal(X509_get_key_usage(x),
			 KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	X509_free(x);
}

static void
test_self_signed_never_overwrites_key(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN], buf[64];
	struct pair p;
	FILE *fp;
	size_t n;

	pair_init(&p, "keep", "keep.test", TLS_KEY_ECDSA_P256, true);
	write_file(p.key, "keep me\n");
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &info, err),
			 -1);
	assert_non_null(strstr(err, p.key));
	fp = fopen(p.key, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	(void)fclose(fp);
	buf[n] = '\0';
	assert_string_equal(buf, "keep me\n");
	assert_false(file_exists(p.crt));
}

static void
test_self_signed_failure_removes_its_key(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN];
	struct pair p;

	pair_init(&p, "half", "half.test", TLS_KEY_ECDSA_P256, true);
	tmp_path(p.crt, "no-such-dir/half.crt");
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &info, err),
			 -1);
	assert_non_null(strstr(err, p.crt));
	assert_false(file_exists(p.key));
}

static void
test_self_signed_rejects_bad_name(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN];
	struct pair p;

	pair_init(&p, "bad", "bad.test", TLS_KEY_ECDSA_P256, true);
	p.alt[0] = "two words";
	p.ss.nalt_names = 1;
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &info, err),
			 -1);
	assert_non_null(strstr(err, "self_signed.alt_names \"two words\""));
	assert_false(file_exists(p.key));
}

/* Loading */

static void
test_context_makes_then_loads_same_pair(void **state)
{
	const struct tls_cert_info *info;
	struct tls_settings s;
	struct tls_context *t;
	char err[TLS_ERR_LEN], fp[96];
	struct pair p;

	pair_init(&p, "gen", "gen.test", TLS_KEY_ECDSA_P256, true);
	s = settings_for(&p.cc, 1);
	t = tls_context_new(&s, err);
	assert_non_null(t);
	assert_int_equal(tls_context_certs(t, &info), 1);
	assert_true(info[0].self_made);
	assert_string_equal(info[0].subject, "CN=gen.test");
	snprintf(fp, sizeof(fp), "%s", info[0].fingerprint);
	tls_context_unref(t);

	t = tls_context_new(&s, err);
	assert_non_null(t);
	assert_int_equal(tls_context_certs(t, &info), 1);
	assert_false(info[0].self_made);
	assert_string_equal(info[0].fingerprint, fp);
	tls_context_unref(t);
}

static void
test_context_refuses_cert_without_key(void **state)
{
	struct tls_cert_info made, after;
	struct tls_settings s;
	char err[TLS_ERR_LEN];
	struct pair p;

	pair_init(&p, "nokey", "nokey.test", TLS_KEY_ECDSA_P256, true);
	assert_int_equal(tls_make_self_signed(p.crt, p.key, &p.ss, &made, err),
			 0);
	assert_int_equal(unlink(p.key), 0);
	s = settings_for(&p.cc, 1);
	assert_null(tls_context_new(&s, err));
	assert_non_null(strstr(err, p.key));
	assert_false(file_exists(p.key));
	assert_int_equal(tls_cert_file_info(p.crt, &after, err), 0);
	assert_string_equal(after.fingerprint, made.fingerprint);
}

static void
test_context_refuses_missing_pair_without_self_signed(void **state)
{
	struct tls_settings s;
	char err[TLS_ERR_LEN], want[PATH_LEN + 64];
	struct pair p;

	pair_init(&p, "absent", "absent.test", TLS_KEY_ECDSA_P256, false);
	s = settings_for(&p.cc, 1);
	assert_null(tls_context_new(&s, err));
	snprintf(want, sizeof(want),
		 "%s: no such file (and no self_signed in the config)", p.crt);
	assert_string_equal(err, want);
}

static void
test_context_rejects_mismatched_key(void **state)
{
	struct tls_cert_info info;
	struct tls_settings s;
	char err[TLS_ERR_LEN];
	struct pair p1, p2;

	pair_init(&p1, "mm1", "mm.test", TLS_KEY_ECDSA_P256, false);
	pair_init(&p2, "mm2", "mm.test", TLS_KEY_ECDSA_P256, false);
	assert_int_equal(
	    tls_make_self_signed(p1.crt, p1.key, &p1.ss, &info, err), 0);
	assert_int_equal(
	    tls_make_self_signed(p2.crt, p2.key, &p2.ss, &info, err), 0);
	p1.cc.key_path = p2.key;
	s = settings_for(&p1.cc, 1);
	assert_null(tls_context_new(&s, err));
	assert_non_null(strstr(err, "does not match"));
	assert_non_null(strstr(err, p2.key));
	assert_non_null(strstr(err, p1.crt));
}

static void
test_context_rejects_bad_cipher_strings(void **state)
{
	struct tls_settings s;
	char err[TLS_ERR_LEN];
	struct pair p;

	pair_init(&p, "sni-a", "a.test", TLS_KEY_ECDSA_P256, false);
	s = settings_for(&p.cc, 1);
	s.ciphers = "NOT-A-CIPHER";
	assert_null(tls_context_new(&s, err));
	assert_non_null(strstr(err, "ciphers \"NOT-A-CIPHER\""));

	/* OpenSSL alone would drop the typo and keep the rest */
	s.ciphers =
	    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GMC-SHA384";
	assert_null(tls_context_new(&s, err));
	assert_non_null(strstr(err, "\"ECDHE-ECDSA-AES256-GMC-SHA384\" "
				    "selects nothing"));

	s.ciphers = "ECDHE+AESGCM:!aNULL:@STRENGTH";
	s.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_NOT_A_SUITE";
	assert_null(tls_context_new(&s, err));
	assert_non_null(strstr(err, "ciphersuites \""));
	assert_non_null(strstr(err, "\"TLS_NOT_A_SUITE\" selects nothing"));

	s.ciphersuites = "";
	assert_null(tls_context_new(&s, err));
	assert_string_equal(err, "ciphersuites \"\": empty");
}

static void
test_context_accepts_custom_cipher_strings(void **state)
{
	struct tls_settings s;
	struct tls_context *t;
	char err[TLS_ERR_LEN];
	struct pair p;
	struct client c12 = {.max_version = TLS1_2_VERSION};
	struct client c13 = {0};
	struct result r;

	pair_init(&p, "sni-a", "a.test", TLS_KEY_ECDSA_P256, false);
	s = settings_for(&p.cc, 1);
	s.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
	s.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
	t = tls_context_new(&s, err);
	assert_non_null(t);
	assert_int_equal(connect_to(t, &c12, &r), 0);
	assert_string_equal(SSL_get_cipher_name(r.srv),
			    "ECDHE-ECDSA-CHACHA20-POLY1305");
	end_result(&r);
	assert_int_equal(connect_to(t, &c13, &r), 0);
	assert_string_equal(SSL_get_cipher_name(r.srv),
			    "TLS_CHACHA20_POLY1305_SHA256");
	end_result(&r);
	tls_context_unref(t);
}

static void
test_cert_file_info_not_pem(void **state)
{
	struct tls_cert_info info;
	char err[TLS_ERR_LEN], path[PATH_LEN];

	tmp_path(path, "not-pem.crt");
	write_file(path, "this is not a certificate\n");
	assert_int_equal(tls_cert_file_info(path, &info, err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "no certificate"));
}

static void
test_chain_after_cert_is_sent(void **state)
{
	char crt[PATH_LEN], key[PATH_LEN], other[PATH_LEN], text[8192];
	struct tls_cert_config cc = {.cert_path = crt, .key_path = key};
	struct tls_settings s = settings_for(&cc, 1);
	struct tls_context *t;
	struct client c = {0};
	char err[TLS_ERR_LEN];
	struct result r;
	size_t n, m;
	FILE *fp;

	/* chain.crt: sni-a.crt then sni-b.crt (standing in for a CA) */
	tmp_path(crt, "chain.crt");
	tmp_path(key, "sni-a.key");
	tmp_path(other, "sni-a.crt");
	assert_non_null(fp = fopen(other, "r"));
	n = fread(text, 1, sizeof(text), fp);
	(void)fclose(fp);
	tmp_path(other, "sni-b.crt");
	assert_non_null(fp = fopen(other, "r"));
	m = fread(text + n, 1, sizeof(text) - n - 1, fp);
	(void)fclose(fp);
	text[n + m] = '\0';
	write_file(crt, text);

	t = tls_context_new(&s, err);
	assert_non_null(t);
	assert_int_equal(connect_to(t, &c, &r), 0);
	assert_int_equal(sk_X509_num(SSL_get_peer_cert_chain(r.cli)), 2);
	end_result(&r);
	tls_context_unref(t);
}

/* Handshakes: SNI */

static void
test_sni_selects_by_name(void **state)
{
	assert_int_equal(cert_for_sni("a.test"), SNI_A);
	assert_int_equal(cert_for_sni("B.TEST"), SNI_B);
	assert_int_equal(cert_for_sni("unknown.test"), SNI_A);
	assert_int_equal(cert_for_sni(NULL), SNI_A);
}

static void
test_sni_wildcard_matches_one_label(void **state)
{
	assert_int_equal(cert_for_sni("x.w.test"), SNI_WILD);
	assert_int_equal(cert_for_sni("wild.test"), SNI_WILD);
	assert_int_equal(cert_for_sni("w.test"), SNI_A);
	assert_int_equal(cert_for_sni("x.y.w.test"), SNI_A);
}

static void
test_sni_rsa_beside_ecdsa_by_sigalgs(void **state)
{
	struct client rsa = {.sni = "a.test",
			     .sigalgs = "RSA-PSS+SHA256:RSA+SHA256"};
	struct client ec = {.sni = "a.test", .sigalgs = "ECDSA+SHA256"};
	struct client rsa12 = {.sni = "a.test",
			       .sigalgs = "RSA+SHA256",
			       .max_version = TLS1_2_VERSION};
	struct result r;

	assert_int_equal(connect_to(sni, &rsa, &r), 0);
	assert_int_equal(served_cert(sni, r.cli), SNI_A_RSA);
	end_result(&r);
	assert_int_equal(connect_to(sni, &ec, &r), 0);
	assert_int_equal(served_cert(sni, r.cli), SNI_A);
	end_result(&r);
	assert_int_equal(connect_to(sni, &rsa12, &r), 0);
	assert_int_equal(served_cert(sni, r.cli), SNI_A_RSA);
	assert_non_null(strstr(SSL_get_cipher_name(r.cli), "ECDHE-RSA-"));
	end_result(&r);
}

static void
test_sni_name_without_rsa_cert_fails_rsa_only_client(void **state)
{
	struct client c = {.sni = "b.test", .sigalgs = "RSA-PSS+SHA256"};
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), -1);
	end_result(&r);
}

/* Handshakes: protocol, ciphers, ALPN */

static void
test_tls13_by_default(void **state)
{
	struct client c = {0};
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), 0);
	assert_string_equal(SSL_get_version(r.srv), "TLSv1.3");
	end_result(&r);
}

static void
test_tls12_gets_ecdhe_aead(void **state)
{
	struct client c = {.max_version = TLS1_2_VERSION};
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), 0);
	assert_string_equal(SSL_get_version(r.srv), "TLSv1.2");
	assert_non_null(strstr(SSL_get_cipher_name(r.srv), "ECDHE-ECDSA-"));
	assert_true(strstr(SSL_get_cipher_name(r.srv), "GCM") != NULL ||
		    strstr(SSL_get_cipher_name(r.srv), "CHACHA20") != NULL);
	end_result(&r);
}

static void
test_tls11_client_refused(void **state)
{
	struct client c = {.max_version = TLS1_1_VERSION, .weak = true};
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), -1);
	assert_int_equal(ERR_GET_REASON(r.srv_err), SSL_R_UNSUPPORTED_PROTOCOL);
	end_result(&r);
}

static void
test_cbc_cipher_refused(void **state)
{
	struct client c = {.max_version = TLS1_2_VERSION,
			   .ciphers = "ECDHE-ECDSA-AES128-SHA:AES128-SHA"};
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), -1);
	assert_int_equal(ERR_GET_REASON(r.srv_err), SSL_R_NO_SHARED_CIPHER);
	end_result(&r);
}

static void
test_alpn_http11_selected(void **state)
{
	static const unsigned char offer[] = "\x02h2\x08http/1.1";
	struct client c = {.alpn = offer, .alpn_len = sizeof(offer) - 1};
	const unsigned char *got;
	unsigned int len;
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), 0);
	SSL_get0_alpn_selected(r.cli, &got, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(got, "http/1.1", 8);
	end_result(&r);
}

static void
test_alpn_h2_only_gets_no_alpn(void **state)
{
	static const unsigned char offer[] = "\x02h2";
	struct client c = {.alpn = offer, .alpn_len = sizeof(offer) - 1};
	const unsigned char *got;
	unsigned int len;
	struct result r;

	assert_int_equal(connect_to(sni, &c, &r), 0);
	SSL_get0_alpn_selected(r.cli, &got, &len);
	assert_int_equal(len, 0);
	end_result(&r);
}

/* Resumption */

/* A full handshake with c; returns the client's session for resuming. */
static SSL_SESSION *
first_session(struct tls_context *t, const struct client *c)
{
	SSL_SESSION *sess;
	struct result r;

	assert_int_equal(connect_to(t, c, &r), 0);
	assert_int_equal(SSL_session_reused(r.cli), 0);
	sess = SSL_get1_session(r.cli);
	assert_non_null(sess);
	assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
	end_result(&r);
	return sess;
}

/*
 * Whether a handshake offering sess resumed it; *next, if not NULL, gets
 * the client's session after it (with the ticket the server sent then).
 */
static int
resumes_with(struct tls_context *t, const struct client *c, SSL_SESSION *sess,
	     SSL_SESSION **next)
{
	struct client with = *c;
	struct result r;
	int reused;

	with.session = sess;
	assert_int_equal(connect_to(t, &with, &r), 0);
	reused = SSL_session_reused(r.cli);
	if (next != NULL)
		assert_non_null(*next = SSL_get1_session(r.cli));
	end_result(&r);
	return reused;
}

static int
resumes(struct tls_context *t, const struct client *c, SSL_SESSION *sess)
{
	return resumes_with(t, c, sess, NULL);
}

static struct tls_context *
resumption_context(bool tickets)
{
	struct tls_cert_config certs[2];
	struct tls_settings s;
	struct tls_context *t;
	char err[TLS_ERR_LEN];
	struct pair a, b;

	pair_init(&a, "sni-a", "a.test", TLS_KEY_ECDSA_P256, false);
	pair_init(&b, "sni-b", "b.test", TLS_KEY_ECDSA_P256, false);
	certs[0] = a.cc;
	certs[1] = b.cc;
	s = settings_for(certs, 2);
	s.session_tickets = tickets;
	s.ticket_key_rotation_ms = 0; /* every rotate call rotates */
	t = tls_context_new(&s, err);
	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

static void
test_ticket_resumes(void **state)
{
	static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
	struct tls_context *t = resumption_context(true);
	SSL_SESSION *sess;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct client c = {.sni = "b.test", .max_version = versions[i]};

		sess = first_session(t, &c);
		assert_true(SSL_SESSION_has_ticket(sess));
		assert_int_equal(resumes(t, &c, sess), 1);
		SSL_SESSION_free(sess);
	}
	tls_context_unref(t);
}

static void
test_ticket_survives_one_rotation_not_two(void **state)
{
	static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
	struct tls_context *t = resumption_context(true);
	SSL_SESSION *sess, *renewed;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct client c = {.max_version = versions[i]};

		sess = first_session(t, &c);
		tls_context_rotate_tickets(t);
		assert_int_equal(resumes_with(t, &c, sess, &renewed), 1);
		tls_context_rotate_tickets(t);
		assert_int_equal(resumes(t, &c, sess), 0);
		/* the ticket renewed under the newer key still resumes */
		assert_int_equal(resumes(t, &c, renewed), 1);
		SSL_SESSION_free(sess);
		SSL_SESSION_free(renewed);
	}
	tls_context_unref(t);
}

static void
test_rotation_waits_for_interval(void **state)
{
	struct tls_context *t;
	struct tls_settings s;
	char err[TLS_ERR_LEN];
	struct client c = {0};
	SSL_SESSION *sess;
	struct pair p;

	pair_init(&p, "sni-a", "a.test", TLS_KEY_ECDSA_P256, false);
	s = settings_for(&p.cc, 1);
	t = tls_context_new(&s, err);
	assert_non_null(t);
	sess = first_session(t, &c);
	tls_context_rotate_tickets(t);
	tls_context_rotate_tickets(t);
	assert_int_equal(resumes(t, &c, sess), 1);
	SSL_SESSION_free(sess);
	tls_context_unref(t);
}

static void
test_reload_keeps_ticket_keys_when_asked(void **state)
{
	struct tls_context *old = resumption_context(true);
	struct tls_context *kept = resumption_context(true);
	struct tls_context *fresh = resumption_context(true);
	struct client c = {0};
	SSL_SESSION *sess;

	sess = first_session(old, &c);
	tls_context_keep_tickets(kept, old);
	assert_int_equal(resumes(kept, &c, sess), 1);
	assert_int_equal(resumes(fresh, &c, sess), 0);
	SSL_SESSION_free(sess);
	tls_context_unref(old);
	tls_context_unref(kept);
	tls_context_unref(fresh);
}

/* Without tickets: the session cache, across the SNI switch. */
static void
test_session_cache_resumes_after_sni_switch(void **state)
{
	static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
	struct tls_context *t = resumption_context(false);
	SSL_SESSION *sess;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct client c = {.sni = "b.test", .max_version = versions[i]};

		sess = first_session(t, &c);
		assert_false(SSL_SESSION_has_ticket(sess) &&
			     versions[i] == TLS1_2_VERSION);
		assert_int_equal(resumes(t, &c, sess), 1);
		SSL_SESSION_free(sess);
	}
	tls_context_unref(t);
}

/* Without tickets, a session made before a reload (a new context, the old
 * one gone) resumes after it: the session-ID cache is the process's. */
static void
test_session_cache_survives_new_context(void **state)
{
	static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct client c = {.sni = "a.test", .max_version = versions[i]};
		struct tls_context *old = resumption_context(false), *t;
		SSL_SESSION *sess = first_session(old, &c);

		tls_context_unref(old);
		t = resumption_context(false);
		assert_int_equal(resumes(t, &c, sess), 1);
		SSL_SESSION_free(sess);
		tls_context_unref(t);
	}
}

/* The SSL keeps what its callbacks read alive after the last unref. */
static void
test_ssl_outlives_context_unref(void **state)
{
	struct tls_context *t = resumption_context(true);
	struct client c = {.sni = "b.test"};
	struct result r;
	BIO *bc, *bs;
	int i, rc, rs;

	memset(&r, 0, sizeof(r));
	r.srv = tls_context_new_ssl(t);
	assert_non_null(r.srv);
	tls_context_unref(t);
	r.cli = SSL_new(client_ctx);
	assert_non_null(r.cli);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(r.cli, bc, bc);
	SSL_set_bio(r.srv, bs, bs);
	SSL_set_connect_state(r.cli);
	assert_int_equal(SSL_set_tlsext_host_name(r.cli, c.sni), 1);
	for (i = 0, rc = rs = 0; i < 100 && (rc != 1 || rs != 1); i++) {
		rc = SSL_do_handshake(r.cli);
		rs = SSL_do_handshake(r.srv);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(rs, 1);
	end_result(&r);
}

/* Fixtures */

static int
make_sni_context(void)
{
	struct tls_cert_config certs[SNI_N];
	static const char *names[SNI_N] = {"sni-a", "sni-b", "sni-a-rsa",
					   "sni-w"};
	static const char *cns[SNI_N] = {"a.test", "b.test", "a.test",
					 "wild.test"};
	struct tls_settings s;
	char err[TLS_ERR_LEN];
	struct pair p[SNI_N];
	size_t i;

	for (i = 0; i < SNI_N; i++) {
		pair_init(&p[i], names[i], cns[i],
			  i == SNI_A_RSA ? TLS_KEY_RSA_2048
					 : TLS_KEY_ECDSA_P256,
			  true);
		certs[i] = p[i].cc;
	}
	p[SNI_WILD].alt[0] = "*.w.test";
	p[SNI_WILD].ss.nalt_names = 1;
	s = settings_for(certs, SNI_N);
	if ((sni = tls_context_new(&s, err)) == NULL) {
		fprintf(stderr, "sni context: %s\n", err);
		return -1;
	}
	return 0;
}

static int
group_setup(void **state)
{
	log_set_level(LOG_WARN);
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if ((client_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return -1;
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	return make_sni_context();
}

static int
remove_tree(const char *dir)
{
	char path[PATH_LEN];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == -1) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return rmdir(dir);
}

static int
group_teardown(void **state)
{
	tls_context_unref(sni);
	SSL_CTX_free(client_ctx);
	return remove_tree(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_self_signed_ecdsa_fields),
	    cmocka_unit_test(test_self_signed_rsa_2048),
	    cmocka_unit_test(test_self_signed_never_overwrites_key),
	    cmocka_unit_test(test_self_signed_failure_removes_its_key),
	    cmocka_unit_test(test_self_signed_rejects_bad_name),
	    cmocka_unit_test(test_context_makes_then_loads_same_pair),
	    cmocka_unit_test(test_context_refuses_cert_without_key),
	    cmocka_unit_test(
		test_context_refuses_missing_pair_without_self_signed),
	    cmocka_unit_test(test_context_rejects_mismatched_key),
	    cmocka_unit_test(test_context_rejects_bad_cipher_strings),
	    cmocka_unit_test(test_context_accepts_custom_cipher_strings),
	    cmocka_unit_test(test_cert_file_info_not_pem),
	    cmocka_unit_test(test_chain_after_cert_is_sent),
	    cmocka_unit_test(test_sni_selects_by_name),
	    cmocka_unit_test(test_sni_wildcard_matches_one_label),
	    cmocka_unit_test(test_sni_rsa_beside_ecdsa_by_sigalgs),
	    cmocka_unit_test(
		test_sni_name_without_rsa_cert_fails_rsa_only_client),
	    cmocka_unit_test(test_tls13_by_default),
	    cmocka_unit_test(test_tls12_gets_ecdhe_aead),
	    cmocka_unit_test(test_tls11_client_refused),
	    cmocka_unit_test(test_cbc_cipher_refused),
	    cmocka_unit_test(test_alpn_http11_selected),
	    cmocka_unit_test(test_alpn_h2_only_gets_no_alpn),
	    cmocka_unit_test(test_ticket_resumes),
	    cmocka_unit_test(test_ticket_survives_one_rotation_not_two),
	    cmocka_unit_test(test_rotation_waits_for_interval),
	    cmocka_unit_test(test_reload_keeps_ticket_keys_when_asked),
	    cmocka_unit_test(test_session_cache_resumes_after_sni_switch),
	    cmocka_unit_test(test_session_cache_survives_new_context),
	    cmocka_unit_test(test_ssl_outlives_context_unref),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
