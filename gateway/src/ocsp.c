/*
 * ocsp.c - OCSP stapling (see ocsp.h).
 *
 * The registry of slots, their timers and fetches live on the main
 * thread's loop and take no lock; workers only call ocsp_slot_copy(). A
 * fetched slot asks its responder at once, again at the middle of
 * thisUpdate..nextUpdate (at most a day later), and after a failure
 * 1 s, 2 s, 4 s ... up to 10 min later; a staple still valid is kept
 * through failures until its nextUpdate, then dropped.
 */
#include "ocsp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"

#define OCSP_FILE_MAX (64 * 1024) /* a response is a few kB */
#define OCSP_TIMEOUT_MS 10000
#define OCSP_RETRY_FIRST_S 1
#define OCSP_RETRY_MAX_S 600
#define OCSP_REFRESH_MIN_S 5	 /* never ask more often than this */
#define OCSP_REFRESH_MAX_S 86400 /* a week-long response: daily */
/* How long a response without nextUpdate is served after it came. */
#define OCSP_NO_NEXT_UPDATE_S 3600
#define OCSP_CONTENT_TYPE "application/ocsp-request" /* RFC 6960 A.1 */
#define OCSP_GET_MAX 255			     /* RFC 5019 section 5 */

/* Fetch outcomes, as labelled. */
enum ocsp_result {
	OCSP_R_GOOD,
	OCSP_R_REVOKED,
	OCSP_R_FAILED,	/* no answer, or not 200 */
	OCSP_R_INVALID, /* an answer that may not be stapled */
	OCSP_R_N
};

static const char *const ocsp_result_label[OCSP_R_N] = {"good", "revoked",
							"failed", "invalid"};

/* An immutable staple: written once before it is published. */
struct ocsp_staple {
	struct ocsp_staple *st_next; /* on the retired list */
	time_t st_expires;	     /* nextUpdate; 0: never (file) */
	enum ocsp_cert_status st_status;
	size_t st_len;
	unsigned char st_der[];
};

struct ocsp_slot {
	atomic_uint os_refs;
	_Atomic(struct ocsp_staple *) os_cur; /* NULL: nothing to staple */
	atomic_uint os_readers;		      /* handshakes copying */
	struct ocsp_staple *os_retired;	      /* main thread */

	X509 *os_leaf, *os_issuer;
	STACK_OF(X509) * os_chain;
	unsigned char os_fp[EVP_MAX_MD_SIZE]; /* SHA-256 of the leaf */
	unsigned int os_fplen;
	char *os_url;		   /* fetched from, or the file's path */
	unsigned char *os_request; /* DER OCSPRequest, POSTed */
	size_t os_request_len;
	char *os_get_url; /* or this GET URL, when short enough */
	char *os_name;	  /* the certificate file, for logs */
	char *os_subject, *os_key_type, *os_serial;
	bool os_file;

	/* The registry's, main thread only. */
	TAILQ_ENTRY(ocsp_slot) os_entry;
	bool os_registered, os_used, os_failing, os_stapling;
	struct event *os_timer;
	struct fetch_req *os_inflight;
	time_t os_due;	     /* next fetch */
	time_t os_backoff_s; /* 0: not failing */
	uint64_t os_results[OCSP_R_N];
	uint64_t os_expired;
};

static struct {
	struct event_base *base;
	struct fetch *fetch;
	TAILQ_HEAD(, ocsp_slot) slots;
	bool ready;
} reg = {.slots = TAILQ_HEAD_INITIALIZER(reg.slots)};

static void ocsp_slot_tick(struct ocsp_slot *s);

/* ------------------------------------------------------------ checks */

static int ocsp_fail(char *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* why[OCSP_ERR_LEN] gets the message and OpenSSL's first reason. -1. */
static int
ocsp_fail(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tls_verror(why, OCSP_ERR_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

/* A GeneralizedTime as Unix time; -1 if it cannot be read. */
static time_t
ocsp_time(const ASN1_GENERALIZEDTIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	return timegm(&tm);
}

static void
ocsp_time_str(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

X509 *
ocsp_issuer(X509 *leaf, STACK_OF(X509) * chain)
{
	int i;

	if (X509_self_signed(leaf, 0) == 1)
		return NULL;
	for (i = 0; i < sk_X509_num(chain); i++)
		if (X509_check_issued(sk_X509_value(chain, i), leaf) ==
		    X509_V_OK)
			return sk_X509_value(chain, i);
	return NULL;
}

/*
 * The SingleResponse about leaf: its CertID may use any hash (RFC 6960
 * section 4.1.1), so each one is compared with leaf's id under its own.
 */
static OCSP_SINGLERESP *
ocsp_single_find(OCSP_BASICRESP *bs, X509 *leaf, X509 *issuer)
{
	ASN1_OBJECT *md_oid = NULL;
	const EVP_MD *md;
	OCSP_SINGLERESP *sr;
	OCSP_CERTID *mine;
	int i, same;

	for (i = 0; i < OCSP_resp_count(bs); i++) {
		sr = OCSP_resp_get0(bs, i);
		if (!OCSP_id_get0_info(
			NULL, &md_oid, NULL, NULL,
			(OCSP_CERTID *)OCSP_SINGLERESP_get0_id(sr)) ||
		    (md = EVP_get_digestbyobj(md_oid)) == NULL)
			continue;
		if ((mine = OCSP_cert_to_id(md, leaf, issuer)) == NULL)
			continue;
		same = OCSP_id_cmp(mine, OCSP_SINGLERESP_get0_id(sr)) == 0;
		OCSP_CERTID_free(mine);
		if (same)
			return sr;
	}
	return NULL;
}

int
ocsp_response_check(const unsigned char *der, size_t len, X509 *leaf,
		    X509 *issuer, STACK_OF(X509) * chain, time_t now,
		    struct ocsp_facts *f, char *why)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	X509_STORE *store = NULL;
	OCSP_SINGLERESP *sr;
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
	char t1[32];
	int st, reason, rc = -1;

	ERR_clear_error();
	memset(f, 0, sizeof(*f));
	if (len == 0 || len > LONG_MAX ||
	    (resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ocsp_fail(why, "not a DER OCSP response");
		goto done;
	}
	st = OCSP_response_status(resp);
	if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		ocsp_fail(why, "the responder answered \"%s\"",
			  OCSP_response_status_str(st));
		goto done;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		ocsp_fail(why, "not a basic OCSP response");
		goto done;
	}
	/*
	 * The issuer is the trust anchor (PARTIAL_CHAIN: it may be an
	 * intermediate). OCSP_basic_verify finds the signer among the
	 * response's certificates and chain, checks the signature, the
	 * signer's chain to the issuer, and that the signer is the issuer or
	 * carries OCSPSigning from it (RFC 6960 section 4.2.2.2).
	 */
	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_add_cert(store, issuer) ||
	    !X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN)) {
		ocsp_fail(why, "out of memory");
		goto done;
	}
	if (OCSP_basic_verify(bs, chain, store, 0) <= 0) {
		ocsp_fail(why, "not signed by the issuer or a responder it "
			       "authorised");
		goto done;
	}
	if ((sr = ocsp_single_find(bs, leaf, issuer)) == NULL) {
		ocsp_fail(why, "no status for this certificate (a response "
			       "for another one?)");
		goto done;
	}
	st = OCSP_single_get0_status(sr, &reason, NULL, &thisupd, &nextupd);
	if (st == V_OCSP_CERTSTATUS_UNKNOWN || st < 0) {
		ocsp_fail(why, "the responder does not know the certificate");
		goto done;
	}
	f->status = st == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED : OCSP_GOOD;
	if ((f->this_update = ocsp_time(thisupd)) == -1) {
		ocsp_fail(why, "unreadable thisUpdate");
		goto done;
	}
	if (nextupd != NULL && (f->next_update = ocsp_time(nextupd)) == -1) {
		ocsp_fail(why, "unreadable nextUpdate");
		goto done;
	}
	if (f->this_update > now + OCSP_LEEWAY_S) {
		ocsp_time_str(f->this_update, t1, sizeof(t1));
		ocsp_fail(why, "thisUpdate %s is in the future", t1);
		goto done;
	}
	if (f->next_update != 0 && f->next_update < f->this_update) {
		ocsp_fail(why, "nextUpdate is before thisUpdate");
		goto done;
	}
	if (f->next_update != 0 && f->next_update <= now) {
		ocsp_time_str(f->next_update, t1, sizeof(t1));
		ocsp_fail(why, "past its nextUpdate %s (stale)", t1);
		goto done;
	}
	rc = 0;
done:
	X509_STORE_free(store);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return rc;
}

/* ------------------------------------------------------------ staples */

static struct ocsp_staple *
ocsp_staple_new(const unsigned char *der, size_t len, time_t expires,
		enum ocsp_cert_status status)
{
	struct ocsp_staple *st = malloc(sizeof(*st) + len);

	if (st == NULL)
		return NULL;
	st->st_next = NULL;
	st->st_expires = expires;
	st->st_status = status;
	st->st_len = len;
	memcpy(st->st_der, der, len);
	return st;
}

static void
ocsp_staples_free(struct ocsp_staple *st)
{
	struct ocsp_staple *next;

	for (; st != NULL; st = next) {
		next = st->st_next;
		free(st);
	}
}

/* Main thread: frees the retired staples once no handshake reads. */
static void
ocsp_reclaim(struct ocsp_slot *s)
{
	if (s->os_retired != NULL && atomic_load(&s->os_readers) == 0) {
		ocsp_staples_free(s->os_retired);
		s->os_retired = NULL;
	}
}

/* Main thread (or before the slot is shared): st (or NULL) replaces the
 * staple; the old one is retired. */
static void
ocsp_publish(struct ocsp_slot *s, struct ocsp_staple *st)
{
	struct ocsp_staple *old = atomic_exchange(&s->os_cur, st);

	if (old != NULL) {
		old->st_next = s->os_retired;
		s->os_retired = old;
	}
	ocsp_reclaim(s);
}

int
ocsp_slot_copy(struct ocsp_slot *s, time_t now, unsigned char **der,
	       size_t *len)
{
	struct ocsp_staple *st;
	int rc = 0;

	atomic_fetch_add(&s->os_readers, 1);
	st = atomic_load(&s->os_cur);
	if (st != NULL && (st->st_expires == 0 || now < st->st_expires) &&
	    (*der = OPENSSL_malloc(st->st_len)) != NULL) {
		memcpy(*der, st->st_der, st->st_len);
		*len = st->st_len;
		rc = 1;
	}
	atomic_fetch_sub(&s->os_readers, 1);
	return rc;
}

/* ------------------------------------------------------------ slots */

static void
ocsp_slot_free(struct ocsp_slot *s)
{
	ocsp_staples_free(atomic_load(&s->os_cur));
	ocsp_staples_free(s->os_retired);
	X509_free(s->os_leaf);
	X509_free(s->os_issuer);
	sk_X509_pop_free(s->os_chain, X509_free);
	free(s->os_url);
	free(s->os_request);
	free(s->os_get_url);
	free(s->os_name);
	free(s->os_subject);
	free(s->os_key_type);
	free(s->os_serial);
	free(s);
}

struct ocsp_slot *
ocsp_slot_ref(struct ocsp_slot *s)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->os_refs, 1, memory_order_relaxed);
	return s;
}

void
ocsp_slot_unref(struct ocsp_slot *s)
{
	if (s != NULL && atomic_fetch_sub_explicit(&s->os_refs, 1,
						   memory_order_acq_rel) == 1)
		ocsp_slot_free(s);
}

/* The first http(s) OCSP URL of the leaf's authorityInfoAccess, copied. */
static char *
ocsp_aia_url(X509 *leaf)
{
	STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(leaf);
	const char *u;
	char *out = NULL;
	int i;

	for (i = 0; out == NULL && i < sk_OPENSSL_STRING_num(urls); i++) {
		u = sk_OPENSSL_STRING_value(urls, i);
		if (strncasecmp(u, "http://", 7) == 0 ||
		    strncasecmp(u, "https://", 8) == 0)
			out = strdup(u);
	}
	X509_email_free(urls);
	return out;
}

/*
 * RFC 5019 section 5: a request whose GET URL (the responder's URL, "/",
 * the base64 of the DER, percent-encoded) is at most 255 bytes is sent
 * with GET, which lets HTTP caches in front of the responder answer it;
 * a longer one is POSTed (RFC 6960 appendix A.1). 0, or -1 (no memory).
 */
static int
ocsp_get_url_make(struct ocsp_slot *s)
{
	unsigned char b64[OCSP_GET_MAX + 4];
	char url[OCSP_GET_MAX + 1];
	size_t n, ulen = strlen(s->os_url);
	int i, blen;

	if (s->os_request_len > OCSP_GET_MAX / 4 * 3 || ulen >= OCSP_GET_MAX)
		return 0;
	blen = EVP_EncodeBlock(b64, s->os_request, (int)s->os_request_len);
	memcpy(url, s->os_url, ulen);
	n = ulen;
	if (n == 0 || url[n - 1] != '/')
		url[n++] = '/';
	for (i = 0; i < blen; i++) {
		if (n + 3 > OCSP_GET_MAX)
			return 0; /* too long: POST */
		if (b64[i] == '+' || b64[i] == '/' || b64[i] == '=')
			n += (size_t)snprintf(url + n, 4, "%%%02X", b64[i]);
		else
			url[n++] = (char)b64[i];
	}
	url[n] = '\0';
	if ((s->os_get_url = strdup(url)) == NULL)
		return -1;
	return 0;
}

/* The DER OCSPRequest for leaf: one SHA-1 CertID, no nonce (RFC 5019
 * section 2.1: responses are pre-produced, and a nonce defeats that). */
static int
ocsp_request_make(struct ocsp_slot *s)
{
	OCSP_REQUEST *req = NULL;
	OCSP_CERTID *id = NULL;
	unsigned char *der = NULL;
	int len, rc = -1;

	if ((req = OCSP_REQUEST_new()) == NULL ||
	    (id = OCSP_cert_to_id(EVP_sha1(), s->os_leaf, s->os_issuer)) ==
		NULL ||
	    OCSP_request_add0_id(req, id) == NULL)
		goto done;
	id = NULL; /* the request has it */
	if ((len = i2d_OCSP_REQUEST(req, &der)) <= 0)
		goto done;
	if ((s->os_request = malloc((size_t)len)) == NULL)
		goto done;
	memcpy(s->os_request, der, (size_t)len);
	s->os_request_len = (size_t)len;
	rc = ocsp_get_url_make(s);
done:
	OPENSSL_free(der);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(req);
	return rc;
}

/* Checks the response of a file and publishes it. 0, or -1 with err. */
static int
ocsp_slot_load_file(struct ocsp_slot *s, const char *path, char *err)
{
	char why[OCSP_ERR_LEN];
	struct ocsp_staple *st;
	struct ocsp_facts f;
	unsigned char *der;
	char *raw = NULL;
	size_t len = 0;
	time_t now = time(NULL);

	if (tls_read_small_file(path, OCSP_FILE_MAX, &raw, &len, why,
				sizeof(why)) == -1)
		return ocsp_fail(err, "ocsp_file: %s", why);
	der = (unsigned char *)raw;
	memset(&f, 0, sizeof(f));
	if (ocsp_response_check(der, len, s->os_leaf, s->os_issuer, s->os_chain,
				now, &f, why) == -1) {
		free(der);
		/* Stale is the last check: every other one passed. A file
		 * that went stale while the host was down must not keep the
		 * gateway from starting: it serves without a staple. */
		if (f.next_update != 0 && f.next_update >= f.this_update &&
		    f.this_update != 0 && f.next_update <= now) {
			log_warn("ocsp_file %s: %s: not stapling it; replace "
				 "the file and reload",
				 path, why);
			s->os_url = strdup(path);
			s->os_expired++;
			return s->os_url != NULL
				   ? 0
				   : ocsp_fail(err,
					       "ocsp_file: %s: out of "
					       "memory",
					       path);
		}
		return ocsp_fail(err, "ocsp_file: %s: %s", path, why);
	}
	st = ocsp_staple_new(der, len, f.next_update, f.status);
	free(der);
	if (st == NULL)
		return ocsp_fail(err, "ocsp_file: %s: out of memory", path);
	if ((s->os_url = strdup(path)) == NULL) {
		free(st);
		return ocsp_fail(err, "ocsp_file: %s: out of memory", path);
	}
	ocsp_publish(s, st);
	return 0;
}

/* The registered slot fetching for the same certificate from url. */
static struct ocsp_slot *
ocsp_slot_find(const unsigned char *fp, unsigned int fplen, const char *url)
{
	struct ocsp_slot *s;

	TAILQ_FOREACH (s, &reg.slots, os_entry)
		if (!s->os_file && s->os_fplen == fplen &&
		    memcmp(s->os_fp, fp, fplen) == 0 &&
		    strcmp(s->os_url, url) == 0)
			return s;
	return NULL;
}

int
ocsp_slot_make(X509 *leaf, STACK_OF(X509) * chain,
	       const struct ocsp_source *src, struct ocsp_slot **out, char *err)
{
	const char *key = src->file != NULL	   ? "ocsp_file"
			  : src->responder != NULL ? "ocsp_responder"
						   : "ocsp";
	unsigned char fp[EVP_MAX_MD_SIZE];
	unsigned int fplen = 0;
	struct ocsp_slot *s = NULL;
	X509 *issuer = ocsp_issuer(leaf, chain);
	char *url = NULL;

	*out = NULL;
	if (issuer == NULL) {
		if (src->file != NULL || src->responder != NULL)
			return ocsp_fail(
			    err,
			    "%s: %s: %s, so no OCSP response can be checked",
			    key, src->cert_path,
			    X509_self_signed(leaf, 0) == 1
				? "self-signed"
				: "the issuer's certificate is not after "
				  "the certificate in the file");
		if (X509_self_signed(leaf, 0) != 1 &&
		    (url = ocsp_aia_url(leaf)) != NULL)
			log_warn("%s: names an OCSP responder, but the "
				 "issuer's certificate is not after it in the "
				 "file: not stapling",
				 src->cert_path);
		free(url);
		return 0;
	}
	if (src->file == NULL) {
		url = src->responder != NULL ? strdup(src->responder)
					     : ocsp_aia_url(leaf);
		if (url == NULL)
			return 0; /* no responder: nothing to staple */
		if (!X509_digest(leaf, EVP_sha256(), fp, &fplen)) {
			free(url);
			return ocsp_fail(err, "%s: %s: cannot hash it", key,
					 src->cert_path);
		}
		if (reg.ready && (s = ocsp_slot_find(fp, fplen, url)) != NULL) {
			free(url);
			*out = ocsp_slot_ref(s);
			return 0;
		}
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(url);
		return ocsp_fail(err, "%s: out of memory", key);
	}
	atomic_init(&s->os_refs, 1);
	atomic_init(&s->os_cur, NULL);
	atomic_init(&s->os_readers, 0);
	s->os_url = url;
	s->os_file = src->file != NULL;
	memcpy(s->os_fp, fp, fplen);
	s->os_fplen = fplen;
	if (X509_up_ref(leaf))
		s->os_leaf = leaf;
	if (X509_up_ref(issuer))
		s->os_issuer = issuer;
	s->os_chain = X509_chain_up_ref(chain);
	if (s->os_leaf == NULL || s->os_issuer == NULL || s->os_chain == NULL ||
	    (s->os_name = strdup(src->cert_path)) == NULL ||
	    (s->os_subject = strdup(src->subject)) == NULL ||
	    (s->os_key_type = strdup(src->key_type)) == NULL ||
	    (s->os_serial = strdup(src->serial)) == NULL) {
		ocsp_fail(err, "%s: out of memory", key);
		goto fail;
	}
	if (!s->os_file && ocsp_request_make(s) == -1) {
		ocsp_fail(err, "%s: %s: cannot make an OCSP request", key,
			  src->cert_path);
		goto fail;
	}
	if (src->file != NULL && ocsp_slot_load_file(s, src->file, err) == -1)
		goto fail;
	*out = s;
	return 0;
fail:
	ocsp_slot_unref(s);
	return -1;
}

/* ------------------------------------------------------------ registry */

static void
ocsp_timer_event(evutil_socket_t fd, short what, void *arg)
{
	ocsp_slot_tick(arg);
}

/* Arms the slot's timer for its next fetch or its staple's expiry. */
static void
ocsp_schedule(struct ocsp_slot *s, time_t now)
{
	struct ocsp_staple *st = atomic_load(&s->os_cur);
	struct timeval tv;
	time_t at = 0;

	if (!s->os_file && s->os_inflight == NULL)
		at = s->os_due;
	if (st != NULL && st->st_expires != 0 &&
	    (at == 0 || st->st_expires < at))
		at = st->st_expires;
	if (at == 0)
		return;
	tv.tv_sec = at > now ? at - now : 0;
	tv.tv_usec = 0;
	evtimer_add(s->os_timer, &tv);
}

/* One line when a slot starts failing; the next come when it recovers. */
static void
ocsp_failed(struct ocsp_slot *s, enum ocsp_result r, const char *why,
	    time_t now)
{
	struct ocsp_staple *st = atomic_load(&s->os_cur);
	char t1[32];

	s->os_results[r]++;
	s->os_backoff_s = s->os_backoff_s == 0 ? OCSP_RETRY_FIRST_S
			  : s->os_backoff_s * 2 > OCSP_RETRY_MAX_S
			      ? OCSP_RETRY_MAX_S
			      : s->os_backoff_s * 2;
	s->os_due = now + s->os_backoff_s;
	if (s->os_failing)
		return;
	s->os_failing = true;
	if (st != NULL && st->st_expires != 0) {
		ocsp_time_str(st->st_expires, t1, sizeof(t1));
		log_warn("%s: OCSP from %s: %s; retrying, the current staple "
			 "is served until %s",
			 s->os_name, s->os_url, why, t1);
	} else {
		log_warn("%s: OCSP from %s: %s; retrying, no staple meanwhile",
			 s->os_name, s->os_url, why);
	}
}

static void
ocsp_fetched(void *arg, const struct fetch_result *r)
{
	struct ocsp_slot *s = arg;
	const unsigned char *body = (const unsigned char *)r->body;
	time_t now = time(NULL), refresh, expires;
	struct ocsp_staple *st, *old;
	struct ocsp_facts f;
	char why[OCSP_ERR_LEN], t1[32];
	bool was_revoked;

	s->os_inflight = NULL;
	if (!r->ok) {
		ocsp_failed(s, OCSP_R_FAILED, r->error, now);
		goto done;
	}
	if (r->status != 200) {
		snprintf(why, sizeof(why), "HTTP status %ld", r->status);
		ocsp_failed(s, OCSP_R_FAILED, why, now);
		goto done;
	}
	if (ocsp_response_check(body, r->len, s->os_leaf, s->os_issuer,
				s->os_chain, now, &f, why) == -1) {
		ocsp_failed(s, OCSP_R_INVALID, why, now);
		goto done;
	}
	expires =
	    f.next_update != 0 ? f.next_update : now + OCSP_NO_NEXT_UPDATE_S;
	if ((st = ocsp_staple_new(body, r->len, expires, f.status)) == NULL) {
		ocsp_failed(s, OCSP_R_FAILED, "out of memory", now);
		goto done;
	}
	old = atomic_load(&s->os_cur);
	was_revoked = old != NULL && old->st_status == OCSP_REVOKED;
	ocsp_publish(s, st);
	s->os_results[f.status == OCSP_REVOKED ? OCSP_R_REVOKED
					       : OCSP_R_GOOD]++;
	/* Half-way from thisUpdate to nextUpdate: room for many retries
	 * before the staple runs out. */
	refresh = f.this_update + (expires - f.this_update) / 2;
	if (refresh < now + OCSP_REFRESH_MIN_S)
		refresh = now + OCSP_REFRESH_MIN_S;
	if (refresh > now + OCSP_REFRESH_MAX_S)
		refresh = now + OCSP_REFRESH_MAX_S;
	s->os_due = refresh;
	s->os_backoff_s = 0;
	ocsp_time_str(expires, t1, sizeof(t1));
	if (f.status == OCSP_REVOKED && !was_revoked)
		log_error("%s: the OCSP responder %s says the certificate is "
			  "REVOKED; stapling that answer (until %s)",
			  s->os_name, s->os_url, t1);
	else if (f.status == OCSP_GOOD &&
		 (!s->os_stapling || s->os_failing || was_revoked))
		log_info("%s: stapling the OCSP response of %s (good, "
			 "until %s)",
			 s->os_name, s->os_url, t1);
	s->os_failing = false;
	s->os_stapling = true;
done:
	ocsp_schedule(s, now);
}

/* Drops an expired staple, starts a due fetch, re-arms the timer. */
static void
ocsp_slot_tick(struct ocsp_slot *s)
{
	struct ocsp_staple *st = atomic_load(&s->os_cur);
	time_t now = time(NULL);

	if (st != NULL && st->st_expires != 0 && now >= st->st_expires) {
		ocsp_publish(s, NULL);
		s->os_expired++;
		s->os_stapling = false;
		log_warn("%s: the OCSP staple passed its nextUpdate and is "
			 "no longer served%s",
			 s->os_name,
			 s->os_file ? " (replace the ocsp_file and reload)"
				    : "");
	}
	ocsp_reclaim(s);
	if (!s->os_file && s->os_inflight == NULL && now >= s->os_due) {
		if (s->os_get_url != NULL)
			s->os_inflight = fetch_start(
			    reg.fetch, s->os_get_url, NULL, NULL, 0,
			    OCSP_TIMEOUT_MS, OCSP_FILE_MAX, ocsp_fetched, s);
		else
			s->os_inflight = fetch_start(
			    reg.fetch, s->os_url, OCSP_CONTENT_TYPE,
			    s->os_request, s->os_request_len, OCSP_TIMEOUT_MS,
			    OCSP_FILE_MAX, ocsp_fetched, s);
		if (s->os_inflight == NULL)
			ocsp_failed(s, OCSP_R_FAILED,
				    "cannot start the request", now);
	}
	ocsp_schedule(s, now);
}

int
ocsp_init(struct event_base *base)
{
	reg.base = base;
	if ((reg.fetch = fetch_new(base)) == NULL)
		return -1;
	reg.ready = true;
	return 0;
}

static void
ocsp_slot_retire(struct ocsp_slot *s)
{
	TAILQ_REMOVE(&reg.slots, s, os_entry);
	fetch_cancel(s->os_inflight);
	s->os_inflight = NULL;
	if (s->os_timer != NULL)
		event_free(s->os_timer);
	s->os_timer = NULL;
	s->os_registered = false;
	ocsp_slot_unref(s);
}

/* Says what a newly served file staples (not in -t: no registry). */
static void
ocsp_file_announce(const struct ocsp_slot *s)
{
	const struct ocsp_staple *st = atomic_load(&s->os_cur);
	char t1[32];

	if (st == NULL)
		return;
	if (st->st_expires != 0)
		ocsp_time_str(st->st_expires, t1, sizeof(t1));
	if (st->st_status == OCSP_REVOKED)
		log_error("%s: %s says the certificate is REVOKED; stapling "
			  "it as it is",
			  s->os_name, s->os_url);
	else
		log_info("%s: stapling the OCSP response of %s (good, until "
			 "%s)",
			 s->os_name, s->os_url,
			 st->st_expires != 0 ? t1 : "a reload");
}

void
ocsp_sync(struct ocsp_slot *const *slots, size_t n)
{
	struct ocsp_slot *s, *next;
	size_t i;

	if (!reg.ready)
		return;
	TAILQ_FOREACH (s, &reg.slots, os_entry)
		s->os_used = false;
	for (i = 0; i < n; i++) {
		if ((s = slots[i]) == NULL)
			continue;
		s->os_used = true;
		if (s->os_registered)
			continue;
		if ((s->os_timer =
			 evtimer_new(reg.base, ocsp_timer_event, s)) == NULL) {
			log_error("%s: cannot set up the OCSP timer; not "
				  "stapling",
				  s->os_name);
			continue;
		}
		s->os_registered = true;
		s->os_stapling = atomic_load(&s->os_cur) != NULL;
		if (s->os_file)
			ocsp_file_announce(s);
		s->os_due = time(NULL);
		ocsp_slot_ref(s); /* the registry's */
		TAILQ_INSERT_TAIL(&reg.slots, s, os_entry);
		ocsp_slot_tick(s);
	}
	for (s = TAILQ_FIRST(&reg.slots); s != NULL; s = next) {
		next = TAILQ_NEXT(s, os_entry);
		if (!s->os_used)
			ocsp_slot_retire(s);
	}
}

void
ocsp_free(void)
{
	struct ocsp_slot *s;

	while ((s = TAILQ_FIRST(&reg.slots)) != NULL)
		ocsp_slot_retire(s);
	fetch_free(reg.fetch);
	reg.fetch = NULL;
	reg.ready = false;
}

/* ------------------------------------------------------------ metrics */

static void
ocsp_labels(struct evbuffer *b, const char *name, const struct ocsp_slot *s)
{
	evbuffer_add_printf(b, "%s{subject=\"", name);
	metrics_label_value(b, s->os_subject);
	evbuffer_add_printf(b, "\",key_type=\"%s\",serial=\"%s\"",
			    s->os_key_type, s->os_serial);
}

/* Whether an earlier registered slot has the same labels (the same
 * certificate listed twice): its series are rendered once. */
static bool
ocsp_seen(const struct ocsp_slot *s)
{
	const struct ocsp_slot *o;

	TAILQ_FOREACH (o, &reg.slots, os_entry) {
		if (o == s)
			return false;
		if (strcmp(o->os_subject, s->os_subject) == 0 &&
		    strcmp(o->os_serial, s->os_serial) == 0 &&
		    strcmp(o->os_key_type, s->os_key_type) == 0)
			return true;
	}
	return false;
}

void
ocsp_render(struct evbuffer *b)
{
	const struct ocsp_staple *st;
	struct ocsp_slot *s;
	time_t now = time(NULL);
	bool valid;
	int r;

	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_ocsp_staple_valid Whether a verified "
	       "OCSP response before its nextUpdate is stapled for the "
	       "certificate.\n"
	       "# TYPE portcullis_tls_ocsp_staple_valid gauge\n");
	TAILQ_FOREACH (s, &reg.slots, os_entry) {
		if (ocsp_seen(s))
			continue;
		st = atomic_load(&s->os_cur);
		valid =
		    st != NULL && (st->st_expires == 0 || now < st->st_expires);
		ocsp_labels(b, "portcullis_tls_ocsp_staple_valid", s);
		evbuffer_add_printf(b, "} %d\n", valid ? 1 : 0);
	}
	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_ocsp_next_update_timestamp_seconds "
	       "The nextUpdate of the stapled OCSP response (0: none, or no "
	       "staple).\n"
	       "# TYPE portcullis_tls_ocsp_next_update_timestamp_seconds "
	       "gauge\n");
	TAILQ_FOREACH (s, &reg.slots, os_entry) {
		if (ocsp_seen(s))
			continue;
		st = atomic_load(&s->os_cur);
		ocsp_labels(
		    b, "portcullis_tls_ocsp_next_update_timestamp_seconds", s);
		evbuffer_add_printf(b, "} %lld\n",
				    st != NULL ? (long long)st->st_expires
					       : 0LL);
	}
	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_ocsp_certificate_revoked Whether the "
	       "stapled OCSP response says the certificate is revoked.\n"
	       "# TYPE portcullis_tls_ocsp_certificate_revoked gauge\n");
	TAILQ_FOREACH (s, &reg.slots, os_entry) {
		if (ocsp_seen(s))
			continue;
		st = atomic_load(&s->os_cur);
		ocsp_labels(b, "portcullis_tls_ocsp_certificate_revoked", s);
		evbuffer_add_printf(
		    b, "} %d\n",
		    st != NULL && st->st_status == OCSP_REVOKED ? 1 : 0);
	}
	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_ocsp_fetches_total OCSP responses "
	       "asked for, by result: good and revoked were stapled, failed "
	       "got no answer, invalid got one that may not be stapled.\n"
	       "# TYPE portcullis_tls_ocsp_fetches_total counter\n");
	TAILQ_FOREACH (s, &reg.slots, os_entry) {
		if (s->os_file || ocsp_seen(s))
			continue;
		for (r = 0; r < OCSP_R_N; r++) {
			ocsp_labels(b, "portcullis_tls_ocsp_fetches_total", s);
			evbuffer_add_printf(
			    b, ",result=\"%s\"} %llu\n", ocsp_result_label[r],
			    (unsigned long long)s->os_results[r]);
		}
	}
	evbuffer_add_printf(
	    b, "# HELP portcullis_tls_ocsp_staples_expired_total OCSP "
	       "staples dropped because they reached their nextUpdate "
	       "before a new response came.\n"
	       "# TYPE portcullis_tls_ocsp_staples_expired_total counter\n");
	TAILQ_FOREACH (s, &reg.slots, os_entry) {
		if (ocsp_seen(s))
			continue;
		ocsp_labels(b, "portcullis_tls_ocsp_staples_expired_total", s);
		evbuffer_add_printf(b, "} %llu\n",
				    (unsigned long long)s->os_expired);
	}
}
