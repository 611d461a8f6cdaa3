/*
 * aws.c - the AWS client (see aws.h).
 *
 * Shape: a curl multi handle whose sockets and timer are libevent events
 * (socket callback -> one event per socket, timer callback -> one timer),
 * each finished transfer handed to its owner's callback. An API call
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

#include "log.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"
#define IMDS_TOKEN_TTL 21600 /* seconds: the most IMDS grants */
#define CREDS_EARLY                                                            \
	300		    /* refresh temporary credentials this              \
			       many seconds before they expire */
#define BODY_MAX (8u << 20) /* bigger answers are cut: an error */
#define CONNECT_TIMEOUT_MS 3000
#define CALL_TIMEOUT_MS 30000
#define IMDS_TIMEOUT_MS 2000 /* off EC2 it never answers */

struct xfer;

/* What a finished transfer got; valid during its callback. */
struct xfer_out {
	CURLcode rc;
	long status;
	const char *body;
	size_t len;
	const char *curl_error;
};

struct xfer {
	TAILQ_ENTRY(xfer) x_entry;
	struct aws *x_aws;
	CURL *x_easy;
	struct curl_slist *x_headers;
	char *x_body; /* what came back */
	size_t x_len, x_cap;
	bool x_too_big;
	char x_err[CURL_ERROR_SIZE];
	void (*x_done)(struct xfer *x, const struct xfer_out *o);
	void *x_arg;
};

struct call {
	TAILQ_ENTRY(call) c_entry;
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
	CURLM *a_multi;
	struct event *a_timer;
	struct event *a_kick; /* finishes calls refused without a transfer */
	TAILQ_HEAD(, xfer) a_xfers;
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

/* One libevent event per socket curl watches. */
struct sock {
	struct event *s_ev;
	struct aws *s_aws;
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

/* ------------------------------------------------------------ curl glue */

static void
check_done(struct aws *a)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(a->a_multi, &left)) != NULL) {
		struct xfer *x = NULL;
		struct xfer_out o;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&x);
		o.rc = m->data.result;
		o.status = 0;
		curl_easy_getinfo(x->x_easy, CURLINFO_RESPONSE_CODE, &o.status);
		if (x->x_too_big && o.rc == CURLE_OK)
			o.rc = CURLE_WRITE_ERROR;
		o.body = x->x_body != NULL ? x->x_body : "";
		o.len = x->x_len;
		o.curl_error =
		    x->x_err[0] != '\0' ? x->x_err : curl_easy_strerror(o.rc);
		curl_multi_remove_handle(a->a_multi, x->x_easy);
		TAILQ_REMOVE(&a->a_xfers, x, x_entry);
		x->x_done(x, &o);
		curl_slist_free_all(x->x_headers);
		curl_easy_cleanup(x->x_easy);
		if (x->x_body != NULL)
			OPENSSL_cleanse(x->x_body, x->x_cap);
		free(x->x_body);
		free(x);
	}
}

static void
sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct sock *s = arg;
	struct aws *a = s->s_aws; /* s may be freed by the action below */
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(a->a_multi, fd, flags, &running);
	check_done(a);
}

static int
sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct aws *a = userp;
	struct sock *s = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->s_ev);
			free(s);
			curl_multi_assign(a->a_multi, fd, NULL);
		}
		return 0;
	}
	kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	       (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->s_aws = a;
		curl_multi_assign(a->a_multi, fd, s);
	} else {
		event_free(s->s_ev);
	}
	s->s_ev = event_new(a->a_base, fd, kind, sock_event, s);
	if (s->s_ev == NULL || event_add(s->s_ev, NULL) == -1)
		return -1;
	return 0;
}

static void
timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct aws *a = arg;
	int running;

	curl_multi_socket_action(a->a_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(a);
}

static int
timer_cb(CURLM *multi, long ms, void *userp)
{
	struct aws *a = userp;
	struct timeval tv;

	if (ms < 0) {
		evtimer_del(a->a_timer);
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(a->a_timer, &tv);
	return 0;
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, cap;
	char *nb;

	if (x->x_len + len + 1 > BODY_MAX) {
		x->x_too_big = true;
		return 0;
	}
	if (x->x_len + len + 1 > x->x_cap) {
		cap = x->x_cap > 0 ? x->x_cap : 4096;
		while (cap < x->x_len + len + 1)
			cap *= 2;
		if ((nb = malloc(cap)) == NULL)
			return 0;
		if (x->x_body != NULL) {
			memcpy(nb, x->x_body, x->x_len);
			OPENSSL_cleanse(x->x_body, x->x_cap);
			free(x->x_body);
		}
		x->x_body = nb;
		x->x_cap = cap;
	}
	memcpy(x->x_body + x->x_len, p, len);
	x->x_len += len;
	x->x_body[x->x_len] = '\0';
	return len;
}

/* A transfer with the common options; the caller adds method, headers. */
static struct xfer *
xfer_new(struct aws *a, const char *url, long timeout_ms,
	 void (*done)(struct xfer *, const struct xfer_out *), void *arg)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (x == NULL || (x->x_easy = curl_easy_init()) == NULL) {
		free(x);
		return NULL;
	}
	x->x_aws = a;
	x->x_done = done;
	x->x_arg = arg;
	curl_easy_setopt(x->x_easy, CURLOPT_URL, url);
	curl_easy_setopt(x->x_easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->x_easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x->x_easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->x_easy, CURLOPT_ERRORBUFFER, x->x_err);
	curl_easy_setopt(x->x_easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->x_easy, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms
							 : CONNECT_TIMEOUT_MS);
	curl_easy_setopt(x->x_easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->x_easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->x_easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->x_easy, CURLOPT_USERAGENT,
			 "portcullis/" PORTCULLIS_VERSION);
	return x;
}

/* Frees a transfer that never started. NULL is fine. */
static void
xfer_drop(struct xfer *x)
{
	if (x == NULL)
		return;
	curl_slist_free_all(x->x_headers);
	curl_easy_cleanup(x->x_easy);
	free(x);
}

/* Hands x to the multi handle; on failure x is freed and -1 returned. */
static int
xfer_go(struct xfer *x)
{
	struct aws *a = x->x_aws;

	curl_easy_setopt(x->x_easy, CURLOPT_HTTPHEADER, x->x_headers);
	if (curl_multi_add_handle(a->a_multi, x->x_easy) != CURLM_OK) {
		xfer_drop(x);
		return -1;
	}
	TAILQ_INSERT_TAIL(&a->a_xfers, x, x_entry);
	return 0;
}

/* Adds "name: value" to the transfer's request header. */
static int
xfer_header(struct xfer *x, const char *name, const char *v)
{
	char line[4300];
	struct curl_slist *l;

	snprintf(line, sizeof(line), "%s: %s", name, v);
	l = curl_slist_append(x->x_headers, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (l == NULL)
		return -1;
	x->x_headers = l;
	return 0;
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
call_done(struct xfer *x, const struct xfer_out *o)
{
	struct call *c = x->x_arg;
	struct aws *a = x->x_aws;
	const cJSON *t, *m;
	cJSON *j;
	enum aws_status st;
	const char *type;

	if (o->rc != CURLE_OK) {
		call_finish(c, AWS_NETWORK, o->status, NULL, 0, "network",
			    o->curl_error);
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
	struct xfer *x;

	endpoint(a, c->c_service, url, sizeof(url));
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", region, c->c_service);
	if ((x = xfer_new(a, url, CALL_TIMEOUT_MS, call_done, c)) == NULL)
		goto fail;
	curl_easy_setopt(x->x_easy, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(x->x_easy, CURLOPT_USERNAME, a->a_creds.akid);
	curl_easy_setopt(x->x_easy, CURLOPT_PASSWORD, a->a_creds.secret);
	curl_easy_setopt(x->x_easy, CURLOPT_POSTFIELDS, c->c_json);
	if (xfer_header(x, "Content-Type", "application/x-amz-json-1.1") ==
		-1 ||
	    xfer_header(x, "X-Amz-Target", c->c_target) == -1 ||
	    (a->a_creds.token[0] != '\0' &&
	     xfer_header(x, "X-Amz-Security-Token", a->a_creds.token) == -1)) {
		xfer_drop(x);
		goto fail;
	}
	if (xfer_go(x) == 0)
		return;
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
ecs_done(struct xfer *x, const struct xfer_out *o)
{
	struct aws *a = x->x_aws;
	const char *why;

	if (o->rc != CURLE_OK) {
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
	struct xfer *x;

	if (full != NULL)
		snprintf(url, sizeof(url), "%s", full);
	else
		snprintf(url, sizeof(url), "%s%s", ECS_HOST, rel);
	if ((x = xfer_new(a, url, IMDS_TIMEOUT_MS, ecs_done, NULL)) == NULL ||
	    (tok != NULL && xfer_header(x, "Authorization", tok) == -1)) {
		xfer_drop(x);
		chain_end(a, "cannot ask the ECS credentials endpoint");
		return;
	}
	if (xfer_go(x) == -1)
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
	 void (*done)(struct xfer *, const struct xfer_out *))
{
	char url[1024];
	struct xfer *x;

	imds_url(url, sizeof(url), path);
	if ((x = xfer_new(a, url, IMDS_TIMEOUT_MS, done, NULL)) == NULL)
		return -1;
	if (xfer_header(x, "X-aws-ec2-metadata-token", a->a_imds_token) == -1) {
		xfer_drop(x);
		return -1;
	}
	return xfer_go(x);
}

/* A 401 from IMDS means the token went stale: start over with a new one. */
static bool
imds_token_refused(struct aws *a, const struct xfer_out *o)
{
	if (o->rc == CURLE_OK && o->status == 401) {
		a->a_imds_token_expires = 0;
		chain_imds_token(a, a->a_after_token);
		return true;
	}
	return false;
}

static void
imds_region_done(struct xfer *x, const struct xfer_out *o)
{
	struct aws *a = x->x_aws;

	if (imds_token_refused(a, o))
		return;
	if (o->rc != CURLE_OK || o->status != 200 || o->len == 0 ||
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
imds_creds_done(struct xfer *x, const struct xfer_out *o)
{
	struct aws *a = x->x_aws;
	const char *why;

	if (imds_token_refused(a, o))
		return;
	if (o->rc != CURLE_OK || o->status != 200) {
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
imds_role_done(struct xfer *x, const struct xfer_out *o)
{
	struct aws *a = x->x_aws;
	char path[512];
	size_t n;

	if (imds_token_refused(a, o))
		return;
	if (o->rc != CURLE_OK || o->status != 200 || o->len == 0) {
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
imds_token_done(struct xfer *x, const struct xfer_out *o)
{
	struct aws *a = x->x_aws;

	if (o->rc != CURLE_OK) {
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
	struct xfer *x;

	a->a_after_token = then;
	imds_url(url, sizeof(url), "/latest/api/token");
	snprintf(ttl, sizeof(ttl), "%d", IMDS_TOKEN_TTL);
	if ((x = xfer_new(a, url, IMDS_TIMEOUT_MS, imds_token_done, NULL)) ==
		NULL ||
	    xfer_header(x, "X-aws-ec2-metadata-token-ttl-seconds", ttl) == -1) {
		xfer_drop(x);
		chain_end(a, "cannot ask IMDS for a token");
		return;
	}
	curl_easy_setopt(x->x_easy, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(x->x_easy, CURLOPT_POSTFIELDS, "");
	if (xfer_go(x) == -1)
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
	static bool curl_ready;
	struct aws *a;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_error("aws: libcurl cannot start");
			return NULL;
		}
		curl_ready = true;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->a_base = base;
	TAILQ_INIT(&a->a_xfers);
	TAILQ_INIT(&a->a_waiting);
	TAILQ_INIT(&a->a_failed);
	a->a_multi = curl_multi_init();
	a->a_timer = evtimer_new(base, timer_event, a);
	a->a_kick = event_new(base, -1, 0, kick_event, a);
	if (a->a_multi == NULL || a->a_timer == NULL || a->a_kick == NULL) {
		log_error("aws: cannot set up the client");
		aws_free(a);
		return NULL;
	}
	curl_multi_setopt(a->a_multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(a->a_multi, CURLMOPT_SOCKETDATA, a);
	curl_multi_setopt(a->a_multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(a->a_multi, CURLMOPT_TIMERDATA, a);
	return a;
}

void
aws_free(struct aws *a)
{
	struct xfer *x;
	struct call *c;

	if (a == NULL)
		return;
	while ((x = TAILQ_FIRST(&a->a_xfers)) != NULL) {
		TAILQ_REMOVE(&a->a_xfers, x, x_entry);
		curl_multi_remove_handle(a->a_multi, x->x_easy);
		curl_slist_free_all(x->x_headers);
		curl_easy_cleanup(x->x_easy);
		if (x->x_done == call_done)
			call_free(x->x_arg);
		if (x->x_body != NULL)
			OPENSSL_cleanse(x->x_body, x->x_cap);
		free(x->x_body);
		free(x);
	}
	while ((c = TAILQ_FIRST(&a->a_waiting)) != NULL) {
		TAILQ_REMOVE(&a->a_waiting, c, c_entry);
		call_free(c);
	}
	while ((c = TAILQ_FIRST(&a->a_failed)) != NULL) {
		TAILQ_REMOVE(&a->a_failed, c, c_entry);
		call_free(c);
	}
	if (a->a_multi != NULL)
		curl_multi_cleanup(a->a_multi);
	if (a->a_timer != NULL)
		event_free(a->a_timer);
	if (a->a_kick != NULL)
		event_free(a->a_kick);
	OPENSSL_cleanse(&a->a_creds, sizeof(a->a_creds));
	OPENSSL_cleanse(a->a_imds_token, sizeof(a->a_imds_token));
	free(a);
}
