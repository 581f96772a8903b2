/* uidset.h - IMAP sequence sets (RFC 3501 9: sequence-set) from UID lists. */
#ifndef MH_UIDSET_H
#define MH_UIDSET_H

#include <stddef.h>
#include <stdint.h>

/* "1:5,7,9:12" from ascending uids (runs collapse into ranges). Heap string. */
char *imap_uid_set_format(const uint32_t *uids, size_t n);

#endif
