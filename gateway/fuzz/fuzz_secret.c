/*
 * fuzz_secret.c - libFuzzer target for a secret's value as the gateway
 * reads it from Secrets Manager (secrets_parse, secrets_json_nul). What the
 * header promises is checked, abort() if not: a value is taken only when it
 * is one whole JSON object without \u0000 giving one user (or an htpasswd
 * text's users); a refusal leaves nothing
 * behind and says why; the reason never quotes the password; and the NUL
 * finder agrees with a second, plain scan of the text (a backslash escapes
 * exactly the next byte).
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "htpasswd.h"
#include "secrets.h"

/* A second opinion: any \u0000 escape inside a string, by a scan that
 * tracks only "in a string" and "escaped". */
static bool
has_nul_escape(const char *t, size_t n)
{
	bool in = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!in) {
			in = t[i] == '"';
		} else if (t[i] == '"') {
			in = false;
		} else if (t[i] == '\\') {
			if (i + 5 < n && memcmp(t + i + 1, "u0000", 5) == 0)
				return true;
			i++;
		}
	}
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct htpasswd users;
	char why[300], key[40];
	char *text;
	bool nul;
	int rc;

	if (size > 4096) /* a secret is small; a password hash per input */
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	size = strlen(text); /* what a C string of it holds */

	nul = secrets_json_nul(text, size, key, sizeof(key));
	CHECK(nul == has_nul_escape(text, size));
	CHECK(strlen(key) < sizeof(key));

	why[0] = '\0';
	rc = secrets_parse(text, &users, why, sizeof(why));
	if (rc == 0) {
		cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);

		CHECK(!nul && j != NULL);
		/* one user, or what an htpasswd text holds (maybe none:
		 * comments only) */
		CHECK(users.n == 1 ||
		      cJSON_GetObjectItemCaseSensitive(j, "htpasswd") != NULL);
		cJSON_Delete(j);
		htpasswd_free(&users);
	} else {
		CHECK(rc == -1);
		CHECK(users.n == 0);
		CHECK(why[0] != '\0');
		if (nul)
			CHECK(strstr(why, "NUL") != NULL);
	}
	/* The reason never quotes the password (when one is long enough to
	 * tell from the words of a message). */
	if (rc == -1) {
		cJSON *j = cJSON_Parse(text);
		const cJSON *p =
		    cJSON_GetObjectItemCaseSensitive(j, "password");

		if (cJSON_IsString(p) && strlen(p->valuestring) >= 12)
			CHECK(strstr(why, p->valuestring) == NULL);
		cJSON_Delete(j);
	}
	free(text);
	return 0;
}
