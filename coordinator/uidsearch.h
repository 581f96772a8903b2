/* uidsearch.h - the UIDs of the selected folder, by UID SEARCH: compact with ESEARCH (RFC
 * 4731) when offered, else plain SEARCH over spans of UIDs short enough for one reply line.
 * For the planner (what is still there) and the flag sync (what is not deleted). */
#ifndef MH_UIDSEARCH_H
#define MH_UIDSEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct event_base;
struct imap_client;

/* The UIDs from 1 to below - 1, ascending and without repeats, only those not marked
 * \Deleted when undeleted; UIDs a server adds outside that range are dropped. *uids_r is
 * heap memory (free()). 1, 0 when the server refused (err set; also for a malformed
 * reply), -1 when the connection failed. */
int uid_search(struct event_base *base, struct imap_client *c, uint32_t below, bool undeleted, uint32_t **uids_r,
	       size_t *n_r, struct mh_err *err);

#endif
