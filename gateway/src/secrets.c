/*
 * secrets.c - realm credentials from Secrets Manager (see secrets.h).
 * Everything here runs on the main thread's loop; no locks.
 */
#include "secrets.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "aws.h"
#include "config.h"
#include "htpasswd.h"
#include "log.h"
#include "metrics.h"
#include "pwhash.h"

#define BACKOFF_FIRST_MS 1000
#define SHA_ROUNDS 5000		   /* in-memory hash of a secret's password */
#define N_RESULTS (AWS_FAILED + 2) /* every aws_status, then "invalid" */
#define R_INVALID (AWS_FAILED + 1)

struct source {
	TAILQ_ENTRY(source) s_entry;
	char *s_name;
	uint64_t s_refresh_ms;	 /* shortest of the realms naming it */
	struct htpasswd s_users; /* last good */
	bool s_have;		 /* s_users was ever loaded */
	bool s_failing;		 /* logged as failing */
	bool s_used;		 /* named by the running config */
	bool s_inflight;
	unsigned char s_digest[32]; /* SHA-256 of the last good value */
	uint64_t s_backoff_ms;
	struct event *s_timer;
	uint64_t s_results[N_RESULTS];
	double s_last_success; /* unix time; 0: never */
};

static struct {
	struct event_base *base;
	struct aws *aws;
	int (*apply)(void *, const char *, const struct htpasswd *, char *,
		     size_t);
	void *arg;
	TAILQ_HEAD(, source) sources;
	bool ready;
} sec = {.sources = TAILQ_HEAD_INITIALIZER(sec.sources)};

static const char *
result_name(int r)
{
	return r == R_INVALID ? "invalid" : aws_status_name((enum aws_status)r);
}

static struct source *
source_find(const char *name)
{
	struct source *s;

	TAILQ_FOREACH (s, &sec.sources, s_entry)
		if (strcmp(s->s_name, name) == 0)
			return s;
	return NULL;
}

const struct htpasswd *
secrets_users(const char *name)
{
	struct source *s = name != NULL ? source_find(name) : NULL;

	return s != NULL && s->s_have ? &s->s_users : NULL;
}

/* Waits `ms` less up to 10 % (jitter), then fetches. */
static void
schedule(struct source *s, uint64_t ms, bool jitter)
{
	struct timeval tv;
	uint16_t r = 0;

	if (jitter && RAND_bytes((unsigned char *)&r, sizeof(r)) == 1)
		ms -= ms / 10 * r / 65535;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(s->s_timer, &tv);
}

/* See secrets.h. Member names are not secret; values are never copied. */
bool
secrets_json_nul(const char *t, size_t n, char *key, size_t keylen)
{
	size_t i = 0, start, m;
	bool nul;

	key[0] = '\0';
	while (i < n) {
		if (t[i++] != '"')
			continue;
		start = i;
		nul = false;
		while (i < n && t[i] != '"') {
			if (t[i] == '\\' && i + 1 < n) {
				if (t[i + 1] == 'u' && i + 5 < n &&
				    strncmp(t + i + 2, "0000", 4) == 0)
					nul = true;
				i += 2;
			} else {
				i++;
			}
		}
		m = i - start;
		i++; /* the closing quote */
		while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' ||
				 t[i] == '\r'))
			i++;
		if (i < n && t[i] == ':') { /* a member name */
			if (m >= keylen)
				m = keylen - 1;
			memcpy(key, t + start, m);
			key[m] = '\0';
		}
		if (nul)
			return true;
	}
	return false;
}

int
secrets_parse(const char *text, struct htpasswd *out, char *why, size_t len)
{
	cJSON *j = cJSON_ParseWithOpts(text, NULL, 1); /* nothing after */
	const cJSON *u = NULL, *p = NULL, *h = NULL;
	char hash[PWHASH_MAX], line[PWHASH_MAX + HTPASSWD_USER_MAX + 4];
	char perr[160], key[40];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (secrets_json_nul(text, strlen(text), key, sizeof(key))) {
		snprintf(why, len,
			 "its \"%s\" holds a NUL character (\\u0000), which "
			 "would cut it short; no user is taken from it",
			 key);
		goto done;
	}
	u = cJSON_GetObjectItemCaseSensitive(j, "username");
	p = cJSON_GetObjectItemCaseSensitive(j, "password");
	h = cJSON_GetObjectItemCaseSensitive(j, "htpasswd");
	if (cJSON_IsString(h) && u == NULL && p == NULL) {
		if (htpasswd_parse(h->valuestring, strlen(h->valuestring), true,
				   out, perr, sizeof(perr)) == -1)
			snprintf(why, len, "its htpasswd: %s", perr);
		else
			rc = 0;
		goto done;
	}
	if (!cJSON_IsString(u) || !cJSON_IsString(p) || h != NULL) {
		snprintf(why, len,
			 "not {\"username\", \"password\"} or {\"htpasswd\"} "
			 "JSON");
		goto done;
	}
	if (p->valuestring[0] == '\0' ||
	    pwhash_make_sha512(p->valuestring, strlen(p->valuestring),
			       SHA_ROUNDS, hash, sizeof(hash)) == -1) {
		snprintf(why, len, "its password is empty or unusable");
		goto done;
	}
	/* u is a string, so not NULL: the analyzer cannot see into cJSON. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	if (strlen(u->valuestring) > HTPASSWD_USER_MAX ||
	    strchr(u->valuestring, '\n') != NULL) {
		snprintf(why, len, "its username is not a valid user name");
		goto done;
	}
	snprintf(line, sizeof(line), "%s:%s\n", u->valuestring, hash);
	if (htpasswd_parse(line, strlen(line), false, out, perr,
			   sizeof(perr)) == -1)
		snprintf(why, len, "its username: %s",
			 strchr(perr, ':') != NULL ? strchr(perr, ':') + 2
						   : perr);
	else if (out->n != 1) /* "#..." reads as a comment: no user */
		snprintf(why, len, "its username is not a valid user name");
	else
		rc = 0;
	if (rc == -1)
		htpasswd_free(out);
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(hash, sizeof(hash));
done:
	if (j != NULL) {
		/* cJSON_IsString(NULL) is false; the analyzer cannot tell. */
		/* NOLINTBEGIN(clang-analyzer-core.NullDereference) */
		if (cJSON_IsString(p))
			OPENSSL_cleanse(p->valuestring, strlen(p->valuestring));
		if (cJSON_IsString(h))
			OPENSSL_cleanse(h->valuestring, strlen(h->valuestring));
		/* NOLINTEND(clang-analyzer-core.NullDereference) */
		cJSON_Delete(j);
	}
	return rc;
}

static void
failed(struct source *s, int result, const char *reason)
{
	s->s_results[result]++;
	if (!s->s_failing) {
		if (s->s_have)
			log_error("secret %s: %s; keeping the %zu user(s) "
				  "loaded before, retrying",
				  s->s_name, reason, s->s_users.n);
		else
			log_error("secret %s: %s; its realms have no users "
				  "from it yet, retrying",
				  s->s_name, reason);
		s->s_failing = true;
	}
	s->s_backoff_ms =
	    s->s_backoff_ms == 0 ? BACKOFF_FIRST_MS : s->s_backoff_ms * 2;
	if (s->s_backoff_ms > s->s_refresh_ms)
		s->s_backoff_ms = s->s_refresh_ms;
	if (s->s_used)
		schedule(s, s->s_backoff_ms, false);
}

static void
fetched(void *arg, const struct aws_result *r)
{
	struct source *s = arg;
	struct htpasswd users;
	unsigned char digest[32];
	char why[300], reason[300], key[40];
	const cJSON *v;
	cJSON *j;

	s->s_inflight = false;
	if (r->status != AWS_OK) {
		snprintf(reason, sizeof(reason), "%s%s%s", r->error,
			 r->message[0] != '\0' ? ": " : "", r->message);
		failed(s, (int)r->status, reason);
		return;
	}
	if (secrets_json_nul(r->body, r->body_len, key, sizeof(key))) {
		snprintf(reason, sizeof(reason),
			 "the answer's \"%s\" holds a NUL character "
			 "(\\u0000), which would cut it short; no user is "
			 "taken from it",
			 key);
		failed(s, R_INVALID, reason);
		return;
	}
	j = cJSON_ParseWithLength(r->body, r->body_len);
	v = cJSON_GetObjectItemCaseSensitive(j, "SecretString");
	if (!cJSON_IsString(v)) {
		cJSON_Delete(j);
		failed(s, R_INVALID,
		       "the answer has no SecretString (binary secrets are "
		       "not supported)");
		return;
	}
	if (secrets_parse(v->valuestring, &users, why, sizeof(why)) == -1) {
		OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
		cJSON_Delete(j);
		failed(s, R_INVALID, why);
		return;
	}
	/* Unchanged since the last good one: keep the realms (and their
	 * caches) as they are. A fresh salt would make the users differ. */
	if (EVP_Digest(v->valuestring, strlen(v->valuestring), digest, NULL,
		       EVP_sha256(), NULL) != 1)
		memset(digest, 0, sizeof(digest));
	OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
	cJSON_Delete(j);
	if (s->s_have && memcmp(digest, s->s_digest, sizeof(digest)) == 0) {
		htpasswd_free(&users);
	} else {
		if (sec.apply(sec.arg, s->s_name, &users, why, sizeof(why)) ==
		    -1) {
			htpasswd_free(&users);
			failed(s, R_INVALID, why);
			return;
		}
		htpasswd_free(&s->s_users);
		s->s_users = users;
		memcpy(s->s_digest, digest, sizeof(digest));
	}
	s->s_results[AWS_OK]++;
	s->s_last_success = (double)time(NULL);
	if (s->s_failing || !s->s_have)
		log_info("secret %s: %s: %zu user(s)", s->s_name,
			 s->s_failing ? "recovered" : "loaded", s->s_users.n);
	s->s_have = true;
	s->s_failing = false;
	s->s_backoff_ms = 0;
	if (s->s_used)
		schedule(s, s->s_refresh_ms, true);
}

static void
fetch(evutil_socket_t fd, short what, void *arg)
{
	struct source *s = arg;
	cJSON *req;
	char *body = NULL;

	if (s->s_inflight || !s->s_used)
		return;
	if ((req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(req, "SecretId", s->s_name) == NULL ||
	    (body = cJSON_PrintUnformatted(req)) == NULL ||
	    aws_call(sec.aws, "secretsmanager", "secretsmanager.GetSecretValue",
		     body, fetched, s) == -1) {
		cJSON_Delete(req);
		free(body);
		failed(s, AWS_FAILED, "cannot start the request");
		return;
	}
	s->s_inflight = true;
	cJSON_Delete(req);
	free(body);
}

int
secrets_init(struct event_base *base,
	     int (*apply)(void *, const char *, const struct htpasswd *, char *,
			  size_t),
	     void *arg)
{
	sec.base = base;
	sec.apply = apply;
	sec.arg = arg;
	if ((sec.aws = aws_new(base)) == NULL)
		return -1;
	sec.ready = true;
	return 0;
}

void
secrets_sync(const struct config *c)
{
	struct source *s;
	size_t i;

	if (!sec.ready)
		return;
	TAILQ_FOREACH (s, &sec.sources, s_entry) {
		s->s_used = false;
		s->s_refresh_ms = UINT64_MAX;
	}
	for (i = 0; i < c->nrealms; i++) {
		const struct config_realm *cr = &c->realms[i];

		if (cr->aws_secret == NULL)
			continue;
		if ((s = source_find(cr->aws_secret)) == NULL) {
			if ((s = calloc(1, sizeof(*s))) == NULL ||
			    (s->s_name = strdup(cr->aws_secret)) == NULL ||
			    (s->s_timer = evtimer_new(sec.base, fetch, s)) ==
				NULL) {
				log_error("secret %s: out of memory",
					  cr->aws_secret);
				if (s != NULL)
					free(s->s_name);
				free(s);
				continue;
			}
			s->s_refresh_ms = UINT64_MAX;
			TAILQ_INSERT_TAIL(&sec.sources, s, s_entry);
		}
		if (!s->s_used) { /* once per secret, however many realms */
			s->s_used = true;
			evtimer_del(s->s_timer);
			event_active(s->s_timer, EV_TIMEOUT, 0);
		}
		if (cr->secret_refresh_ms < s->s_refresh_ms)
			s->s_refresh_ms = cr->secret_refresh_ms;
	}
	TAILQ_FOREACH (s, &sec.sources, s_entry)
		if (!s->s_used)
			evtimer_del(s->s_timer);
}

void
secrets_render(struct evbuffer *out)
{
	struct source *s;
	int r;

	evbuffer_add_printf(
	    out, "# HELP portcullis_secret_refresh_total Secrets Manager "
		 "fetches of realm credentials, by secret and result.\n"
		 "# TYPE portcullis_secret_refresh_total counter\n");
	TAILQ_FOREACH (s, &sec.sources, s_entry)
		for (r = 0; r < N_RESULTS; r++) {
			evbuffer_add_printf(
			    out, "portcullis_secret_refresh_total{secret=\"");
			metrics_label_value(out, s->s_name);
			evbuffer_add_printf(
			    out, "\",result=\"%s\"} %llu\n", result_name(r),
			    (unsigned long long)s->s_results[r]);
		}
	evbuffer_add_printf(
	    out, "# HELP portcullis_secret_last_success_timestamp_seconds "
		 "When a secret was last fetched and loaded (0: never).\n"
		 "# TYPE portcullis_secret_last_success_timestamp_seconds "
		 "gauge\n");
	TAILQ_FOREACH (s, &sec.sources, s_entry) {
		evbuffer_add_printf(out, "portcullis_secret_last_success_"
					 "timestamp_seconds{secret=\"");
		metrics_label_value(out, s->s_name);
		evbuffer_add_printf(out, "\"} %.0f\n", s->s_last_success);
	}
}

void
secrets_free(void)
{
	struct source *s;

	aws_free(sec.aws); /* no callback after this */
	sec.aws = NULL;
	while ((s = TAILQ_FIRST(&sec.sources)) != NULL) {
		TAILQ_REMOVE(&sec.sources, s, s_entry);
		event_free(s->s_timer);
		htpasswd_free(&s->s_users);
		free(s->s_name);
		free(s);
	}
	sec.ready = false;
}
