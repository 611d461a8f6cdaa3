/*
 * fuzz_basic.c - libFuzzer target for http_basic_decode(). Checks what
 * http.h promises, abort() if not: on success the user is non-empty, both
 * parts are NUL-terminated at the lengths given, fit the buffer, hold no
 * control character, and re-encoding "user:password" in base64 gives back
 * the input's credentials (modulo padding); a buffer one byte too small
 * for them is refused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

static size_t
b64(const unsigned char *in, size_t n, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
				 "tuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = al[in[i] >> 2];
		out[o++] = al[(in[i] & 3) << 4 | in[i + 1] >> 4];
		out[o++] = al[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
		out[o++] = al[in[i + 2] & 63];
	}
	if (n - i == 1) {
		out[o++] = al[in[i] >> 2];
		out[o++] = al[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		out[o++] = al[in[i] >> 2];
		out[o++] = al[(in[i] & 3) << 4 | in[i + 1] >> 4];
		out[o++] = al[(in[i + 1] & 15) << 2];
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[1024], small[1024], joined[1024], enc[1400];
	const char *v = (const char *)data;
	size_t ul, pl, sul, spl, i, n, start;

	if (http_basic_decode(v, size, out, sizeof(out), &ul, &pl) == -1)
		return 0;
	CHECK(ul > 0 && ul + pl + 2 <= sizeof(out));
	CHECK(out[ul] == '\0' && out[ul + 1 + pl] == '\0');
	CHECK(memchr(out, ':', ul) == NULL);
	for (i = 0; i < ul + 1 + pl; i++) {
		unsigned char c = (unsigned char)out[i];

		CHECK(i == ul || (c >= 0x20 && c != 0x7f));
	}
	/* Re-encode and compare with the input's base64, padding aside. */
	memcpy(joined, out, ul);
	joined[ul] = ':';
	memcpy(joined + ul + 1, out + ul + 1, pl);
	n = b64((const unsigned char *)joined, ul + 1 + pl, enc);
	start = 6;
	while (start < size && v[start] == ' ')
		start++;
	for (i = size; i > start && v[i - 1] == '='; i--)
		;
	CHECK(i - start == n && memcmp(v + start, enc, n) == 0);
	/* Exactly enough room works; one byte less does not. */
	CHECK(http_basic_decode(v, size, small, ul + pl + 3, &sul, &spl) == 0);
	CHECK(sul == ul && spl == pl);
	CHECK(http_basic_decode(v, size, small, ul + pl + 2, &sul, &spl) == -1);
	return 0;
}
