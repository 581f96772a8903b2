/* fuzz_imap_utf7.c - libFuzzer target: modified UTF-7 decoding is strict enough that
 * every accepted input re-encodes to exactly itself, and the UTF-8 it yields is valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct mh_err err;
	char *utf8 = NULL, *utf7 = NULL;
	bool valid = imap_utf7_is_valid(in, size);

	if (imap_utf7_to_utf8(in, size, &utf8, &err) < 0) {
		if (valid || utf8 != NULL)
			abort();
	} else {
		if (!valid)
			abort();
		if (imap_utf8_to_utf7(utf8, strlen(utf8), &utf7, &err) < 0)
			abort();
		if (strlen(utf7) != size || memcmp(utf7, in, size) != 0)
			abort();
		free(utf7);
		free(utf8);
	}

	/* The other direction: whatever UTF-8 is accepted must decode back to itself. */
	if (imap_utf8_to_utf7(in, size, &utf7, &err) == 0) {
		if (imap_utf7_to_utf8(utf7, strlen(utf7), &utf8, &err) < 0)
			abort();
		if (strlen(utf8) != size || memcmp(utf8, in, size) != 0)
			abort();
		free(utf8);
		free(utf7);
	}
	return 0;
}
