/* folder_map.c - special use, and source folder names to target folder names. */
#include "folder_map.h"

#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"

#define SU_KNOWN_MASK 0x7fu

struct su_name {
	unsigned su;
	const char *attr; /* without the backslash */
	const char *name; /* canonical target name */
};

static const struct su_name su_names[] = {
	{MH_SU_SENT, "Sent", "Sent"},          {MH_SU_DRAFTS, "Drafts", "Drafts"},
	{MH_SU_TRASH, "Trash", "Trash"},       {MH_SU_JUNK, "Junk", "Junk"},
	{MH_SU_ARCHIVE, "Archive", "Archive"}, {MH_SU_ALL, "All", "All"},
	{MH_SU_FLAGGED, "Flagged", "Flagged"},
};

struct su_guess {
	const char *name; /* UTF-8 */
	unsigned su;
};

static const struct su_guess su_guesses[] = {
	{"Sent", MH_SU_SENT},
	{"Sent Items", MH_SU_SENT},
	{"Sent Messages", MH_SU_SENT},
	{"Sent Mail", MH_SU_SENT},
	{"Gesendet", MH_SU_SENT},
	{"Gesendete Objekte", MH_SU_SENT},
	{"Gesendete Elemente", MH_SU_SENT},
	{"Envoy\xc3\xa9s", MH_SU_SENT},
	{"\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", MH_SU_SENT},
	{"Elementos enviados", MH_SU_SENT},
	{"Enviados", MH_SU_SENT},
	{"Posta inviata", MH_SU_SENT},
	{"Verzonden", MH_SU_SENT},
	{"Drafts", MH_SU_DRAFTS},
	{"Draft", MH_SU_DRAFTS},
	{"Entw\xc3\xbcrfe", MH_SU_DRAFTS},
	{"Brouillons", MH_SU_DRAFTS},
	{"Borradores", MH_SU_DRAFTS},
	{"Bozze", MH_SU_DRAFTS},
	{"Concepten", MH_SU_DRAFTS},
	{"Trash", MH_SU_TRASH},
	{"Deleted Items", MH_SU_TRASH},
	{"Deleted Messages", MH_SU_TRASH},
	{"Bin", MH_SU_TRASH},
	{"Papierkorb", MH_SU_TRASH},
	{"Gel\xc3\xb6schte Objekte", MH_SU_TRASH},
	{"Gel\xc3\xb6schte Elemente", MH_SU_TRASH},
	{"Corbeille", MH_SU_TRASH},
	{"\xc3\x89l\xc3\xa9ments supprim\xc3\xa9s", MH_SU_TRASH},
	{"Papelera", MH_SU_TRASH},
	{"Elementos eliminados", MH_SU_TRASH},
	{"Cestino", MH_SU_TRASH},
	{"Prullenbak", MH_SU_TRASH},
	{"Junk", MH_SU_JUNK},
	{"Junk E-mail", MH_SU_JUNK},
	{"Junk Email", MH_SU_JUNK},
	{"Junk Mail", MH_SU_JUNK},
	{"Junk-E-Mail", MH_SU_JUNK},
	{"Spam", MH_SU_JUNK},
	{"Bulk Mail", MH_SU_JUNK},
	{"Courrier ind\xc3\xa9sirable", MH_SU_JUNK},
	{"Ind\xc3\xa9sirables", MH_SU_JUNK},
	{"Correo no deseado", MH_SU_JUNK},
	{"Posta indesiderata", MH_SU_JUNK},
	{"Archive", MH_SU_ARCHIVE},
	{"Archives", MH_SU_ARCHIVE},
	{"Archiv", MH_SU_ARCHIVE},
	{"Archivo", MH_SU_ARCHIVE},
	{"Archivio", MH_SU_ARCHIVE},
	{"Archief", MH_SU_ARCHIVE},
	{"All Mail", MH_SU_ALL},
	{"Starred", MH_SU_FLAGGED},
	{"Flagged", MH_SU_FLAGGED},
};

struct sb {
	char *buf;
	size_t len, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 64 : b->cap;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->buf = realloc(b->buf, cap);
		if (b->buf == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void sb_add_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static char ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool ascii_eq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

static bool ascii_eq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && ascii_eq_n(a, b, alen);
}

/* Equal ignoring ASCII case and the case of the Latin-1 letters U+00C0-U+00DE (UTF-8
 * C3 80-9E), which fold to U+00E0-U+00FE (C3 A0-BE); U+00D7 (multiplication sign) has no
 * lower case. */
static bool name_eq(const char *a, const char *b)
{
	for (;;) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca == 0xc3 && cb == 0xc3 && a[1] != '\0' && b[1] != '\0') {
			unsigned char ta = (unsigned char)a[1], tb = (unsigned char)b[1];

			if (ta >= 0x80 && ta <= 0x9e && ta != 0x97)
				ta += 0x20;
			if (tb >= 0x80 && tb <= 0x9e && tb != 0x97)
				tb += 0x20;
			if (ta != tb)
				return false;
			a += 2;
			b += 2;
			continue;
		}
		if (ascii_lower((char)ca) != ascii_lower((char)cb))
			return false;
		if (ca == '\0')
			return true;
		a++;
		b++;
	}
}

/* mh_special_use_from_attr: see folder_map.h. */
unsigned mh_special_use_from_attr(const char *attr, size_t len)
{
	if (len < 2 || attr[0] != '\\')
		return 0;
	for (size_t i = 0; i < sizeof(su_names) / sizeof(su_names[0]); i++)
		if (ascii_eq(attr + 1, len - 1, su_names[i].attr))
			return su_names[i].su;
	return 0;
}

/* Returns the length of a leading container to skip ("INBOX.", "[Gmail]/"), or 0. */
static size_t guess_skip(const char *name)
{
	static const char *const containers[] = {"INBOX.", "INBOX/", "[Gmail]/",
						 "[Google Mail]/"};

	for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++) {
		size_t n = strlen(containers[i]);

		if (strlen(name) > n && ascii_eq_n(name, containers[i], n))
			return n;
	}
	return 0;
}

/* mh_special_use_guess: see folder_map.h. */
unsigned mh_special_use_guess(const char *utf8_name)
{
	const char *leaf = utf8_name + guess_skip(utf8_name);

	for (size_t i = 0; i < sizeof(su_guesses) / sizeof(su_guesses[0]); i++)
		if (name_eq(leaf, su_guesses[i].name))
			return su_guesses[i].su;
	return 0;
}

/* mh_special_use_name: see folder_map.h. */
const char *mh_special_use_name(unsigned su)
{
	for (size_t i = 0; i < sizeof(su_names) / sizeof(su_names[0]); i++)
		if (su_names[i].su == su)
			return su_names[i].name;
	return NULL;
}

static const char *folder_leaf(const struct mh_folder *f)
{
	const char *p = f->sep != '\0' ? strrchr(f->name, f->sep) : NULL;

	return p != NULL ? p + 1 : f->name;
}

/* mh_special_use_dedupe: see folder_map.h. */
void mh_special_use_dedupe(struct mh_folder *folders, size_t n)
{
	for (size_t k = 0; k < sizeof(su_names) / sizeof(su_names[0]); k++) {
		unsigned su = su_names[k].su;
		size_t winner = n;

		for (size_t i = 0; i < n; i++) {
			if ((folders[i].special & su) == 0)
				continue;
			if (winner == n)
				winner = i;
			if (ascii_eq(folder_leaf(&folders[i]), strlen(folder_leaf(&folders[i])),
				     su_names[k].name)) {
				winner = i;
				break;
			}
		}
		for (size_t i = 0; i < n; i++)
			if (i != winner)
				folders[i].special &= ~su;
	}
}

/* Starts with prefix; an "INBOX" at the start of the prefix matches in any case, since
 * INBOX is case-insensitive (RFC 3501 5.1). */
static bool has_prefix(const char *name, const char *prefix)
{
	size_t n = strlen(prefix), skip = 0;

	if (n >= 5 && ascii_eq_n(prefix, "INBOX", 5)) {
		if (!ascii_eq_n(name, "INBOX", 5) || strlen(name) < 5)
			return false;
		skip = 5;
	}
	return strncmp(name + skip, prefix + skip, n - skip) == 0;
}

static bool sep_ok(char sep)
{
	return sep == '\0' || (sep >= 0x20 && sep <= 0x7e);
}

static int decode_name(const char *what, const char *name, char **utf8_r, struct mh_err *err)
{
	struct mh_err why;

	if (imap_utf7_to_utf8(name, strlen(name), utf8_r, &why) == 0)
		return 0;
	return mh_err_set(err, MH_E_FOLDER_NAME, "%s: %s", what, why.detail);
}

/* Appends one level, replacing the target separator by '_'. */
static void level_add(struct sb *b, const char *level, size_t len, char dsep, bool *renamed)
{
	for (size_t i = 0; i < len; i++) {
		char ch = level[i];

		if (dsep != '\0' && ch == dsep) {
			ch = '_';
			*renamed = true;
		}
		sb_add(b, &ch, 1);
	}
}

/* Rules 5 and 6 of mh_folder_map(), on UTF-8; appends to b. */
static int levels_map(const char *rel, char ssep, bool src_prefix_empty, const char *dprefix,
		      char dsep, struct sb *b, bool *renamed, struct mh_err *err)
{
	const char *p = rel;
	size_t nlevels = 1;
	bool first = true;

	if (ssep != '\0')
		for (const char *q = rel; *q != '\0'; q++)
			nlevels += *q == ssep;
	if (nlevels > 1 && dsep == '\0')
		return mh_err_set(err, MH_E_FOLDER_NAME,
				  "the target has no hierarchy, so a nested folder cannot be created");
	sb_add_str(b, dprefix);
	for (size_t i = 0; i < nlevels; i++) {
		const char *end = ssep != '\0' ? strchr(p, ssep) : NULL;
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len == 0)
			return mh_err_set(err, MH_E_FOLDER_NAME,
					  "the folder name has an empty level");
		if (i == 0 && nlevels > 1 && src_prefix_empty && ascii_eq(p, len, "INBOX")) {
			size_t dlen = strlen(dprefix);

			/* A prefix of "INBOX<sep>" already puts the folder under INBOX. */
			if (!(dlen == 6 && ascii_eq_n(dprefix, "INBOX", 5) && dprefix[5] == dsep)) {
				sb_add_str(b, "INBOX");
				first = false;
			}
		} else {
			if (!first)
				sb_add(b, &dsep, 1);
			level_add(b, p, len, dsep, renamed);
			first = false;
		}
		p += len + 1;
	}
	return 0;
}

/* mh_folder_map: see folder_map.h. */
int mh_folder_map(const struct mh_folder *src, const struct mh_namespace *src_ns,
		  const struct mh_folder *dst_existing, size_t dst_count,
		  const struct mh_namespace *dst_ns, char **dst_name_r, bool *renamed_r,
		  struct mh_err *err)
{
	char *name = NULL, *sprefix = NULL, *dprefix = NULL;
	const char *rel;
	unsigned su = src->special & SU_KNOWN_MASK;
	bool renamed = false;
	struct sb b = {NULL, 0, 0};
	int rc = -1;

	*dst_name_r = NULL;
	if (renamed_r != NULL)
		*renamed_r = false;
	if (!sep_ok(src->sep) || !sep_ok(dst_ns->sep))
		return mh_err_set(err, MH_E_FOLDER_NAME, "unusable hierarchy separator");
	if (src->name[0] == '\0')
		return mh_err_set(err, MH_E_FOLDER_NAME, "the source folder name is empty");
	if (decode_name("source folder name", src->name, &name, err) < 0 ||
	    decode_name("source namespace prefix", src_ns->prefix, &sprefix, err) < 0 ||
	    decode_name("target namespace prefix", dst_ns->prefix, &dprefix, err) < 0)
		goto out;

	if (ascii_eq(name, strlen(name), "INBOX")) {
		sb_add_str(&b, "INBOX");
		rc = 0;
		goto out;
	}
	rel = has_prefix(name, sprefix) ? name + strlen(sprefix) : name;

	if (su != 0) {
		su &= ~(su - 1); /* lowest bit */
		for (size_t i = 0; i < dst_count; i++) {
			if ((dst_existing[i].special & su) != 0) {
				sb_add_str(&b, dst_existing[i].name);
				rc = 0;
				goto out;
			}
		}
		sb_add_str(&b, dst_ns->prefix);
		sb_add_str(&b, mh_special_use_name(su));
		rc = 0;
		goto out;
	}

	if (levels_map(rel, src->sep, sprefix[0] == '\0', dprefix, dst_ns->sep, &b, &renamed,
		       err) < 0)
		goto out;
	{
		char *utf7;
		struct mh_err why;

		if (imap_utf8_to_utf7(b.buf, b.len, &utf7, &why) < 0) {
			mh_err_set(err, MH_E_FOLDER_NAME, "target folder name: %s", why.detail);
			goto out;
		}
		free(b.buf);
		b.buf = utf7;
	}
	rc = 0;
out:
	free(name);
	free(sprefix);
	free(dprefix);
	if (rc == 0) {
		*dst_name_r = b.buf;
		if (renamed_r != NULL)
			*renamed_r = renamed;
	} else {
		free(b.buf);
	}
	return rc;
}
