/*
 * test_config.c - config.c through config.h: a full config read back field
 * by field, defaults, and one test per error kind checking the exact
 * message and its JSON path.
 *
 * JSON in this file is written with single quotes for readability; sq()
 * turns them into double quotes before parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct config_errors err;

/* A copy of s with every ' turned into ", in a static buffer. */
static const char *
sq(const char *s)
{
	static char buf[16384];
	size_t i;

	assert_true(strlen(s) < sizeof(buf));
	for (i = 0; s[i] != '\0'; i++) {
		buf[i] = s[i];
		if (buf[i] == '\'')
			buf[i] = '"';
	}
	buf[i] = '\0';
	return buf;
}

/* Parses single-quoted JSON into the shared `err`. */
static struct config *
parse(const char *json)
{
	const char *s = sq(json);

	return config_parse(s, strlen(s), &err);
}

/* Asserts that json is rejected with exactly these messages, in order. */
static void
assert_errors(const char *json, const char *const *want, size_t n)
{
	struct config *c = parse(json);
	size_t i;

	if (err.n != n)
		for (i = 0; i < err.n; i++)
			print_message("got: %s\n", err.msg[i]);
	assert_null(c);
	for (i = 0; i < n && i < err.n; i++)
		assert_string_equal(err.msg[i], want[i]);
	assert_int_equal(err.n, n);
	assert_int_equal(err.dropped, 0);
}

#define EXPECT_ERRORS(json, ...)                                               \
	do {                                                                   \
		static const char *const want_[] = {__VA_ARGS__};              \
		assert_errors(json, want_, sizeof(want_) / sizeof(want_[0]));  \
	} while (0)

/* Building blocks of a minimal valid config, and that config with one
 * more member at a given level. */
#define UPSTREAMS "'upstreams': {'p': {'servers': ['127.0.0.1:9090']}}"
#define ROUTE_P "{'name': 'p', 'path': '/p/', 'upstream': 'p'}"
#define ROUTES "'routes': [" ROUTE_P "]"
#define LISTENERS "'listeners': [{'listen': '127.0.0.1:8080', " ROUTES "}]"
#define MINIMAL "{" UPSTREAMS ", " LISTENERS "}"
#define WITH_ROOT(kv) "{" kv ", " UPSTREAMS ", " LISTENERS "}"
#define WITH_UPSTREAM(kv)                                                      \
	"{'upstreams': {'p': {'servers': ['127.0.0.1:9090'], " kv              \
	"}}, " LISTENERS "}"
#define WITH_LISTENER(kv)                                                      \
	"{" UPSTREAMS ", 'listeners': [{'listen': '127.0.0.1:8080', " ROUTES   \
	", " kv "}]}"
#define WITH_ROUTE(kv)                                                         \
	"{" UPSTREAMS ", 'listeners': [{'listen': '127.0.0.1:8080', "          \
	"'routes': [{'name': 'p', 'path': '/p/', 'upstream': 'p', " kv "}]}]}"

static const char full_json[] =
    "{'workers': 3, 'max_connections': 500, 'access_log': false,"
    " 'drain_timeout': '2m',"
    " 'admin': {'listen': '127.0.0.1:9999'},"
    " 'upstreams': {"
    "  'prometheus': {'servers': ['127.0.0.1:9090', 'prometheus:9091'],"
    "   'keepalive': 7, 'keepalive_timeout': '90s', 'connect_timeout': "
    "'250ms',"
    "   'read_timeout': '2m', 'resolve_interval': '1h'},"
    "  'alertmanager': {'servers': ['[::1]:9093']}},"
    " 'listeners': ["
    "  {'listen': '127.0.0.1:8080',"
    "   'timeouts': {'header': '3s', 'body': '4s', 'keepalive': '5s'},"
    "   'max_header_size': '32k', 'max_uri_size': 4096,"
    "   'routes': ["
    "    {'name': 'prometheus', 'path': '/prometheus/',"
    "     'upstream': 'prometheus', 'strip_prefix': true,"
    "     'max_body_size': '2g'},"
    "    {'name': 'alertmanager', 'path': '/alertmanager/',"
    "     'upstream': 'alertmanager', 'max_body_size': 0}]},"
    "  {'listen': '[::1]:8443',"
    "   'routes': [{'name': 'am', 'path': '/', 'upstream': "
    "'alertmanager'}]}]}";

static void
test_full_config_every_field(void **state)
{
	struct config *c = parse(full_json);
	const struct config_upstream *u;
	const struct config_listener *l;
	const struct config_route *r;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	assert_non_null(c);
	assert_int_equal(err.n, 0);
	assert_int_equal(atomic_load(&c->refs), 1);
	assert_int_equal(c->workers, 3);
	assert_int_equal(c->max_connections, 500);
	assert_false(c->access_log);
	assert_int_equal(c->drain_timeout_ms, 120000);
	assert_string_equal(c->admin_listen, "127.0.0.1:9999");
	sin = (const struct sockaddr_in *)&c->admin_addr;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 9999);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(c->admin_addrlen, sizeof(struct sockaddr_in));

	assert_int_equal(c->nupstreams, 2);
	u = &c->upstreams[0];
	assert_string_equal(u->name, "prometheus");
	assert_int_equal(u->nservers, 2);
	assert_string_equal(u->servers[0].host, "127.0.0.1");
	assert_string_equal(u->servers[0].port, "9090");
	assert_true(u->servers[0].numeric);
	assert_string_equal(u->servers[1].host, "prometheus");
	assert_string_equal(u->servers[1].port, "9091");
	assert_false(u->servers[1].numeric);
	assert_int_equal(u->servers[1].addrlen, 0);
	assert_int_equal(u->keepalive, 7);
	assert_int_equal(u->keepalive_timeout_ms, 90000);
	assert_int_equal(u->connect_timeout_ms, 250);
	assert_int_equal(u->read_timeout_ms, 120000);
	assert_int_equal(u->resolve_interval_ms, 3600000);
	u = &c->upstreams[1];
	assert_string_equal(u->name, "alertmanager");
	assert_int_equal(u->nservers, 1);
	assert_string_equal(u->servers[0].host, "::1");
	assert_true(u->servers[0].numeric);

	assert_int_equal(c->nlisteners, 2);
	l = &c->listeners[0];
	assert_string_equal(l->listen, "127.0.0.1:8080");
	sin = (const struct sockaddr_in *)&l->addr;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(l->header_timeout_ms, 3000);
	assert_int_equal(l->body_timeout_ms, 4000);
	assert_int_equal(l->keepalive_timeout_ms, 5000);
	assert_int_equal(l->max_header_size, 32768);
	assert_int_equal(l->max_uri_size, 4096);
	assert_int_equal(l->nroutes, 2);
	r = &l->routes[0];
	assert_string_equal(r->name, "prometheus");
	assert_string_equal(r->path, "/prometheus/");
	assert_int_equal(r->path_len, 12);
	assert_int_equal(r->upstream, 0);
	assert_true(r->strip_prefix);
	assert_int_equal(r->max_body, 2ULL << 30);
	r = &l->routes[1];
	assert_string_equal(r->name, "alertmanager");
	assert_int_equal(r->upstream, 1);
	assert_false(r->strip_prefix);
	assert_int_equal(r->max_body, 0);

	l = &c->listeners[1];
	sin6 = (const struct sockaddr_in6 *)&l->addr;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 8443);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
	assert_string_equal(l->routes[0].path, "/");
	assert_int_equal(l->routes[0].upstream, 1);
	config_unref(c);
}

static void
test_defaults_applied(void **state)
{
	struct config *c = parse(MINIMAL);
	const struct config_upstream *u;
	const struct config_listener *l;
	const struct sockaddr_in *sin;

	assert_non_null(c);
	assert_int_equal(c->max_connections, 10000);
	assert_true(c->access_log);
	assert_int_equal(c->drain_timeout_ms, 30000);
	assert_string_equal(c->admin_listen, "127.0.0.1:9145");
	sin = (const struct sockaddr_in *)&c->admin_addr;
	assert_int_equal(ntohs(sin->sin_port), 9145);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	u = &c->upstreams[0];
	assert_int_equal(u->keepalive, 32);
	assert_int_equal(u->keepalive_timeout_ms, 60000);
	assert_int_equal(u->connect_timeout_ms, 5000);
	assert_int_equal(u->read_timeout_ms, 60000);
	assert_int_equal(u->resolve_interval_ms, 30000);
	l = &c->listeners[0];
	assert_int_equal(l->header_timeout_ms, 10000);
	assert_int_equal(l->body_timeout_ms, 60000);
	assert_int_equal(l->keepalive_timeout_ms, 75000);
	assert_int_equal(l->max_header_size, 16384);
	assert_int_equal(l->max_uri_size, 8192);
	assert_false(l->routes[0].strip_prefix);
	assert_int_equal(l->routes[0].max_body, 1048576);
	config_unref(c);
}

static void
test_workers_zero_is_online_cpus(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	struct config *c;

	if (n < 1)
		n = 1;
	if (n > CONFIG_MAX_WORKERS)
		n = CONFIG_MAX_WORKERS;
	c = parse(WITH_ROOT("'workers': 0"));
	assert_non_null(c);
	assert_int_equal(c->workers, n);
	config_unref(c);
	c = parse(MINIMAL);
	assert_non_null(c);
	assert_int_equal(c->workers, n);
	config_unref(c);
}

static void
test_max_uri_default_follows_small_header(void **state)
{
	struct config *c = parse(WITH_LISTENER("'max_header_size': '4k'"));

	assert_non_null(c);
	assert_int_equal(c->listeners[0].max_header_size, 4096);
	assert_int_equal(c->listeners[0].max_uri_size, 4096);
	config_unref(c);
}

static void
test_listen_colon_port_is_any_ipv4(void **state)
{
	struct config *c = parse("{" UPSTREAMS ", 'listeners': [{'listen': "
				 "':8080', " ROUTES "}]}");
	const struct sockaddr_in *sin;

	assert_non_null(c);
	assert_string_equal(c->listeners[0].listen, ":8080");
	sin = (const struct sockaddr_in *)&c->listeners[0].addr;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(sin->sin_port), 8080);
	config_unref(c);
}

static void
test_same_route_name_on_two_listeners_ok(void **state)
{
	struct config *c = parse("{" UPSTREAMS ", 'listeners': ["
				 "{'listen': '127.0.0.1:8080', " ROUTES "},"
				 "{'listen': '127.0.0.1:8081', " ROUTES "}]}");

	assert_non_null(c);
	assert_int_equal(c->nlisteners, 2);
	config_unref(c);
}

static void
test_null_errors_pointer_ok(void **state)
{
	const char *s = sq(MINIMAL);
	struct config *c = config_parse(s, strlen(s), NULL);

	assert_non_null(c);
	config_unref(c);
	assert_null(config_parse("[]", 2, NULL));
}

static void
test_metrics_switch(void **state)
{
	struct config *c = parse(MINIMAL);

	assert_true(c->metrics);
	config_unref(c);
	c = parse(WITH_ROOT("'metrics': false"));
	assert_false(c->metrics);
	config_unref(c);
	EXPECT_ERRORS(WITH_ROOT("'metrics': 'no'"),
		      "metrics: must be true or false");
}

static void
test_resolvers_parsed(void **state)
{
	struct config *c =
	    parse(WITH_ROOT("'resolvers': ['127.0.0.11:53', '[::1]:5353']"));

	assert_non_null(c);
	assert_int_equal(c->nresolvers, 2);
	assert_string_equal(c->resolvers[0].host, "127.0.0.11");
	assert_string_equal(c->resolvers[0].port, "53");
	assert_true(c->resolvers[1].numeric);
	config_unref(c);
	c = parse(MINIMAL);
	assert_int_equal(c->nresolvers, 0);
	config_unref(c);
}

static void
test_resolvers_errors(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'resolvers': ['dns.local:53', '10.0.0.1', 5]"),
		      "resolvers[0]: \"dns.local:53\": must be a numeric "
		      "address (a resolver cannot be found by name)",
		      "resolvers[1]: \"10.0.0.1\": missing port",
		      "resolvers[2]: must be a string");
	EXPECT_ERRORS(WITH_ROOT("'resolvers': []"),
		      "resolvers: must list 1 to 64 servers");
}

static void
test_ref_unref_counts(void **state)
{
	struct config *c = parse(MINIMAL);

	assert_non_null(c);
	assert_ptr_equal(config_ref(c), c);
	assert_int_equal(atomic_load(&c->refs), 2);
	config_unref(c);
	assert_int_equal(atomic_load(&c->refs), 1);
	config_unref(c); /* frees; LSan reports a leak otherwise */
	config_unref(NULL);
}

static void
test_not_terminated_input(void **state)
{
	/* The parser must stop at len, not at a NUL. */
	const char *s = sq(MINIMAL);
	size_t len = strlen(s);
	char *buf = malloc(len);
	struct config *c;

	assert_non_null(buf);
	memcpy(buf, s, len);
	c = config_parse(buf, len, &err);
	assert_non_null(c);
	config_unref(c);
	assert_null(config_parse(buf, len - 1, &err));
	free(buf);
}

static void
test_example_file_is_valid(void **state)
{
	static const char *const paths[] = {
	    "gateway/portcullis.example.json",
	    "../gateway/portcullis.example.json",
	    "../../gateway/portcullis.example.json",
	};
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], R_OK) == 0)
			break;
	if (i == sizeof(paths) / sizeof(paths[0])) {
		skip(); /* longjmps, but is not declared noreturn */
		return;
	}
	c = config_load(paths[i], &err);
	if (c == NULL) {
		fail_msg("%s", err.msg[0]); /* not declared noreturn either */
		return;
	}
	assert_int_equal(c->nupstreams, 2);
	assert_int_equal(c->listeners[0].nroutes, 2);
	config_unref(c);
}

/* JSON itself. */

static void
test_error_root_not_object(void **state)
{
	EXPECT_ERRORS("[]", "(root): not a JSON object");
	EXPECT_ERRORS("'x'", "(root): not a JSON object");
}

static void
test_error_empty_document(void **state)
{
	EXPECT_ERRORS("", "(json): empty document");
	EXPECT_ERRORS(" \n\t", "(json): empty document");
}

static void
test_error_json_syntax_line_col(void **state)
{
	EXPECT_ERRORS("{\n  'workers': 1,\n  'max_connections': ,\n}",
		      "(json): syntax error at line 3, column 22");
}

static void
test_error_json_truncated(void **state)
{
	EXPECT_ERRORS("{'workers': 1",
		      "(json): syntax error at line 1, column 13");
}

static void
test_error_json_text_after_value(void **state)
{
	EXPECT_ERRORS(MINIMAL "\n x",
		      "(json): text after the JSON value at line 2, column 2");
	/* A NUL byte after the value is not the end of the input. */
	assert_null(config_parse("{}\0{}", 5, &err));
	assert_string_equal(err.msg[0], "(json): text after the JSON value "
					"at line 1, column 3");
}

static void
test_error_json_control_characters(void **state)
{
	static const char in_string[] = "{\"workers\x01\": 1}";
	static const char outside[] = "{\x01\"workers\": 1}";

	assert_null(config_parse(in_string, strlen(in_string), &err));
	assert_int_equal(err.n, 1);
	assert_string_equal(err.msg[0],
			    "(json): control character at line 1, column 10");
	assert_null(config_parse(outside, strlen(outside), &err));
	assert_string_equal(err.msg[0],
			    "(json): control character at line 1, column 2");
}

static void
test_error_json_nul_escape(void **state)
{
	EXPECT_ERRORS(
	    "{'workers\\u0000x': 1}",
	    "(json): \"\\u0000\" is not allowed at line 1, column 10");
}

static void
test_error_unknown_keys_everywhere(void **state)
{
	EXPECT_ERRORS(
	    "{'bogus': 1, 'admin': {'listen': ':9145', 'x': 1},"
	    " 'upstreams': {'p': {'servers': ['a:1'], 'server': []}},"
	    " 'listeners': [{'listen': '127.0.0.1:8080', 'pathh': '/',"
	    "  'timeouts': {'read': '1s'},"
	    "  'routes': [{'name': 'p', 'path': '/p/', 'upstream': 'p',"
	    "   'realmm': 'x', 'a b': 1}]}]}",
	    "bogus: unknown key", "admin.x: unknown key",
	    "upstreams.p.server: unknown key",
	    "listeners[0].pathh: unknown key",
	    "listeners[0].timeouts.read: unknown key",
	    "listeners[0].routes[0].realmm: unknown key",
	    "listeners[0].routes[0][\"a b\"]: unknown key");
}

static void
test_error_duplicate_keys(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'workers': 1, 'workers': 2"),
		      "workers: duplicate key");
	EXPECT_ERRORS(WITH_ROUTE("'path': '/q/'"),
		      "listeners[0].routes[0].path: duplicate key");
}

static void
test_error_duplicate_upstream(void **state)
{
	EXPECT_ERRORS("{'upstreams': {'p': {'servers': ['a:1']},"
		      " 'p': {'servers': ['b:1']}}, " LISTENERS "}",
		      "upstreams.p: duplicate key");
}

/* Scalars. */

static void
test_error_workers_out_of_range(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'workers': 257"),
		      "workers: must be an integer from 0 to 256");
	EXPECT_ERRORS(WITH_ROOT("'workers': -1"),
		      "workers: must be an integer from 0 to 256");
}

static void
test_error_workers_not_integer(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'workers': 1.5"),
		      "workers: must be an integer from 0 to 256");
	EXPECT_ERRORS(WITH_ROOT("'workers': '4'"),
		      "workers: must be an integer from 0 to 256");
	EXPECT_ERRORS(WITH_ROOT("'workers': 1e400"),
		      "workers: must be an integer from 0 to 256");
}

static void
test_error_max_connections_zero(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'max_connections': 0"),
		      "max_connections: must be an integer from 1 to 1000000");
}

/* The address of `text` (v4 or v6) as config_addr16 gives it. */
static void
addr_of(const char *text, uint8_t out[16])
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &v6->sin6_addr), 1);
		v6->sin6_family = AF_INET6;
	}
	assert_int_equal(config_addr16((struct sockaddr *)&ss, out), 0);
}

static enum config_access_verdict
verdict(const char *allow, const char *deny, const char *addr)
{
	struct config_cidr a, d;
	struct config_access acc = {NULL, NULL, 0, 0};
	const char *why = NULL;
	uint8_t bytes[16];

	if (allow != NULL) {
		assert_int_equal(config_parse_cidr(allow, &a, &why), 0);
		acc.allow = &a;
		acc.nallow = 1;
	}
	if (deny != NULL) {
		assert_int_equal(config_parse_cidr(deny, &d, &why), 0);
		acc.deny = &d;
		acc.ndeny = 1;
	}
	addr_of(addr, bytes);
	return config_access_check(&acc, bytes);
}

static void
test_access_lists(void **state)
{
	struct config_cidr c;
	const char *why = NULL;

	assert_int_equal(verdict("10.0.0.0/8", NULL, "10.255.1.2"),
			 CONFIG_ACCESS_OK);
	assert_int_equal(verdict("10.0.0.0/8", NULL, "11.0.0.1"),
			 CONFIG_ACCESS_NOT_ALLOWED);
	/* a prefix that is not a whole byte */
	assert_int_equal(verdict("192.0.2.64/26", NULL, "192.0.2.127"),
			 CONFIG_ACCESS_OK);
	assert_int_equal(verdict("192.0.2.64/26", NULL, "192.0.2.128"),
			 CONFIG_ACCESS_NOT_ALLOWED);
	assert_int_equal(verdict("192.0.2.64/26", NULL, "192.0.2.63"),
			 CONFIG_ACCESS_NOT_ALLOWED);
	/* an IPv4 client on an IPv6 socket (::ffff:a.b.c.d) is the same */
	assert_int_equal(verdict("10.0.0.0/8", NULL, "::ffff:10.1.2.3"),
			 CONFIG_ACCESS_OK);
	assert_int_equal(verdict("2001:db8::/32", NULL, "2001:db8:1::5"),
			 CONFIG_ACCESS_OK);
	assert_int_equal(verdict("2001:db8::/32", NULL, "2001:db9::5"),
			 CONFIG_ACCESS_NOT_ALLOWED);
	/* an IPv4 range never takes in an IPv6 address, nor ::/0 nothing */
	assert_int_equal(verdict("0.0.0.0/0", NULL, "2001:db8::1"),
			 CONFIG_ACCESS_NOT_ALLOWED);
	assert_int_equal(verdict("::/0", NULL, "192.0.2.1"), CONFIG_ACCESS_OK);
	/* deny wins over allow; a single address is /32 or /128 */
	assert_int_equal(verdict("10.0.0.0/8", "10.0.0.5", "10.0.0.5"),
			 CONFIG_ACCESS_DENIED);
	assert_int_equal(verdict("10.0.0.0/8", "10.0.0.5", "10.0.0.6"),
			 CONFIG_ACCESS_OK);
	assert_int_equal(verdict(NULL, "::1", "::1"), CONFIG_ACCESS_DENIED);
	assert_int_equal(verdict(NULL, NULL, "::1"), CONFIG_ACCESS_OK);
	assert_int_equal(config_parse_cidr("10.0.0.1/31", &c, &why), -1);
	assert_string_equal(why, "has bits set past its prefix (write the "
				 "network's first address)");
	assert_int_equal(config_parse_cidr("10.0.0.0/ 8", &c, &why), -1);
	assert_int_equal(config_parse_cidr("/8", &c, &why), -1);
	assert_int_equal(config_parse_cidr("1.2.3.4/32x", &c, &why), -1);
	assert_int_equal(config_parse_cidr("fe80::1%eth0", &c, &why), -1);
}

static void
test_error_bool_type(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'access_log': 1"),
		      "access_log: must be true (stdout), false, or an "
		      "absolute file path");
	EXPECT_ERRORS(WITH_ROOT("'access_log': 'logs/a.log'"),
		      "access_log: must be an absolute file path (starting "
		      "with '/', under 4096 bytes)");
	EXPECT_ERRORS(WITH_ROOT("'pid_file': '/run/'"),
		      "pid_file: names a directory; give a file path");
	EXPECT_ERRORS(WITH_ROUTE("'strip_prefix': 'yes'"),
		      "listeners[0].routes[0].strip_prefix: must be true or "
		      "false");
}

static void
test_error_duration_values(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'drain_timeout': 30"),
		      "drain_timeout: must be a duration from 0s to 10m, such "
		      "as \"30s\"");
	EXPECT_ERRORS(WITH_ROOT("'drain_timeout': '5'"),
		      "drain_timeout: must be a duration from 0s to 10m, such "
		      "as \"30s\"");
	EXPECT_ERRORS(WITH_ROOT("'drain_timeout': '11m'"),
		      "drain_timeout: must be a duration from 0s to 10m, such "
		      "as \"30s\"");
	EXPECT_ERRORS(WITH_UPSTREAM("'resolve_interval': '500ms'"),
		      "upstreams.p.resolve_interval: must be a duration from "
		      "1s to 1d, such as \"30s\"");
	EXPECT_ERRORS(WITH_LISTENER("'timeouts': {'header': '0s'}"),
		      "listeners[0].timeouts.header: must be a duration from "
		      "1ms to 10m, such as \"10s\"");
}

static void
test_error_size_values(void **state)
{
	EXPECT_ERRORS(WITH_ROUTE("'max_body_size': '65g'"),
		      "listeners[0].routes[0].max_body_size: must be a size "
		      "from 0 to 64g, such as \"1m\"");
	EXPECT_ERRORS(WITH_ROUTE("'max_body_size': -1"),
		      "listeners[0].routes[0].max_body_size: must be a size "
		      "from 0 to 64g, such as \"1m\"");
	EXPECT_ERRORS(WITH_ROUTE("'max_body_size': 1.5"),
		      "listeners[0].routes[0].max_body_size: must be a size "
		      "from 0 to 64g, such as \"1m\"");
	EXPECT_ERRORS(WITH_LISTENER("'max_header_size': 1023"),
		      "listeners[0].max_header_size: must be a size from 1k "
		      "to 1m, such as \"16k\"");
}

static void
test_error_max_uri_over_max_header(void **state)
{
	EXPECT_ERRORS(WITH_LISTENER("'max_uri_size': '32k'"),
		      "listeners[0].max_uri_size: must not exceed "
		      "max_header_size (16k)");
	EXPECT_ERRORS(WITH_LISTENER("'max_uri_size': 255"),
		      "listeners[0].max_uri_size: must be a size from 256 to "
		      "1m, such as \"8k\"");
}

static void
test_error_keepalive_range(void **state)
{
	EXPECT_ERRORS(WITH_UPSTREAM("'keepalive': 10001"),
		      "upstreams.p.keepalive: must be an integer from 0 to "
		      "10000");
}

/* Structure. */

static void
test_error_required_top_level(void **state)
{
	EXPECT_ERRORS("{}", "upstreams: required", "listeners: required");
}

static void
test_error_required_in_listener_and_route(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': [{}, {'listen': "
		      "'127.0.0.1:1', 'routes': [{}]}]}",
		      "listeners[0].listen: required",
		      "listeners[0].routes: required",
		      "listeners[1].routes[0].name: required",
		      "listeners[1].routes[0].path: required",
		      "listeners[1].routes[0].upstream: required");
}

static void
test_error_wrong_container_types(void **state)
{
	EXPECT_ERRORS("{'admin': [], 'upstreams': [], 'listeners': {}}",
		      "admin: must be an object",
		      "upstreams: must be an object",
		      "listeners: must be an array");
	EXPECT_ERRORS("{'upstreams': {'p': 1}, 'listeners': [1, "
		      "{'listen': ':1', 'routes': 'x', 'timeouts': []}]}",
		      "upstreams.p: must be an object",
		      "listeners[0]: must be an object",
		      "listeners[1].timeouts: must be an object",
		      "listeners[1].routes: must be an array");
}

static void
test_error_wrong_string_types(void **state)
{
	EXPECT_ERRORS(
	    "{'admin': {'listen': 9145}, 'upstreams': {'p': "
	    "{'servers': [9090]}}, 'listeners': [{'listen': true, "
	    "'routes': [{'name': 1, 'path': null, 'upstream': []}]}]}",
	    "admin.listen: must be a string",
	    "upstreams.p.servers[0]: must be a string",
	    "listeners[0].listen: must be a string",
	    "listeners[0].routes[0].name: must be a string",
	    "listeners[0].routes[0].path: must be a string",
	    "listeners[0].routes[0].upstream: must be a string");
}

static void
test_error_array_counts(void **state)
{
	char json[8192];
	size_t o, i;

	EXPECT_ERRORS("{'upstreams': {}, 'listeners': []}",
		      "upstreams: must hold 1 to 256 upstreams",
		      "listeners: must list 1 to 64 listeners");
	EXPECT_ERRORS("{'upstreams': {'p': {'servers': []}}, 'listeners': "
		      "[{'listen': ':1', 'routes': []}]}",
		      "upstreams.p.servers: must list 1 to 64 servers",
		      "listeners[0].routes: must list 1 to 256 routes");
	o = (size_t)snprintf(json, sizeof(json),
			     "{'upstreams': {'p': "
			     "{'servers': [");
	for (i = 0; i < 65; i++)
		o += (size_t)snprintf(json + o, sizeof(json) - o, "%s'a:%zu'",
				      i > 0 ? "," : "", i + 1);
	snprintf(json + o, sizeof(json) - o, "]}}, %s}", LISTENERS);
	EXPECT_ERRORS(json, "upstreams.p.servers: must list 1 to 64 servers");
}

/* Names and references. */

static void
test_error_upstream_name(void **state)
{
	EXPECT_ERRORS("{'upstreams': {'p': {'servers': ['a:1']}, "
		      "'a.b': {'servers': ['a:1']}}, " LISTENERS "}",
		      "upstreams[\"a.b\"]: upstream name must be 1 to 64 of "
		      "A-Z a-z 0-9 _ -");
}

static void
test_error_route_unknown_upstream(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': ["
		      "{'listen': '127.0.0.1:8080', " ROUTES "},"
		      "{'listen': '127.0.0.1:8081', 'routes': [{'name': 'g',"
		      " 'path': '/grafana/', 'upstream': 'grafna'}]}]}",
		      "listeners[1].routes[0].upstream: no upstream named "
		      "\"grafna\"");
}

static void
test_error_message_escapes_value(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': [{'listen': ':1', "
		      "'routes': [{'name': 'p', 'path': '/', "
		      "'upstream': 'a\\u0001\\\\'}]}]}",
		      "listeners[0].routes[0].upstream: no upstream named "
		      "\"a\\x01\\\\\"");
}

static void
test_error_route_name(void **state)
{
	EXPECT_ERRORS(
	    "{" UPSTREAMS ", 'listeners': [{'listen': ':1', "
	    "'routes': [{'name': '_x', 'path': '/a', 'upstream': 'p'},"
	    " {'name': 'a b', 'path': '/b', 'upstream': 'p'},"
	    " {'name': '', 'path': '/c', 'upstream': 'p'},"
	    " {'name': "
	    "'12345678901234567890123456789012345678901234567890"
	    "123456789012345', 'path': '/d', 'upstream': 'p'}]}]}",
	    "listeners[0].routes[0].name: must be 1 to 64 of A-Z a-z "
	    "0-9 _ -, not starting with _",
	    "listeners[0].routes[1].name: must be 1 to 64 of A-Z a-z "
	    "0-9 _ -, not starting with _",
	    "listeners[0].routes[2].name: must be 1 to 64 of A-Z a-z "
	    "0-9 _ -, not starting with _",
	    "listeners[0].routes[3].name: must be 1 to 64 of A-Z a-z "
	    "0-9 _ -, not starting with _");
}

static void
test_error_route_path(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': [{'listen': ':1', "
		      "'routes': [{'name': 'a', 'path': 'a/', 'upstream': 'p'},"
		      " {'name': 'b', 'path': '/b?x', 'upstream': 'p'},"
		      " {'name': 'c', 'path': '/c#x', 'upstream': 'p'},"
		      " {'name': 'd', 'path': '/d x', 'upstream': 'p'},"
		      " {'name': 'e', 'path': '/\\u00e9', 'upstream': 'p'},"
		      " {'name': 'f', 'path': '', 'upstream': 'p'}]}]}",
		      "listeners[0].routes[0].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'",
		      "listeners[0].routes[1].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'",
		      "listeners[0].routes[2].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'",
		      "listeners[0].routes[3].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'",
		      "listeners[0].routes[4].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'",
		      "listeners[0].routes[5].path: must start with '/' and "
		      "hold only visible ASCII, without '?' or '#'");
}

static void
test_error_route_duplicate_path(void **state)
{
	EXPECT_ERRORS(
	    "{" UPSTREAMS ", 'listeners': [{'listen': ':1', "
	    "'routes': [{'name': 'a', 'path': '/x/', 'upstream': 'p'},"
	    " {'name': 'b', 'path': '/y/', 'upstream': 'p'},"
	    " {'name': 'c', 'path': '/x/', 'upstream': 'p'}]}]}",
	    "listeners[0].routes[2].path: duplicate path \"/x/\" "
	    "(also listeners[0].routes[0])");
}

static void
test_error_route_duplicate_name(void **state)
{
	EXPECT_ERRORS(
	    "{" UPSTREAMS ", 'listeners': [{'listen': ':1', "
	    "'routes': [{'name': 'a', 'path': '/x/', 'upstream': 'p'},"
	    " {'name': 'a', 'path': '/y/', 'upstream': 'p'}]}]}",
	    "listeners[0].routes[1].name: duplicate route name \"a\" "
	    "(also listeners[0].routes[0])");
}

/* Addresses. */

static void
test_error_server_missing_port(void **state)
{
	EXPECT_ERRORS(
	    "{'upstreams': {'prometheus': {'servers': "
	    "['prometheus', '127.0.0.1:0', '[::1:80', 'a b:1']}}, "
	    "'listeners': [{'listen': ':1', 'routes': [{'name': 'p',"
	    " 'path': '/', 'upstream': 'prometheus'}]}]}",
	    "upstreams.prometheus.servers[0]: \"prometheus\": missing "
	    "port",
	    "upstreams.prometheus.servers[1]: \"127.0.0.1:0\": bad "
	    "port",
	    "upstreams.prometheus.servers[2]: \"[::1:80\": bad IPv6 "
	    "literal",
	    "upstreams.prometheus.servers[3]: \"a b:1\": bad host "
	    "name");
}

static void
test_error_listen_must_be_numeric(void **state)
{
	EXPECT_ERRORS("{'admin': {'listen': 'localhost:9145'}, " UPSTREAMS
		      ", 'listeners': [{'listen': 'gateway:80', " ROUTES "}]}",
		      "admin.listen: must be a numeric address (names are not "
		      "resolved for listening)",
		      "listeners[0].listen: must be a numeric address (names "
		      "are not resolved for listening)");
}

static void
test_error_listen_bad_address(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': [{'listen': '8080', " ROUTES
		      "}]}",
		      "listeners[0].listen: \"8080\": missing port");
}

static void
test_error_listen_duplicate(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': ["
		      "{'listen': '127.0.0.1:8080', " ROUTES "},"
		      "{'listen': '127.0.0.1:08080', " ROUTES "}]}",
		      "listeners[1].listen: duplicate address "
		      "\"127.0.0.1:08080\" (also listeners[0])");
}

static void
test_error_listen_overlaps_wildcard(void **state)
{
	EXPECT_ERRORS("{" UPSTREAMS ", 'listeners': ["
		      "{'listen': '127.0.0.1:8080', " ROUTES "},"
		      "{'listen': ':8080', " ROUTES "}]}",
		      "listeners[1].listen: address \":8080\" overlaps "
		      "listeners[0] (\"127.0.0.1:8080\")");
}

static void
test_error_admin_same_as_listener(void **state)
{
	EXPECT_ERRORS(WITH_ROOT("'admin': {'listen': '127.0.0.1:8080'}"),
		      "admin.listen: same address as listeners[0] "
		      "(\"127.0.0.1:8080\")");
	EXPECT_ERRORS(
	    WITH_ROOT("'admin': {'listen': ':8080'}"),
	    "admin.listen: overlaps listeners[0] (\"127.0.0.1:8080\")");
}

/* Error reporting as a whole. */

static void
test_errors_all_reported_with_paths(void **state)
{
	EXPECT_ERRORS(
	    "{'workers': 999, 'drain_timeout': '1x',"
	    " 'upstreams': {'prometheus': {'servers': ['prometheus'],"
	    "  'keepalive': -3}},"
	    " 'listeners': [{'listen': '127.0.0.1:8080', 'pathh': '/',"
	    "  'routes': [{'name': 'p', 'path': '/x/', 'upstream': "
	    "'prometheus'}]},"
	    "  {'listen': '127.0.0.1:8081', 'routes': ["
	    "   {'name': 'g', 'path': '/g/', 'upstream': 'grafna'}]}]}",
	    "workers: must be an integer from 0 to 256",
	    "drain_timeout: must be a duration from 0s to 10m, such as \"30s\"",
	    "upstreams.prometheus.servers[0]: \"prometheus\": missing port",
	    /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one line */
	    "upstreams.prometheus.keepalive: must be an integer from 0 to "
	    "10000",
	    "listeners[0].pathh: unknown key",
	    "listeners[1].routes[0].upstream: no upstream named \"grafna\"");
}

static void
test_errors_beyond_limit_are_counted(void **state)
{
	char json[4096];
	size_t o, i;
	struct config *c;

	o = (size_t)snprintf(json, sizeof(json), "{");
	for (i = 0; i < CONFIG_MAX_ERRORS + 6; i++)
		o += (size_t)snprintf(json + o, sizeof(json) - o, "'k%zu': 1, ",
				      i);
	snprintf(json + o, sizeof(json) - o, "%s, %s}", UPSTREAMS, LISTENERS);
	c = parse(json);
	assert_null(c);
	assert_int_equal(err.n, CONFIG_MAX_ERRORS);
	assert_int_equal(err.dropped, 6);
	assert_string_equal(err.msg[0], "k0: unknown key");
	assert_string_equal(err.msg[CONFIG_MAX_ERRORS - 1], "k63: unknown key");
}

static void
test_errors_reset_between_calls(void **state)
{
	struct config *c;

	assert_null(parse("[]"));
	assert_int_equal(err.n, 1);
	c = parse(MINIMAL);
	assert_non_null(c);
	assert_int_equal(err.n, 0);
	assert_int_equal(err.dropped, 0);
	config_unref(c);
}

/* Durations and sizes. */

static void
test_duration_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} cases[] = {
	    {"250ms", 250},
	    {"5s", 5000},
	    {"2m", 120000},
	    {"1h", 3600000},
	    {"1d", 86400000},
	    {"0s", 0},
	    {"007s", 7000},
	    {"0ms", 0},
	    {"18446744073709551615ms", UINT64_MAX},
	};
	uint64_t ms;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = 12345;
		assert_int_equal(config_parse_duration(cases[i].s, &ms), 0);
		assert_int_equal(ms, cases[i].ms);
	}
}

static void
test_duration_invalid(void **state)
{
	static const char *const cases[] = {
	    "5",  "5x",	  "-1s", "",	 "s",	" 5s",	 "5s ",	  "5 s",
	    "5S", "1.5s", "+5s", "5ms5", "5sm", "1m30s", "0x10s",
	};
	uint64_t ms = 77;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (config_parse_duration(cases[i], &ms) != -1)
			fail_msg("accepted \"%s\"", cases[i]);
	assert_int_equal(config_parse_duration(NULL, &ms), -1);
	assert_int_equal(ms, 77);
}

static void
test_duration_overflow(void **state)
{
	uint64_t ms = 0;

	assert_int_equal(config_parse_duration("18446744073709551616ms", &ms),
			 -1);
	assert_int_equal(config_parse_duration("18446744073709552s", &ms), -1);
	assert_int_equal(config_parse_duration("213503982335d", &ms), -1);
	assert_int_equal(config_parse_duration("99999999999999999999999d", &ms),
			 -1);
	assert_int_equal(config_parse_duration("213503982334d", &ms), 0);
}

static void
test_size_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t n;
	} cases[] = {
	    {"0", 0},
	    {"1024", 1024},
	    {"16k", 16384},
	    {"1m", 1048576},
	    {"2g", 2147483648ULL},
	    {"16K", 16384},
	    {"16kb", 16384},
	    {"1MB", 1048576},
	    {"3Gb", 3ULL << 30},
	    {"17179869183g", 17179869183ULL << 30},
	};
	uint64_t n;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = 12345;
		assert_int_equal(config_parse_size(cases[i].s, &n), 0);
		assert_int_equal(n, cases[i].n);
	}
}

static void
test_size_invalid(void **state)
{
	static const char *const cases[] = {
	    "5x",   "-1", "",	  "k",	" 1k", "1k ", "1kk",
	    "1kbb", "1t", "1.5m", "+1", "1b",  "1 k", "1kib",
	};
	uint64_t n = 77;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (config_parse_size(cases[i], &n) != -1)
			fail_msg("accepted \"%s\"", cases[i]);
	assert_int_equal(config_parse_size(NULL, &n), -1);
	assert_int_equal(n, 77);
}

static void
test_size_overflow(void **state)
{
	uint64_t n = 0;

	assert_int_equal(config_parse_size("17179869184g", &n), -1);
	assert_int_equal(config_parse_size("18446744073709551616", &n), -1);
	assert_int_equal(config_parse_size("18014398509481984k", &n), -1);
	assert_int_equal(config_parse_size("18446744073709551615", &n), 0);
	assert_int_equal(n, UINT64_MAX);
}

/* Host and port. */

static void
test_hostport_ipv4(void **state)
{
	struct config_hostport hp;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&hp.addr;
	const char *why = NULL;

	assert_int_equal(config_parse_hostport("127.0.0.1:80", &hp, &why), 0);
	assert_string_equal(hp.host, "127.0.0.1");
	assert_string_equal(hp.port, "80");
	assert_true(hp.numeric);
	assert_int_equal(hp.addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 80);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	free(hp.host);
}

static void
test_hostport_ipv6(void **state)
{
	struct config_hostport hp;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&hp.addr;
	const char *why = NULL;

	assert_int_equal(config_parse_hostport("[::1]:8080", &hp, &why), 0);
	assert_string_equal(hp.host, "::1");
	assert_string_equal(hp.port, "8080");
	assert_true(hp.numeric);
	assert_int_equal(hp.addrlen, sizeof(struct sockaddr_in6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 8080);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	free(hp.host);
}

static void
test_hostport_any(void **state)
{
	struct config_hostport hp;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&hp.addr;
	const char *why = NULL;

	assert_int_equal(config_parse_hostport(":8080", &hp, &why), 0);
	assert_string_equal(hp.host, "0.0.0.0");
	assert_string_equal(hp.port, "8080");
	assert_true(hp.numeric);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	free(hp.host);
}

static void
test_hostport_name(void **state)
{
	struct config_hostport hp;
	const char *why = NULL;

	assert_int_equal(config_parse_hostport("name:9090", &hp, &why), 0);
	assert_string_equal(hp.host, "name");
	assert_string_equal(hp.port, "9090");
	assert_false(hp.numeric);
	assert_int_equal(hp.addrlen, 0);
	free(hp.host);
	assert_int_equal(
	    config_parse_hostport("my_app.example.com.:09090", &hp, &why), 0);
	assert_string_equal(hp.host, "my_app.example.com.");
	assert_string_equal(hp.port, "9090");
	free(hp.host);
}

static void
test_hostport_errors(void **state)
{
	static const struct {
		const char *s;
		const char *why;
	} cases[] = {
	    {"prometheus", "missing port"},
	    {"127.0.0.1:", "missing port"},
	    {"", "missing port"},
	    {"[::1]", "missing port"},
	    {"[::1]8080", "missing port"},
	    {"h:0", "bad port"},
	    {"h:65536", "bad port"},
	    {"h:123456", "bad port"},
	    {"h:80a", "bad port"},
	    {"h:-1", "bad port"},
	    {"h: 80", "bad port"},
	    {"[]:80", "empty host"},
	    {"[::1:80", "bad IPv6 literal"},
	    {"[1.2.3.4]:80", "bad IPv6 literal"},
	    {"[::g]:80", "bad IPv6 literal"},
	    {"::1:80", "IPv6 literal needs brackets"},
	    {"256.1.1.1:80", "bad IPv4 address"},
	    {"10.1:80", "bad IPv4 address"},
	    {"a..b:80", "bad host name"},
	    {".a:80", "bad host name"},
	    {"a/b:80", "bad host name"},
	};
	struct config_hostport hp;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		if (config_parse_hostport(cases[i].s, &hp, &why) != -1)
			fail_msg("accepted \"%s\"", cases[i].s);
		if (strcmp(why, cases[i].why) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].s,
				 why, cases[i].why);
		assert_null(hp.host);
	}
}

static void
test_hostport_host_too_long(void **state)
{
	char s[300];
	struct config_hostport hp;
	const char *why = NULL;

	memset(s, 'a', 254);
	snprintf(s + 254, sizeof(s) - 254, ":80");
	assert_int_equal(config_parse_hostport(s, &hp, &why), -1);
	assert_string_equal(why, "host too long");
}

/* Loading files. */

static void
test_load_missing_file(void **state)
{
	assert_null(config_load("/nonexistent/portcullis.json", &err));
	assert_int_equal(err.n, 1);
	assert_string_equal(err.msg[0],
			    "(file): cannot read "
			    "\"/nonexistent/portcullis.json\": No such file "
			    "or directory");
}

/* Writes len bytes of data to a new temporary file; returns its path. */
static char *
write_temp(const void *data, size_t len)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
test_load_file(void **state)
{
	const char *json = sq(MINIMAL);
	char *path = write_temp(json, strlen(json));
	struct config *c = config_load(path, &err);

	unlink(path);
	assert_non_null(c);
	assert_string_equal(c->listeners[0].routes[0].path, "/p/");
	config_unref(c);
}

static void
test_load_too_large(void **state)
{
	size_t len = (4u << 20) + 1;
	char *big = malloc(len), *path, want[128];

	assert_non_null(big);
	memset(big, ' ', len);
	path = write_temp(big, len);
	free(big);
	assert_null(config_load(path, &err));
	unlink(path);
	snprintf(want, sizeof(want), "(file): \"%s\" is larger than 4 MiB",
		 path);
	assert_int_equal(err.n, 1);
	assert_string_equal(err.msg[0], want);
}

static void
test_load_directory(void **state)
{
	assert_null(config_load("/", &err));
	assert_string_equal(err.msg[0],
			    "(file): cannot read \"/\": Is a directory");
}

#define REALM_P "'realms': {'prom': {'htpasswd': 'a.htpasswd'}}"
#define WITH_REALM_ROUTE(realm, kv)                                            \
	"{" UPSTREAMS ", " realm ", 'listeners': [{'listen': "                 \
	"'127.0.0.1:8080', 'routes': [{'name': 'p', 'path': '/p/', "           \
	"'upstream': 'p', " kv "}]}]}"

static void
test_realm_fields_and_defaults(void **state)
{
	struct config *c = parse(
	    "{" UPSTREAMS ", 'auth': {'verifier_threads': 3, "
	    "'cache_entries': 64}, 'realms': {"
	    "'prom': {'htpasswd': 'a.htpasswd'},"
	    "'am': {'htpasswd': ['b', 'c'], 'allow_plaintext': true,"
	    " 'cache_ttl': '0s', 'max_failures': 0, 'failure_window': '1h',"
	    " 'aws_secret': 'prometheus/am-auth', 'secret_refresh': '30s'}},"
	    " 'listeners': [{'listen': '127.0.0.1:8080', 'routes': ["
	    "{'name': 'p', 'path': '/p/', 'upstream': 'p', 'realm': 'am',"
	    " 'pass_authorization': true, 'user_header': 'X-WEBAUTH-USER'},"
	    "{'name': 'q', 'path': '/q/', 'upstream': 'p'}]}]}");
	const struct config_realm *r;
	const struct config_route *rt;

	assert_non_null(c);
	assert_int_equal(c->auth.verifier_threads, 3);
	assert_int_equal(c->auth.cache_entries, 64);
	assert_int_equal(c->nrealms, 2);
	r = &c->realms[0];
	assert_string_equal(r->name, "prom");
	assert_int_equal(r->nhtpasswd, 1);
	assert_string_equal(r->htpasswd[0], "a.htpasswd");
	assert_false(r->allow_plaintext);
	assert_int_equal(r->cache_ttl_ms, 5 * 60 * 1000);
	assert_int_equal(r->max_failures, 10);
	assert_int_equal(r->failure_window_ms, 5 * 60 * 1000);
	assert_null(r->auth);
	r = &c->realms[1];
	assert_int_equal(r->nhtpasswd, 2);
	assert_string_equal(r->htpasswd[1], "c");
	assert_true(r->allow_plaintext);
	assert_int_equal(r->cache_ttl_ms, 0);
	assert_int_equal(r->max_failures, 0);
	assert_int_equal(r->failure_window_ms, 3600 * 1000);
	assert_string_equal(r->aws_secret, "prometheus/am-auth");
	assert_int_equal(r->secret_refresh_ms, 30 * 1000);
	rt = &c->listeners[0].routes[0];
	assert_int_equal(rt->realm, 1);
	assert_true(rt->pass_authorization);
	assert_string_equal(rt->user_header, "X-WEBAUTH-USER");
	assert_int_equal(rt->user_header_len, 14);
	rt = &c->listeners[0].routes[1];
	assert_int_equal(rt->realm, CONFIG_NO_REALM);
	assert_false(rt->pass_authorization);
	assert_null(rt->user_header);
	config_unref(c);

	c = parse(MINIMAL);
	assert_non_null(c);
	assert_int_equal(c->nrealms, 0);
	assert_int_equal(c->auth.verifier_threads, 1);
	assert_int_equal(c->auth.cache_entries, 4096);
	assert_int_equal(c->listeners[0].routes[0].realm, CONFIG_NO_REALM);
	config_unref(c);
}

static void
test_error_realms(void **state)
{
	EXPECT_ERRORS(
	    WITH_REALM_ROUTE(REALM_P, "'realm': 'grafna'"),
	    "listeners[0].routes[0].realm: no realm named \"grafna\"");
	EXPECT_ERRORS(WITH_ROOT("'realms': {'prom': {}}"),
		      "realms.prom: needs \"htpasswd\" or \"aws_secret\" "
		      "(there are no default passwords)");
	EXPECT_ERRORS(WITH_ROOT("'realms': {'p': {'htpasswd': 'a', "
				"'secret_refresh': '1m'}}"),
		      "realms.p.secret_refresh: only applies to a realm with "
		      "aws_secret");
	EXPECT_ERRORS(WITH_ROOT("'realms': {'p': {'aws_secret': 'a b'}}"),
		      "realms.p.aws_secret: must be a secret name or ARN: 1 to "
		      "2048 visible ASCII characters");
	EXPECT_ERRORS(
	    WITH_ROOT("'realms': {'pr om': {'htpasswd': 'x'}}"),
	    "realms[\"pr om\"]: realm name must be 1 to 64 of A-Z a-z 0-9 _ "
	    "-");
	EXPECT_ERRORS(
	    WITH_ROOT("'realms': {'p': {'htpasswd': []}}"),
	    "realms.p.htpasswd: must be a file name or a list of 1 to "
	    "16");
	EXPECT_ERRORS(WITH_ROOT("'realms': {'p': {'htpasswd': ['a', 3, '']}}"),
		      "realms.p.htpasswd[1]: must be a string",
		      "realms.p.htpasswd[2]: must not be empty");
	EXPECT_ERRORS(WITH_ROOT("'realms': {'p': {'htpasswd': 'a', "
				"'max_failures': -1, 'failure_window': '0s', "
				"'cache_ttl': '2d', 'bogus': 1}}"),
		      "realms.p.bogus: unknown key",
		      "realms.p.cache_ttl: must be a duration from 0s to 1d, "
		      "such as \"5m\"",
		      "realms.p.max_failures: must be an integer from 0 to "
		      "1000000",
		      "realms.p.failure_window: must be a duration from 1s to "
		      "1d, such as \"5m\"");
	EXPECT_ERRORS(WITH_ROOT("'auth': {'verifier_threads': 0, "
				"'cache_entries': 8}"),
		      "auth.verifier_threads: must be an integer from 1 to 16",
		      "auth.cache_entries: must be an integer from 16 to "
		      "1048576");
	EXPECT_ERRORS(WITH_ROUTE("'user_header': 'X-User'"),
		      "listeners[0].routes[0].user_header: only applies to a "
		      "route with a realm");
	EXPECT_ERRORS(WITH_ROUTE("'pass_authorization': false"),
		      "listeners[0].routes[0].pass_authorization: only applies "
		      "to a route with a realm");
	EXPECT_ERRORS(
	    WITH_REALM_ROUTE(REALM_P, "'realm': 'prom', "
				      "'user_header': 'Authorization'"),
	    "listeners[0].routes[0].user_header: \"Authorization\" is "
	    "managed by the gateway; pick another name");
	EXPECT_ERRORS(WITH_REALM_ROUTE(REALM_P, "'realm': 'prom', "
						"'user_header': 'X User'"),
		      "listeners[0].routes[0].user_header: must be a header "
		      "name of 1 to 64 token characters");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_config_every_field),
	    cmocka_unit_test(test_defaults_applied),
	    cmocka_unit_test(test_workers_zero_is_online_cpus),
	    cmocka_unit_test(test_max_uri_default_follows_small_header),
	    cmocka_unit_test(test_listen_colon_port_is_any_ipv4),
	    cmocka_unit_test(test_same_route_name_on_two_listeners_ok),
	    cmocka_unit_test(test_null_errors_pointer_ok),
	    cmocka_unit_test(test_metrics_switch),
	    cmocka_unit_test(test_resolvers_parsed),
	    cmocka_unit_test(test_resolvers_errors),
	    cmocka_unit_test(test_ref_unref_counts),
	    cmocka_unit_test(test_not_terminated_input),
	    cmocka_unit_test(test_example_file_is_valid),
	    cmocka_unit_test(test_realm_fields_and_defaults),
	    cmocka_unit_test(test_error_realms),
	    cmocka_unit_test(test_error_root_not_object),
	    cmocka_unit_test(test_error_empty_document),
	    cmocka_unit_test(test_error_json_syntax_line_col),
	    cmocka_unit_test(test_error_json_truncated),
	    cmocka_unit_test(test_error_json_text_after_value),
	    cmocka_unit_test(test_error_json_control_characters),
	    cmocka_unit_test(test_error_json_nul_escape),
	    cmocka_unit_test(test_error_unknown_keys_everywhere),
	    cmocka_unit_test(test_error_duplicate_keys),
	    cmocka_unit_test(test_error_duplicate_upstream),
	    cmocka_unit_test(test_error_workers_out_of_range),
	    cmocka_unit_test(test_error_workers_not_integer),
	    cmocka_unit_test(test_error_max_connections_zero),
	    cmocka_unit_test(test_error_bool_type),
	    cmocka_unit_test(test_access_lists),
	    cmocka_unit_test(test_error_duration_values),
	    cmocka_unit_test(test_error_size_values),
	    cmocka_unit_test(test_error_max_uri_over_max_header),
	    cmocka_unit_test(test_error_keepalive_range),
	    cmocka_unit_test(test_error_required_top_level),
	    cmocka_unit_test(test_error_required_in_listener_and_route),
	    cmocka_unit_test(test_error_wrong_container_types),
	    cmocka_unit_test(test_error_wrong_string_types),
	    cmocka_unit_test(test_error_array_counts),
	    cmocka_unit_test(test_error_upstream_name),
	    cmocka_unit_test(test_error_route_unknown_upstream),
	    cmocka_unit_test(test_error_message_escapes_value),
	    cmocka_unit_test(test_error_route_name),
	    cmocka_unit_test(test_error_route_path),
	    cmocka_unit_test(test_error_route_duplicate_path),
	    cmocka_unit_test(test_error_route_duplicate_name),
	    cmocka_unit_test(test_error_server_missing_port),
	    cmocka_unit_test(test_error_listen_must_be_numeric),
	    cmocka_unit_test(test_error_listen_bad_address),
	    cmocka_unit_test(test_error_listen_duplicate),
	    cmocka_unit_test(test_error_listen_overlaps_wildcard),
	    cmocka_unit_test(test_error_admin_same_as_listener),
	    cmocka_unit_test(test_errors_all_reported_with_paths),
	    cmocka_unit_test(test_errors_beyond_limit_are_counted),
	    cmocka_unit_test(test_errors_reset_between_calls),
	    cmocka_unit_test(test_duration_valid),
	    cmocka_unit_test(test_duration_invalid),
	    cmocka_unit_test(test_duration_overflow),
	    cmocka_unit_test(test_size_valid),
	    cmocka_unit_test(test_size_invalid),
	    cmocka_unit_test(test_size_overflow),
	    cmocka_unit_test(test_hostport_ipv4),
	    cmocka_unit_test(test_hostport_ipv6),
	    cmocka_unit_test(test_hostport_any),
	    cmocka_unit_test(test_hostport_name),
	    cmocka_unit_test(test_hostport_errors),
	    cmocka_unit_test(test_hostport_host_too_long),
	    cmocka_unit_test(test_load_missing_file),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_load_too_large),
	    cmocka_unit_test(test_load_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
