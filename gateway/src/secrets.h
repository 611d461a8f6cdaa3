/*
 * secrets.h - realm credentials from AWS Secrets Manager, refreshed on the
 * main thread's loop through the AWS client (aws.h).
 *
 * One source per secret name, kept for the life of the process (so a
 * reload keeps the last good users until the next fetch answers, and the
 * metrics keep counting). A secret is {"username": ..., "password": ...}
 * (the password is hashed in memory at once, sha512-crypt) or
 * {"htpasswd": "user:hash\n..."}. A fetched set is offered to the realms
 * that use it through the `apply` hook; only when they all take it does it
 * become the last good one. Failures keep the last good set and retry
 * with exponential backoff (1 s doubling up to the refresh interval),
 * logged once when a secret starts failing and once when it recovers.
 */
#ifndef PORTCULLIS_SECRETS_H
#define PORTCULLIS_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct event_base;
struct evbuffer;
struct htpasswd;

/*
 * Main thread, once. apply(arg, name, users, why, len) installs a new set
 * for every realm of the running config that names the secret: 0, or -1
 * with the reason in why[len] (nothing installed). 0 or -1.
 */
int secrets_init(struct event_base *base,
		 int (*apply)(void *arg, const char *name,
			      const struct htpasswd *users, char *why,
			      size_t len),
		 void *arg);

/* Main thread: every secret config c names is fetched now, then on its
 * interval; secrets no realm of c names stop refreshing. */
void secrets_sync(const struct config *c);

/* The last good users of a secret, or NULL (none yet, or not running). */
const struct htpasswd *secrets_users(const char *name);

/* Appends portcullis_secret_* metrics (main thread). */
void secrets_render(struct evbuffer *out);

/* Stops every fetch and frees everything (main thread). */
void secrets_free(void);

/*
 * A secret's value (its SecretString) into users: {"username", "password"}
 * (the password hashed at once, sha512-crypt) or {"htpasswd": "..."}.
 * 0, or -1 with out empty and the reason in why (never quoting a value).
 */
int secrets_parse(const char *text, struct htpasswd *out, char *why,
		  size_t len);

/*
 * Whether JSON text (n bytes) holds the escape \u0000 inside a string:
 * cJSON decodes it to a NUL byte and C strings end there, so a password
 * "a\u0000b" would load as "a". key gets (at most keylen - 1 bytes, as
 * written) the name of the object member whose value holds it, or the
 * member name itself when the NUL is in a name; "" if there is none.
 */
bool secrets_json_nul(const char *t, size_t n, char *key, size_t keylen);

#endif
