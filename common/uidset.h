/* uidset.h - IMAP sequence sets (RFC 3501 9: sequence-set; RFC 4315 uid-set) of UIDs. */
#ifndef MH_UIDSET_H
#define MH_UIDSET_H

#include <stddef.h>
#include <stdint.h>

/* "1:5,7,9:12" from ascending uids (runs collapse into ranges). Heap string. */
char *imap_uid_set_format(const uint32_t *uids, size_t n);

/* Calls range(ctx, lo, hi) for each element of a uid-set ("4,7:9", "9:7" is 7:9), in the
 * order written; numbers are strict (digits only, 1..4294967295; no "*"). A callback
 * returning nonzero stops the walk. Returns 0, or -1 when s is malformed (ranges before
 * the bad element have been passed on). */
int imap_uid_set_walk(const char *s, size_t len, int (*range)(void *ctx, uint32_t lo, uint32_t hi), void *ctx);

/* Every UID of a uid-set, ascending and without repeats (heap array in *uids_r, count in
 * *n_r). More than max UIDs in all is refused (a hostile "1:4294967295"). "" is the
 * empty set. 0 or -1. */
int imap_uid_set_parse(const char *s, size_t len, size_t max, uint32_t **uids_r, size_t *n_r);

#endif
