/* test_csv_jobs.c - bulk-migration files: mailhaul CSV, Microsoft 365 CSV, imapsync lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "csv_jobs.h"

#define NATIVE_HEADER                                                                    \
	"source_host,source_user,source_password,destination_host,destination_user,"     \
	"destination_password"

/* Every password used in these tests contains this, so no reason may. */
#define SECRET "S3cr"

static void assert_no_secret(const struct mh_csv_result *res)
{
	for (size_t i = 0; i < res->problem_count; i++)
		if (strstr(res->problems[i].reason, SECRET) != NULL)
			fail_msg("line %u echoes a password: %s", res->problems[i].line,
				 res->problems[i].reason);
}

static int parse_len(const char *text, size_t len, const struct mh_csv_defaults *d,
		     struct mh_csv_result *res, struct mh_err *err)
{
	int rc;

	mh_err_clear(err);
	rc = mh_csv_parse(text, len, d, res, err);
	assert_no_secret(res);
	return rc;
}

/* Parses text that must be accepted as fmt. */
static void parse_ok(const char *text, const struct mh_csv_defaults *d, enum mh_csv_format fmt,
		     struct mh_csv_result *res)
{
	struct mh_err err;

	if (parse_len(text, strlen(text), d, res, &err) != 0)
		fail_msg("rejected: %s", err.detail);
	assert_int_equal(res->format, fmt);
}

static void problems_print(const struct mh_csv_result *res)
{
	for (size_t i = 0; i < res->problem_count; i++)
		print_message("  line %u: %s\n", res->problems[i].line, res->problems[i].reason);
}

/* Asserts a problem on line whose reason contains needle. */
static void assert_problem(const struct mh_csv_result *res, unsigned line, const char *needle)
{
	for (size_t i = 0; i < res->problem_count; i++)
		if (res->problems[i].line == line &&
		    strstr(res->problems[i].reason, needle) != NULL)
			return;
	problems_print(res);
	fail_msg("no problem on line %u containing '%s'", line, needle);
}

static size_t problems_on(const struct mh_csv_result *res, unsigned line)
{
	size_t n = 0;

	for (size_t i = 0; i < res->problem_count; i++)
		if (res->problems[i].line == line)
			n++;
	return n;
}

static void assert_no_problems(const struct mh_csv_result *res)
{
	if (res->problem_count != 0) {
		problems_print(res);
		fail_msg("%zu unexpected problems", res->problem_count);
	}
}

static const struct mh_csv_row *row_on(const struct mh_csv_result *res, unsigned line)
{
	for (size_t i = 0; i < res->row_count; i++)
		if (res->rows[i].line == line)
			return &res->rows[i];
	fail_msg("no row for line %u", line);
	return NULL;
}

static void assert_endpoint(const struct mh_endpoint *ep, enum mh_proto proto,
			    enum mh_security sec, const char *host, uint16_t port,
			    const char *user, const char *password)
{
	assert_int_equal(ep->proto, proto);
	assert_int_equal(ep->security, sec);
	assert_string_equal(ep->host, host);
	assert_int_equal(ep->port, port);
	assert_string_equal(ep->user, user);
	assert_non_null(ep->password);
	assert_string_equal(ep->password, password);
}

/* ---- mailhaul CSV ---- */

static void test_native_all_columns_any_order_and_case(void **state)
{
	struct mh_csv_result res;
	const struct mh_csv_row *r;
	const char *text =
		"Destination_User,SOURCE_HOST, source_user ,source_password,destination_host,"
		"destination_password,Source_Protocol,source_port,source_security,"
		"destination_port,destination_security,options\n"
		"bob@new.example,imap.old.example,bob,S3cr-1,mail.new.example,S3cr-2,,,,,,\n"
		"carol@new.example,pop.old.example,carol,S3cr-3,mail.new.example,S3cr-4,POP3,,"
		"starttls,10143,plain,allow_plaintext=yes;insecure=no;ca_file=/etc/ca.pem;"
		"max_connections=4;autosync=3h;pop3_folder=Old POP;pop3_flags=\\Seen\n"
		"dave@new.example,10.0.0.1,dave,S3cr-5,[2001:db8::1],S3cr-6,imap,1993,TLS,,"
		"StartTLS, autosync = 1d ; insecure=YES;sync_flags=yes; propagate_deletes = YES;\n"
		"erin@new.example,pop.old.example,erin,S3cr-7,mail.new.example,S3cr-8,pop3,,,,,"
		"autosync=off;max_connections=64\n";

	(void)state;
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_no_problems(&res);
	assert_int_equal(res.row_count, 4);

	r = row_on(&res, 2);
	assert_endpoint(&r->src, MH_PROTO_IMAP, MH_SEC_TLS, "imap.old.example", 993, "bob",
			"S3cr-1");
	assert_endpoint(&r->dst, MH_PROTO_IMAP, MH_SEC_TLS, "mail.new.example", 993,
			"bob@new.example", "S3cr-2");
	assert_false(r->allow_plaintext);
	assert_false(r->insecure);
	assert_null(r->ca_file);
	assert_int_equal(r->max_connections, 0);
	assert_int_equal(r->autosync_minutes, 0);
	assert_false(r->sync_flags || r->propagate_deletes); /* off unless asked for */
	assert_null(r->pop3_folder);
	assert_null(r->pop3_flags);

	r = row_on(&res, 3);
	assert_endpoint(&r->src, MH_PROTO_POP3, MH_SEC_STARTTLS, "pop.old.example", 110, "carol",
			"S3cr-3");
	assert_endpoint(&r->dst, MH_PROTO_IMAP, MH_SEC_PLAIN, "mail.new.example", 10143,
			"carol@new.example", "S3cr-4");
	assert_true(r->allow_plaintext);
	assert_false(r->insecure);
	assert_string_equal(r->ca_file, "/etc/ca.pem");
	assert_int_equal(r->max_connections, 4);
	assert_int_equal(r->autosync_minutes, 180);
	assert_string_equal(r->pop3_folder, "Old POP");
	assert_string_equal(r->pop3_flags, "\\Seen");

	r = row_on(&res, 4);
	assert_endpoint(&r->src, MH_PROTO_IMAP, MH_SEC_TLS, "10.0.0.1", 1993, "dave", "S3cr-5");
	assert_endpoint(&r->dst, MH_PROTO_IMAP, MH_SEC_STARTTLS, "2001:db8::1", 143,
			"dave@new.example", "S3cr-6");
	assert_true(r->insecure);
	assert_int_equal(r->autosync_minutes, 24 * 60);
	assert_true(r->sync_flags && r->propagate_deletes);

	r = row_on(&res, 5);
	assert_endpoint(&r->src, MH_PROTO_POP3, MH_SEC_TLS, "pop.old.example", 995, "erin",
			"S3cr-7");
	assert_int_equal(r->autosync_minutes, 0);
	assert_int_equal(r->max_connections, 64);

	mh_csv_result_cleanup(&res);
	assert_null(res.rows);
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res); /* twice is fine */
}

static void test_native_required_columns_only(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok(NATIVE_HEADER "\n"
			       "a.example,u1,S3cr1,b.example,v1,S3cr2\n"
			       "a.example,u2,S3cr3,b.example,v2,S3cr4",
		 NULL, MH_CSV_NATIVE, &res);
	assert_no_problems(&res);
	assert_int_equal(res.row_count, 2);
	assert_endpoint(&res.rows[1].src, MH_PROTO_IMAP, MH_SEC_TLS, "a.example", 993, "u2",
			"S3cr3");
	assert_endpoint(&res.rows[1].dst, MH_PROTO_IMAP, MH_SEC_TLS, "b.example", 993, "v2",
			"S3cr4");
	assert_int_equal(res.rows[1].line, 3);
	mh_csv_result_cleanup(&res);
}

/* One bad row per line; the line number and the named column are what an operator
 * needs to fix the file. */
static void test_native_bad_rows(void **state)
{
	struct mh_csv_result res;
	const char *text =
		NATIVE_HEADER ",source_protocol,source_port,destination_security,options\n"
		",u,S3cr,d.example,v2,S3cr,,,,\n"                          /* 2 */
		"s.example,u,S3cr,d.example,v3,S3cr,,99999,,\n"            /* 3 */
		"s.example,u,S3cr,d.example,v4,S3cr,,99a,,\n"              /* 4 */
		"s.example,u,S3cr,d.example,v5,S3cr,,0,,\n"                /* 5 */
		"s.example,u,S3cr,d.example,v6,S3cr,,,ssl,\n"              /* 6 */
		"s.example,u,S3cr,d.example,v7,S3cr,smtp,,,\n"             /* 7 */
		"mail .example,u,S3cr,d.example,v8,S3cr,,,,\n"             /* 8 */
		"s.example,u,S3cr,d\texample,v9,S3cr,,,,\n"                /* 9 */
		"s.example,u,S3cr,d.example,,S3cr,,,,\n"                   /* 10 */
		"s.example,u,S3cr,d.example,v11,S3cr\n"                    /* 11 */
		"s.example,u,S3cr,d.example,v12,S3cr,,,,,extra\n"          /* 12 */
		"s.example,u,S3cr,d.example,v13,S3cr,,,,colour=blue\n"     /* 13 */
		"s.example,u,S3cr,d.example,v14,S3cr,,,,insecure=maybe\n"  /* 14 */
		"s.example,u,S3cr,d.example,v15,S3cr,,,,max_connections=65\n" /* 15 */
		"s.example,u,S3cr,d.example,v16,S3cr,,,,max_connections=0\n"  /* 16 */
		"s.example,u,S3cr,d.example,v17,S3cr,,,,autosync=5x\n"     /* 17 */
		"s.example,u,S3cr,d.example,v18,S3cr,,,,insecure\n"        /* 18 */
		"s.example,u,S3cr,d.example,v19,S3cr,,,,insecure=yes;INSECURE=no\n" /* 19 */
		"s.example:993,u,S3cr,d.example,v20,S3cr,,,,\n"            /* 20 */
		"s.example,u,S3cr,d.example,v21,S3cr,,,,\n"                /* 21: good */
		"s.example,\"u\"x,S3cr,d.example,v22,S3cr,,,,\n"           /* 22 */
		"s.example,u,S3cr,d.example,v23,,,,,\n"                    /* 23 */
		"imaps://s.example,u,S3cr,d.example,v24,S3cr,,,,\n"        /* 24 */
		"s.example, u,S3cr,d.example,v25,S3cr,,,,\n"               /* 25 */
		"s.example,u,S3cr,d.example,v26,S3cr,,,,autosync=0m\n"     /* 26 */
		"s.example,u,S3cr,d.example,v27,S3cr,,,,autosync=367d\n"   /* 27 */
		"s.example,u,S3cr,d.example,v28,S3cr,,,,ca_file=\n"        /* 28 */
		"s.example,u,S3cr,d.example,v29,S3cr,,-1,,\n"              /* 29 */
		"s.example,u,S3cr,d.example,v30,\"S3cr,open\n"             /* 30: open at EOF */
		"s.example,u,S3cr,d.example,v31,S3cr,,,,\n";

	(void)state;
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 2, "source_host is empty");
	assert_problem(&res, 3, "source_port '99999' is not a port number");
	assert_problem(&res, 4, "source_port '99a' is not a port number");
	assert_problem(&res, 5, "source_port '0' is not a port number");
	assert_problem(&res, 6, "destination_security 'ssl' is not a security mode");
	assert_problem(&res, 7, "source_protocol 'smtp' is not a protocol");
	assert_problem(&res, 8, "source_host contains a space or control character");
	assert_problem(&res, 9, "destination_host contains a space or control character");
	assert_problem(&res, 10, "destination_user is empty");
	assert_problem(&res, 11, "the row has 6 fields, the header has 10");
	assert_problem(&res, 12, "the row has 11 fields, the header has 10");
	assert_problem(&res, 13, "unknown option 'colour'");
	assert_problem(&res, 14, "insecure must be yes or no");
	assert_problem(&res, 15, "max_connections must be a number from 1 to 64");
	assert_problem(&res, 16, "max_connections must be a number from 1 to 64");
	assert_problem(&res, 17, "autosync must be off or a duration");
	assert_problem(&res, 18, "no '='");
	assert_problem(&res, 19, "insecure is given twice");
	assert_problem(&res, 20, "source_host contains ':' but is not an IPv6 address");
	assert_int_equal(problems_on(&res, 21), 0);
	assert_problem(&res, 22, "text follows a closing quote");
	assert_problem(&res, 23, "destination_password is empty");
	assert_problem(&res, 24, "source_host must be a host name only");
	assert_problem(&res, 25, "source_user starts or ends with a space");
	assert_problem(&res, 26, "autosync must be off or a duration");
	assert_problem(&res, 27, "autosync must be off or a duration");
	assert_problem(&res, 28, "ca_file is empty");
	assert_problem(&res, 29, "source_port '-1' is not a port number");
	assert_problem(&res, 30, "quoted field is not closed before the end of the file");
	/* The open quote swallowed line 31. */
	assert_int_equal(problems_on(&res, 31), 0);
	assert_int_equal(res.row_count, 1);
	assert_int_equal(res.rows[0].line, 21);
	assert_string_equal(res.rows[0].dst.user, "v21");
	mh_csv_result_cleanup(&res);
}

/* Flag sync and delete propagation: yes or no, and for IMAP sources only. */
static void test_native_sync_options(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok(NATIVE_HEADER ",source_protocol,options\n"
			       "s.example,u,S3cr,d.example,v2,S3cr,pop3,sync_flags=yes\n"
			       "s.example,u,S3cr,d.example,v3,S3cr,imap,propagate_deletes=1\n"
			       "s.example,u,S3cr,d.example,v4,S3cr,pop3,sync_flags=no;propagate_deletes=no\n",
		 NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 2, "sync_flags and propagate_deletes need an IMAP source");
	assert_problem(&res, 3, "propagate_deletes must be yes or no");
	assert_int_equal(problems_on(&res, 4), 0);
	assert_int_equal(res.row_count, 1);
	mh_csv_result_cleanup(&res);
}

/* Several problems in one row are all reported, each on the row's line. */
static void test_native_row_with_several_problems(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok(NATIVE_HEADER ",source_port\n"
			       "bad host,,S3cr,d.example,,,70000\n",
		 NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 2, "source_host contains a space");
	assert_problem(&res, 2, "source_user is empty");
	assert_problem(&res, 2, "destination_user is empty");
	assert_problem(&res, 2, "destination_password is empty");
	assert_problem(&res, 2, "source_port '70000'");
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res);
}

static void test_native_header_unknown_column(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok("# exported by hand\n" NATIVE_HEADER ",colour\n"
		 "a.example,u,S3cr,b.example,v,S3cr,red\n",
		 NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 2, "unknown column 'colour'");
	assert_int_equal(res.problem_count, 1);
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res);
}

static void test_native_header_missing_and_repeated_columns(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok("source_host,source_user,source_user,destination_host,destination_user\n"
		 "a.example,u,u,b.example,v\n",
		 NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 1, "column source_user appears twice");
	assert_problem(&res, 1, "lacks the required column(s) source_password, "
				"destination_password");
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res);

	parse_ok(NATIVE_HEADER ",,options\n", NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 1, "header column 7 has no name");
	mh_csv_result_cleanup(&res);
}

static void test_bom_crlf_comments_and_blank_lines(void **state)
{
	struct mh_csv_result res;
	const char *text = "\xEF\xBB\xBF# bulk file\r\n"    /* 1 */
			   "\r\n"                           /* 2 */
			   NATIVE_HEADER "\r\n"             /* 3 */
			   "# alice first\r\n"              /* 4 */
			   "   \t\r\n"                      /* 5 */
			   "a.example,alice,S3cr1,b.example,alice,S3cr2\r\n" /* 6 */
			   ",,,,,\r\n"                      /* 7: an empty spreadsheet row */
			   "\n"                             /* 8 */
			   "a.example,bob,S3cr3,b.example,bob,S3cr4\r\n";   /* 9 */

	(void)state;
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_no_problems(&res);
	assert_int_equal(res.row_count, 2);
	assert_endpoint(&row_on(&res, 6)->src, MH_PROTO_IMAP, MH_SEC_TLS, "a.example", 993,
			"alice", "S3cr1");
	assert_endpoint(&row_on(&res, 6)->dst, MH_PROTO_IMAP, MH_SEC_TLS, "b.example", 993,
			"alice", "S3cr2");
	assert_string_equal(row_on(&res, 9)->dst.password, "S3cr4");
	mh_csv_result_cleanup(&res);
}

static void test_lone_cr_line_ends(void **state)
{
	struct mh_csv_result res;

	(void)state;
	parse_ok(NATIVE_HEADER "\r"
			       "a.example,alice,S3cr1,b.example,alice,S3cr2\r"
			       "a.example,bob,S3cr3,b.example,bob,S3cr4\r",
		 NULL, MH_CSV_NATIVE, &res);
	assert_no_problems(&res);
	assert_string_equal(row_on(&res, 3)->src.user, "bob");
	mh_csv_result_cleanup(&res);
}

static void test_quoted_fields(void **state)
{
	struct mh_csv_result res;
	const char *text =
		NATIVE_HEADER ",options\n"                                        /* 1 */
		"\"a.example\",\"alice\",\"S3cr,with \"\"quotes\"\", commas\",b.example,"
		"\"al,ice\",\"\",\"ca_file=/etc/a,b.pem;insecure=yes\"\n"        /* 2 */
		"a.example,bob,\"S3cr\nwith a line break\",b.example,bob,S3cr,\n" /* 3-4 */
		"a.example,carol,S3cr,b.example,carol,\"S3cr\r\n"
		"\",\n"                                                          /* 5-6 */
		"a.example,dave,S3cr#\"x,b.example,dave,S3cr,\"\"\n"             /* 7 */
		"\"# not a comment\",erin,S3cr,b.example,erin,S3cr,\n";          /* 8 */

	(void)state;
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	/* Row 2: commas and quotes inside quotes, but an empty destination password. */
	assert_problem(&res, 2, "destination_password is empty");
	mh_csv_result_cleanup(&res);

	text = NATIVE_HEADER ",options\n"                                          /* 1 */
	       "\"a.example\",\"alice\",\"S3cr,with \"\"quotes\"\", commas\",b.example,"
	       "\"al,ice\",\"S3cr \"\"2\"\"\",\"ca_file=/etc/a,b.pem;insecure=yes\"\n"  /* 2 */
	       "a.example,bob,\"S3cr\nwith a line break\",b.example,bob,S3cr,\n"       /* 3-4 */
	       "a.example,carol,S3cr,b.example,carol,\"S3cr\r\n"
	       "\",\n"                                                                 /* 5-6 */
	       "a.example,dave,S3cr#\"x,b.example,dave,S3cr,\"\"\n"                    /* 7 */
	       "\"# not a comment\",erin,S3cr,b.example,erin,S3cr,\n";                 /* 8 */
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_string_equal(row_on(&res, 2)->src.password, "S3cr,with \"quotes\", commas");
	assert_string_equal(row_on(&res, 2)->dst.user, "al,ice");
	assert_string_equal(row_on(&res, 2)->dst.password, "S3cr \"2\"");
	assert_string_equal(row_on(&res, 2)->ca_file, "/etc/a,b.pem");
	assert_true(row_on(&res, 2)->insecure);
	/* A line break cannot be sent in LOGIN; the reason names the column only. */
	assert_problem(&res, 3, "source_password contains a line break");
	assert_problem(&res, 5, "destination_password contains a line break");
	/* A quote inside an unquoted field is data. */
	assert_string_equal(row_on(&res, 7)->src.password, "S3cr#\"x");
	/* A quoted first field starting with '#' is data, not a comment. */
	assert_problem(&res, 8, "source_host contains a space");
	assert_int_equal(res.problem_count, 3);
	assert_int_equal(res.row_count, 2);
	mh_csv_result_cleanup(&res);
}

static void test_field_too_long(void **state)
{
	struct mh_csv_result res;
	size_t n = MH_CSV_FIELD_MAX + 100;
	char *text = malloc(2 * strlen(NATIVE_HEADER) + n + MH_CSV_FIELD_MAX + 200);
	char *p = text;

	(void)state;
	p += sprintf(p, NATIVE_HEADER "\na.example,u,");
	memcpy(p, SECRET, strlen(SECRET));
	memset(p + strlen(SECRET), 'x', n - strlen(SECRET));
	p += n;
	p += sprintf(p, ",b.example,v,S3cr\na.example,u2,");
	memset(p, 'y', MH_CSV_FIELD_MAX);
	p += MH_CSV_FIELD_MAX;
	sprintf(p, ",b.example,v2,S3cr\n");

	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 2, "source_password is longer than 4096 bytes");
	assert_int_equal(res.row_count, 1);
	assert_int_equal(strlen(res.rows[0].src.password), MH_CSV_FIELD_MAX);
	mh_csv_result_cleanup(&res);
	free(text);
}

static void test_nul_byte_in_field(void **state)
{
	static const char text[] = NATIVE_HEADER "\na.example,u\0x,S3cr,b.example,v,S3cr\n";
	struct mh_csv_result res;
	struct mh_err err;

	(void)state;
	assert_int_equal(parse_len(text, sizeof(text) - 1, NULL, &res, &err), 0);
	assert_problem(&res, 2, "source_user contains a NUL byte");
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res);
}

/* ---- password references ---- */

static void test_password_references(void **state)
{
	char path[] = "/tmp/test_csv_jobs_pw_XXXXXX";
	char empty_path[] = "/tmp/test_csv_jobs_empty_XXXXXX";
	char text[2048];
	struct mh_csv_result res;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "S3cr-from-file\nsecond line\n", 27), 27);
	close(fd);
	fd = mkstemp(empty_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\nS3cr-hidden\n", 13), 13);
	close(fd);
	setenv("MH_TEST_CSV_PW", "S3cr-from-env", 1);
	unsetenv("MH_TEST_CSV_UNSET");
	setenv("MH_TEST_CSV_EMPTY", "", 1);

	snprintf(text, sizeof(text),
		 NATIVE_HEADER "\n"
		 "a.example,u2,file:%s,b.example,v2,env:MH_TEST_CSV_PW\n"          /* 2 */
		 "a.example,u3,literal:file:S3cr,b.example,v3,literal:env:S3cr\n"  /* 3 */
		 "a.example,u4,literal:literal:S3cr,b.example,v4,File:S3cr\n"      /* 4 */
		 "a.example,u5,file:/nonexistent/dir/pw,b.example,v5,S3cr\n"  /* 5 */
		 "a.example,u6,S3cr,b.example,v6,env:MH_TEST_CSV_UNSET\n"          /* 6 */
		 "a.example,u7,env:,b.example,v7,file:\n"                          /* 7 */
		 "a.example,u8,env:BAD-NAME,b.example,v8,env:MH_TEST_CSV_EMPTY\n"  /* 8 */
		 "a.example,u9,file:%s,b.example,v9,literal:\n",                   /* 9 */
		 path, empty_path);
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);

	assert_string_equal(row_on(&res, 2)->src.password, "S3cr-from-file");
	assert_string_equal(row_on(&res, 2)->dst.password, "S3cr-from-env");
	assert_string_equal(row_on(&res, 3)->src.password, "file:S3cr");
	assert_string_equal(row_on(&res, 3)->dst.password, "env:S3cr");
	assert_string_equal(row_on(&res, 4)->src.password, "literal:S3cr");
	assert_string_equal(row_on(&res, 4)->dst.password, "File:S3cr"); /* prefixes are exact */
	/* The path is named (it is not a secret), the content never is. */
	assert_problem(&res, 5, "source_password: cannot open password file "
				"/nonexistent/dir/pw");
	assert_problem(&res, 6, "destination_password: the environment variable "
				"MH_TEST_CSV_UNSET is not set");
	assert_problem(&res, 7, "source_password: 'env:' needs a variable name");
	assert_problem(&res, 7, "destination_password: 'file:' needs a path");
	assert_problem(&res, 8, "source_password: 'env:' needs a variable name");
	assert_problem(&res, 8, "MH_TEST_CSV_EMPTY is empty");
	assert_problem(&res, 9, "the first line is empty");
	assert_problem(&res, 9, "destination_password is empty");
	assert_int_equal(res.row_count, 3);
	for (size_t i = 0; i < res.problem_count; i++)
		assert_null(strstr(res.problems[i].reason, "hidden"));
	mh_csv_result_cleanup(&res);
	unlink(path);
	unlink(empty_path);
	unsetenv("MH_TEST_CSV_PW");
	unsetenv("MH_TEST_CSV_EMPTY");
}

/* ---- duplicates ---- */

static void test_duplicate_destination(void **state)
{
	struct mh_csv_result res;
	const char *text = NATIVE_HEADER "\n"
				  "a.example,u1,S3cr,Mail.Example,Alice@Example.com,S3cr\n" /* 2 */
				  "a.example,u2,S3cr,mail.example,bob@example.com,S3cr\n"   /* 3 */
				  "a.example,u3,S3cr,mail.example,alice@example.COM,S3cr\n" /* 4 */
				  "a.example,u4,S3cr,other.example,alice@example.com,S3cr\n" /* 5 */
				  "a.example,u5,S3cr,MAIL.EXAMPLE,ALICE@EXAMPLE.COM,S3cr\n"  /* 6 */
				  "a.example,u6,S3cr,mail.example,bob@example.com,\n"        /* 7 */
				  "a.example,u7,S3cr,mail.example,bob@example.com,S3cr\n";   /* 8 */

	(void)state;
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	assert_problem(&res, 4, "already on line 2");
	assert_problem(&res, 6, "already on line 2");
	assert_problem(&res, 7, "already on line 3");
	assert_problem(&res, 8, "already on line 3");
	assert_int_equal(res.row_count, 3); /* lines 2, 3, 5 */
	assert_int_equal(res.rows[0].line, 2);
	assert_int_equal(res.rows[1].line, 3);
	assert_int_equal(res.rows[2].line, 5);
	mh_csv_result_cleanup(&res);
}

/* ---- Microsoft 365 ---- */

static const struct mh_csv_defaults m365_defaults = {
	.src_host = "imap.old.example",
	.src_port = 0,
	.src_security = -1,
	.dst_host = "outlook.office365.com",
	.dst_port = 0,
	.dst_security = -1,
	.dst_password = "S3cr-master",
};

static void test_m365_rows(void **state)
{
	struct mh_csv_result res;
	struct mh_csv_defaults d = m365_defaults;
	const char *text = "\xEF\xBB\xBF" "password,EmailAddress,USERNAME\r\n"
			   "S3cr-a,alice@new.example,alice\r\n"
			   "\"S3cr,b\",bob@new.example,bob@old.example\r\n"
			   "S3cr-c,carol@new.example,admin/carol\r\n";

	(void)state;
	parse_ok(text, &d, MH_CSV_M365, &res);
	assert_no_problems(&res);
	assert_int_equal(res.row_count, 3);
	assert_endpoint(&res.rows[0].src, MH_PROTO_IMAP, MH_SEC_TLS, "imap.old.example", 993,
			"alice", "S3cr-a");
	assert_endpoint(&res.rows[0].dst, MH_PROTO_IMAP, MH_SEC_TLS, "outlook.office365.com", 993,
			"alice@new.example", "S3cr-master");
	assert_endpoint(&res.rows[1].src, MH_PROTO_IMAP, MH_SEC_TLS, "imap.old.example", 993,
			"bob@old.example", "S3cr,b");
	assert_string_equal(res.rows[2].src.user, "admin/carol");
	assert_int_equal(res.rows[2].line, 4);
	mh_csv_result_cleanup(&res);

	/* Security and ports from the caller; a port of 0 follows the security. */
	d.src_security = MH_SEC_STARTTLS;
	d.dst_port = 10993;
	parse_ok("EmailAddress,UserName,Password\nalice@new.example,alice,S3cr-a\n", &d,
		 MH_CSV_M365, &res);
	assert_no_problems(&res);
	assert_endpoint(&res.rows[0].src, MH_PROTO_IMAP, MH_SEC_STARTTLS, "imap.old.example", 143,
			"alice", "S3cr-a");
	assert_endpoint(&res.rows[0].dst, MH_PROTO_IMAP, MH_SEC_TLS, "outlook.office365.com",
			10993, "alice@new.example", "S3cr-master");
	mh_csv_result_cleanup(&res);
}

static void test_m365_without_defaults(void **state)
{
	struct mh_csv_result res;
	struct mh_csv_defaults d = {.src_host = "imap.old.example", .src_security = -1,
				    .dst_security = -1};
	const char *text = "EmailAddress,UserName,Password\n"
			   "alice@new.example,alice,S3cr-a\n"
			   "bob@new.example,bob,S3cr-b\n";

	(void)state;
	parse_ok(text, NULL, MH_CSV_M365, &res);
	assert_int_equal(res.row_count, 0);
	assert_int_equal(res.problem_count, 2);
	assert_problem(&res, 2, "give --from-host --to-host --to-password-file");
	assert_problem(&res, 3, "give --from-host --to-host --to-password-file");
	mh_csv_result_cleanup(&res);

	parse_ok(text, &d, MH_CSV_M365, &res);
	assert_int_equal(res.row_count, 0);
	assert_problem(&res, 2, "give --to-host --to-password-file");
	assert_problem(&res, 3, "give --to-host --to-password-file");
	mh_csv_result_cleanup(&res);
}

static void test_m365_bad_rows_and_header(void **state)
{
	struct mh_csv_result res;
	struct mh_csv_defaults d = m365_defaults;

	(void)state;
	parse_ok("EmailAddress,UserName,Password\n"
		 ",alice,S3cr\n"                      /* 2 */
		 "bob@new.example,,S3cr\n"            /* 3 */
		 "carol@new.example,carol,\n"         /* 4 */
		 "dave@new.example,dave\n"            /* 5 */
		 "alice@new.example,alice,S3cr\n"     /* 6 */
		 "ALICE@new.example,alice2,S3cr\n",   /* 7 */
		 &d, MH_CSV_M365, &res);
	assert_problem(&res, 2, "EmailAddress is empty");
	assert_problem(&res, 3, "UserName is empty");
	assert_problem(&res, 4, "Password is empty");
	assert_problem(&res, 5, "the row has 2 fields, the header has 3");
	assert_problem(&res, 7, "already on line 6");
	assert_int_equal(res.row_count, 1);
	mh_csv_result_cleanup(&res);

	d.src_security = 7;
	parse_ok("EmailAddress,UserName,Password\na@new.example,a,S3cr\n", &d, MH_CSV_M365, &res);
	assert_problem(&res, 2, "--from-security is not a security mode");
	mh_csv_result_cleanup(&res);

	parse_ok("EmailAddress,UserName,Password,Notes\na@new.example,a,S3cr,x\n", &d,
		 MH_CSV_M365, &res);
	assert_problem(&res, 1, "unknown column 'Notes'");
	assert_int_equal(res.row_count, 0);
	mh_csv_result_cleanup(&res);

	parse_ok("EmailAddress,UserName\na@new.example,a\n", &d, MH_CSV_M365, &res);
	assert_problem(&res, 1, "lacks the required column(s) Password");
	mh_csv_result_cleanup(&res);
}

/* ---- imapsync ---- */

static void test_imapsync_rows(void **state)
{
	struct mh_csv_result res;
	struct mh_csv_defaults d = {.src_security = MH_SEC_STARTTLS, .dst_security = -1,
				    .dst_port = 2993};
	const char *text = "# host1;user1;password1;host2;user2;password2\n"  /* 1 */
			   "old.example;alice;S3cr,\"a;new.example;alice;S3cr-b\n" /* 2 */
			   "old.example;bob;S3cr-c;new.example;bob;S3cr-d;\r\n"  /* 3 */
			   "\n"                                                  /* 4 */
			   "old.example;carol;S3cr e;new.example;carol;S3cr-f;-ignored;x\n"; /* 5 */

	(void)state;
	parse_ok(text, NULL, MH_CSV_IMAPSYNC, &res);
	assert_no_problems(&res);
	assert_int_equal(res.row_count, 3);
	/* Passwords are literal: commas and quotes are just characters here. */
	assert_endpoint(&row_on(&res, 2)->src, MH_PROTO_IMAP, MH_SEC_TLS, "old.example", 993,
			"alice", "S3cr,\"a");
	assert_endpoint(&row_on(&res, 2)->dst, MH_PROTO_IMAP, MH_SEC_TLS, "new.example", 993,
			"alice", "S3cr-b");
	assert_string_equal(row_on(&res, 3)->dst.password, "S3cr-d");
	assert_string_equal(row_on(&res, 5)->src.password, "S3cr e");
	assert_string_equal(row_on(&res, 5)->dst.password, "S3cr-f");
	mh_csv_result_cleanup(&res);

	parse_ok(text, &d, MH_CSV_IMAPSYNC, &res);
	assert_endpoint(&row_on(&res, 3)->src, MH_PROTO_IMAP, MH_SEC_STARTTLS, "old.example", 143,
			"bob", "S3cr-c");
	assert_endpoint(&row_on(&res, 3)->dst, MH_PROTO_IMAP, MH_SEC_TLS, "new.example", 2993,
			"bob", "S3cr-d");
	mh_csv_result_cleanup(&res);
}

static void test_imapsync_bad_rows(void **state)
{
	struct mh_csv_result res;
	const char *text = "old.example;alice;S3cr;new.example;alice;S3cr\n" /* 1 */
			   "old.example;bob;S3cr;new.example;bob\n"          /* 2 */
			   "old example;carol;S3cr;new.example;carol;S3cr\n" /* 3 */
			   "old.example;;S3cr;new.example;dave;S3cr\n"       /* 4 */
			   "old.example;erin;;new.example;erin;S3cr\n"       /* 5 */
			   "old.example;x;S3cr;new.example;ALICE;S3cr\n"     /* 6 */
			   "old.example;x;S3cr;;frank;S3cr\n";               /* 7 */

	(void)state;
	parse_ok(text, NULL, MH_CSV_IMAPSYNC, &res);
	assert_problem(&res, 2, "the line has 5 fields separated by ';'");
	assert_problem(&res, 3, "host1 contains a space");
	assert_problem(&res, 4, "user1 is empty");
	assert_problem(&res, 5, "password1 is empty");
	assert_problem(&res, 6, "already on line 1");
	assert_problem(&res, 7, "host2 is empty");
	assert_int_equal(res.row_count, 1);
	mh_csv_result_cleanup(&res);
}

/* ---- not a bulk file, and limits ---- */

static void test_not_a_known_format(void **state)
{
	static const char *const texts[] = {
		"",
		"\xEF\xBB\xBF",
		"\n\r\n   \n",
		"# only a comment\n# and another\n",
		",,,\n,,\n",
		"hello,world\n1,2\n",
		"a;b;c;d;e\n",
		"\"source_host\n", /* an open quote: not a header either */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct mh_csv_result res;
		struct mh_err err;

		assert_int_equal(parse_len(texts[i], strlen(texts[i]), NULL, &res, &err), -1);
		assert_int_equal(err.code, MH_E_USAGE);
		assert_true(err.detail[0] != '\0');
		assert_null(res.rows);
		assert_null(res.problems);
		assert_int_equal(res.row_count, 0);
		assert_int_equal(res.problem_count, 0);
		mh_csv_result_cleanup(&res);
	}
}

static void test_file_too_large(void **state)
{
	size_t len = (size_t)MH_CSV_FILE_MAX + 1;
	char *text = malloc(len);
	struct mh_csv_result res;
	struct mh_err err;

	(void)state;
	assert_non_null(text);
	memset(text, '\n', len);
	assert_int_equal(parse_len(text, len, NULL, &res, &err), -1);
	assert_int_equal(err.code, MH_E_USAGE);
	assert_non_null(strstr(err.detail, "larger than 64 MiB"));
	free(text);
}

static void test_too_many_rows(void **state)
{
	size_t n = MH_CSV_ROWS_MAX + 1;
	size_t len = strlen(NATIVE_HEADER) + 1 + 2 * n;
	char *text = malloc(len + 1);
	struct mh_csv_result res;
	struct mh_err err;
	char *p;

	(void)state;
	p = text + sprintf(text, NATIVE_HEADER "\n");
	for (size_t i = 0; i < n; i++) {
		*p++ = 'x';
		*p++ = '\n';
	}
	assert_int_equal(parse_len(text, len, NULL, &res, &err), -1);
	assert_int_equal(err.code, MH_E_USAGE);
	assert_non_null(strstr(err.detail, "more than 1000000 rows"));
	assert_null(res.problems);

	/* Exactly the limit is accepted (every row is bad here, so the list is capped). */
	assert_int_equal(parse_len(text, len - 2, NULL, &res, &err), 0);
	assert_int_equal(res.problem_count, MH_CSV_PROBLEMS_MAX + 1);
	mh_csv_result_cleanup(&res);
	free(text);
}

static void test_problem_list_is_capped(void **state)
{
	size_t n = MH_CSV_PROBLEMS_MAX + 50;
	char *text = malloc(64 + n * 40);
	struct mh_csv_result res;
	const struct mh_csv_problem *last;
	char *p = text;

	(void)state;
	p += sprintf(p, "EmailAddress,UserName,Password\n");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "u%zu@new.example,u%zu,S3cr\n", i, i);
	parse_ok(text, NULL, MH_CSV_M365, &res);
	assert_int_equal(res.row_count, 0);
	assert_int_equal(res.problem_count, MH_CSV_PROBLEMS_MAX + 1);
	last = &res.problems[res.problem_count - 1];
	assert_int_equal(last->line, MH_CSV_PROBLEMS_MAX + 2);
	assert_non_null(strstr(last->reason, "50 more problems"));
	mh_csv_result_cleanup(&res);
	free(text);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_ten_thousand_rows_parse_fast(void **state)
{
	size_t n = 10000;
	char *text = malloc(128 + n * 128);
	struct mh_csv_result res;
	double t0, elapsed;
	char *p = text;

	(void)state;
	p += sprintf(p, NATIVE_HEADER ",options\n");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p,
			     "imap.old.example,user%zu,S3cr-%zu,mail.new.example,"
			     "user%zu@new.example,"
			     "\"S3cr,%zu\",autosync=1h;max_connections=2\n",
			     i, i, i, i);
	t0 = now_s();
	parse_ok(text, NULL, MH_CSV_NATIVE, &res);
	elapsed = now_s() - t0;
	assert_no_problems(&res);
	assert_int_equal(res.row_count, n);
	assert_string_equal(res.rows[n - 1].dst.user, "user9999@new.example");
	assert_int_equal(res.rows[n - 1].line, n + 1);
	/* Generous even under ASan/UBSan; the parse is linear. */
	if (elapsed > 2.0)
		fail_msg("10,000 rows took %.2f s", elapsed);
	mh_csv_result_cleanup(&res);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_native_all_columns_any_order_and_case),
		cmocka_unit_test(test_native_required_columns_only),
		cmocka_unit_test(test_native_bad_rows),
		cmocka_unit_test(test_native_row_with_several_problems),
		cmocka_unit_test(test_native_sync_options),
		cmocka_unit_test(test_native_header_unknown_column),
		cmocka_unit_test(test_native_header_missing_and_repeated_columns),
		cmocka_unit_test(test_bom_crlf_comments_and_blank_lines),
		cmocka_unit_test(test_lone_cr_line_ends),
		cmocka_unit_test(test_quoted_fields),
		cmocka_unit_test(test_field_too_long),
		cmocka_unit_test(test_nul_byte_in_field),
		cmocka_unit_test(test_password_references),
		cmocka_unit_test(test_duplicate_destination),
		cmocka_unit_test(test_m365_rows),
		cmocka_unit_test(test_m365_without_defaults),
		cmocka_unit_test(test_m365_bad_rows_and_header),
		cmocka_unit_test(test_imapsync_rows),
		cmocka_unit_test(test_imapsync_bad_rows),
		cmocka_unit_test(test_not_a_known_format),
		cmocka_unit_test(test_file_too_large),
		cmocka_unit_test(test_too_many_rows),
		cmocka_unit_test(test_problem_list_is_capped),
		cmocka_unit_test(test_ten_thousand_rows_parse_fast),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
