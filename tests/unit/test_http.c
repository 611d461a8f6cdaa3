/*
 * test_http.c - the HTTP/1.1 head parser and chunked scanner, through
 * http.h: accepted messages field by field, and every rejection with the
 * exact status it must answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static const struct http_limits lim = {
    .max_head = 8192,
    .max_target = 4096,
    .max_headers = 64,
};

static const struct http_limits small = {
    .max_head = 128,
    .max_target = 16,
    .max_headers = 3,
};

/* The results are large; static keeps them off the test stack. */
static struct http_request req;
static struct http_header res_fields[64]; /* lim.max_headers */
static struct http_response res = {.headers = res_fields};

static int
parse_n(const char *s, size_t n)
{
	return http_parse_request(s, n, &lim, &req);
}

static int
parse(const char *s)
{
	return parse_n(s, strlen(s));
}

static void
assert_rejected_n(const char *s, size_t n, int status)
{
	assert_int_equal(parse_n(s, n), -1);
	assert_int_equal(req.status, status);
	assert_non_null(req.error);
}

static void
assert_rejected(const char *s, int status)
{
	assert_rejected_n(s, strlen(s), status);
}

/* Every proper prefix is incomplete, the whole is accepted as one head. */
static void
assert_complete_only_at_end(const char *s)
{
	size_t n = strlen(s), k;

	for (k = 0; k < n; k++)
		assert_int_equal(parse_n(s, k), -2);
	assert_int_equal(parse_n(s, n), (int)n);
}

static void
assert_str(const char *p, size_t n, const char *want)
{
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

/* Fills buf with a head of exactly n bytes: prefix, a padded field, CRLF. */
static void
pad_head(char *buf, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);

	memcpy(buf, prefix, p);
	memcpy(buf + p, "X: ", 3);
	memset(buf + p + 3, 'a', n - p - 7);
	memcpy(buf + n - 4, "\r\n\r\n", 4);
}

static int
parse_res(const char *s, bool head)
{
	return http_parse_response(s, strlen(s), &lim, head, &res);
}

/* Paths with one meaning: what the gateway routes is what the upstream,
 * decoding and cleaning the path, will serve. */
static void
assert_path_rejected(const char *target, const char *why)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n",
		 target);
	assert_rejected(buf, 400);
	assert_string_equal(req.error, why);
}

static void
assert_path_accepted(const char *target)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n",
		 target);
	assert_int_equal(parse(buf), (int)strlen(buf));
	assert_str(req.path, req.path_len, target);
}

static void
test_path_ambiguous_rejected(void **state)
{
	static const char *const enc = "percent-encoded unreserved character "
				       "or separator in target path";

	(void)state;
	assert_path_rejected("/api/v1/%61dmin/tsdb", enc);
	assert_path_rejected("/api/v1/admin%2Ftsdb", enc);
	assert_path_rejected("/api/v1/admin%2ftsdb", enc);
	assert_path_rejected("/a%5Cb", enc);
	assert_path_rejected("/a%00", enc);
	assert_path_rejected("/%2e%2e/admin/", enc);
	assert_path_rejected("/a%7e", enc);
	assert_path_rejected("/a%4", "invalid percent-encoding in target path");
	assert_path_rejected("/a%", "invalid percent-encoding in target path");
	assert_path_rejected("/a%zz",
			     "invalid percent-encoding in target path");
	assert_path_rejected("/a%4?x=1",
			     "invalid percent-encoding in target path");
	assert_path_rejected("/api/v1//admin/", "empty segment (//) in "
						"target path");
	assert_path_rejected("/x/../admin/", "dot segment in target path");
	assert_path_rejected("/x/./admin/", "dot segment in target path");
	assert_path_rejected("/x/..", "dot segment in target path");
	assert_path_rejected("/.", "dot segment in target path");
	assert_path_rejected("/x/..?q", "dot segment in target path");
	assert_path_rejected("http://h/a/../b", "dot segment in target path");
	assert_path_rejected("http://h/a%2Fb", enc);
	assert_path_rejected("/public/..\\admin", "backslash in target path");
	assert_path_rejected("/public\\admin", "backslash in target path");
	assert_path_rejected("/public/..;/admin/secret",
			     "dot segment in target path");
	assert_path_rejected("/public/.;/x", "dot segment in target path");
	assert_path_rejected("/public/..;a=b;c/x",
			     "dot segment in target path");
	assert_path_rejected("/public/..;", "dot segment in target path");
}

static void
test_path_unambiguous_accepted(void **state)
{
	(void)state;
	assert_path_accepted("/");
	assert_path_accepted("/a/");
	assert_path_accepted("/a/b");
	assert_path_accepted("/a/.b/..c/...");
	assert_path_accepted("/a%20b/%E2%82%AC/%3F%23%25");
	assert_path_accepted("/search?q=a%2Fb&p=../x//y&e=%41");
	assert_path_accepted("/a?");
	assert_path_accepted("/a;x=1/b;jsessionid=2/..c;d");
	assert_path_accepted("/a/;x/b");
	assert_path_accepted("/a?q=\\..;/");
}

/* A request line that goes wrong is refused at its first wrong byte,
 * without waiting for the end of the head (or the header timeout). */
static void
test_request_line_refused_early(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *why;
	} cases[] = {
	    {"\0x", 2, "invalid method"},
	    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11,
	     "invalid method"},
	    {"GET\t/", 5, "invalid method"},
	    {" GET", 4, "invalid method"},
	    {"GET /a\x01", 7, "invalid character in target"},
	    {"GET  /", 6, "invalid character in target"},
	    {"GET / HTTQ", 10, "malformed request line"},
	    {"GET / HTTP/x", 12, "malformed request line"},
	    {"GET / HTTP/1,1", 14, "malformed request line"},
	    {"GET / HTTP/1.1 ", 15, "malformed request line"},
	    {"GET / HTTP/1.1\rX", 16, "malformed request line"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse_n(cases[i].in, cases[i].n), -1);
		assert_int_equal(req.status, 400);
		assert_string_equal(req.error, cases[i].why);
	}
	/* Good so far: wait. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost"), -2);
	assert_int_equal(parse("PROPFIND /x HTTP/2.0\r"), -2);
	assert_int_equal(parse("GET http://a/b HT"), -2);
}

/* Requests that are accepted. */

static void
test_get_minimal(void **state)
{
	const char *s = "GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";

	assert_int_equal(parse(s), (int)strlen(s));
	assert_str(req.method, req.method_len, "GET");
	assert_str(req.target, req.target_len, "/a/b?q=1");
	assert_str(req.path, req.path_len, "/a/b?q=1");
	assert_int_equal(req.target_form, HTTP_TARGET_ORIGIN);
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nheaders, 1);
	assert_str(req.host, req.host_len, "example.com");
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_true(req.keep_alive);
	assert_false(req.upgrade);
	assert_false(req.expect_continue);
}

static void
test_post_content_length(void **state)
{
	const char *s =
	    "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
	    "hello";

	assert_int_equal(parse(s), (int)strlen(s) - 5);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 5);
}

static void
test_post_chunked(void **state)
{
	assert_int_equal(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n"),
			 56);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void
test_content_length_zero_is_length(void **state)
{
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			  "Content-Length: 0\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 0);
}

static void
test_content_length_leading_zeros(void **state)
{
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			  "Content-Length: 007\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);
}

static void
test_content_length_at_max(void **state)
{
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			  "Content-Length: 4611686018427387904\r\n\r\n") > 0);
	assert_true(req.content_length == HTTP_MAX_CONTENT_LENGTH);
}

static void
test_te_chunked_case_insensitive(void **state)
{
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			  "Transfer-Encoding: ChUnKeD\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void
test_te_chunked_trailing_ows(void **state)
{
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\n"
			  "Transfer-Encoding: \tchunked \t\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void
test_value_ows_trimmed(void **state)
{
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\n"
			  "X-A: \t in  side \t\r\n\r\n") > 0);
	assert_str(req.headers[1].name, req.headers[1].name_len, "X-A");
	assert_str(req.headers[1].value, req.headers[1].value_len, "in  side");
}

static void
test_empty_value(void **state)
{
	assert_true(
	    parse("GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-F: \r\n\r\n") > 0);
	assert_int_equal(req.nheaders, 3);
	assert_int_equal(req.headers[1].value_len, 0);
	assert_int_equal(req.headers[2].value_len, 0);
}

static void
test_obs_text_value(void **state)
{
	assert_true(
	    parse("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n") > 0);
	assert_str(req.headers[1].value, req.headers[1].value_len,
		   "caf\xc3\xa9");
}

static void
test_host_ipv6_and_port(void **state)
{
	assert_true(parse("GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n") > 0);
	assert_str(req.host, req.host_len, "[::1]:8443");
}

static void
test_http10_defaults_to_close(void **state)
{
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), 18);
	assert_int_equal(req.minor, 0);
	assert_false(req.keep_alive);
	assert_null(req.host);
}

static void
test_http10_keep_alive(void **state)
{
	assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") >
		    0);
	assert_true(req.keep_alive);
}

static void
test_http10_keep_alive_and_close(void **state)
{
	assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
			  "Connection: close\r\n\r\n") > 0);
	assert_false(req.keep_alive);
}

static void
test_http11_connection_close(void **state)
{
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\n"
			  "Connection: keep-alive ,  CLOSE\r\n\r\n") > 0);
	assert_false(req.keep_alive);
}

static void
test_http11_close_is_a_whole_token(void **state)
{
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\n"
			  "Connection: closed, x-close\r\n\r\n") > 0);
	assert_true(req.keep_alive);
}

static void
test_upgrade(void **state)
{
	assert_true(parse("GET /ws HTTP/1.1\r\nHost: a\r\n"
			  "Connection: keep-alive, Upgrade\r\n"
			  "Upgrade: websocket\r\n\r\n") > 0);
	assert_true(req.upgrade);
	assert_true(req.keep_alive);
}

static void
test_upgrade_needs_upgrade_field(void **state)
{
	assert_true(parse("GET /ws HTTP/1.1\r\nHost: a\r\n"
			  "Connection: upgrade\r\n\r\n") > 0);
	assert_false(req.upgrade);
}

static void
test_upgrade_needs_connection_option(void **state)
{
	assert_true(parse("GET /ws HTTP/1.1\r\nHost: a\r\n"
			  "Upgrade: websocket\r\n\r\n") > 0);
	assert_false(req.upgrade);
}

static void
test_expect_continue(void **state)
{
	assert_true(
	    parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
		  "Content-Length: 1\r\n\r\n") > 0);
	assert_true(req.expect_continue);
}

static void
test_expect_other(void **state)
{
	assert_true(
	    parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue2\r\n"
		  "\r\n") > 0);
	assert_false(req.expect_continue);
}

static void
test_expect_ignored_in_http10(void **state)
{
	assert_true(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
			  "Content-Length: 1\r\n\r\n") > 0);
	assert_false(req.expect_continue);
}

static void
test_leading_empty_lines_skipped(void **state)
{
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";

	assert_int_equal(parse(s), (int)strlen(s));
	assert_ptr_equal(req.method, s + 4);
}

static void
test_eight_empty_lines_allowed(void **state)
{
	assert_true(parse("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
			  "GET / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
}

static void
test_nine_empty_lines_rejected(void **state)
{
	assert_rejected("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
			"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			400);
}

static void
test_pipelined_requests(void **state)
{
	const char *one = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *two = "POST /2 HTTP/1.1\r\nHost: b\r\n"
			  "Content-Length: 0\r\n\r\n";
	char buf[256];
	int n;

	snprintf(buf, sizeof(buf), "%s%s", one, two);
	n = parse(buf);
	assert_int_equal(n, (int)strlen(one));
	assert_str(req.path, req.path_len, "/1");
	assert_int_equal(parse(buf + n), (int)strlen(two));
	assert_str(req.path, req.path_len, "/2");
	assert_str(req.host, req.host_len, "b");
}

static void
test_incomplete_at_every_split(void **state)
{
	assert_complete_only_at_end("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_complete_only_at_end("\r\nPOST /y?z HTTP/1.1\r\nHost: a\r\n"
				    "Content-Length: 12\r\nX:\r\n\r\n");
	assert_complete_only_at_end("GET / HTTP/1.0\r\n\r\n");
}

static void
test_absolute_form(void **state)
{
	assert_true(parse("GET HTTP://Example.com:8080/a?b HTTP/1.1\r\n"
			  "Host: example.COM:8080\r\n\r\n") > 0);
	assert_int_equal(req.target_form, HTTP_TARGET_ABSOLUTE);
	assert_str(req.path, req.path_len, "/a?b");
	assert_str(req.host, req.host_len, "example.COM:8080");
}

static void
test_absolute_form_empty_path(void **state)
{
	assert_true(parse("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(req.target_form, HTTP_TARGET_ABSOLUTE);
	assert_str(req.path, req.path_len, "/");
	assert_str(req.target, req.target_len, "https://h");
}

static void
test_options_asterisk(void **state)
{
	assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	assert_int_equal(req.target_form, HTTP_TARGET_ASTERISK);
	assert_str(req.path, req.path_len, "*");
}

static void
test_method_32_chars(void **state)
{
	assert_true(parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 / HTTP/1.1\r\n"
			  "Host: a\r\n\r\n") > 0);
}

static void
test_limits_exactly_met(void **state)
{
	char s[128];

	/* 16-byte target, 3 fields, 128-byte head. */
	pad_head(s, sizeof(s),
		 "GET /0123456789abcde HTTP/1.1\r\nHost: a\r\n"
		 "B: 1\r\n");
	assert_int_equal(http_parse_request(s, sizeof(s), &small, &req), 128);
}

/* Request line rejections. */

static void
test_method_invalid_char(void **state)
{
	assert_rejected("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_method_too_long(void **state)
{
	assert_rejected("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456 / HTTP/1.1\r\n"
			"Host: a\r\n\r\n",
			400);
}

static void
test_method_too_long_partial(void **state)
{
	assert_rejected("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", 400);
}

static void
test_empty_method(void **state)
{
	assert_rejected(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_connect_rejected(void **state)
{
	assert_rejected("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400);
}

static void
test_double_space(void **state)
{
	assert_rejected("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_not_a_form(void **state)
{
	assert_rejected("GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_double_slash(void **state)
{
	assert_rejected("GET // HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_with_space(void **state)
{
	assert_rejected("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_with_fragment(void **state)
{
	assert_rejected("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_with_control(void **state)
{
	assert_rejected("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
	assert_rejected("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_target_with_obs_text(void **state)
{
	assert_rejected("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_authority_form(void **state)
{
	assert_rejected("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_asterisk_without_options(void **state)
{
	assert_rejected("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_absolute_form_empty_userinfo(void **state)
{
	assert_rejected("GET http://@evil/ HTTP/1.1\r\nHost: evil\r\n\r\n",
			400);
}

static void
test_absolute_form_userinfo(void **state)
{
	assert_rejected("GET http://a@evil/ HTTP/1.1\r\nHost: evil\r\n\r\n",
			400);
}

static void
test_absolute_form_other_scheme(void **state)
{
	assert_rejected("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void
test_absolute_form_no_authority(void **state)
{
	assert_rejected("GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void
test_absolute_form_query_without_path(void **state)
{
	assert_rejected("GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void
test_absolute_form_double_slash_path(void **state)
{
	assert_rejected("GET http://h//x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void
test_absolute_form_host_mismatch(void **state)
{
	assert_rejected("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400);
}

static void
test_version_http2_505(void **state)
{
	assert_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
}

static void
test_version_http12_505(void **state)
{
	assert_rejected("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
}

static void
test_version_trailing_garbage(void **state)
{
	assert_rejected("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
}

static void
test_version_lowercase(void **state)
{
	assert_rejected("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_version_trailing_space(void **state)
{
	assert_rejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
}

static void
test_version_missing(void **state)
{
	assert_rejected("GET /\r\nHost: a\r\n\r\n", 400);
}

static void
test_version_short(void **state)
{
	assert_rejected("GET / HTTP/2\r\nHost: a\r\n\r\n", 400);
}

/* Smuggling vectors in the body framing. */

static void
test_cl_and_te(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"Transfer-Encoding: chunked\r\n\r\n",
			400);
}

static void
test_te_and_cl(void **state)
{
	assert_rejected(
	    "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	    400);
}

static void
test_cl_duplicate_equal(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"Content-Length: 5\r\n\r\n",
			400);
}

static void
test_cl_duplicate_different(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"content-length: 6\r\n\r\n",
			400);
}

static void
test_cl_list(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: 5, 5\r\n\r\n",
			400);
}

static void
test_cl_plus_sign(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: +5\r\n\r\n",
			400);
}

static void
test_cl_negative(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: -1\r\n\r\n",
			400);
}

static void
test_cl_inner_space(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length:  5 6\r\n\r\n",
			400);
}

static void
test_cl_empty(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
			400);
}

static void
test_cl_hex(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: 0x10\r\n\r\n",
			400);
}

static void
test_cl_overflow(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: 18446744073709551617\r\n\r\n",
			400);
}

static void
test_cl_over_max(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length: 4611686018427387905\r\n\r\n",
			400);
}

static void
test_te_gzip_501(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: gzip\r\n\r\n",
			501);
}

static void
test_te_gzip_chunked_501(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: gzip, chunked\r\n\r\n",
			501);
}

static void
test_te_identity_501(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: identity\r\n\r\n",
			501);
}

static void
test_te_chunked_not_last(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: chunked, gzip\r\n\r\n",
			400);
}

static void
test_te_chunked_twice(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: chunked, chunked\r\n\r\n",
			400);
}

static void
test_te_two_fields(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: chunked\r\n"
			"Transfer-Encoding: chunked\r\n\r\n",
			400);
}

static void
test_te_empty(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding:\r\n\r\n",
			400);
}

static void
test_te_empty_element(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: ,chunked\r\n\r\n",
			400);
}

static void
test_te_chunked_with_parameter(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: chunked;q=1\r\n\r\n",
			400);
}

static void
test_te_malformed_coding(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding: \"chunked\"\r\n\r\n",
			400);
}

static void
test_te_in_http10(void **state)
{
	assert_rejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
			400);
}

static void
test_te_space_before_colon(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Transfer-Encoding : chunked\r\n\r\n",
			400);
}

static void
test_cl_tab_before_colon(void **state)
{
	assert_rejected("POST / HTTP/1.1\r\nHost: a\r\n"
			"Content-Length\t: 5\r\n\r\n",
			400);
}

/* Field syntax rejections. */

static void
test_obs_fold(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400);
}

static void
test_obs_fold_tab(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n",
			400);
}

static void
test_whitespace_after_request_line(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
}

static void
test_bare_cr_in_value(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
}

static void
test_bare_cr_line_end(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
}

static void
test_bare_cr_in_request_line(void **state)
{
	assert_rejected("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_bare_lf_line_end(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400);
}

static void
test_bare_lf_end_of_head(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
}

static void
test_bare_lf_request_line_partial(void **state)
{
	assert_rejected("GET / HTTP/1.1\nHost: a", 400);
}

static void
test_bare_lf_before_request_line(void **state)
{
	assert_rejected("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void
test_nul_in_value(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";

	assert_rejected_n(s, sizeof(s) - 1, 400);
}

static void
test_del_in_value(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400);
}

static void
test_control_in_value(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400);
}

static void
test_invalid_char_in_name(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX(Y: b\r\n\r\n", 400);
}

static void
test_obs_text_in_name(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n",
			400);
}

static void
test_empty_name(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
}

static void
test_missing_colon(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nX-Y\r\n\r\n", 400);
}

/* Host. */

static void
test_host_missing_http11(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nX: a\r\n\r\n", 400);
}

static void
test_host_twice(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
}

static void
test_host_twice_http10(void **state)
{
	assert_rejected("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400);
}

static void
test_host_empty(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400);
}

static void
test_host_invalid_char(void **state)
{
	assert_rejected("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
	assert_rejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
	assert_rejected("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400);
}

/* Limits. */

static void
test_target_too_long_414(void **state)
{
	const char *s = "GET /0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n";

	assert_int_equal(http_parse_request(s, strlen(s), &small, &req), -1);
	assert_int_equal(req.status, 414);
}

static void
test_target_too_long_partial_414(void **state)
{
	const char *s = "GET /0123456789abcdef";

	assert_int_equal(http_parse_request(s, strlen(s), &small, &req), -1);
	assert_int_equal(req.status, 414);
}

static void
test_target_at_limit_partial_waits(void **state)
{
	const char *s = "GET /0123456789abcde";

	assert_int_equal(http_parse_request(s, strlen(s), &small, &req), -2);
}

static void
test_head_too_large_431(void **state)
{
	char s[129];

	pad_head(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\n");
	assert_int_equal(http_parse_request(s, sizeof(s), &small, &req), -1);
	assert_int_equal(req.status, 431);
}

static void
test_head_too_large_partial_431(void **state)
{
	char s[200];

	memset(s, 'a', sizeof(s));
	memcpy(s, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(http_parse_request(s, 127, &small, &req), -2);
	assert_int_equal(http_parse_request(s, 128, &small, &req), -1);
	assert_int_equal(req.status, 431);
	assert_int_equal(http_parse_request(s, sizeof(s), &small, &req), -1);
	assert_int_equal(req.status, 431);
}

static void
test_leading_empty_lines_count_in_head(void **state)
{
	char s[129];

	pad_head(s, sizeof(s), "\r\nGET / HTTP/1.1\r\nHost: a\r\n");
	assert_int_equal(http_parse_request(s + 2, sizeof(s) - 2, &small, &req),
			 127);
	assert_int_equal(http_parse_request(s, sizeof(s), &small, &req), -1);
	assert_int_equal(req.status, 431);
}

static void
test_too_many_headers_431(void **state)
{
	const char *s =
	    "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n";

	assert_int_equal(http_parse_request(s, strlen(s), &small, &req), -1);
	assert_int_equal(req.status, 431);
}

static void
test_too_many_headers_partial_431(void **state)
{
	const char *s =
	    "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\nE";

	assert_int_equal(http_parse_request(s, strlen(s), &small, &req), -1);
	assert_int_equal(req.status, 431);
}

static void
test_max_headers_capped(void **state)
{
	static const struct http_limits big = {65536, 4096, 1000};
	char s[4096];
	size_t n = 0;
	int i;

	n += (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "X: %d\r\n", i);
	n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n");
	assert_int_equal(http_parse_request(s, n, &big, &req), -1);
	assert_int_equal(req.status, 431);
}

/* Responses. */

static void
test_response_content_length(void **state)
{
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

	assert_int_equal(parse_res(s, false), (int)strlen(s) - 5);
	assert_int_equal(res.minor, 1);
	assert_int_equal(res.status, 200);
	assert_str(res.reason, res.reason_len, "OK");
	assert_int_equal(res.nheaders, 1);
	assert_int_equal(res.body, HTTP_BODY_LENGTH);
	assert_int_equal(res.content_length, 5);
	assert_true(res.keep_alive);
}

static void
test_response_chunked(void **state)
{
	assert_true(
	    parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		      "\r\n",
		      false) > 0);
	assert_int_equal(res.body, HTTP_BODY_CHUNKED);
	assert_true(res.keep_alive);
}

static void
test_response_close_delimited(void **state)
{
	assert_true(parse_res("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", false) > 0);
	assert_int_equal(res.body, HTTP_BODY_CLOSE);
	assert_false(res.keep_alive);
}

static void
test_response_head(void **state)
{
	assert_true(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
			      true) > 0);
	assert_int_equal(res.body, HTTP_BODY_NONE);
	assert_true(res.keep_alive);
}

static void
test_response_head_chunked(void **state)
{
	assert_true(
	    parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		      "\r\n",
		      true) > 0);
	assert_int_equal(res.body, HTTP_BODY_NONE);
}

static void
test_response_204(void **state)
{
	assert_true(parse_res("HTTP/1.1 204 No Content\r\n\r\n", false) > 0);
	assert_int_equal(res.body, HTTP_BODY_NONE);
	assert_true(res.keep_alive);
}

static void
test_response_304(void **state)
{
	assert_true(parse_res("HTTP/1.1 304 Not Modified\r\n"
			      "Content-Length: 10\r\n\r\n",
			      false) > 0);
	assert_int_equal(res.body, HTTP_BODY_NONE);
}

static void
test_response_1xx(void **state)
{
	const char *s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";

	assert_int_equal(parse_res(s, false), 25);
	assert_int_equal(res.status, 100);
	assert_int_equal(res.body, HTTP_BODY_NONE);
}

static void
test_response_101(void **state)
{
	assert_true(
	    parse_res("HTTP/1.1 101 Switching Protocols\r\n"
		      "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n",
		      false) > 0);
	assert_int_equal(res.status, 101);
	assert_int_equal(res.body, HTTP_BODY_NONE);
}

static void
test_response_te_and_cl(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n",
				   false),
			 -1);
	assert_non_null(res.error);
}

static void
test_response_conflicting_cl(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				   "Content-Length: 6\r\n\r\n",
				   false),
			 -1);
}

static void
test_response_identical_cl(void **state)
{
	assert_true(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			      "Content-Length: 5\r\n\r\n",
			      false) > 0);
	assert_int_equal(res.body, HTTP_BODY_LENGTH);
	assert_int_equal(res.content_length, 5);
}

static void
test_response_invalid_cl(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n"
				   "\r\n",
				   false),
			 -1);
}

/* The gateway re-frames bodies: a coding besides chunked would be lost on
 * the way, so a response that has one is refused (502), like nginx. */
static void
test_response_te_other_than_chunked(void **state)
{
	static const char *const bad[] = {
	    "Transfer-Encoding: gzip, chunked\r\n",
	    "Transfer-Encoding: gzip\r\n",
	    "Transfer-Encoding: chunked, gzip\r\n",
	    "Transfer-Encoding: chunked, chunked\r\n",
	    "Transfer-Encoding: chunked;x=1\r\n",
	    "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
	    "Transfer-Encoding: \r\n",
	};
	char buf[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n%s\r\n", bad[i]);
		assert_int_equal(parse_res(buf, false), -1);
		assert_string_equal(res.error, "unsupported Transfer-Encoding");
	}
	assert_true(parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: "
			      "\tChunKed \r\n\r\n",
			      false) > 0);
	assert_int_equal(res.body, HTTP_BODY_CHUNKED);
}

/* A Content-Length in a response without a body (HEAD, 304) is kept as
 * information about the resource. */
static void
test_response_length_without_body(void **state)
{
	assert_true(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 0042\r\n\r\n",
			      true) > 0);
	assert_int_equal(res.body, HTTP_BODY_NONE);
	assert_true(res.has_length);
	assert_int_equal(res.content_length, 42);
	assert_true(parse_res("HTTP/1.1 304 Not Modified\r\n\r\n", false) > 0);
	assert_false(res.has_length);
}

/* Responses have no field count limit but the caller's room. */
static void
test_response_many_fields(void **state)
{
	static struct http_header many[200];
	struct http_response r = {.headers = many};
	struct http_limits l = {.max_head = 8192, .max_headers = 200};
	char buf[4096];
	size_t n, i;

	n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 204 No Content\r\n");
	for (i = 0; i < 150; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      "X-%zu: %zu\r\n", i, i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	assert_int_equal(http_parse_response(buf, n, &l, false, &r), (int)n);
	assert_int_equal(r.nheaders, 150);
	l.max_headers = 149;
	assert_int_equal(http_parse_response(buf, n, &l, false, &r), -1);
}

static void
test_response_connection_close(void **state)
{
	assert_true(parse_res("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
			      "Connection: close\r\n\r\n",
			      false) > 0);
	assert_int_equal(res.body, HTTP_BODY_LENGTH);
	assert_false(res.keep_alive);
}

static void
test_response_http10(void **state)
{
	assert_true(parse_res("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
			      false) > 0);
	assert_int_equal(res.minor, 0);
	assert_false(res.keep_alive);
	assert_true(parse_res("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n"
			      "Connection: keep-alive\r\n\r\n",
			      false) > 0);
	assert_true(res.keep_alive);
}

static void
test_response_missing_reason(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200\r\n\r\n", false), 16);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.reason_len, 0);
	assert_int_equal(parse_res("HTTP/1.1 404 \r\n\r\n", false), 17);
	assert_int_equal(res.status, 404);
	assert_int_equal(res.reason_len, 0);
}

static void
test_response_reason_with_spaces(void **state)
{
	assert_true(parse_res("HTTP/1.1 500 Oh  no\t!\r\n\r\n", false) > 0);
	assert_str(res.reason, res.reason_len, "Oh  no\t!");
}

static void
test_response_bad_status(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 099 X\r\n\r\n", false), -1);
	assert_int_equal(parse_res("HTTP/1.1 20 X\r\n\r\n", false), -1);
	assert_int_equal(parse_res("HTTP/1.1 2000 X\r\n\r\n", false), -1);
	assert_int_equal(parse_res("HTTP/1.1 20x X\r\n\r\n", false), -1);
}

static void
test_response_bad_version(void **state)
{
	assert_int_equal(parse_res("HTTP/2.0 200 OK\r\n\r\n", false), -1);
	assert_int_equal(parse_res("http/1.1 200 OK\r\n\r\n", false), -1);
	assert_int_equal(parse_res("HTTP/1.1  200 OK\r\n\r\n", false), -1);
}

static void
test_response_short_garbage(void **state)
{
	assert_int_equal(parse_res("X\r\n\r\n", false), -1);
}

static void
test_response_bare_lf(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\nX: y\r\n\r\n", false), -1);
}

static void
test_response_bare_cr(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", false),
			 -1);
}

static void
test_response_obs_fold(void **state)
{
	assert_int_equal(
	    parse_res("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", false), -1);
}

static void
test_response_space_before_colon(void **state)
{
	assert_int_equal(parse_res("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n"
				   "\r\n",
				   false),
			 -1);
}

static void
test_response_te_in_http10(void **state)
{
	assert_int_equal(parse_res("HTTP/1.0 200 OK\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n",
				   false),
			 -1);
}

static void
test_response_incomplete_at_every_split(void **state)
{
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	size_t n = strlen(s), k;

	for (k = 0; k < n; k++)
		assert_int_equal(http_parse_response(s, k, &lim, false, &res),
				 -2);
	assert_int_equal(http_parse_response(s, n, &lim, false, &res), (int)n);
}

static void
test_response_head_too_large(void **state)
{
	char s[200];

	memset(s, 'a', sizeof(s));
	memcpy(s, "HTTP/1.1 200 OK\r\nX: ", 20);
	assert_int_equal(http_parse_response(s, sizeof(s), &small, false, &res),
			 -1);
	assert_non_null(res.error);
}

/* Helpers. */

static void
test_find(void **state)
{
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nX-Req: 1\r\n\r\n") > 0);
	assert_ptr_equal(http_find(req.headers, req.nheaders, "x-REQ"),
			 &req.headers[1]);
	assert_ptr_equal(http_find(req.headers, req.nheaders, "HOST"),
			 &req.headers[0]);
	assert_null(http_find(req.headers, req.nheaders, "X-Re"));
	assert_null(http_find(req.headers, req.nheaders, "X-Request"));
}

static void
test_list_has(void **state)
{
	const char *v = "keep-alive , Upgrade,,\tfoo ";

	assert_true(http_list_has(v, strlen(v), "upgrade"));
	assert_true(http_list_has(v, strlen(v), "KEEP-ALIVE"));
	assert_true(http_list_has(v, strlen(v), "foo"));
	assert_false(http_list_has(v, strlen(v), "alive"));
	assert_false(http_list_has(v, strlen(v), "fo"));
	assert_false(http_list_has("", 0, "close"));
	assert_false(http_list_has(v, 3, "keep-alive"));
}

static void
test_is_tchar(void **state)
{
	static const char tchars[] = "!#$%&'*+-.^_`|~0123456789"
				     "abcdefghijklmnopqrstuvwxyz"
				     "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned c;

	for (c = 0; c < 256; c++)
		assert_int_equal(http_is_tchar((unsigned char)c),
				 c != 0 && strchr(tchars, (int)c) != NULL);
}

static void
test_reason(void **state)
{
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(308), "Permanent Redirect");
	assert_string_equal(http_reason(414), "URI Too Long");
	assert_string_equal(http_reason(431),
			    "Request Header Fields Too Large");
	assert_string_equal(http_reason(505), "HTTP Version Not Supported");
	assert_string_equal(http_reason(299), "Unknown");
}

/* Chunked reader. */

static const char body[] = "5\r\nhello\r\nA;x=y\r\n0123456789\r\n0\r\n\r\n";

/* Reads s[0..n) as a caller does: framing through http_chunked_frame, data
 * skipped with http_chunked_skip. Returns the bytes that belong to the body
 * (framing and data), or -1. */
static ssize_t
feed(struct http_chunked *c, const char *s, size_t n)
{
	size_t i = 0;
	ssize_t r;

	while (i < n && !c->done) {
		if (c->remaining > 0) {
			uint64_t k =
			    n - i < c->remaining ? n - i : c->remaining;

			http_chunked_skip(c, k);
			i += (size_t)k;
			continue;
		}
		if ((r = http_chunked_frame(c, s + i, n - i)) == -1)
			return -1;
		i += (size_t)r;
		if (r == 0)
			break;
	}
	return (ssize_t)i;
}

static ssize_t
scan(struct http_chunked *c, const char *s)
{
	http_chunked_init(c);
	return feed(c, s, strlen(s));
}

/* The reader never consumes data: it stops where a chunk's data begins and
 * gives the chunk's size. */
static void
test_chunked_frame_stops_at_data(void **state)
{
	struct http_chunked c;

	http_chunked_init(&c);
	assert_int_equal(http_chunked_frame(&c, body, strlen(body)), 3);
	assert_int_equal(c.remaining, 5);
	assert_int_equal(http_chunked_frame(&c, body + 3, 5), 0);
	http_chunked_skip(&c, 5);
	assert_int_equal(http_chunked_frame(&c, body + 8, strlen(body) - 8),
			 2 + 7);
	assert_int_equal(c.remaining, 10);
	http_chunked_skip(&c, 10);
	assert_int_equal(http_chunked_frame(&c, body + 27, strlen(body) - 27),
			 7);
	assert_true(c.done);
	assert_int_equal(c.total, 15);
	assert_int_equal(http_chunked_frame(&c, "x", 1), 0);
}

static void
test_chunked_whole(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, body), (ssize_t)strlen(body));
	assert_true(c.done);
	assert_int_equal(c.total, 15);
	assert_int_equal(c.remaining, 0);
}

static void
test_chunked_byte_at_a_time(void **state)
{
	struct http_chunked c;
	size_t i;

	http_chunked_init(&c);
	for (i = 0; i < strlen(body); i++) {
		assert_false(c.done);
		assert_int_equal(feed(&c, body + i, 1), 1);
	}
	assert_true(c.done);
	assert_int_equal(c.total, 15);
}

static void
test_chunked_every_split(void **state)
{
	struct http_chunked c;
	size_t n = strlen(body), k;

	for (k = 0; k <= n; k++) {
		http_chunked_init(&c);
		assert_int_equal(feed(&c, body, k), (ssize_t)k);
		assert_int_equal(feed(&c, body + k, n - k), (ssize_t)(n - k));
		assert_true(c.done);
		assert_int_equal(c.total, 15);
	}
}

static void
test_chunked_followed_by_next_message(void **state)
{
	struct http_chunked c;
	const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";

	assert_int_equal(scan(&c, s), 13);
	assert_true(c.done);
	assert_int_equal(feed(&c, s + 13, strlen(s) - 13), 0);
}

static void
test_chunked_hex_case(void **state)
{
	struct http_chunked c;

	assert_true(
	    scan(&c, "a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n") > 0);
	assert_true(c.done);
	assert_int_equal(c.total, 21);
}

static void
test_chunked_leading_zeros(void **state)
{
	struct http_chunked c;

	assert_true(scan(&c, "0000000000000003\r\nabc\r\n000\r\n\r\n") > 0);
	assert_true(c.done);
	assert_int_equal(c.total, 3);
	/* 16 hex digits are enough for any size; more is refused */
	assert_int_equal(scan(&c, "00000000000000003\r\nabc\r\n0\r\n\r\n"), -1);
}

static void
test_chunked_extensions(void **state)
{
	struct http_chunked c;

	assert_true(scan(&c, "3;a;b=c;d=\"x y\\\"z;\";e=f;g=\"\"\r\nabc\r\n"
			     "0;last\r\n\r\n") > 0);
	assert_true(c.done);
}

static void
test_chunked_bad_extensions(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "3;\r\n"), -1);
	assert_int_equal(scan(&c, "3;=x\r\n"), -1);
	assert_int_equal(scan(&c, "3;a=\r\n"), -1);
	assert_int_equal(scan(&c, "3;a=\"x\r\n"), -1);
	assert_int_equal(scan(&c, "3;a=\"\x01\"\r\n"), -1);
	assert_int_equal(scan(&c, "3;a=b c\r\n"), -1);
	assert_int_equal(scan(&c, "3;a\x7f\r\n"), -1);
	assert_int_equal(scan(&c, "3 4\r\n"), -1);
	assert_int_equal(scan(&c, "3 \r\n"), -1);
	assert_int_equal(scan(&c, "3;a \r\n"), -1);
	assert_int_equal(scan(&c, "3;a=b\t\r\n"), -1);
	assert_int_equal(scan(&c, "3;a=\"b\" \r\n"), -1);
	assert_int_equal(scan(&c, "3;a=\"b\"c\r\n"), -1);
	/* no whitespace anywhere in a size line (BWS is never sent) */
	assert_int_equal(scan(&c, "3 ;a\r\n"), -1);
	assert_int_equal(scan(&c, "3; a\r\n"), -1);
	assert_int_equal(scan(&c, "3;a =b\r\n"), -1);
	assert_int_equal(scan(&c, "3;a= b\r\n"), -1);
	assert_int_equal(scan(&c, "3\t;a\r\n"), -1);
}

static void
test_chunked_trailers(void **state)
{
	struct http_chunked c;
	const char *s = "3\r\nabc\r\n0\r\nX-Sum: 1 2\r\nY:\r\n\r\n";

	assert_int_equal(scan(&c, s), (ssize_t)strlen(s));
	assert_true(c.done);
	assert_int_equal(c.total, 3);
}

static void
test_chunked_bad_trailers(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "0\r\nX: a\r\n b\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "0\r\nX : a\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "0\r\nX: a\n\r\n"), -1);
	assert_int_equal(scan(&c, "0\r\nX: a\rb\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "0\r\nX\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "0\r\n\n"), -1);
	assert_int_equal(scan(&c, "0\r\n\r\r"), -1);
}

static void
test_chunked_bad_hex(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "g\r\n"), -1);
	assert_int_equal(scan(&c, "0x5\r\nhello\r\n"), -1);
	assert_int_equal(scan(&c, "-5\r\n"), -1);
	assert_int_equal(scan(&c, "+5\r\n"), -1);
	assert_int_equal(scan(&c, "\r\n"), -1);
	assert_int_equal(scan(&c, " 5\r\n"), -1);
}

static void
test_chunked_size_overflow(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "10000000000000000\r\n"), -1);
	assert_int_equal(scan(&c, "4000000000000001\r\n"), -1);
	assert_int_equal(scan(&c, "ffffffffffffffffffff\r\n"), -1);
	assert_int_equal(scan(&c, "4000000000000000\r\n"), 18);
	assert_true(c.remaining == HTTP_MAX_CONTENT_LENGTH);
}

static void
test_chunked_bare_lf_after_size(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "5\nhello\r\n"), -1);
}

static void
test_chunked_missing_crlf_after_data(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "5\r\nhelloX\r\n0\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "5\r\nhello\n0\r\n\r\n"), -1);
	assert_int_equal(scan(&c, "5\r\nhello\r0\r\n\r\n"), -1);
}

static void
test_chunked_remaining_zero_in_size_line(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "5"), 1);
	assert_int_equal(c.remaining, 0);
	assert_int_equal(feed(&c, "\r\n", 2), 2);
	assert_int_equal(c.remaining, 5);
}

static void
test_chunked_skip(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "5\r\n"), 3);
	assert_int_equal(c.remaining, 5);
	http_chunked_skip(&c, 2);
	assert_int_equal(c.remaining, 3);
	assert_int_equal(c.total, 2);
	assert_int_equal(feed(&c, "llo\r\n", 5), 5);
	assert_int_equal(c.total, 5);
	assert_int_equal(feed(&c, "3\r\n", 3), 3);
	http_chunked_skip(&c, 3);
	assert_int_equal(c.remaining, 0);
	assert_int_equal(c.total, 8);
	assert_int_equal(feed(&c, "\r\n0\r\n\r\n", 7), 7);
	assert_true(c.done);
}

static void
test_chunked_skip_then_bad_crlf(void **state)
{
	struct http_chunked c;

	assert_int_equal(scan(&c, "2\r\n"), 3);
	http_chunked_skip(&c, 2);
	assert_int_equal(feed(&c, "xx", 2), -1);
}

static void
test_chunked_size_line_too_long(void **state)
{
	struct http_chunked c;
	char s[5000];

	memset(s, 'a', sizeof(s));
	memcpy(s, "1;", 2);
	http_chunked_init(&c);
	assert_int_equal(feed(&c, s, 4096), 4096);
	assert_int_equal(feed(&c, s + 4096, 1), -1);
}

static void
test_chunked_trailers_too_long(void **state)
{
	struct http_chunked c;
	char s[5000];
	size_t i;

	http_chunked_init(&c);
	assert_int_equal(feed(&c, "0\r\n", 3), 3);
	for (i = 0; i + 8 <= sizeof(s); i += 8)
		memcpy(s + i, "X: 123\r\n", 8);
	assert_int_equal(feed(&c, s, sizeof(s) - 8), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_line_refused_early),
	    cmocka_unit_test(test_get_minimal),
	    cmocka_unit_test(test_post_content_length),
	    cmocka_unit_test(test_post_chunked),
	    cmocka_unit_test(test_content_length_zero_is_length),
	    cmocka_unit_test(test_content_length_leading_zeros),
	    cmocka_unit_test(test_content_length_at_max),
	    cmocka_unit_test(test_te_chunked_case_insensitive),
	    cmocka_unit_test(test_te_chunked_trailing_ows),
	    cmocka_unit_test(test_value_ows_trimmed),
	    cmocka_unit_test(test_empty_value),
	    cmocka_unit_test(test_obs_text_value),
	    cmocka_unit_test(test_host_ipv6_and_port),
	    cmocka_unit_test(test_http10_defaults_to_close),
	    cmocka_unit_test(test_http10_keep_alive),
	    cmocka_unit_test(test_http10_keep_alive_and_close),
	    cmocka_unit_test(test_http11_connection_close),
	    cmocka_unit_test(test_http11_close_is_a_whole_token),
	    cmocka_unit_test(test_upgrade),
	    cmocka_unit_test(test_upgrade_needs_upgrade_field),
	    cmocka_unit_test(test_upgrade_needs_connection_option),
	    cmocka_unit_test(test_expect_continue),
	    cmocka_unit_test(test_expect_other),
	    cmocka_unit_test(test_expect_ignored_in_http10),
	    cmocka_unit_test(test_leading_empty_lines_skipped),
	    cmocka_unit_test(test_eight_empty_lines_allowed),
	    cmocka_unit_test(test_nine_empty_lines_rejected),
	    cmocka_unit_test(test_pipelined_requests),
	    cmocka_unit_test(test_incomplete_at_every_split),
	    cmocka_unit_test(test_absolute_form),
	    cmocka_unit_test(test_absolute_form_empty_path),
	    cmocka_unit_test(test_options_asterisk),
	    cmocka_unit_test(test_method_32_chars),
	    cmocka_unit_test(test_limits_exactly_met),
	    cmocka_unit_test(test_method_invalid_char),
	    cmocka_unit_test(test_method_too_long),
	    cmocka_unit_test(test_method_too_long_partial),
	    cmocka_unit_test(test_empty_method),
	    cmocka_unit_test(test_connect_rejected),
	    cmocka_unit_test(test_double_space),
	    cmocka_unit_test(test_target_not_a_form),
	    cmocka_unit_test(test_target_double_slash),
	    cmocka_unit_test(test_target_with_space),
	    cmocka_unit_test(test_target_with_fragment),
	    cmocka_unit_test(test_target_with_control),
	    cmocka_unit_test(test_target_with_obs_text),
	    cmocka_unit_test(test_authority_form),
	    cmocka_unit_test(test_asterisk_without_options),
	    cmocka_unit_test(test_absolute_form_empty_userinfo),
	    cmocka_unit_test(test_absolute_form_userinfo),
	    cmocka_unit_test(test_absolute_form_other_scheme),
	    cmocka_unit_test(test_absolute_form_no_authority),
	    cmocka_unit_test(test_absolute_form_query_without_path),
	    cmocka_unit_test(test_absolute_form_double_slash_path),
	    cmocka_unit_test(test_absolute_form_host_mismatch),
	    cmocka_unit_test(test_version_http2_505),
	    cmocka_unit_test(test_version_http12_505),
	    cmocka_unit_test(test_version_trailing_garbage),
	    cmocka_unit_test(test_version_lowercase),
	    cmocka_unit_test(test_version_trailing_space),
	    cmocka_unit_test(test_version_missing),
	    cmocka_unit_test(test_version_short),
	    cmocka_unit_test(test_cl_and_te),
	    cmocka_unit_test(test_te_and_cl),
	    cmocka_unit_test(test_cl_duplicate_equal),
	    cmocka_unit_test(test_cl_duplicate_different),
	    cmocka_unit_test(test_cl_list),
	    cmocka_unit_test(test_cl_plus_sign),
	    cmocka_unit_test(test_cl_negative),
	    cmocka_unit_test(test_cl_inner_space),
	    cmocka_unit_test(test_cl_empty),
	    cmocka_unit_test(test_cl_hex),
	    cmocka_unit_test(test_cl_overflow),
	    cmocka_unit_test(test_cl_over_max),
	    cmocka_unit_test(test_te_gzip_501),
	    cmocka_unit_test(test_te_gzip_chunked_501),
	    cmocka_unit_test(test_te_identity_501),
	    cmocka_unit_test(test_te_chunked_not_last),
	    cmocka_unit_test(test_te_chunked_twice),
	    cmocka_unit_test(test_te_two_fields),
	    cmocka_unit_test(test_te_empty),
	    cmocka_unit_test(test_te_empty_element),
	    cmocka_unit_test(test_te_chunked_with_parameter),
	    cmocka_unit_test(test_te_malformed_coding),
	    cmocka_unit_test(test_te_in_http10),
	    cmocka_unit_test(test_te_space_before_colon),
	    cmocka_unit_test(test_cl_tab_before_colon),
	    cmocka_unit_test(test_obs_fold),
	    cmocka_unit_test(test_obs_fold_tab),
	    cmocka_unit_test(test_whitespace_after_request_line),
	    cmocka_unit_test(test_bare_cr_in_value),
	    cmocka_unit_test(test_bare_cr_line_end),
	    cmocka_unit_test(test_bare_cr_in_request_line),
	    cmocka_unit_test(test_bare_lf_line_end),
	    cmocka_unit_test(test_bare_lf_end_of_head),
	    cmocka_unit_test(test_bare_lf_request_line_partial),
	    cmocka_unit_test(test_bare_lf_before_request_line),
	    cmocka_unit_test(test_nul_in_value),
	    cmocka_unit_test(test_del_in_value),
	    cmocka_unit_test(test_control_in_value),
	    cmocka_unit_test(test_invalid_char_in_name),
	    cmocka_unit_test(test_obs_text_in_name),
	    cmocka_unit_test(test_empty_name),
	    cmocka_unit_test(test_missing_colon),
	    cmocka_unit_test(test_host_missing_http11),
	    cmocka_unit_test(test_host_twice),
	    cmocka_unit_test(test_host_twice_http10),
	    cmocka_unit_test(test_host_empty),
	    cmocka_unit_test(test_host_invalid_char),
	    cmocka_unit_test(test_target_too_long_414),
	    cmocka_unit_test(test_target_too_long_partial_414),
	    cmocka_unit_test(test_target_at_limit_partial_waits),
	    cmocka_unit_test(test_head_too_large_431),
	    cmocka_unit_test(test_head_too_large_partial_431),
	    cmocka_unit_test(test_leading_empty_lines_count_in_head),
	    cmocka_unit_test(test_too_many_headers_431),
	    cmocka_unit_test(test_too_many_headers_partial_431),
	    cmocka_unit_test(test_max_headers_capped),
	    cmocka_unit_test(test_response_content_length),
	    cmocka_unit_test(test_response_chunked),
	    cmocka_unit_test(test_response_close_delimited),
	    cmocka_unit_test(test_response_head),
	    cmocka_unit_test(test_response_head_chunked),
	    cmocka_unit_test(test_response_204),
	    cmocka_unit_test(test_response_304),
	    cmocka_unit_test(test_response_1xx),
	    cmocka_unit_test(test_response_101),
	    cmocka_unit_test(test_response_te_and_cl),
	    cmocka_unit_test(test_response_conflicting_cl),
	    cmocka_unit_test(test_response_identical_cl),
	    cmocka_unit_test(test_response_invalid_cl),
	    cmocka_unit_test(test_response_te_other_than_chunked),
	    cmocka_unit_test(test_response_length_without_body),
	    cmocka_unit_test(test_response_many_fields),
	    cmocka_unit_test(test_response_connection_close),
	    cmocka_unit_test(test_response_http10),
	    cmocka_unit_test(test_response_missing_reason),
	    cmocka_unit_test(test_response_reason_with_spaces),
	    cmocka_unit_test(test_response_bad_status),
	    cmocka_unit_test(test_response_bad_version),
	    cmocka_unit_test(test_response_short_garbage),
	    cmocka_unit_test(test_response_bare_lf),
	    cmocka_unit_test(test_response_bare_cr),
	    cmocka_unit_test(test_response_obs_fold),
	    cmocka_unit_test(test_response_space_before_colon),
	    cmocka_unit_test(test_response_te_in_http10),
	    cmocka_unit_test(test_response_incomplete_at_every_split),
	    cmocka_unit_test(test_response_head_too_large),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_list_has),
	    cmocka_unit_test(test_is_tchar),
	    cmocka_unit_test(test_reason),
	    cmocka_unit_test(test_chunked_frame_stops_at_data),
	    cmocka_unit_test(test_chunked_whole),
	    cmocka_unit_test(test_chunked_byte_at_a_time),
	    cmocka_unit_test(test_chunked_every_split),
	    cmocka_unit_test(test_chunked_followed_by_next_message),
	    cmocka_unit_test(test_chunked_hex_case),
	    cmocka_unit_test(test_chunked_leading_zeros),
	    cmocka_unit_test(test_chunked_extensions),
	    cmocka_unit_test(test_chunked_bad_extensions),
	    cmocka_unit_test(test_chunked_trailers),
	    cmocka_unit_test(test_chunked_bad_trailers),
	    cmocka_unit_test(test_chunked_bad_hex),
	    cmocka_unit_test(test_chunked_size_overflow),
	    cmocka_unit_test(test_chunked_bare_lf_after_size),
	    cmocka_unit_test(test_chunked_missing_crlf_after_data),
	    cmocka_unit_test(test_chunked_remaining_zero_in_size_line),
	    cmocka_unit_test(test_chunked_skip),
	    cmocka_unit_test(test_chunked_skip_then_bad_crlf),
	    cmocka_unit_test(test_chunked_size_line_too_long),
	    cmocka_unit_test(test_chunked_trailers_too_long),
	    cmocka_unit_test(test_path_ambiguous_rejected),
	    cmocka_unit_test(test_path_unambiguous_accepted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
