/* fuzz_uidset.c - libFuzzer target: a UID set from a server (APPENDUID, MODIFIED, ESEARCH)
 * or from Redis is parsed without overrun or overflow, never beyond its limit, and what
 * is accepted is ascending, without repeats, and survives formatting and parsing again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uidset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum { LIMIT = 100000 };
	uint32_t *uids = NULL, *again = NULL;
	size_t n = 0, m = 0;
	char *text;

	if (imap_uid_set_parse((const char *)data, size, LIMIT, &uids, &n) < 0)
		return 0;
	if (n > LIMIT)
		abort();
	for (size_t i = 1; i < n; i++)
		if (uids[i - 1] >= uids[i])
			abort();
	text = imap_uid_set_format(uids, n);
	if (imap_uid_set_parse(text, strlen(text), LIMIT, &again, &m) < 0 || m != n ||
	    (n > 0 && memcmp(uids, again, n * sizeof(*uids)) != 0))
		abort();
	free(text);
	free(again);
	free(uids);
	return 0;
}
