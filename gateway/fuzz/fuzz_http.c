/*
 * fuzz_http.c - libFuzzer target for http.c. Every input goes through the
 * request parser (two sets of limits), the response parser (for HEAD and
 * not) and the chunked reader (whole, split in two, and byte by byte, data
 * skipped with http_chunked_skip); what http.h promises is checked, abort() if
 * not: results within the input, pointers into it, -2 for every prefix of a
 * complete head, and the same scan result however the body is split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

static const struct http_limits limits[] = {
    {.max_head = 4096, .max_target = 1024, .max_headers = HTTP_MAX_HEADERS},
    {.max_head = 200, .max_target = 24, .max_headers = 4},
};

/* Results are large; static keeps them off the fuzzer's stack. */
static struct http_request req;
static struct http_header res_fields[HTTP_MAX_HEADERS];
static struct http_response res = {.headers = res_fields};

/* True if p[0..n) lies within buf[0..len). */
static bool
within(const char *p, size_t n, const char *buf, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;

	return p != NULL && a >= b && n <= len && a - b <= len - n;
}

static void
check_headers(const struct http_header *h, size_t n, const char *buf,
	      size_t len)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		CHECK(h[i].name_len > 0);
		CHECK(within(h[i].name, h[i].name_len, buf, len));
		CHECK(h[i].value_len == 0 ||
		      within(h[i].value, h[i].value_len, buf, len));
		for (j = 0; j < h[i].name_len; j++)
			CHECK(http_is_tchar((unsigned char)h[i].name[j]));
		for (j = 0; j < h[i].value_len; j++)
			CHECK(h[i].value[j] != '\r' && h[i].value[j] != '\n');
	}
}

static void
check_request(const char *buf, size_t size, const struct http_limits *lim,
	      size_t split)
{
	int rc = http_parse_request(buf, size, lim, &req);
	size_t n;

	CHECK(rc == -1 || rc == -2 || rc > 0);
	if (rc == -1) {
		CHECK(req.status == 400 || req.status == 414 ||
		      req.status == 431 || req.status == 501 ||
		      req.status == 505);
		CHECK(req.error != NULL);
		return;
	}
	if (rc == -2) {
		/* Nothing in a prefix can fail that did not fail here. */
		CHECK(http_parse_request(buf, split, lim, &req) == -2);
		return;
	}
	n = (size_t)rc;
	CHECK(n <= size && n <= lim->max_head && n >= 4);
	CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
	CHECK(within(req.method, req.method_len, buf, n));
	CHECK(within(req.target, req.target_len, buf, n));
	CHECK(req.target_len > 0 && req.target_len <= lim->max_target);
	CHECK(req.path_len > 0 && req.path != NULL);
	CHECK(within(req.path, req.path_len, buf, n) ||
	      (req.target_form == HTTP_TARGET_ABSOLUTE && req.path_len == 1 &&
	       req.path[0] == '/'));
	CHECK(req.target_form != HTTP_TARGET_ORIGIN || req.path[0] == '/');
	CHECK(req.minor == 0 || req.minor == 1);
	CHECK(req.nheaders <= lim->max_headers);
	check_headers(req.headers, req.nheaders, buf, n);
	CHECK(req.host != NULL || req.minor == 0);
	CHECK(req.host == NULL || within(req.host, req.host_len, buf, n));
	CHECK(req.body != HTTP_BODY_CLOSE);
	CHECK(req.content_length <= HTTP_MAX_CONTENT_LENGTH);
	CHECK(req.body == HTTP_BODY_LENGTH || req.content_length == 0);
	/* The head alone parses the same; any shorter prefix waits. */
	CHECK(http_parse_request(buf, n, lim, &req) == rc);
	CHECK(http_parse_request(buf, split % n, lim, &req) == -2);
}

static void
check_response(const char *buf, size_t size, bool head, size_t split)
{
	const struct http_limits *lim = &limits[0];
	int rc = http_parse_response(buf, size, lim, head, &res);
	size_t n;

	CHECK(rc == -1 || rc == -2 || rc > 0);
	if (rc == -1) {
		CHECK(res.error != NULL);
		return;
	}
	if (rc == -2) {
		CHECK(http_parse_response(buf, split, lim, head, &res) == -2);
		return;
	}
	n = (size_t)rc;
	CHECK(n <= size && n <= lim->max_head);
	CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
	CHECK(res.status >= 100 && res.status <= 999);
	CHECK(res.minor == 0 || res.minor == 1);
	CHECK(res.reason_len == 0 ||
	      within(res.reason, res.reason_len, buf, n));
	CHECK(res.nheaders <= lim->max_headers);
	check_headers(res.headers, res.nheaders, buf, n);
	CHECK(!head || res.body == HTTP_BODY_NONE);
	CHECK(res.body != HTTP_BODY_CLOSE || !res.keep_alive);
	CHECK(res.content_length <= HTTP_MAX_CONTENT_LENGTH);
	CHECK(http_parse_response(buf, n, lim, head, &res) == rc);
	CHECK(http_parse_response(buf, split % n, lim, head, &res) == -2);
}

/*
 * Reads buf[0..size) of a chunked body as the gateway does: framing with
 * http_chunked_frame (which must never take a data byte), data skipped in
 * steps of at most `step` bytes. Returns the bytes that belong to the body,
 * or -1.
 */
static ssize_t
feed(struct http_chunked *c, const char *buf, size_t size, size_t step)
{
	size_t pos = 0;
	uint64_t n;
	ssize_t r;

	while (pos < size && !c->done) {
		if (c->remaining > 0) {
			n = c->remaining < size - pos ? c->remaining
						      : size - pos;
			if (n > step)
				n = step;
			http_chunked_skip(c, n);
			pos += (size_t)n;
			continue;
		}
		r = http_chunked_frame(c, buf + pos,
				       size - pos < step ? size - pos : step);
		if (r == -1)
			return -1;
		/* It stops at data, at the end, or where its input ends. */
		CHECK(c->remaining > 0 || c->done ||
		      (size_t)r == (size - pos < step ? size - pos : step));
		CHECK(c->remaining == 0 ||
		      c->remaining <= HTTP_MAX_CONTENT_LENGTH);
		pos += (size_t)r;
	}
	return (ssize_t)pos;
}

/* Reads buf in two calls split at k, the way bytes arrive from a socket. */
static ssize_t
scan_split(struct http_chunked *c, const char *buf, size_t size, size_t k)
{
	ssize_t a, b;

	http_chunked_init(c);
	a = feed(c, buf, k, SIZE_MAX);
	if (a == -1 || c->done)
		return a;
	CHECK((size_t)a == k);
	b = feed(c, buf + k, size - k, SIZE_MAX);
	return b == -1 ? -1 : a + b;
}

/* One byte per call. */
static ssize_t
scan_bytewise(struct http_chunked *c, const char *buf, size_t size)
{
	http_chunked_init(c);
	return feed(c, buf, size, 1);
}

static void
check_chunked(const char *buf, size_t size, size_t split)
{
	struct http_chunked whole, part, bytes;
	ssize_t w, p, b;

	w = scan_split(&whole, buf, size, size);
	p = scan_split(&part, buf, size, split);
	b = scan_bytewise(&bytes, buf, size);
	CHECK(w == p && w == b);
	if (w == -1)
		return;
	CHECK((size_t)w <= size);
	CHECK(whole.done || (size_t)w == size);
	CHECK(http_chunked_frame(&whole, buf, 0) == 0);
	CHECK(part.done == whole.done && bytes.done == whole.done);
	CHECK(part.total == whole.total && bytes.total == whole.total);
	CHECK(part.remaining == whole.remaining &&
	      bytes.remaining == whole.remaining);
	CHECK(whole.total <= (uint64_t)w);
	if (whole.done)
		CHECK(http_chunked_frame(&whole, buf, size) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t split = 0;

	if (size > 0)
		split = ((size_t)data[0] * 257 + data[size - 1]) % (size + 1);
	check_request(buf, size, &limits[0], split);
	check_request(buf, size, &limits[1], split);
	check_response(buf, size, false, split);
	check_response(buf, size, true, split);
	check_chunked(buf, size, split);
	return 0;
}
