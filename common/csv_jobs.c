/* csv_jobs.c - bulk-migration files (mailhaul CSV, Microsoft 365, imapsync) to job rows. */
#include "csv_jobs.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "wire.h" /* mh_imap_flags_valid */

/* Fields kept per record. No format has more columns, so a longer record is wrong
 * whatever it is, and the scratch buffer can be allocated once at its largest (never
 * reallocated, so no stray copies of passwords are left behind in freed memory). */
#define RECORD_FIELDS_MAX 64
#define RECORD_BUF_SIZE (RECORD_FIELDS_MAX * (MH_CSV_FIELD_MAX + 1))

/* How much of a bad value a reason may quote (never a password cell). */
#define SHOWN_MAX 40

/* imapsync: host1;user1;password1;host2;user2;password2 */
#define IMAPSYNC_FIELDS 6

enum native_col {
	N_SRC_HOST,
	N_SRC_USER,
	N_SRC_PASSWORD,
	N_DST_HOST,
	N_DST_USER,
	N_DST_PASSWORD,
	N_SRC_PROTOCOL,
	N_SRC_PORT,
	N_SRC_SECURITY,
	N_DST_PORT,
	N_DST_SECURITY,
	N_OPTIONS,
	N_COUNT
};
#define NATIVE_REQUIRED 6 /* the first six columns above */

static const char *const native_names[N_COUNT] = {
	"source_host",     "source_user",          "source_password",  "destination_host",
	"destination_user", "destination_password", "source_protocol",  "source_port",
	"source_security", "destination_port",     "destination_security", "options",
};

enum m365_col { M_EMAIL, M_USERNAME, M_PASSWORD, M_COUNT };

static const char *const m365_names[M_COUNT] = {"EmailAddress", "UserName", "Password"};

static const char *const imapsync_names[IMAPSYNC_FIELDS] = {
	"host1", "user1", "password1", "host2", "user2", "password2",
};

struct csv_field {
	size_t off, len; /* in csv_record.buf; buf[off + len] is '\0' */
	bool too_long;   /* bytes past MH_CSV_FIELD_MAX were dropped */
	bool has_nul;
};

/* One record: the fields of the current row, unquoted, each NUL-terminated in buf. */
struct csv_record {
	unsigned line;
	size_t nfields;
	struct csv_field fields[RECORD_FIELDS_MAX];
	bool too_many_fields;
	bool open_quote; /* the end of the file came inside a quoted field */
	bool junk_after_quote;

	char *buf;       /* at most RECORD_BUF_SIZE bytes, for the whole parse */
	size_t buf_len;
	size_t buf_high; /* bytes ever written, wiped at the end */
};

struct seen_entry {
	char *key; /* lower-cased "user\nhost"; NULL = free slot */
	unsigned line;
};

/* Destination mailboxes seen so far: open addressing, power-of-two capacity. */
struct seen_table {
	struct seen_entry *slots;
	size_t cap, used;
};

struct parse_ctx {
	/* input */
	const char *data;
	size_t len, pos;
	unsigned line; /* physical line at pos, 1-based */
	const struct mh_csv_defaults *defaults;

	/* output */
	struct mh_csv_result *res;
	size_t rows_cap, problems_cap;
	size_t problems_unlisted;
	unsigned first_unlisted_line;

	/* for the whole parse */
	struct csv_record rec;
	struct seen_table seen;
	size_t records;
	size_t ncols;
	int col_of[RECORD_FIELDS_MAX]; /* header position -> column */
	int pos_of[N_COUNT];           /* column -> header position, or -1 */
	const char *const *col_names;

	/* for the current row */
	unsigned row_line;
	bool row_bad;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL)
		abort();
	return q;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		abort();
	return p;
}

/* ---- problems ---- */

static void problem_addv(struct parse_ctx *c, unsigned line, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void problem_addv(struct parse_ctx *c, unsigned line, const char *fmt, va_list ap)
{
	struct mh_csv_result *res = c->res;
	struct mh_csv_problem *p;
	char raw[sizeof(p->reason)];

	if (res->problem_count >= MH_CSV_PROBLEMS_MAX) {
		if (c->problems_unlisted++ == 0)
			c->first_unlisted_line = line;
		return;
	}
	if (res->problem_count == c->problems_cap) {
		c->problems_cap = c->problems_cap == 0 ? 16 : c->problems_cap * 2;
		res->problems = xrealloc(res->problems, c->problems_cap * sizeof(*res->problems));
	}
	p = &res->problems[res->problem_count++];
	p->line = line;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	mh_err_sanitize(p->reason, sizeof(p->reason), raw, strlen(raw));
}

static void problem_add(struct parse_ctx *c, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem_add(struct parse_ctx *c, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem_addv(c, line, fmt, ap);
	va_end(ap);
}

/* A problem with the current row: the row will not be in the result. */
static void row_problem(struct parse_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void row_problem(struct parse_ctx *c, const char *fmt, ...)
{
	va_list ap;

	c->row_bad = true;
	va_start(ap, fmt);
	problem_addv(c, c->row_line, fmt, ap);
	va_end(ap);
}

/* The summary entry goes past the cap, so the caller learns that the list is cut. */
static void problems_finish(struct parse_ctx *c)
{
	struct mh_csv_result *res = c->res;
	struct mh_csv_problem *p;

	if (c->problems_unlisted == 0)
		return;
	res->problems = xrealloc(res->problems, (res->problem_count + 1) * sizeof(*res->problems));
	p = &res->problems[res->problem_count++];
	p->line = c->first_unlisted_line;
	snprintf(p->reason, sizeof(p->reason),
		 "%zu more problems from this line on are not listed (fix the ones above first)",
		 c->problems_unlisted);
}

/* A printable, shortened copy of a value for a reason (never used on a password). */
static void shown(char *dst, size_t dstlen, const char *s, size_t len)
{
	mh_err_sanitize(dst, dstlen, s, len);
}

/* ---- lines and records ---- */

static bool is_eol(char ch)
{
	return ch == '\r' || ch == '\n';
}

/* Consumes one line end at pos: CRLF, LF or a lone CR. */
static void eol_consume(struct parse_ctx *c)
{
	if (c->data[c->pos] == '\r' && c->pos + 1 < c->len && c->data[c->pos + 1] == '\n')
		c->pos++;
	c->pos++;
	c->line++;
}

/* Moves past blank lines (spaces and tabs only) and lines starting with '#'. pos must be
 * at the start of a line. Returns false at the end of the data. */
static bool lines_skip_ignorable(struct parse_ctx *c)
{
	while (c->pos < c->len) {
		size_t p = c->pos;
		bool comment = c->data[p] == '#';

		while (p < c->len && !is_eol(c->data[p])) {
			if (!comment && c->data[p] != ' ' && c->data[p] != '\t')
				return true;
			p++;
		}
		c->pos = p;
		if (p < c->len)
			eol_consume(c);
	}
	return false;
}

static void record_reset(struct csv_record *r, unsigned line)
{
	r->line = line;
	r->nfields = 0;
	r->buf_len = 0;
	r->too_many_fields = false;
	r->open_quote = false;
	r->junk_after_quote = false;
}

/* Starts a field; returns NULL (and drops the field's bytes) past RECORD_FIELDS_MAX. */
static struct csv_field *record_field_begin(struct csv_record *r)
{
	struct csv_field *f;

	if (r->nfields >= RECORD_FIELDS_MAX) {
		r->too_many_fields = true;
		return NULL;
	}
	f = &r->fields[r->nfields++];
	f->off = r->buf_len;
	f->len = 0;
	f->too_long = false;
	f->has_nul = false;
	return f;
}

static void record_put(struct csv_record *r, struct csv_field *f, char ch)
{
	if (f == NULL)
		return;
	if (ch == '\0')
		f->has_nul = true;
	if (f->len >= MH_CSV_FIELD_MAX) {
		f->too_long = true;
		return;
	}
	r->buf[r->buf_len++] = ch;
	f->len++;
}

static void record_field_end(struct csv_record *r, struct csv_field *f)
{
	if (f == NULL)
		return;
	r->buf[r->buf_len++] = '\0';
	if (r->buf_len > r->buf_high)
		r->buf_high = r->buf_len;
}

/* Reads one RFC 4180 record starting at pos (not at the end of the data). A quoted field
 * may span lines; the record ends at the first line end outside quotes. */
static void record_read(struct parse_ctx *c)
{
	struct csv_record *r = &c->rec;

	record_reset(r, c->line);
	for (;;) {
		struct csv_field *f = record_field_begin(r);
		bool quoted = c->pos < c->len && c->data[c->pos] == '"';

		if (quoted) {
			c->pos++;
			for (;;) {
				char ch;

				if (c->pos >= c->len) {
					r->open_quote = true;
					break;
				}
				ch = c->data[c->pos];
				if (ch == '"') {
					/* "" is a quote inside a quoted field (RFC 4180 2.7) */
					if (c->pos + 1 < c->len && c->data[c->pos + 1] == '"') {
						record_put(r, f, '"');
						c->pos += 2;
						continue;
					}
					c->pos++;
					break;
				}
				if (is_eol(ch)) {
					/* A line end inside quotes is data (RFC 4180 2.6), and it
					 * still starts a new physical line. */
					record_put(r, f, ch);
					if (ch == '\r' && c->pos + 1 < c->len &&
					    c->data[c->pos + 1] == '\n')
						record_put(r, f, '\n');
					eol_consume(c);
					continue;
				}
				record_put(r, f, ch);
				c->pos++;
			}
		}
		/* An unquoted field runs to ',' or the line end; a quote inside it is taken
		 * as is. After a closing quote only ',' or the line end may follow. */
		while (c->pos < c->len && c->data[c->pos] != ',' && !is_eol(c->data[c->pos])) {
			if (quoted)
				r->junk_after_quote = true;
			else
				record_put(r, f, c->data[c->pos]);
			c->pos++;
		}
		record_field_end(r, f);
		if (c->pos >= c->len)
			return;
		if (c->data[c->pos] == ',') {
			c->pos++;
			continue;
		}
		eol_consume(c);
		return;
	}
}

/* A record of empty fields only (",,,," as spreadsheets save empty rows) is skipped. */
static bool record_blank(const struct csv_record *r)
{
	if (r->open_quote || r->junk_after_quote || r->too_many_fields)
		return false;
	for (size_t i = 0; i < r->nfields; i++)
		if (r->fields[i].len != 0)
			return false;
	return true;
}

static const char *record_str(const struct csv_record *r, size_t i)
{
	return r->buf + r->fields[i].off;
}

/* ---- header ---- */

static bool trim_char(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && trim_char(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && trim_char((*s)[*len - 1]))
		(*len)--;
}

/* Index of the header cell in names (case-insensitive, surrounding blanks ignored), or -1. */
static int header_lookup(const char *s, size_t len, const char *const *names, size_t n)
{
	trim(&s, &len);
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
			return (int)i;
	return -1;
}

static size_t header_matches(const struct csv_record *r, const char *const *names, size_t n)
{
	size_t hits = 0;

	for (size_t i = 0; i < r->nfields; i++)
		if (header_lookup(record_str(r, i), r->fields[i].len, names, n) >= 0)
			hits++;
	return hits;
}

/* Maps the header record's columns. Reports every header problem at the header's line;
 * returns false if there was any (then no data row is read). */
static bool header_map(struct parse_ctx *c, const char *const *names, size_t n,
		       size_t required)
{
	const struct csv_record *r = &c->rec;
	char missing[200];
	size_t mlen = 0;
	bool ok = true;

	c->col_names = names;
	c->ncols = r->nfields;
	for (size_t i = 0; i < N_COUNT; i++)
		c->pos_of[i] = -1;
	if (r->open_quote) {
		problem_add(c, r->line,
			    "the header has a quoted field that is not closed before the end "
			    "of the file");
		return false;
	}
	if (r->junk_after_quote) {
		problem_add(c, r->line, "the header has text after a closing quote");
		ok = false;
	}
	if (r->too_many_fields) {
		problem_add(c, r->line, "the header has more than %d columns", RECORD_FIELDS_MAX);
		ok = false;
	}
	for (size_t i = 0; i < r->nfields; i++) {
		const char *s = record_str(r, i);
		size_t len = r->fields[i].len;
		int col = header_lookup(s, len, names, n);
		char name[SHOWN_MAX + 1];

		c->col_of[i] = col;
		trim(&s, &len);
		if (col < 0) {
			if (len == 0) {
				problem_add(c, r->line, "header column %zu has no name", i + 1);
			} else {
				shown(name, sizeof(name), s, len);
				problem_add(c, r->line, "unknown column '%s'", name);
			}
			ok = false;
		} else if (c->pos_of[col] >= 0) {
			problem_add(c, r->line, "column %s appears twice in the header",
				    names[col]);
			ok = false;
		} else {
			c->pos_of[col] = (int)i;
		}
	}
	missing[0] = '\0';
	for (size_t i = 0; i < required; i++) {
		if (c->pos_of[i] >= 0)
			continue;
		mlen += (size_t)snprintf(missing + mlen, sizeof(missing) - mlen, "%s%s",
					 mlen == 0 ? "" : ", ", names[i]);
		if (mlen >= sizeof(missing))
			mlen = sizeof(missing) - 1;
	}
	if (mlen > 0) {
		problem_add(c, r->line, "the header lacks the required column(s) %s", missing);
		ok = false;
	}
	return ok;
}

/* ---- values ---- */

/* Digits only, at least one, at most max; no sign or blanks. */
static bool digits_parse(const char *s, size_t len, unsigned max, unsigned *v_r)
{
	unsigned v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)((unsigned char)s[i] - '0');

		if (d > 9)
			return false;
		v = v * 10 + d;
		if (v > max)
			return false;
	}
	*v_r = v;
	return true;
}

static bool has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return true;
	}
	return false;
}

static uint16_t port_default(enum mh_proto proto, enum mh_security sec)
{
	if (proto == MH_PROTO_POP3)
		return sec == MH_SEC_TLS ? 995 : 110;
	return sec == MH_SEC_TLS ? 993 : 143;
}

/* Checks and copies a host name or IP address ("[v6]" loses its brackets). The value is
 * not quoted in reasons: in a misaligned file it could be someone's password. */
static bool host_check(struct parse_ctx *c, const char *what, const char *s, size_t len,
		       char *host_r)
{
	bool v6 = false;

	if (len == 0) {
		row_problem(c, "%s is empty", what);
		return false;
	}
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']') {
			row_problem(c, "%s has a '[' without a closing ']'", what);
			return false;
		}
		s++;
		len -= 2;
		v6 = true;
	}
	if (len >= MH_HOST_MAX) {
		row_problem(c, "%s is longer than %d bytes", what, MH_HOST_MAX - 1);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch == 0x7f) {
			row_problem(c, "%s contains a space or control character", what);
			return false;
		}
	}
	if (memchr(s, '/', len) != NULL || memchr(s, '@', len) != NULL) {
		row_problem(c, "%s must be a host name only (no URL, user or path)", what);
		return false;
	}
	if (v6 || memchr(s, ':', len) != NULL) {
		unsigned char addr[16];
		char tmp[MH_HOST_MAX];

		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1) {
			row_problem(c, "%s contains ':' but is not an IPv6 address (give the port "
				       "separately)", what);
			return false;
		}
	}
	memcpy(host_r, s, len);
	host_r[len] = '\0';
	return true;
}

static bool user_check(struct parse_ctx *c, const char *what, const char *s, size_t len,
		       char *user_r)
{
	if (len == 0) {
		row_problem(c, "%s is empty", what);
		return false;
	}
	if (len >= MH_USER_MAX) {
		row_problem(c, "%s is longer than %d bytes", what, MH_USER_MAX - 1);
		return false;
	}
	/* A line break in a user name could end an IMAP command early. */
	if (has_control(s, len)) {
		row_problem(c, "%s contains a control character", what);
		return false;
	}
	if (trim_char(s[0]) || trim_char(s[len - 1])) {
		row_problem(c, "%s starts or ends with a space", what);
		return false;
	}
	memcpy(user_r, s, len);
	user_r[len] = '\0';
	return true;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool env_name_ok(const char *s)
{
	if (*s == '\0' || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Sets ep's password from a cell (a C string without NUL bytes). With references,
 * "file:", "env:" and "literal:" are resolved. Reasons name the column, the file or the
 * variable, never the password. */
static bool password_set(struct parse_ctx *c, const char *what, const char *s, bool references,
			 struct mh_endpoint *ep)
{
	char *owned = NULL;
	const char *pw = s;
	bool ok = false;

	if (references && starts_with(s, "literal:")) {
		pw = s + strlen("literal:");
	} else if (references && starts_with(s, "file:")) {
		const char *path = s + strlen("file:");
		struct mh_err err;

		if (*path == '\0') {
			row_problem(c, "%s: 'file:' needs a path", what);
			return false;
		}
		if (mh_password_read_file(path, &owned, &err) < 0) {
			row_problem(c, "%s: %s", what, err.detail);
			return false;
		}
		pw = owned;
	} else if (references && starts_with(s, "env:")) {
		const char *name = s + strlen("env:");
		char name_shown[SHOWN_MAX + 1];

		if (!env_name_ok(name)) {
			row_problem(c, "%s: 'env:' needs a variable name (letters, digits, '_')",
				    what);
			return false;
		}
		shown(name_shown, sizeof(name_shown), name, strlen(name));
		pw = getenv(name);
		if (pw == NULL) {
			row_problem(c, "%s: the environment variable %s is not set", what,
				    name_shown);
			return false;
		}
		if (*pw == '\0') {
			row_problem(c, "%s: the environment variable %s is empty", what,
				    name_shown);
			return false;
		}
	}
	if (*pw == '\0') {
		row_problem(c, "%s is empty", what);
	} else if (strpbrk(pw, "\r\n") != NULL) {
		/* IMAP LOGIN and POP3 PASS cannot carry a line break. */
		row_problem(c, "%s contains a line break", what);
	} else {
		mh_endpoint_set_password(ep, pw);
		ok = true;
	}
	if (owned != NULL) {
		OPENSSL_cleanse(owned, strlen(owned));
		free(owned);
	}
	return ok;
}

static bool security_parse(const char *s, enum mh_security *sec_r)
{
	if (strcasecmp(s, "tls") == 0)
		*sec_r = MH_SEC_TLS;
	else if (strcasecmp(s, "starttls") == 0)
		*sec_r = MH_SEC_STARTTLS;
	else if (strcasecmp(s, "plain") == 0)
		*sec_r = MH_SEC_PLAIN;
	else
		return false;
	return true;
}

/* ---- options ---- */

enum option_key {
	O_ALLOW_PLAINTEXT,
	O_INSECURE,
	O_CA_FILE,
	O_MAX_CONNECTIONS,
	O_AUTOSYNC,
	O_SYNC_FLAGS,
	O_PROPAGATE_DELETES,
	O_POP3_FOLDER,
	O_POP3_FLAGS,
	O_COUNT
};

static const char *const option_names[O_COUNT] = {
	"allow_plaintext", "insecure",    "ca_file",    "max_connections",
	"autosync",        "sync_flags",  "propagate_deletes", "pop3_folder", "pop3_flags",
};

static bool yes_no_parse(const char *s, size_t len, bool *v_r)
{
	if (len == 3 && strncasecmp(s, "yes", 3) == 0)
		*v_r = true;
	else if (len == 2 && strncasecmp(s, "no", 2) == 0)
		*v_r = false;
	else
		return false;
	return true;
}

/* "off", or a count and a unit: m (minutes), h (hours), d (days). */
static bool autosync_parse(const char *s, size_t len, unsigned *minutes_r)
{
	unsigned n, per;

	if (len == 3 && strncasecmp(s, "off", 3) == 0) {
		*minutes_r = 0;
		return true;
	}
	if (len < 2)
		return false;
	switch (s[len - 1]) {
	case 'm':
	case 'M':
		per = 1;
		break;
	case 'h':
	case 'H':
		per = 60;
		break;
	case 'd':
	case 'D':
		per = 24 * 60;
		break;
	default:
		return false;
	}
	if (!digits_parse(s, len - 1, MH_CSV_AUTOSYNC_MAX_MINUTES, &n) || n == 0 ||
	    n > MH_CSV_AUTOSYNC_MAX_MINUTES / per)
		return false;
	*minutes_r = n * per;
	return true;
}

static bool option_text(struct parse_ctx *c, const char *key, const char *v, size_t vlen,
			char **text_r)
{
	if (vlen == 0) {
		row_problem(c, "options: %s is empty", key);
		return false;
	}
	if (has_control(v, vlen)) {
		row_problem(c, "options: %s contains a control character", key);
		return false;
	}
	*text_r = xstrndup(v, vlen);
	return true;
}

static void option_apply(struct parse_ctx *c, const char *item, size_t len,
			 struct mh_csv_row *row, unsigned *seen)
{
	const char *eq = memchr(item, '=', len);
	const char *k = item, *v;
	size_t klen, vlen;
	int key = -1;

	if (eq == NULL) {
		row_problem(c, "options: an entry has no '=' (expected key=value;key=value)");
		return;
	}
	klen = (size_t)(eq - item);
	v = eq + 1;
	vlen = len - klen - 1;
	trim(&k, &klen);
	trim(&v, &vlen);
	for (int i = 0; i < O_COUNT; i++)
		if (strlen(option_names[i]) == klen && strncasecmp(k, option_names[i], klen) == 0)
			key = i;
	if (key < 0) {
		char name[SHOWN_MAX + 1];

		shown(name, sizeof(name), k, klen);
		row_problem(c,
			    "options: unknown option '%s' (known: allow_plaintext, insecure, "
			    "ca_file, max_connections, autosync, sync_flags, propagate_deletes, pop3_folder, pop3_flags)",
			    name);
		return;
	}
	if (*seen & (1u << key)) {
		row_problem(c, "options: %s is given twice", option_names[key]);
		return;
	}
	*seen |= 1u << key;
	switch ((enum option_key)key) {
	case O_ALLOW_PLAINTEXT:
		if (!yes_no_parse(v, vlen, &row->allow_plaintext))
			row_problem(c, "options: allow_plaintext must be yes or no");
		break;
	case O_INSECURE:
		if (!yes_no_parse(v, vlen, &row->insecure))
			row_problem(c, "options: insecure must be yes or no");
		break;
	case O_MAX_CONNECTIONS:
		if (!digits_parse(v, vlen, MH_CSV_CONNECTIONS_MAX, &row->max_connections) ||
		    row->max_connections == 0)
			row_problem(c, "options: max_connections must be a number from 1 to %u",
				    MH_CSV_CONNECTIONS_MAX);
		break;
	case O_AUTOSYNC:
		if (!autosync_parse(v, vlen, &row->autosync_minutes))
			row_problem(c,
				    "options: autosync must be off or a duration from 1m to %ud "
				    "(like 30m, 3h, 1d)",
				    MH_CSV_AUTOSYNC_MAX_MINUTES / (24 * 60));
		break;
	case O_SYNC_FLAGS:
		if (!yes_no_parse(v, vlen, &row->sync_flags))
			row_problem(c, "options: sync_flags must be yes or no");
		break;
	case O_PROPAGATE_DELETES:
		if (!yes_no_parse(v, vlen, &row->propagate_deletes))
			row_problem(c, "options: propagate_deletes must be yes or no");
		break;
	case O_CA_FILE:
		option_text(c, "ca_file", v, vlen, &row->ca_file);
		break;
	case O_POP3_FOLDER:
		option_text(c, "pop3_folder", v, vlen, &row->pop3_folder);
		break;
	case O_POP3_FLAGS:
		if (option_text(c, "pop3_flags", v, vlen, &row->pop3_flags) && !mh_imap_flags_valid(row->pop3_flags))
			row_problem(c, "options: pop3_flags must be IMAP flags separated by spaces (like \\Seen)");
		break;
	case O_COUNT:
		break;
	}
}

/* "key=value;key=value": blanks around keys and values and empty entries are ignored. */
static void options_parse(struct parse_ctx *c, const char *s, size_t len, struct mh_csv_row *row)
{
	unsigned seen = 0;
	size_t i = 0;

	while (i < len) {
		const char *semi = memchr(s + i, ';', len - i);
		size_t end = semi != NULL ? (size_t)(semi - s) : len;
		const char *item = s + i;
		size_t ilen = end - i;

		trim(&item, &ilen);
		if (ilen > 0)
			option_apply(c, item, ilen, row, &seen);
		i = end + 1;
	}
}

/* ---- rows ---- */

static void row_cleanup(struct mh_csv_row *row)
{
	mh_endpoint_cleanup(&row->src);
	mh_endpoint_cleanup(&row->dst);
	free(row->ca_file);
	free(row->pop3_folder);
	free(row->pop3_flags);
	memset(row, 0, sizeof(*row));
}

static char ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static uint64_t key_hash(const char *s)
{
	uint64_t h = 14695981039346656037u; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	return h;
}

static void seen_grow(struct seen_table *t)
{
	size_t cap = t->cap == 0 ? 1024 : t->cap * 2;
	struct seen_entry *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		abort();
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (t->slots[i].key == NULL)
			continue;
		j = (size_t)key_hash(t->slots[i].key) & (cap - 1);
		while (slots[j].key != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
}

/* Records the destination mailbox, or reports that an earlier row has it already. */
static void seen_check(struct parse_ctx *c, const char *host, const char *user)
{
	struct seen_table *t = &c->seen;
	size_t ulen = strlen(user), hlen = strlen(host);
	char *key = malloc(ulen + hlen + 2);
	size_t j;

	if (key == NULL)
		abort();
	/* Host names and (ASCII) user names are case-insensitive; '\n' is in neither. */
	for (size_t i = 0; i < ulen; i++)
		key[i] = ascii_lower(user[i]);
	key[ulen] = '\n';
	for (size_t i = 0; i < hlen; i++)
		key[ulen + 1 + i] = ascii_lower(host[i]);
	key[ulen + 1 + hlen] = '\0';

	if ((t->used + 1) * 2 > t->cap)
		seen_grow(t);
	j = (size_t)key_hash(key) & (t->cap - 1);
	while (t->slots[j].key != NULL) {
		if (strcmp(t->slots[j].key, key) == 0) {
			row_problem(c, "the same destination mailbox is already on line %u",
				    t->slots[j].line);
			free(key);
			return;
		}
		j = (j + 1) & (t->cap - 1);
	}
	t->slots[j].key = key;
	t->slots[j].line = c->row_line;
	t->used++;
}

/* Keeps the row if nothing was wrong with it, else frees it. dst_ok: its destination
 * host and user are valid, so it takes part in the duplicate check. */
static void row_finish(struct parse_ctx *c, struct mh_csv_row *row, bool dst_ok)
{
	struct mh_csv_result *res = c->res;

	if (dst_ok)
		seen_check(c, row->dst.host, row->dst.user);
	if (c->row_bad) {
		row_cleanup(row);
		return;
	}
	if (res->row_count == c->rows_cap) {
		c->rows_cap = c->rows_cap == 0 ? 16 : c->rows_cap * 2;
		res->rows = xrealloc(res->rows, c->rows_cap * sizeof(*res->rows));
	}
	res->rows[res->row_count++] = *row;
}

/* The current record's cell for a column: "" when the column is not in the header. */
static const char *cell(const struct parse_ctx *c, int col, size_t *len_r)
{
	int p = c->pos_of[col];

	if (p < 0) {
		*len_r = 0;
		return "";
	}
	*len_r = c->rec.fields[p].len;
	return record_str(&c->rec, (size_t)p);
}

/* Field-level problems that make the cells unusable; reports them all. */
static bool record_shape_ok(struct parse_ctx *c)
{
	const struct csv_record *r = &c->rec;

	if (r->open_quote) {
		row_problem(c, "a quoted field is not closed before the end of the file");
		return false;
	}
	if (r->junk_after_quote)
		row_problem(c, "text follows a closing quote (write \"\" for a quote inside a "
			       "quoted field)");
	if (r->too_many_fields)
		row_problem(c, "the row has more than %d fields, the header has %zu",
			    RECORD_FIELDS_MAX, c->ncols);
	else if (r->nfields != c->ncols)
		row_problem(c, "the row has %zu fields, the header has %zu", r->nfields, c->ncols);
	if (c->row_bad)
		return false;
	for (size_t i = 0; i < r->nfields; i++) {
		const char *name = c->col_names[c->col_of[i]];

		if (r->fields[i].too_long)
			row_problem(c, "%s is longer than %u bytes", name, MH_CSV_FIELD_MAX);
		else if (r->fields[i].has_nul)
			row_problem(c, "%s contains a NUL byte", name);
	}
	return !c->row_bad;
}

static void native_security(struct parse_ctx *c, int col, enum mh_security *sec_r)
{
	size_t len;
	const char *s = cell(c, col, &len);

	*sec_r = MH_SEC_TLS;
	if (len > 0 && !security_parse(s, sec_r)) {
		char v[SHOWN_MAX + 1];

		shown(v, sizeof(v), s, len);
		row_problem(c, "%s '%s' is not a security mode (tls, starttls or plain)",
			    native_names[col], v);
	}
}

static void native_port(struct parse_ctx *c, int col, struct mh_endpoint *ep)
{
	size_t len;
	const char *s = cell(c, col, &len);
	unsigned port;

	ep->port = port_default(ep->proto, ep->security);
	if (len == 0)
		return;
	if (!digits_parse(s, len, 65535, &port) || port == 0) {
		char v[SHOWN_MAX + 1];

		shown(v, sizeof(v), s, len);
		row_problem(c, "%s '%s' is not a port number (1 to 65535)", native_names[col], v);
		return;
	}
	ep->port = (uint16_t)port;
}

/* Fills row from a mailhaul CSV record; returns whether the destination is valid. */
static bool native_row_build(struct parse_ctx *c, struct mh_csv_row *row)
{
	const char *s;
	size_t len;
	bool dst_ok;

	row->src.proto = MH_PROTO_IMAP;
	s = cell(c, N_SRC_PROTOCOL, &len);
	if (len > 0) {
		if (strcasecmp(s, "pop3") == 0) {
			row->src.proto = MH_PROTO_POP3;
		} else if (strcasecmp(s, "imap") != 0) {
			char v[SHOWN_MAX + 1];

			shown(v, sizeof(v), s, len);
			row_problem(c, "source_protocol '%s' is not a protocol (imap or pop3)", v);
		}
	}
	row->dst.proto = MH_PROTO_IMAP;
	native_security(c, N_SRC_SECURITY, &row->src.security);
	native_security(c, N_DST_SECURITY, &row->dst.security);
	native_port(c, N_SRC_PORT, &row->src);
	native_port(c, N_DST_PORT, &row->dst);

	s = cell(c, N_SRC_HOST, &len);
	host_check(c, "source_host", s, len, row->src.host);
	s = cell(c, N_SRC_USER, &len);
	user_check(c, "source_user", s, len, row->src.user);
	s = cell(c, N_SRC_PASSWORD, &len);
	password_set(c, "source_password", s, true, &row->src);

	s = cell(c, N_DST_HOST, &len);
	dst_ok = host_check(c, "destination_host", s, len, row->dst.host);
	s = cell(c, N_DST_USER, &len);
	dst_ok = user_check(c, "destination_user", s, len, row->dst.user) && dst_ok;
	s = cell(c, N_DST_PASSWORD, &len);
	password_set(c, "destination_password", s, true, &row->dst);

	s = cell(c, N_OPTIONS, &len);
	options_parse(c, s, len, row);
	if (row->src.proto == MH_PROTO_POP3 && (row->sync_flags || row->propagate_deletes))
		row_problem(c, "options: sync_flags and propagate_deletes need an IMAP source (POP3 has no flags "
			       "and a POP3 source's messages are never deleted on the target)");
	return dst_ok;
}

/* Security and port for a format that takes them from the caller's defaults. */
static void defaults_apply(struct parse_ctx *c, int security, uint16_t port, const char *opt,
			   struct mh_endpoint *ep)
{
	ep->proto = MH_PROTO_IMAP;
	ep->security = MH_SEC_TLS;
	if (security == MH_SEC_PLAIN || security == MH_SEC_STARTTLS || security == MH_SEC_TLS)
		ep->security = (enum mh_security)security;
	else if (security != -1)
		row_problem(c, "%s is not a security mode (tls, starttls or plain)", opt);
	ep->port = port != 0 ? port : port_default(ep->proto, ep->security);
}

static bool unset(const char *s)
{
	return s == NULL || *s == '\0';
}

static bool m365_row_build(struct parse_ctx *c, struct mh_csv_row *row)
{
	static const struct mh_csv_defaults none = {.src_security = -1, .dst_security = -1};
	const struct mh_csv_defaults *d = c->defaults != NULL ? c->defaults : &none;
	const char *s;
	size_t len;
	bool dst_ok;

	defaults_apply(c, d->src_security, d->src_port, "--from-security", &row->src);
	defaults_apply(c, d->dst_security, d->dst_port, "--to-security", &row->dst);
	/* The file names accounts only; the servers and the destination (admin) password
	 * must come from the command line. */
	if (unset(d->src_host) || unset(d->dst_host) || unset(d->dst_password)) {
		row_problem(c,
			    "a Microsoft 365 file does not name the servers or the destination "
			    "password: give%s%s%s",
			    unset(d->src_host) ? " --from-host" : "",
			    unset(d->dst_host) ? " --to-host" : "",
			    unset(d->dst_password) ? " --to-password-file" : "");
		dst_ok = false;
	} else {
		host_check(c, "--from-host", d->src_host, strlen(d->src_host), row->src.host);
		dst_ok = host_check(c, "--to-host", d->dst_host, strlen(d->dst_host),
				    row->dst.host);
		password_set(c, "the destination password", d->dst_password, false, &row->dst);
	}
	s = cell(c, M_EMAIL, &len);
	dst_ok = user_check(c, "EmailAddress", s, len, row->dst.user) && dst_ok;
	s = cell(c, M_USERNAME, &len);
	user_check(c, "UserName", s, len, row->src.user);
	s = cell(c, M_PASSWORD, &len);
	password_set(c, "Password", s, false, &row->src);
	return dst_ok;
}

/* Fills a zeroed row from the current record; returns whether its destination host and
 * user are valid. */
typedef bool row_build_cb_t(struct parse_ctx *c, struct mh_csv_row *row);

/* Data rows of a CSV format, after its header. Returns -1 past MH_CSV_ROWS_MAX. */
static int csv_rows_parse(struct parse_ctx *c, row_build_cb_t *build)
{
	while (lines_skip_ignorable(c)) {
		struct mh_csv_row row;

		record_read(c);
		if (record_blank(&c->rec))
			continue;
		if (++c->records > MH_CSV_ROWS_MAX)
			return -1;
		c->row_line = c->rec.line;
		c->row_bad = false;
		if (!record_shape_ok(c))
			continue;
		memset(&row, 0, sizeof(row));
		row.line = c->row_line;
		row_finish(c, &row, build(c, &row));
	}
	return 0;
}

/* Splits the line at pos on ';' into the record (the first IMAPSYNC_FIELDS fields; the
 * rest only counted) and moves past the line end. Returns the number of fields. */
static size_t imapsync_record_read(struct parse_ctx *c)
{
	struct csv_record *r = &c->rec;
	size_t total = 0;

	record_reset(r, c->line);
	for (;;) {
		struct csv_field *f = total < IMAPSYNC_FIELDS ? record_field_begin(r) : NULL;

		total++;
		while (c->pos < c->len && c->data[c->pos] != ';' && !is_eol(c->data[c->pos])) {
			record_put(r, f, c->data[c->pos]);
			c->pos++;
		}
		record_field_end(r, f);
		if (c->pos < c->len && c->data[c->pos] == ';') {
			c->pos++;
			continue;
		}
		if (c->pos < c->len)
			eol_consume(c);
		return total;
	}
}

/* Counts the ';'-separated fields of the line at pos without consuming it. */
static size_t semicolon_fields(const struct parse_ctx *c)
{
	size_t n = 1;

	for (size_t p = c->pos; p < c->len && !is_eol(c->data[p]); p++)
		if (c->data[p] == ';')
			n++;
	return n;
}

static int imapsync_parse(struct parse_ctx *c)
{
	static const struct mh_csv_defaults none = {.src_security = -1, .dst_security = -1};
	const struct mh_csv_defaults *d = c->defaults != NULL ? c->defaults : &none;

	c->col_names = imapsync_names;
	while (lines_skip_ignorable(c)) {
		struct csv_record *r = &c->rec;
		struct mh_csv_row row;
		size_t n = imapsync_record_read(c);
		bool dst_ok;

		if (++c->records > MH_CSV_ROWS_MAX)
			return -1;
		c->row_line = r->line;
		c->row_bad = false;
		if (n < IMAPSYNC_FIELDS) {
			row_problem(c,
				    "the line has %zu fields separated by ';', expected "
				    "host1;user1;password1;host2;user2;password2",
				    n);
			continue;
		}
		for (size_t i = 0; i < IMAPSYNC_FIELDS; i++) {
			if (r->fields[i].too_long)
				row_problem(c, "%s is longer than %u bytes", imapsync_names[i],
					    MH_CSV_FIELD_MAX);
			else if (r->fields[i].has_nul)
				row_problem(c, "%s contains a NUL byte", imapsync_names[i]);
		}
		if (c->row_bad)
			continue;

		memset(&row, 0, sizeof(row));
		row.line = c->row_line;
		defaults_apply(c, d->src_security, d->src_port, "--from-security", &row.src);
		defaults_apply(c, d->dst_security, d->dst_port, "--to-security", &row.dst);
		host_check(c, "host1", record_str(r, 0), r->fields[0].len, row.src.host);
		user_check(c, "user1", record_str(r, 1), r->fields[1].len, row.src.user);
		password_set(c, "password1", record_str(r, 2), false, &row.src);
		dst_ok = host_check(c, "host2", record_str(r, 3), r->fields[3].len, row.dst.host);
		dst_ok = user_check(c, "user2", record_str(r, 4), r->fields[4].len, row.dst.user) &&
			 dst_ok;
		password_set(c, "password2", record_str(r, 5), false, &row.dst);
		row_finish(c, &row, dst_ok);
	}
	return 0;
}

static void ctx_cleanup(struct parse_ctx *c)
{
	if (c->rec.buf != NULL) {
		OPENSSL_cleanse(c->rec.buf, c->rec.buf_high);
		free(c->rec.buf);
	}
	for (size_t i = 0; i < c->seen.cap; i++)
		free(c->seen.slots[i].key);
	free(c->seen.slots);
}

/* mh_csv_parse: see csv_jobs.h. The format is chosen from the first record that is not
 * blank or a comment: a header naming any mailhaul column makes it a mailhaul CSV, one
 * naming any Microsoft 365 column an M365 file (so a wrong header is reported column by
 * column rather than as "unknown format"); else 6 or more ';'-separated fields make it
 * an imapsync list. */
int mh_csv_parse(const char *data, size_t len, const struct mh_csv_defaults *defaults,
		 struct mh_csv_result *res, struct mh_err *err)
{
	struct parse_ctx *c;
	size_t start;
	unsigned start_line;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (len > MH_CSV_FILE_MAX)
		return mh_err_set(err, MH_E_USAGE,
				  "the file is larger than %u MiB; split it into smaller files",
				  MH_CSV_FILE_MAX / (1024 * 1024));
	if (data == NULL)
		len = 0;
	/* The context is large (the record's field table); keep it off the stack. */
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	/* Every byte kept comes from at least one input byte, plus a '\0' per field. */
	c->rec.buf = malloc(len < RECORD_BUF_SIZE ? len + RECORD_FIELDS_MAX + 1 : RECORD_BUF_SIZE);
	if (c->rec.buf == NULL)
		abort();
	c->data = data;
	c->len = len;
	c->line = 1;
	c->defaults = defaults;
	c->res = res;
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		c->pos = 3;

	for (;;) {
		if (!lines_skip_ignorable(c)) {
			rc = mh_err_set(err, MH_E_USAGE,
					"the file is empty (no header and no data lines)");
			goto out;
		}
		start = c->pos;
		start_line = c->line;
		record_read(c);
		if (!record_blank(&c->rec))
			break;
	}

	if (header_matches(&c->rec, native_names, N_COUNT) > 0) {
		res->format = MH_CSV_NATIVE;
		if (header_map(c, native_names, N_COUNT, NATIVE_REQUIRED))
			rc = csv_rows_parse(c, native_row_build);
	} else if (header_matches(&c->rec, m365_names, M_COUNT) > 0) {
		res->format = MH_CSV_M365;
		if (header_map(c, m365_names, M_COUNT, M_COUNT))
			rc = csv_rows_parse(c, m365_row_build);
	} else {
		c->pos = start;
		c->line = start_line;
		if (semicolon_fields(c) < IMAPSYNC_FIELDS) {
			rc = mh_err_set(err, MH_E_USAGE,
					"line %u is not a known header: expected mailhaul columns "
					"(source_host,source_user,...), Microsoft 365 columns "
					"(EmailAddress,UserName,Password) or imapsync lines "
					"(host1;user1;password1;host2;user2;password2)",
					start_line);
			goto out;
		}
		res->format = MH_CSV_IMAPSYNC;
		rc = imapsync_parse(c);
	}
	if (rc < 0) {
		mh_err_set(err, MH_E_USAGE, "the file has more than %u rows; split it",
			   MH_CSV_ROWS_MAX);
		goto out;
	}
	problems_finish(c);
out:
	ctx_cleanup(c);
	free(c);
	if (rc < 0)
		mh_csv_result_cleanup(res);
	return rc;
}

/* mh_csv_result_cleanup: see csv_jobs.h. */
void mh_csv_result_cleanup(struct mh_csv_result *res)
{
	for (size_t i = 0; i < res->row_count; i++)
		row_cleanup(&res->rows[i]);
	free(res->rows);
	free(res->problems);
	memset(res, 0, sizeof(*res));
}
