/*
 * aws.h - a small AWS client: the standard credential chain, JSON 1.1 API
 * calls signed by libcurl (CURLOPT_AWS_SIGV4), everything on one libevent
 * loop through a curl multi handle. Nothing here blocks the loop.
 *
 * Used by the gateway's main thread (Secrets Manager) and by the cost
 * exporter (Cost Explorer). Configuration comes from the environment, as
 * the AWS SDKs read it:
 *   credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
 * AWS_SESSION_TOKEN), else the ECS container endpoint
 * (AWS_CONTAINER_CREDENTIALS_FULL_URI, or
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on 169.254.170.2, with
 * AWS_CONTAINER_AUTHORIZATION_TOKEN when set), else IMDSv2 (unless
 * AWS_EC2_METADATA_DISABLED=true) region       AWS_REGION, AWS_DEFAULT_REGION,
 * else IMDS endpoints    AWS_ENDPOINT_URL_SECRETS_MANAGER,
 * AWS_ENDPOINT_URL_COST_EXPLORER, AWS_ENDPOINT_URL,
 * AWS_EC2_METADATA_SERVICE_ENDPOINT
 *
 * libcurl 7.88 traps designed around (see aws.c): the caller never sets
 * X-Amz-Date (curl would send it twice), never removes a header with
 * "Name:" (curl 7.88 would still sign it), and adds X-Amz-Security-Token
 * itself for temporary credentials.
 */
#ifndef PORTCULLIS_AWS_H
#define PORTCULLIS_AWS_H

#include <stddef.h>

struct event_base;
struct aws;

/* What went wrong, by what a caller does about it. */
enum aws_status {
	AWS_OK,
	AWS_NOT_FOUND,	    /* ResourceNotFoundException and the like */
	AWS_DENIED,	    /* AccessDenied, bad or expired credentials */
	AWS_NO_CREDENTIALS, /* nothing in the chain gave credentials */
	AWS_THROTTLED,	    /* ThrottlingException, 429 */
	AWS_SERVER_ERROR,   /* 5xx */
	AWS_NETWORK,	    /* connect, TLS, timeout, cut short */
	AWS_BAD_RESPONSE,   /* not the JSON the API promises */
	AWS_FAILED,	    /* any other error answer */
};

/* The outcome of a call; valid during the callback only. */
struct aws_result {
	enum aws_status status;
	long http_status; /* 0 without an answer */
	const char *body; /* the answer's body, NUL-terminated */
	size_t body_len;
	const char *error;   /* the error's __type without its namespace, or
				a short reason; "" on success */
	const char *message; /* the error's message, or "" */
};

/* A client on `base` (whose loop must run for anything to happen). NULL,
 * with the reason logged, when libcurl cannot start. */
struct aws *aws_new(struct event_base *base);

/* Stops every call without calling back and frees the client. NULL ok. */
void aws_free(struct aws *a);

/*
 * Calls a JSON 1.1 API: `service` is the signing name ("secretsmanager",
 * "ce"), `target` the X-Amz-Target ("secretsmanager.GetSecretValue"),
 * `json` the request body. Credentials and the region are found first if
 * needed. done(arg, result) is called later from the loop, exactly once.
 * 0, or -1 when the call could not even start (then no callback).
 */
int aws_call(struct aws *a, const char *service, const char *target,
	     const char *json,
	     void (*done)(void *arg, const struct aws_result *r), void *arg);

/* A name for a status, for logs and metric labels ("not_found", ...). */
const char *aws_status_name(enum aws_status s);

#endif
