/* uidset.c - IMAP sequence sets (see uidset.h). */
#include "uidset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

char *imap_uid_set_format(const uint32_t *uids, size_t n)
{
	size_t cap = n * 22 + 1, o = 0; /* "4294967295:4294967295," is 22 */
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	s[0] = '\0';
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j == i)
			o += (size_t)snprintf(s + o, cap - o, "%s%" PRIu32, o ? "," : "", uids[i]);
		else
			o += (size_t)snprintf(s + o, cap - o, "%s%" PRIu32 ":%" PRIu32, o ? "," : "", uids[i],
					      uids[j]);
		i = j + 1;
	}
	return s;
}
