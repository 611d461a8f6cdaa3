/*
 * aws.c - the AWS client (see aws.h).
 *
 * Shape: the transfers run on fetch.c's curl multi handle on the loop,
 * each finished one handed to its owner's callback. An API call
 * first waits for credentials and the region; the chain that finds them is
 * a short state machine of transfers (ECS, or IMDSv2: token, role,
 * credentials, region), run once for every call waiting at the time.
 *
 * libcurl 7.88.1 (Debian 12) and SigV4: curl signs every header the caller
 * passes plus host and x-amz-date, and adds X-Amz-Date itself; a caller's
 * own X-Amz-Date would go out twice, and a header removed with "Name:"
 * would still be listed as signed (fixed in 8.3.0). So the caller sets
 * only Content-Type, X-Amz-Target and, for temporary credentials,
 * X-Amz-Security-Token (curl 7.88 does not add it); small JSON bodies
 * never make curl add Expect: 100-continue.
 */
#include "aws.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "fetch.h"
#include "log.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"
#define IMDS_TOKEN_TTL 21600 /* seconds: the most IMDS grants */
#define CREDS_EARLY                                                            \
	300		    /* refresh temporary credentials this              \
			       many seconds before they expire */
#define BODY_MAX (8u << 20) /* bigger answers are cut: an error */
#define CALL_TIMEOUT_MS 30000
#define IMDS_TIMEOUT_MS 2000 /* off EC2 it never answers */

struct call {
	TAILQ_ENTRY(call) c_entry; /* on a_waiting, a_failed or a_running */
	struct aws *c_aws;
	struct fetch_req *c_req; /* while on a_running */
	char *c_service, *c_target, *c_json;
	void (*c_done)(void *arg, const struct aws_result *r);
	void *c_arg;
	bool c_retried; /* once, after credentials expired under it */
};

enum chain_state { CH_IDLE, CH_RUNNING };

struct creds {
	char akid[128];
	char secret[128];
	char token[4096];
	time_t expires; /* 0: static, never */
	bool have;
};

struct aws {
	struct event_base *a_base;
	struct fetch *a_fetch;
	struct event *a_kick; /* finishes calls refused without a transfer */
	TAILQ_HEAD(, call) a_running; /* their request is out */
	TAILQ_HEAD(, call) a_waiting; /* for credentials */
	TAILQ_HEAD(, call) a_failed;  /* to call back with a_fail_* */
	struct creds a_creds;
	char a_region[64];
	enum chain_state a_chain;
	const char *a_chain_error; /* why the last chain run failed */
	char a_imds_token[256];
	time_t a_imds_token_expires;
	void (*a_after_token)(struct aws *a); /* what the token is for */
	char a_role[256];
};

static void chain_start(struct aws *a);
static void call_start(struct aws *a, struct call *c);

const char *
aws_status_name(enum aws_status s)
{
	static const char *const names[] = {
	    [AWS_OK] = "ok",
	    [AWS_NOT_FOUND] = "not_found",
	    [AWS_DENIED] = "denied",
	    [AWS_NO_CREDENTIALS] = "no_credentials",
	    [AWS_THROTTLED] = "throttled",
	    [AWS_SERVER_ERROR] = "server_error",
	    [AWS_NETWORK] = "network",
	    [AWS_BAD_RESPONSE] = "bad_response",
	    [AWS_FAILED] = "failed",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s]
							      : "failed";
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ------------------------------------------------------------ requests */

/* A request with the common options; the caller adds method, headers. */
static struct fetch_req *
req_new(struct aws *a, const char *url, long timeout_ms,
	void (*done)(void *, const struct fetch_result *), void *arg)
{
	return fetch_req_new(a->a_fetch, url, timeout_ms, BODY_MAX, done, arg);
}

/* ------------------------------------------------------------- calls */

static void
call_free(struct call *c)
{
	free(c->c_service);
	free(c->c_target);
	if (c->c_json != NULL)
		OPENSSL_cleanse(c->c_json, strlen(c->c_json));
	free(c->c_json);
	free(c);
}

static void
call_finish(struct call *c, enum aws_status st, long http, const char *body,
	    size_t len, const char *error, const char *message)
{
	struct aws_result r = {st,
			       http,
			       body != NULL ? body : "",
			       len,
			       error != NULL ? error : "",
			       message != NULL ? message : ""};

	c->c_done(c->c_arg, &r);
	call_free(c);
}

/* Calls back everything refused before any transfer, from the loop. */
static void
kick_event(evutil_socket_t fd, short what, void *arg)
{
	struct aws *a = arg;
	struct call *c;

	while ((c = TAILQ_FIRST(&a->a_failed)) != NULL) {
		TAILQ_REMOVE(&a->a_failed, c, c_entry);
		call_finish(c, AWS_NO_CREDENTIALS, 0, NULL, 0, "NoCredentials",
			    a->a_chain_error != NULL ? a->a_chain_error : "");
	}
}

/* Fails every waiting call: the chain found no credentials. */
static void
waiting_fail(struct aws *a, const char *why)
{
	struct call *c;

	a->a_chain_error = why;
	while ((c = TAILQ_FIRST(&a->a_waiting)) != NULL) {
		TAILQ_REMOVE(&a->a_waiting, c, c_entry);
		TAILQ_INSERT_TAIL(&a->a_failed, c, c_entry);
	}
	event_active(a->a_kick, EV_TIMEOUT, 0);
}

static bool
creds_fresh(const struct aws *a)
{
	return a->a_creds.have && a->a_region[0] != '\0' &&
	       (a->a_creds.expires == 0 ||
		a->a_creds.expires - CREDS_EARLY > time(NULL));
}

/* Credentials (and region) are known: start everything waiting. */
static void
waiting_go(struct aws *a)
{
	struct call *c;

	a->a_chain_error = NULL;
	while ((c = TAILQ_FIRST(&a->a_waiting)) != NULL) {
		TAILQ_REMOVE(&a->a_waiting, c, c_entry);
		call_start(a, c);
	}
}

/* "Namespace#Name" or "Name" of a JSON error's __type. */
static const char *
short_type(const char *t)
{
	const char *h = strrchr(t, '#');

	return h != NULL ? h + 1 : t;
}

static enum aws_status
classify(long http, const char *type)
{
	static const char *const denied[] = {
	    "AccessDeniedException",
	    "AccessDenied",
	    "UnrecognizedClientException",
	    "InvalidSignatureException",
	    "SignatureDoesNotMatch",
	    "ExpiredTokenException",
	    "IncompleteSignature",
	    "IncompleteSignatureException",
	    "MissingAuthenticationToken",
	    "MissingAuthenticationTokenException",
	    "InvalidClientTokenId"};
	size_t i;

	if (strcmp(type, "ResourceNotFoundException") == 0)
		return AWS_NOT_FOUND;
	if (strcmp(type, "ThrottlingException") == 0 ||
	    strcmp(type, "TooManyRequestsException") == 0 || http == 429)
		return AWS_THROTTLED;
	for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (strcmp(type, denied[i]) == 0)
			return AWS_DENIED;
	if (http >= 500)
		return AWS_SERVER_ERROR;
	return AWS_FAILED;
}

static void
call_done(void *arg, const struct fetch_result *o)
{
	struct call *c = arg;
	struct aws *a = c->c_aws;
	const cJSON *t, *m;
	cJSON *j;
	enum aws_status st;
	const char *type;

	TAILQ_REMOVE(&a->a_running, c, c_entry);
	c->c_req = NULL;
	if (!o->ok) {
		call_finish(c, AWS_NETWORK, o->status, NULL, 0, "network",
			    o->error);
		return;
	}
	if (o->status == 200) {
		call_finish(c, AWS_OK, 200, o->body, o->len, "", "");
		return;
	}
	j = cJSON_ParseWithLength(o->body, o->len);
	t = cJSON_GetObjectItemCaseSensitive(j, "__type");
	m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (m == NULL)
		m = cJSON_GetObjectItemCaseSensitive(j, "Message");
	type = cJSON_IsString(t) ? short_type(t->valuestring) : "";
	st = classify(o->status, type);
	/* Temporary credentials that expired under us: fetch new ones and
	 * try once more. */
	if (strcmp(type, "ExpiredTokenException") == 0 && !c->c_retried &&
	    a->a_creds.expires != 0) {
		cJSON_Delete(j);
		c->c_retried = true;
		a->a_creds.have = false;
		TAILQ_INSERT_TAIL(&a->a_waiting, c, c_entry);
		chain_start(a);
		return;
	}
	call_finish(c, st, o->status, o->body, o->len,
		    type[0] != '\0' ? type : "http",
		    cJSON_IsString(m) ? m->valuestring : "");
	cJSON_Delete(j);
}

/* The endpoint for a service: its own variable, the general one, AWS. */
static void
endpoint(const struct aws *a, const char *service, char *url, size_t len)
{
	const char *v = NULL;

	if (strcmp(service, "secretsmanager") == 0)
		v = env("AWS_ENDPOINT_URL_SECRETS_MANAGER");
	else if (strcmp(service, "ce") == 0)
		v = env("AWS_ENDPOINT_URL_COST_EXPLORER");
	if (v == NULL)
		v = env("AWS_ENDPOINT_URL");
	if (v != NULL)
		snprintf(url, len, "%s", v);
	else if (strcmp(service, "ce") == 0)
		snprintf(url, len, "https://ce.us-east-1.amazonaws.com/");
	else
		snprintf(url, len, "https://%s.%s.amazonaws.com/", service,
			 a->a_region);
}

static void
call_start(struct aws *a, struct call *c)
{
	char url[1024], sigv4[128];
	/* Cost Explorer has one endpoint, in us-east-1, whatever the region
	 * of the caller. */
	const char *region =
	    strcmp(c->c_service, "ce") == 0 ? "us-east-1" : a->a_region;
	struct fetch_req *r;
	CURL *e;

	c->c_aws = a;
	endpoint(a, c->c_service, url, sizeof(url));
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", region, c->c_service);
	if ((r = req_new(a, url, CALL_TIMEOUT_MS, call_done, c)) == NULL)
		goto fail;
	e = fetch_req_curl(r);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, a->a_creds.akid);
	curl_easy_setopt(e, CURLOPT_PASSWORD, a->a_creds.secret);
	if (fetch_req_body(r, "application/x-amz-json-1.1", c->c_json,
			   strlen(c->c_json)) == -1 ||
	    fetch_req_header(r, "X-Amz-Target", c->c_target) == -1 ||
	    (a->a_creds.token[0] != '\0' &&
	     fetch_req_header(r, "X-Amz-Security-Token", a->a_creds.token) ==
		 -1)) {
		fetch_req_drop(r);
		goto fail;
	}
	if (fetch_req_go(r) == 0) {
		c->c_req = r;
		TAILQ_INSERT_TAIL(&a->a_running, c, c_entry);
		return;
	}
fail:
	call_finish(c, AWS_FAILED, 0, NULL, 0, "internal",
		    "cannot start the request");
}

int
aws_call(struct aws *a, const char *service, const char *target,
	 const char *json, void (*done)(void *arg, const struct aws_result *r),
	 void *arg)
{
	struct call *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	c->c_service = strdup(service);
	c->c_target = strdup(target);
	c->c_json = strdup(json);
	c->c_done = done;
	c->c_arg = arg;
	if (c->c_service == NULL || c->c_target == NULL || c->c_json == NULL) {
		call_free(c);
		return -1;
	}
	TAILQ_INSERT_TAIL(&a->a_waiting, c, c_entry);
	if (creds_fresh(a))
		waiting_go(a);
	else
		chain_start(a);
	return 0;
}

/* ------------------------------------------------------ the chain */

/* Reads AccessKeyId/SecretAccessKey/Token/Expiration (ECS and IMDS). */
static const char *
creds_parse(struct aws *a, const char *body, size_t len)
{
	const cJSON *k, *s, *t, *e;
	cJSON *j = cJSON_ParseWithLength(body, len);
	struct tm tm;
	const char *why = NULL;

	k = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
	s = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
	t = cJSON_GetObjectItemCaseSensitive(j, "Token");
	e = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
	memset(&tm, 0, sizeof(tm));
	if (!cJSON_IsString(k) || !cJSON_IsString(s) ||
	    strlen(k->valuestring) >= sizeof(a->a_creds.akid) ||
	    strlen(s->valuestring) >= sizeof(a->a_creds.secret) ||
	    (cJSON_IsString(t) &&
	     strlen(t->valuestring) >= sizeof(a->a_creds.token))) {
		why = "the credentials answer is not the JSON expected";
		goto done;
	}
	if (!cJSON_IsString(e) ||
	    strptime(e->valuestring, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) {
		why = "the credentials answer has no valid Expiration";
		goto done;
	}
	OPENSSL_cleanse(&a->a_creds, sizeof(a->a_creds));
	snprintf(a->a_creds.akid, sizeof(a->a_creds.akid), "%s",
		 k->valuestring);
	snprintf(a->a_creds.secret, sizeof(a->a_creds.secret), "%s",
		 s->valuestring);
	if (cJSON_IsString(t))
		snprintf(a->a_creds.token, sizeof(a->a_creds.token), "%s",
			 t->valuestring);
	a->a_creds.expires = timegm(&tm);
	a->a_creds.have = true;
done:
	if (j != NULL) {
		/* The tree held the secret key: wipe its strings. */
		if (cJSON_IsString(s))
			OPENSSL_cleanse(s->valuestring, strlen(s->valuestring));
		if (cJSON_IsString(t))
			OPENSSL_cleanse(t->valuestring, strlen(t->valuestring));
		cJSON_Delete(j);
	}
	return why;
}

static void chain_imds_token(struct aws *a, void (*then)(struct aws *));
static void chain_imds_region(struct aws *a);
static void chain_imds_role(struct aws *a);

/* The chain ended: credentials and region are known, or why not. */
static void
chain_end(struct aws *a, const char *why)
{
	a->a_chain = CH_IDLE;
	if (why != NULL) {
		waiting_fail(a, why); /* the callers say it, each in context */
		return;
	}
	waiting_go(a);
}

/* After credentials: the region, from the environment or from IMDS. */
static void
chain_region(struct aws *a)
{
	const char *r = env("AWS_REGION");

	if (r == NULL)
		r = env("AWS_DEFAULT_REGION");
	if (r != NULL) {
		snprintf(a->a_region, sizeof(a->a_region), "%s", r);
		chain_end(a, NULL);
		return;
	}
	if (a->a_region[0] != '\0') {
		chain_end(a, NULL);
		return;
	}
	chain_imds_region(a);
}

static void
ecs_done(void *arg, const struct fetch_result *o)
{
	struct aws *a = arg;
	const char *why;

	if (!o->ok) {
		chain_end(a, "the ECS credentials endpoint did not answer");
		return;
	}
	if (o->status != 200) {
		chain_end(a, "the ECS credentials endpoint refused");
		return;
	}
	if ((why = creds_parse(a, o->body, o->len)) != NULL) {
		chain_end(a, why);
		return;
	}
	chain_region(a);
}

static void
chain_ecs(struct aws *a, const char *full, const char *rel)
{
	char url[1024];
	const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct fetch_req *r;

	if (full != NULL)
		snprintf(url, sizeof(url), "%s", full);
	else
		snprintf(url, sizeof(url), "%s%s", ECS_HOST, rel);
	if ((r = req_new(a, url, IMDS_TIMEOUT_MS, ecs_done, a)) == NULL ||
	    (tok != NULL && fetch_req_header(r, "Authorization", tok) == -1)) {
		fetch_req_drop(r);
		chain_end(a, "cannot ask the ECS credentials endpoint");
		return;
	}
	if (fetch_req_go(r) == -1)
		chain_end(a, "cannot ask the ECS credentials endpoint");
}

static void
imds_url(char *url, size_t len, const char *path)
{
	const char *base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	size_t n;

	snprintf(url, len, "%s", base != NULL ? base : IMDS_DEFAULT);
	n = strlen(url);
	if (n > 0 && url[n - 1] == '/')
		url[n - 1] = '\0';
	snprintf(url + strlen(url), len - strlen(url), "%s", path);
}

/* Starts the fetch of a new IMDSv2 token, then `then`, when the one held
 * is gone or about to be; true if it did (the caller stops there). */
static bool
imds_token_stale(struct aws *a, void (*then)(struct aws *))
{
	if (a->a_imds_token_expires > time(NULL) + 60)
		return false;
	chain_imds_token(a, then);
	return true;
}

/* A GET to IMDS with the session token. */
static int
imds_get(struct aws *a, const char *path,
	 void (*done)(void *, const struct fetch_result *))
{
	char url[1024];
	struct fetch_req *r;

	imds_url(url, sizeof(url), path);
	if ((r = req_new(a, url, IMDS_TIMEOUT_MS, done, a)) == NULL)
		return -1;
	if (fetch_req_header(r, "X-aws-ec2-metadata-token", a->a_imds_token) ==
	    -1) {
		fetch_req_drop(r);
		return -1;
	}
	return fetch_req_go(r);
}

/* A 401 from IMDS means the token went stale: start over with a new one. */
static bool
imds_token_refused(struct aws *a, const struct fetch_result *o)
{
	if (o->ok && o->status == 401) {
		a->a_imds_token_expires = 0;
		chain_imds_token(a, a->a_after_token);
		return true;
	}
	return false;
}

static void
imds_region_done(void *arg, const struct fetch_result *o)
{
	struct aws *a = arg;

	if (imds_token_refused(a, o))
		return;
	if (!o->ok || o->status != 200 || o->len == 0 ||
	    o->len >= sizeof(a->a_region)) {
		chain_end(a, "no region: set AWS_REGION, or run on EC2");
		return;
	}
	memcpy(a->a_region, o->body, o->len);
	a->a_region[o->len] = '\0';
	chain_end(a, NULL);
}

static void
chain_imds_region(struct aws *a)
{
	if (imds_token_stale(a, chain_imds_region))
		return;
	if (imds_get(a, "/latest/meta-data/placement/region",
		     imds_region_done) == -1)
		chain_end(a, "cannot ask IMDS for the region");
}

static void
imds_creds_done(void *arg, const struct fetch_result *o)
{
	struct aws *a = arg;
	const char *why;

	if (imds_token_refused(a, o))
		return;
	if (!o->ok || o->status != 200) {
		chain_end(a, "IMDS gave no credentials for the instance role");
		return;
	}
	if ((why = creds_parse(a, o->body, o->len)) != NULL) {
		chain_end(a, why);
		return;
	}
	chain_region(a);
}

static void
imds_role_done(void *arg, const struct fetch_result *o)
{
	struct aws *a = arg;
	char path[512];
	size_t n;

	if (imds_token_refused(a, o))
		return;
	if (!o->ok || o->status != 200 || o->len == 0) {
		chain_end(a, "the instance has no IAM role (IMDS lists none)");
		return;
	}
	/* One role per instance profile; take the first line. */
	n = strcspn(o->body, "\r\n");
	if (n == 0 || n >= sizeof(a->a_role)) {
		chain_end(a, "IMDS listed an invalid role name");
		return;
	}
	memcpy(a->a_role, o->body, n);
	a->a_role[n] = '\0';
	snprintf(path, sizeof(path),
		 "/latest/meta-data/iam/security-credentials/%s", a->a_role);
	if (imds_get(a, path, imds_creds_done) == -1)
		chain_end(a, "cannot ask IMDS for credentials");
}

static void
chain_imds_role(struct aws *a)
{
	if (imds_token_stale(a, chain_imds_role))
		return;
	if (imds_get(a, "/latest/meta-data/iam/security-credentials/",
		     imds_role_done) == -1)
		chain_end(a, "cannot ask IMDS for the role");
}

static void
imds_token_done(void *arg, const struct fetch_result *o)
{
	struct aws *a = arg;

	if (!o->ok) {
		chain_end(a, "IMDS did not answer (not on EC2? set "
			     "AWS_ACCESS_KEY_ID, or "
			     "AWS_EC2_METADATA_SERVICE_ENDPOINT)");
		return;
	}
	if (o->status != 200 || o->len == 0 ||
	    o->len >= sizeof(a->a_imds_token)) {
		chain_end(a, "IMDS refused a session token (IMDSv2)");
		return;
	}
	memcpy(a->a_imds_token, o->body, o->len);
	a->a_imds_token[o->len] = '\0';
	a->a_imds_token_expires = time(NULL) + IMDS_TOKEN_TTL;
	a->a_after_token(a);
}

/* IMDSv2: a session token (PUT) before anything else, reused until near
 * its end; `then` goes on once there is one. */
static void
chain_imds_token(struct aws *a, void (*then)(struct aws *))
{
	char url[1024], ttl[16];
	struct fetch_req *r;

	a->a_after_token = then;
	imds_url(url, sizeof(url), "/latest/api/token");
	snprintf(ttl, sizeof(ttl), "%d", IMDS_TOKEN_TTL);
	if ((r = req_new(a, url, IMDS_TIMEOUT_MS, imds_token_done, a)) ==
		NULL ||
	    fetch_req_header(r, "X-aws-ec2-metadata-token-ttl-seconds", ttl) ==
		-1 ||
	    fetch_req_body(r, NULL, "", 0) == -1) {
		fetch_req_drop(r);
		chain_end(a, "cannot ask IMDS for a token");
		return;
	}
	curl_easy_setopt(fetch_req_curl(r), CURLOPT_CUSTOMREQUEST, "PUT");
	if (fetch_req_go(r) == -1)
		chain_end(a, "cannot ask IMDS for a token");
}

static bool
imds_disabled(void)
{
	const char *v = env("AWS_EC2_METADATA_DISABLED");

	return v != NULL && strcasecmp(v, "true") == 0;
}

/* Finds credentials in the standard order; see aws.h. */
static void
chain_start(struct aws *a)
{
	const char *akid = env("AWS_ACCESS_KEY_ID");
	const char *secret = env("AWS_SECRET_ACCESS_KEY");
	const char *token = env("AWS_SESSION_TOKEN");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");

	if (a->a_chain == CH_RUNNING)
		return; /* its end starts every waiting call */
	a->a_chain = CH_RUNNING;
	if (akid != NULL && secret != NULL) {
		if (strlen(akid) >= sizeof(a->a_creds.akid) ||
		    strlen(secret) >= sizeof(a->a_creds.secret) ||
		    (token != NULL &&
		     strlen(token) >= sizeof(a->a_creds.token))) {
			chain_end(a, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
				     "or AWS_SESSION_TOKEN is too long");
			return;
		}
		snprintf(a->a_creds.akid, sizeof(a->a_creds.akid), "%s", akid);
		snprintf(a->a_creds.secret, sizeof(a->a_creds.secret), "%s",
			 secret);
		snprintf(a->a_creds.token, sizeof(a->a_creds.token), "%s",
			 token != NULL ? token : "");
		a->a_creds.expires = 0;
		a->a_creds.have = true;
		chain_region(a);
		return;
	}
	if (full != NULL || rel != NULL) {
		chain_ecs(a, full, rel);
		return;
	}
	if (imds_disabled()) {
		chain_end(a, "no AWS_ACCESS_KEY_ID, no container credentials, "
			     "and IMDS is disabled");
		return;
	}
	chain_imds_role(a);
}

/* ------------------------------------------------------- lifetime */

struct aws *
aws_new(struct event_base *base)
{
	struct aws *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->a_base = base;
	TAILQ_INIT(&a->a_running);
	TAILQ_INIT(&a->a_waiting);
	TAILQ_INIT(&a->a_failed);
	a->a_fetch = fetch_new(base); /* says why not */
	a->a_kick = event_new(base, -1, 0, kick_event, a);
	if (a->a_fetch == NULL || a->a_kick == NULL) {
		log_error("aws: cannot set up the client");
		aws_free(a);
		return NULL;
	}
	return a;
}

void
aws_free(struct aws *a)
{
	struct call *c;

	if (a == NULL)
		return;
	while ((c = TAILQ_FIRST(&a->a_running)) != NULL) {
		TAILQ_REMOVE(&a->a_running, c, c_entry);
		fetch_cancel(c->c_req);
		call_free(c);
	}
	while ((c = TAILQ_FIRST(&a->a_waiting)) != NULL) {
		TAILQ_REMOVE(&a->a_waiting, c, c_entry);
		call_free(c);
	}
	while ((c = TAILQ_FIRST(&a->a_failed)) != NULL) {
		TAILQ_REMOVE(&a->a_failed, c, c_entry);
		call_free(c);
	}
	fetch_free(a->a_fetch); /* the chain's requests, without callbacks */
	if (a->a_kick != NULL)
		event_free(a->a_kick);
	OPENSSL_cleanse(&a->a_creds, sizeof(a->a_creds));
	OPENSSL_cleanse(a->a_imds_token, sizeof(a->a_imds_token));
	free(a);
}
