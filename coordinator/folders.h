/* folders.h - one side's folders (NAMESPACE, LIST) and the route of each source folder to
 * its target folder. Shared by the planner and the health check, so both show and do the
 * same mapping. */
#ifndef MH_FOLDERS_H
#define MH_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct event_base;
struct imap_client;

struct mh_side_folder {
	char *name;       /* as on the server (modified UTF-7) */
	char sep;         /* hierarchy separator, 0 if flat */
	unsigned special; /* MH_SU_* from the LIST attributes */
	bool noselect;    /* \Noselect or \NonExistent: holds no messages */
};

struct mh_side_folders {
	struct mh_side_folder *items;
	size_t count, cap;
	char *ns_prefix; /* personal namespace prefix ("" when none) */
	char ns_sep;     /* its separator, else the first folder's, 0 when unknown */
};

/* NAMESPACE (when offered) and LIST (with RETURN (SPECIAL-USE) when offered). 0, or -1
 * (err set; f holds what was read). */
int mh_side_folders_read(struct event_base *base, struct imap_client *c, struct mh_side_folders *f,
			 struct mh_err *err);
void mh_side_folders_cleanup(struct mh_side_folders *f);
/* The folder named name (INBOX in any case matches INBOX), or NULL. */
const struct mh_side_folder *mh_side_folders_find(const struct mh_side_folders *f, const char *name);

/* A server folder name for people: modified UTF-7 decoded (the raw name when invalid). */
char *mh_folder_display_name(const char *raw);

struct mh_folder_route {
	const struct mh_side_folder *src;
	unsigned special;    /* MH_SU_* as listed or guessed from the name, deduplicated */
	char *dst;           /* target name (server form); NULL when it cannot be mapped */
	bool renamed;        /* a separator clash replaced characters */
	bool dst_exists;     /* the target already has it */
	struct mh_err error; /* why it cannot be mapped */
};

/* Routes every selectable source folder, INBOX first, then by name (the order the planner
 * copies them in). Heap array of n routes (pointing into src). */
void mh_folder_routes(const struct mh_side_folders *src, const struct mh_side_folders *dst,
		      struct mh_folder_route **routes_r, size_t *n_r);
void mh_folder_routes_free(struct mh_folder_route *routes, size_t n);

#endif
