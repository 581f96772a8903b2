/* csv_jobs.h - bulk-migration files turned into validated job rows.
 *
 * Three formats, recognised from the first line that is not blank or a '#' comment:
 *
 *   mailhaul CSV (RFC 4180: ',' separated, "quoted" fields with "" escapes, CRLF or LF).
 *     A header row names the columns, in any order and any case:
 *       required  source_host source_user source_password
 *                 destination_host destination_user destination_password
 *       optional  source_protocol (imap|pop3, default imap), source_port,
 *                 source_security (tls|starttls|plain, default tls), destination_port,
 *                 destination_security (default tls), options
 *     options is "key=value;key=value" with the keys allow_plaintext=yes|no,
 *     insecure=yes|no, ca_file=PATH, max_connections=1..64, autosync=30m|3h|1d|off,
 *     sync_flags=yes|no, propagate_deletes=yes|no, pop3_folder=NAME, pop3_flags=FLAGS. Ports default from protocol and security
 *     (imap 143/993, pop3 110/995). A password cell is a literal, "file:/path" (the
 *     first line of that file), "env:NAME" (an environment variable) or "literal:..."
 *     (the rest, taken as is, for a password that starts with "file:" or "env:").
 *     The destination always speaks IMAP.
 *   Microsoft 365 IMAP migration CSV: the columns EmailAddress,UserName,Password (any
 *     order and case). EmailAddress is the destination user, UserName and Password the
 *     source login (Password is taken literally). Hosts, ports, security and the
 *     destination password come from struct mh_csv_defaults; without a host or the
 *     destination password every row gets a problem naming the missing option.
 *   imapsync bulk list: no header; each line is host1;user1;password1;host2;user2;password2
 *     (a trailing ';' and further fields are ignored; passwords are literal). Ports and
 *     security come from the defaults, else implicit TLS on 993 on both sides.
 *
 * Everywhere: an optional UTF-8 BOM, CRLF, LF or CR line ends, blank lines and lines
 * starting with '#' are skipped (a '#' inside a quoted CSV field is data).
 *
 * Ownership: the caller owns data and defaults; the result owns copies of everything it
 * holds and is released (passwords wiped) with mh_csv_result_cleanup(). */
#ifndef MH_CSV_JOBS_H
#define MH_CSV_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "err.h"

#define MH_CSV_FILE_MAX (64u * 1024u * 1024u) /* bytes */
#define MH_CSV_ROWS_MAX 1000000u              /* data rows, header and comments excluded */
#define MH_CSV_FIELD_MAX 4096u                /* bytes in one field, after unquoting */
#define MH_CSV_PROBLEMS_MAX 10000u            /* listed problems; then one summary entry */
#define MH_CSV_CONNECTIONS_MAX 64u
#define MH_CSV_AUTOSYNC_MAX_MINUTES (366u * 24u * 60u)

enum mh_csv_format { MH_CSV_NATIVE, MH_CSV_M365, MH_CSV_IMAPSYNC };

/* What the command line supplies for formats that do not carry it. Ports: 0 = unset
 * (derived from the security). Security: an enum mh_security value, or -1 = unset
 * (implicit TLS). Hosts and the password: NULL or "" = unset. Only the M365 format uses
 * the hosts and dst_password; the mailhaul CSV format ignores the whole struct. */
struct mh_csv_defaults {
	const char *src_host;
	uint16_t src_port;
	int src_security;
	const char *dst_host;
	uint16_t dst_port;
	int dst_security;
	const char *dst_password;
};

/* One validated job. src.password and dst.password are always set (heap, wiped by
 * mh_csv_result_cleanup); the strings below are heap or NULL when not given. */
struct mh_csv_row {
	unsigned line; /* physical line (1-based) where the record starts */
	struct mh_endpoint src, dst;
	bool allow_plaintext, insecure;
	char *ca_file;
	unsigned max_connections;  /* 0 = default */
	unsigned autosync_minutes; /* 0 = off */
	bool sync_flags, propagate_deletes; /* what syncs of the job do (syncstore.h) */
	char *pop3_folder;
	char *pop3_flags;
};

struct mh_csv_problem {
	unsigned line;    /* where the record starts; the header's line for header problems */
	char reason[256]; /* printable, names the column; never contains a password */
};

struct mh_csv_result {
	enum mh_csv_format format;
	struct mh_csv_row *rows;
	size_t row_count;
	struct mh_csv_problem *problems;
	size_t problem_count;
};

/* Parses a whole file's bytes (len bytes at data; NUL bytes are data, not an end).
 * Returns 0 when the file is one of the formats: res->rows holds every valid row and
 * res->problems one entry per problem found (a row with any problem is not in rows; a
 * row can have several). A bad header (an unknown, repeated or missing column) is
 * reported at the header's line and no data row is read. Past MH_CSV_PROBLEMS_MAX
 * problems one last entry says how many more were not listed.
 * Returns -1 with MH_E_USAGE and res empty when the file is no known format (empty, only
 * comments, no recognisable header), is larger than MH_CSV_FILE_MAX, or has more than
 * MH_CSV_ROWS_MAX data rows.
 * I/O: reads the password files named by "file:" cells and calls getenv() for "env:"
 * cells, nothing else. defaults may be NULL. res is always initialised; call
 * mh_csv_result_cleanup() on it either way. */
int mh_csv_parse(const char *data, size_t len, const struct mh_csv_defaults *defaults,
		 struct mh_csv_result *res, struct mh_err *err);

/* Frees everything in res and wipes the passwords; res is left empty (safe to call
 * again). */
void mh_csv_result_cleanup(struct mh_csv_result *res);

#endif
