/*
 * test_ocsp.c - what may be stapled (ocsp_response_check): responses made
 * here for a CA, its leaves and responders, good, revoked and unknown,
 * signed by the issuer, by a delegated responder with and without
 * OCSPSigning, or by a stranger; out of their validity window; for another
 * certificate; under a SHA-256 CertID; not successful; not DER.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "ocsp.h"

#define NO_NEXT LONG_MIN

static EVP_PKEY *ca_key, *leaf_key, *other_key, *resp_key, *stranger_key;
static X509 *ca, *leaf, *other, *delegated, *undelegated, *stranger;
static STACK_OF(X509) * chain;

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for cn and key, issued by issuer (NULL: self-signed). */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
	  bool is_ca, const char *eku)
{
	static long serial = 1;
	X509 *x = X509_new();

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	assert_true(X509_NAME_add_entry_by_txt(
	    X509_get_subject_name(x), "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(
	    x, X509_get_subject_name(issuer != NULL ? issuer : x)));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_true(X509_set_pubkey(x, key));
	assert_true(add_ext(x, issuer != NULL ? issuer : x,
			    NID_basic_constraints,
			    is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE"));
	if (eku != NULL)
		assert_true(add_ext(x, issuer != NULL ? issuer : x,
				    NID_ext_key_usage, eku));
	assert_true(X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static EVP_PKEY *
make_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

/*
 * A DER response about `about` (issued by ca) with status, thisUpdate and
 * nextUpdate as offsets from now (NO_NEXT: none), signed by signer.
 */
static unsigned char *
response(X509 *about, X509 *signer, EVP_PKEY *skey, const EVP_MD *idmd,
	 int status, long this_off, long next_off, size_t *len)
{
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_CERTID *id = OCSP_cert_to_id(idmd, about, ca);
	ASN1_TIME *thisupd = X509_gmtime_adj(NULL, this_off);
	ASN1_TIME *nextupd =
	    next_off == NO_NEXT ? NULL : X509_gmtime_adj(NULL, next_off);
	OCSP_RESPONSE *resp;
	unsigned char *der = NULL;
	int n;

	assert_non_null(bs);
	assert_non_null(id);
	assert_non_null(OCSP_basic_add1_status(
	    bs, id, status,
	    status == V_OCSP_CERTSTATUS_REVOKED
		? OCSP_REVOKED_STATUS_KEYCOMPROMISE
		: -1,
	    status == V_OCSP_CERTSTATUS_REVOKED ? thisupd : NULL, thisupd,
	    nextupd));
	assert_true(OCSP_basic_sign(bs, signer, skey, EVP_sha256(), NULL, 0));
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	assert_non_null(resp);
	n = i2d_OCSP_RESPONSE(resp, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	OCSP_RESPONSE_free(resp);
	OCSP_BASICRESP_free(bs);
	OCSP_CERTID_free(id);
	ASN1_TIME_free(thisupd);
	ASN1_TIME_free(nextupd);
	return der;
}

static int
check(const unsigned char *der, size_t len, X509 *x, struct ocsp_facts *f,
      char *why)
{
	return ocsp_response_check(der, len, x, ca, chain, time(NULL), f, why);
}

static void
expect_refused(unsigned char *der, size_t len, X509 *x, const char *reason)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;

	assert_int_equal(check(der, len, x, &f, why), -1);
	if (strstr(why, reason) == NULL)
		fail_msg("wanted \"%s\" in \"%s\"", reason, why);
	OPENSSL_free(der);
}

static int
setup(void **state)
{
	ca_key = make_key();
	leaf_key = make_key();
	other_key = make_key();
	resp_key = make_key();
	stranger_key = make_key();
	ca = make_cert("Test CA", ca_key, NULL, NULL, true, NULL);
	leaf = make_cert("leaf.test", leaf_key, ca, ca_key, false, NULL);
	other = make_cert("other.test", other_key, ca, ca_key, false, NULL);
	delegated =
	    make_cert("responder", resp_key, ca, ca_key, false, "OCSPSigning");
	undelegated = make_cert("not a responder", resp_key, ca, ca_key, false,
				"serverAuth");
	stranger =
	    make_cert("Stranger CA", stranger_key, NULL, NULL, true, NULL);
	chain = sk_X509_new_null();
	assert_non_null(chain);
	assert_true(sk_X509_push(chain, ca) > 0);
	return 0;
}

static int
teardown(void **state)
{
	sk_X509_free(chain);
	X509_free(ca);
	X509_free(leaf);
	X509_free(other);
	X509_free(delegated);
	X509_free(undelegated);
	X509_free(stranger);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(resp_key);
	EVP_PKEY_free(stranger_key);
	return 0;
}

static void
test_good_signed_by_issuer(void **state)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	time_t now = time(NULL);
	size_t len;
	unsigned char *der = response(leaf, ca, ca_key, EVP_sha1(),
				      V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);

	assert_int_equal(check(der, len, leaf, &f, why), 0);
	assert_int_equal(f.status, OCSP_GOOD);
	assert_true(f.this_update >= now - 120 && f.this_update <= now);
	assert_true(f.next_update >= now + 3500 && f.next_update <= now + 3700);
	OPENSSL_free(der);
}

static void
test_revoked_is_a_valid_answer(void **state)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	size_t len;
	unsigned char *der =
	    response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_REVOKED,
		     -60, 3600, &len);

	assert_int_equal(check(der, len, leaf, &f, why), 0);
	assert_int_equal(f.status, OCSP_REVOKED);
	OPENSSL_free(der);
}

static void
test_unknown_refused(void **state)
{
	size_t len;
	unsigned char *der =
	    response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_UNKNOWN,
		     -60, 3600, &len);

	expect_refused(der, len, leaf, "does not know");
}

static void
test_validity_window(void **state)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	size_t len;
	unsigned char *der;

	der = response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
		       -7200, -60, &len);
	expect_refused(der, len, leaf, "past its nextUpdate");
	der = response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
		       OCSP_LEEWAY_S + 600, OCSP_LEEWAY_S + 7200, &len);
	expect_refused(der, len, leaf, "in the future");
	/* Within the clock-skew leeway: accepted. */
	der = response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD, 60,
		       7200, &len);
	assert_int_equal(check(der, len, leaf, &f, why), 0);
	OPENSSL_free(der);
	/* No nextUpdate: valid, and said so. */
	der = response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
		       -60, NO_NEXT, &len);
	assert_int_equal(check(der, len, leaf, &f, why), 0);
	assert_int_equal(f.next_update, 0);
	OPENSSL_free(der);
}

static void
test_another_certificate_refused(void **state)
{
	size_t len;
	unsigned char *der = response(other, ca, ca_key, EVP_sha1(),
				      V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);

	expect_refused(der, len, leaf, "no status for this certificate");
}

static void
test_sha256_certid(void **state)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	size_t len;
	unsigned char *der = response(leaf, ca, ca_key, EVP_sha256(),
				      V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);

	assert_int_equal(check(der, len, leaf, &f, why), 0);
	OPENSSL_free(der);
}

static void
test_signers(void **state)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	size_t len;
	unsigned char *der;

	/* RFC 6960 4.2.2.2: a responder the issuer gave OCSPSigning. */
	der = response(leaf, delegated, resp_key, EVP_sha1(),
		       V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);
	assert_int_equal(check(der, len, leaf, &f, why), 0);
	OPENSSL_free(der);
	/* Issued by the CA, but not for OCSP. */
	der = response(leaf, undelegated, resp_key, EVP_sha1(),
		       V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);
	expect_refused(der, len, leaf, "not signed by the issuer");
	/* Another CA altogether. */
	der = response(leaf, stranger, stranger_key, EVP_sha1(),
		       V_OCSP_CERTSTATUS_GOOD, -60, 3600, &len);
	expect_refused(der, len, leaf, "not signed by the issuer");
}

static void
test_not_a_response(void **state)
{
	static const unsigned char garbage[] = "\x30\x03garbage";
	unsigned char *der, *copy;
	OCSP_RESPONSE *resp;
	char why[OCSP_ERR_LEN];
	struct ocsp_facts f;
	size_t len;
	int n;

	assert_int_equal(check(garbage, sizeof(garbage) - 1, leaf, &f, why),
			 -1);
	assert_non_null(strstr(why, "not a DER OCSP response"));
	assert_int_equal(check(garbage, 0, leaf, &f, why), -1);
	/* Cut short, and with bytes after it. */
	der = response(leaf, ca, ca_key, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
		       -60, 3600, &len);
	assert_int_equal(check(der, len - 1, leaf, &f, why), -1);
	copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, der, len);
	copy[len] = 0;
	assert_int_equal(check(copy, len + 1, leaf, &f, why), -1);
	assert_non_null(strstr(why, "not a DER OCSP response"));
	free(copy);
	OPENSSL_free(der);
	/* A responder's refusal (RFC 6960 4.2.1). */
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, NULL);
	assert_non_null(resp);
	der = NULL;
	n = i2d_OCSP_RESPONSE(resp, &der);
	OCSP_RESPONSE_free(resp);
	assert_true(n > 0);
	expect_refused(der, (size_t)n, leaf, "trylater");
}

static void
test_issuer(void **state)
{
	STACK_OF(X509) *none = sk_X509_new_null();

	assert_ptr_equal(ocsp_issuer(leaf, chain), ca);
	assert_null(ocsp_issuer(leaf, none));
	assert_null(ocsp_issuer(ca, chain)); /* self-signed */
	assert_null(ocsp_issuer(leaf, NULL));
	sk_X509_free(none);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_signed_by_issuer),
	    cmocka_unit_test(test_revoked_is_a_valid_answer),
	    cmocka_unit_test(test_unknown_refused),
	    cmocka_unit_test(test_validity_window),
	    cmocka_unit_test(test_another_certificate_refused),
	    cmocka_unit_test(test_sha256_certid),
	    cmocka_unit_test(test_signers),
	    cmocka_unit_test(test_not_a_response),
	    cmocka_unit_test(test_issuer),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
