/*
 * config.h - the gateway's JSON configuration, parsed and fully validated
 * into an immutable snapshot before any socket is bound.
 *
 * A snapshot is shared by every worker and never changes after
 * config_parse() returns it; a reload builds a new one beside it. Lifetime
 * is a reference count: config_ref()/config_unref(), atomic.
 */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tls.h"

struct auth_realm;
struct health_server;
struct ratelimit;
struct rewrite_headers;
struct rewrite_str;

#define CONFIG_MAX_ERRORS 64
#define CONFIG_ERROR_LEN 256
#define CONFIG_MAX_WORKERS 256
#define CONFIG_NAME_MAX 64 /* route and upstream names */

/* Every error found, each "json.path: what is wrong". */
struct config_errors {
	size_t n;	/* messages kept, at most CONFIG_MAX_ERRORS */
	size_t dropped; /* errors found beyond that */
	char msg[CONFIG_MAX_ERRORS][CONFIG_ERROR_LEN];
};

/* A parsed "host:port"; host is a name or a numeric address. */
struct config_hostport {
	char *host; /* without brackets for IPv6 literals */
	char port[6];
	bool numeric;		      /* host is a numeric IPv4/IPv6 address */
	struct sockaddr_storage addr; /* valid when numeric */
	socklen_t addrlen;
	unsigned metric_id; /* upstream servers: set by metrics_register() */
};

/* Status codes 100..599 as a set: bit (code - 100). */
#define CONFIG_STATUS_WORDS 8

/* An upstream's "health_check": active HTTP checks of each server, run by
 * health.c on the main thread. */
struct config_health_check {
	bool enabled;	      /* the block is present */
	char *path;	      /* request-target of the GET, origin-form */
	char *host;	      /* Host field; NULL: the server as written */
	uint64_t interval_ms; /* from the end of one check to the next */
	uint64_t timeout_ms;  /* a check without an answer by then failed */
	unsigned rise;	      /* passed checks in a row that bring one up */
	unsigned fall;	      /* failed checks in a row that take one down */
	uint64_t expect[CONFIG_STATUS_WORDS]; /* statuses that pass */
};

struct config_upstream {
	char *name;
	struct config_hostport *servers; /* round-robin order */
	size_t nservers;
	unsigned keepalive;	       /* idle connections kept per worker */
	uint64_t keepalive_timeout_ms; /* idle upstream connection life */
	uint64_t connect_timeout_ms;   /* connect; 504 after it */
	uint64_t read_timeout_ms;      /* between two reads; 504 after it */
	uint64_t resolve_interval_ms;  /* re-resolution of names */
	struct config_health_check check;
	unsigned max_fails; /* passive: connect failures in a row that eject a
			       server; 0: never (also with one server) */
	uint64_t eject_ms;  /* how long a passive ejection lasts */
	bool required_for_ready; /* /readyz fails while no server is healthy */
	/* One per server (health.h): made by health_build() on the main
	 * thread before the config is published, not by the parser; shared by
	 * every thread. NULL: every server is always usable. */
	struct health_server *health;
};

#define CONFIG_NO_REALM ((size_t)-1)

/* An address range of an allow or deny list: IPv4 is kept as its IPv6
 * mapping (::ffff:a.b.c.d, prefix + 96), so one compare serves both. */
struct config_cidr {
	uint8_t addr[16]; /* bits past `bits` are zero */
	unsigned bits;	  /* 0..128 */
};

/* A listener's or route's address lists; an empty allow list allows all. */
struct config_access {
	struct config_cidr *allow, *deny;
	size_t nallow, ndeny;
};

/* Why config_access_check() refused an address. */
enum config_access_verdict {
	CONFIG_ACCESS_OK,
	CONFIG_ACCESS_DENIED,	   /* in a deny list */
	CONFIG_ACCESS_NOT_ALLOWED, /* outside an allow list */
};

/* One member of "realms": who may use the routes that name it. */
struct config_realm {
	char *name;	 /* [A-Za-z0-9_.-], 1..64; shown in WWW-Authenticate */
	char **htpasswd; /* files, merged; at least one */
	size_t nhtpasswd;
	bool htpasswd_list;	    /* written as an array (for error paths) */
	bool allow_plaintext;	    /* {PLAIN} and scheme-less lines */
	uint64_t cache_ttl_ms;	    /* verified-credential life; 0: no cache */
	unsigned max_failures;	    /* per client address per window; 0: off */
	uint64_t failure_window_ms; /* throttling window */
	char *aws_secret;	    /* Secrets Manager secret, or NULL */
	uint64_t secret_refresh_ms; /* how often it is fetched again */
	unsigned metric_id;	    /* set by metrics_register() */
	/* Loaded credentials and throttling state; made by auth_build(),
	 * not by the parser, and shared by every thread. */
	struct auth_realm *auth;
};

/* The "auth" block: the verifier pool and per-worker cache. */
struct config_auth {
	unsigned verifier_threads; /* restart-only */
	size_t cache_entries;	   /* per worker */
	uint64_t check_timeout_ms; /* a request waits this long for a check;
				      then 503 */
};

struct config_route {
	char *name; /* metric label; [A-Za-z0-9_-], unique per listener */
	char *path; /* prefix, starts with '/' */
	size_t path_len;
	bool
	    strip_prefix; /* forward without the prefix (keeps a leading '/') */
	size_t upstream;  /* index into config.upstreams */
	uint64_t max_body;  /* request body limit in bytes; 413 over it */
	unsigned metric_id; /* set by metrics_register(), not by the parser */
	size_t realm;	    /* index into config.realms, or CONFIG_NO_REALM */
	bool pass_authorization; /* forward the Authorization header */
	char *user_header;	 /* send the verified user upstream in it */
	size_t user_header_len;
	/* The response policy (rewrite.h); NULL: the listener's. */
	struct rewrite_headers *headers;
	struct config_access access; /* checked after the listener's */
	struct {
		uint64_t interval_us; /* per request; 0: no rate limit */
		unsigned burst;	      /* requests at once */
		bool by_user;	      /* keyed by verified user, not address */
	} rate;
	/* The shared buckets (ratelimit.h); made by ratelimit_build(), not
	 * by the parser. */
	struct ratelimit *limiter;
};

struct config_listener {
	char *listen; /* as written, for logs and metric labels */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct config_route *routes;
	size_t nroutes;
	uint64_t header_timeout_ms;    /* whole request head; 408 after it */
	uint64_t body_timeout_ms;      /* between two body reads; 408 */
	uint64_t keepalive_timeout_ms; /* idle client between requests */
	size_t max_header_size;	       /* head bytes; 431 over it */
	size_t max_uri_size;	       /* request-target bytes; 414 over it */
	bool tls;		       /* terminate TLS (config.tls) */
	bool redirect_https;	       /* only 308 to https (no routes) */
	unsigned https_port;	       /* port in those redirects */
	char *root_redirect;	       /* GET / answers 302 to it, or NULL */
	size_t root_redirect_len;
	/* The response policy of every route without its own, and of the
	 * answers given before a route is known; NULL: none. */
	struct rewrite_headers *headers;
	struct config_access access; /* every request of the listener */
	/* Peers whose X-Forwarded-For names the client (realip.h). */
	struct config_cidr *trusted;
	size_t ntrusted;
};

/* The "tls" block: certificates and policy for every TLS listener. */
struct config_tls {
	struct tls_settings settings; /* certs, ciphers, tickets */
	uint64_t hsts_max_age_s;      /* 0: no Strict-Transport-Security */
};

struct config {
	atomic_int refs;
	unsigned workers;	/* resolved: 0 in the file becomes nproc */
	size_t max_connections; /* client connections, whole process */
	bool access_log;	/* JSON access log, one line per request */
	char *access_log_path;	/* absolute; NULL: stdout */
	char *pid_file;		/* absolute, or NULL: none written */
	bool metrics;		/* record request metrics (off: cost bench) */
	uint64_t drain_timeout_ms;
	struct config_hostport *resolvers; /* DNS servers, numeric; none:
					      the system's resolv.conf */
	size_t nresolvers;
	char *admin_listen; /* as written */
	struct sockaddr_storage admin_addr;
	socklen_t admin_addrlen;
	struct config_upstream *upstreams;
	size_t nupstreams;
	struct config_listener *listeners;
	size_t nlisteners;
	struct config_tls tls;
	struct config_auth auth;
	struct config_realm *realms;
	size_t nrealms;
	/* Every route's user_header, each name once (case-insensitively),
	 * pointing into the routes: a client's field of one of these names is
	 * dropped from every request, whatever its route, since an upstream
	 * that trusts it on one route trusts it on all. */
	struct rewrite_str *user_headers;
	size_t nuser_headers;
	/* Built from `tls` by config_build_tls(), not by the parser: it reads
	 * and may write certificate files. NULL without TLS listeners. */
	struct tls_context *tls_ctx;
};

/*
 * Parses and validates a config held in json[0..len). Returns a snapshot
 * with one reference, or NULL with every error listed in `err` (each names
 * its JSON path, e.g. `listeners[1].routes[0].upstream: no upstream named
 * "grafna"`). Unknown keys are errors. Names are not resolved here.
 */
struct config *config_parse(const char *json, size_t len,
			    struct config_errors *err);

/*
 * Loads (or makes, where self_signed allows) the certificates of a parsed
 * config into c->tls_ctx, when a listener needs TLS. 0, or -1 with the
 * reason in err[TLS_ERR_LEN]. Main thread, before the config is shared.
 */
int config_build_tls(struct config *c, char *err);

/* Reads `path` and parses it; a read error is reported as an error too. */
struct config *config_load(const char *path, struct config_errors *err);

/*
 * For `portcullis -t` only: like config_load(), but a config with errors
 * comes back too (err->n > 0), with whatever parsed, so that the files its
 * valid parts name (htpasswd, certificates) are checked in the same run.
 * NULL only when the file could not be read or is not JSON. Such a config
 * must never be run.
 */
struct config *config_load_partial(const char *path, struct config_errors *err);

/* Adds "path: message" to err (for builders outside the parser). */
void config_error(struct config_errors *err, const char *path, const char *fmt,
		  ...) __attribute__((format(printf, 3, 4)));

/* Takes a reference; returns c. */
struct config *config_ref(struct config *c);

/* Frees a policy made by the parser ("headers"); NULL is fine. */
void config_headers_free(struct rewrite_headers *h);

/* Drops a reference; frees the snapshot with the last one. NULL is fine. */
void config_unref(struct config *c);

/*
 * Parses "192.0.2.0/24", "2001:db8::/32" or a single address into *out.
 * Returns 0, or -1 with a static reason in *why (bits set past the prefix
 * are refused: "10.1.2.3/8" is a typo more often than not).
 */
int config_parse_cidr(const char *s, struct config_cidr *out, const char **why);

/* An address as config_cidr keeps them (IPv4 mapped); 0, or -1 for a
 * family that is neither. */
int config_addr16(const struct sockaddr *sa, uint8_t out[16]);

/* Is the address (config_addr16) in one of the n ranges? */
bool config_cidr_any(const struct config_cidr *c, size_t n,
		     const uint8_t addr[16]);

/* May the address (config_addr16) pass these lists? Deny wins. */
enum config_access_verdict config_access_check(const struct config_access *a,
					       const uint8_t addr[16]);

/* The server as written in the config: "host:port", "[v6]:port". */
void config_hostport_str(const struct config_hostport *hp, char *buf,
			 size_t len);

/* Whether `status` is in a set made by the parser (expect_status). */
bool config_status_in(const uint64_t set[CONFIG_STATUS_WORDS], int status);

/* Parses "250ms", "5s", "2m", "1h", "1d" into milliseconds; -1 if invalid. */
int config_parse_duration(const char *s, uint64_t *ms);

/* Parses a byte size: a plain number, or with k/m/g (binary) suffix. */
int config_parse_size(const char *s, uint64_t *bytes);

/*
 * Parses "host:port", "[v6]:port", or ":port" (all IPv4 addresses) into hp.
 * Returns 0, or -1 with a static reason in *why. Caller frees hp->host.
 */
int config_parse_hostport(const char *s, struct config_hostport *hp,
			  const char **why);

#endif
