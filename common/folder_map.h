/* folder_map.h - how a source folder name becomes a target folder name.
 *
 * Pure: no I/O, no server state beyond what the caller passes in. Names are as the
 * servers send them (modified UTF-7, RFC 3501 5.1.3); the mapping itself works on the
 * decoded UTF-8 so that separators and base64 runs never get confused.
 *
 * Special use (RFC 6154): servers that list \Sent, \Drafts, ... attributes tell us which
 * folder holds what; for the others the caller may guess from well-known names. Either
 * way the result goes into struct mh_folder.special, and mh_folder_map() uses it to put
 * "Sent Items" from Exchange into the target's "Sent" (or whatever the target's \Sent
 * folder is called).
 *
 * Memory: the caller owns every struct and string passed in; results are heap strings the
 * caller frees. Running out of memory aborts.
 */
#ifndef MH_FOLDER_MAP_H
#define MH_FOLDER_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum {
	MH_SU_SENT = 1,
	MH_SU_DRAFTS = 2,
	MH_SU_TRASH = 4,
	MH_SU_JUNK = 8,
	MH_SU_ARCHIVE = 16,
	MH_SU_ALL = 32,
	MH_SU_FLAGGED = 64,
};

struct mh_folder {
	const char *name; /* as on the server, modified UTF-7 */
	char sep;         /* hierarchy separator, 0 if flat */
	unsigned special; /* MH_SU_* from LIST attributes (or guessed by the caller) */
};

struct mh_namespace {
	const char *prefix; /* personal namespace prefix, modified UTF-7: "INBOX." or "" */
	char sep;           /* hierarchy separator of that namespace, 0 if flat */
};

/* Maps one LIST attribute attr[0..len) ("\\Sent", any case) to its MH_SU_* bit:
 * \Sent \Drafts \Trash \Junk \Archive \All \Flagged. Returns 0 for anything else
 * (\Noselect, \HasChildren, \Important, ...). */
unsigned mh_special_use_from_attr(const char *attr, size_t len);

/* Guesses the special use of a folder from its UTF-8 name, for servers without
 * SPECIAL-USE. Only top-level folders count, so the name is compared whole, after
 * dropping one leading "INBOX." or "INBOX/" (Courier, Cyrus, and clients that file under
 * INBOX) or "[Gmail]/" or "[Google Mail]/". The comparison ignores ASCII case and the case
 * of Latin-1 letters (so "ENTWÜRFE" is "Entwürfe"). Known names, among others:
 *   Sent: Sent, Sent Items, Sent Messages, Sent Mail, Gesendet, Gesendete Objekte,
 *         Gesendete Elemente, Envoyés, Éléments envoyés, Elementos enviados, Enviados,
 *         Posta inviata, Verzonden
 *   Drafts: Drafts, Draft, Entwürfe, Brouillons, Borradores, Bozze, Concepten
 *   Trash: Trash, Deleted Items, Deleted Messages, Bin, Papierkorb, Gelöschte Objekte,
 *          Gelöschte Elemente, Corbeille, Éléments supprimés, Papelera, Elementos
 *          eliminados, Cestino, Prullenbak
 *   Junk: Junk, Junk E-mail, Junk Email, Junk Mail, Spam, Bulk Mail, Junk-E-Mail,
 *         Courrier indésirable, Indésirables, Correo no deseado, Posta indesiderata
 *   Archive: Archive, Archives, Archiv, Archivo, Archivio, Archief
 *   All: All Mail      Flagged: Starred, Flagged
 * Returns one MH_SU_* bit, or 0 (always 0 for INBOX and for nested names). */
unsigned mh_special_use_guess(const char *utf8_name);

/* The name a special-use folder gets on a target that has no folder with that use:
 * "Sent", "Drafts", "Trash", "Junk", "Archive", "All", "Flagged". su must be a single
 * MH_SU_* bit; returns NULL otherwise. */
const char *mh_special_use_name(unsigned su);

/* Makes each special use appear on at most one of folders[0..n), so that two source
 * folders never both map to the target's folder for that use (the other one keeps its own
 * name instead). For each MH_SU_* bit, the winner is the first folder with that bit whose
 * last level (the text after the last sep, or the whole name when sep is 0) equals
 * mh_special_use_name() of the bit ignoring ASCII case; when none does, the first folder
 * with that bit. The bit is cleared on every other folder. Bits are handled one by one, so
 * a folder may win one use and lose another. */
void mh_special_use_dedupe(struct mh_folder *folders, size_t n);

/* Maps src to its name on the target, in this order:
 * 1. src->name must be non-empty, valid modified UTF-7 (as must both prefixes), and
 *    src->sep and dst_ns->sep must be 0 or printable ASCII; else MH_E_FOLDER_NAME.
 * 2. "INBOX" in any case maps to "INBOX".
 * 3. The source personal prefix is stripped when the name starts with it (its "INBOX"
 *    part, if any, compared ignoring case): Courier "INBOX.Sent" becomes "Sent". A name
 *    outside the personal namespace is mapped whole, as if the prefix were "".
 * 4. When src->special has a bit set (the lowest set bit is used if there are several),
 *    the result is the name of the first folder in dst_existing[0..dst_count) that has
 *    that bit (unchanged, as the target sent it), or when there is none, the target prefix
 *    followed by mh_special_use_name(). dst_existing may be NULL when dst_count is 0.
 *    Call mh_special_use_dedupe() on the source folders first.
 * 5. Otherwise the rest is split at src->sep into levels (one level when src->sep is 0).
 *    An empty level ("a//b", "/a", "a/") fails with MH_E_FOLDER_NAME. Each level in
 *    which dst_ns->sep occurs gets it replaced by '_' and *renamed_r is set to true. The
 *    levels are joined with dst_ns->sep after the target prefix: "a/b" from a '/' server
 *    is "INBOX.a.b" on a Courier-style '.' server with prefix "INBOX.". More than one
 *    level on a flat target (dst_ns->sep 0) fails with MH_E_FOLDER_NAME.
 * 6. Children of INBOX on a source whose prefix is "" stay under INBOX: a first level
 *    equal to "INBOX" in any case becomes "INBOX" and, when the target prefix is itself
 *    "INBOX" plus the target separator, is dropped since the prefix already puts the
 *    folder under INBOX. So Dovecot "INBOX/x" is "INBOX/x" on Dovecot and "INBOX.x" on
 *    Courier.
 * The children of a special-use folder are not moved along with it: "Sent Items/2019" is
 * mapped by rule 5 whatever "Sent Items" maps to.
 * On success returns 0 with *dst_name_r a heap string in modified UTF-7; on failure
 * returns -1 with *dst_name_r NULL. *renamed_r is always written when renamed_r is not
 * NULL (false unless rule 5 replaced a separator). */
int mh_folder_map(const struct mh_folder *src, const struct mh_namespace *src_ns,
		  const struct mh_folder *dst_existing, size_t dst_count,
		  const struct mh_namespace *dst_ns, char **dst_name_r, bool *renamed_r,
		  struct mh_err *err);

#endif
