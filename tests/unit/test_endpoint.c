/* test_endpoint.c - mailbox URLs, their printing, and password files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "endpoint.h"

struct good_url {
	const char *url;
	enum mh_proto proto;
	enum mh_security security;
	const char *host;
	uint16_t port;
	const char *user;
	const char *password; /* NULL: none in the URL */
	const char *formatted;
};

static const struct good_url good[] = {
	{"imap://alice@mail.example.com", MH_PROTO_IMAP, MH_SEC_STARTTLS, "mail.example.com", 143,
	 "alice", NULL, "imap://alice@mail.example.com:143"},
	{"imaps://alice%40example.com@mail.example.com", MH_PROTO_IMAP, MH_SEC_TLS,
	 "mail.example.com", 993, "alice@example.com", NULL,
	 "imaps://alice%40example.com@mail.example.com:993"},
	{"pop3://bob@pop.example.org", MH_PROTO_POP3, MH_SEC_STARTTLS, "pop.example.org", 110,
	 "bob", NULL, "pop3://bob@pop.example.org:110"},
	{"pop3s://bob@pop.example.org", MH_PROTO_POP3, MH_SEC_TLS, "pop.example.org", 995, "bob",
	 NULL, "pop3s://bob@pop.example.org:995"},
	{"imap://u@h:1", MH_PROTO_IMAP, MH_SEC_STARTTLS, "h", 1, "u", NULL, "imap://u@h:1"},
	{"imaps://u@h:65535/", MH_PROTO_IMAP, MH_SEC_TLS, "h", 65535, "u", NULL,
	 "imaps://u@h:65535"},
	{"IMAPS://u@10.0.0.1:10993", MH_PROTO_IMAP, MH_SEC_TLS, "10.0.0.1", 10993, "u", NULL,
	 "imaps://u@10.0.0.1:10993"},
	{"imap://u@[::1]", MH_PROTO_IMAP, MH_SEC_STARTTLS, "::1", 143, "u", NULL,
	 "imap://u@[::1]:143"},
	{"imaps://u@[2001:db8::1]:9993/", MH_PROTO_IMAP, MH_SEC_TLS, "2001:db8::1", 9993, "u",
	 NULL, "imaps://u@[2001:db8::1]:9993"},
	{"imaps://alice:s3cret@h", MH_PROTO_IMAP, MH_SEC_TLS, "h", 993, "alice", "s3cret",
	 "imaps://alice@h:993"},
	{"imaps://a%3Ab%2Fc%25d:p%40ss%3aw:rd@h", MH_PROTO_IMAP, MH_SEC_TLS, "h", 993, "a:b/c%d",
	 "p@ss:w:rd", "imaps://a%3Ab%2Fc%25d@h:993"},
	{"imap://j%C3%BCrgen@h", MH_PROTO_IMAP, MH_SEC_STARTTLS, "h", 143, "j\xc3\xbcrgen", NULL,
	 "imap://j\xc3\xbcrgen@h:143"},
	{"imap://a%20b@h", MH_PROTO_IMAP, MH_SEC_STARTTLS, "h", 143, "a b", NULL,
	 "imap://a%20b@h:143"},
};

static void test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mh_endpoint ep;
		struct mh_err err;

		mh_err_clear(&err);
		if (mh_endpoint_parse(good[i].url, &ep, &err) != 0)
			fail_msg("%s: %s", good[i].url, err.detail);
		assert_int_equal(ep.proto, good[i].proto);
		assert_int_equal(ep.security, good[i].security);
		assert_string_equal(ep.host, good[i].host);
		assert_int_equal(ep.port, good[i].port);
		assert_string_equal(ep.user, good[i].user);
		if (good[i].password == NULL) {
			assert_null(ep.password);
			assert_false(ep.password_in_url);
		} else {
			assert_non_null(ep.password);
			assert_string_equal(ep.password, good[i].password);
			assert_true(ep.password_in_url);
		}
		mh_endpoint_cleanup(&ep);
		assert_null(ep.password);
	}
}

static void test_format_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mh_endpoint ep, again;
		struct mh_err err;
		char buf[512];

		assert_int_equal(mh_endpoint_parse(good[i].url, &ep, &err), 0);
		mh_endpoint_format(&ep, buf, sizeof(buf));
		assert_string_equal(buf, good[i].formatted);
		if (good[i].password != NULL)
			assert_null(strstr(buf, good[i].password));
		assert_int_equal(mh_endpoint_parse(buf, &again, &err), 0);
		assert_int_equal(again.proto, ep.proto);
		assert_int_equal(again.security, ep.security);
		assert_string_equal(again.host, ep.host);
		assert_int_equal(again.port, ep.port);
		assert_string_equal(again.user, ep.user);
		assert_null(again.password);
		mh_endpoint_cleanup(&ep);
		mh_endpoint_cleanup(&again);
	}
}

static void test_format_encodes_every_special_user_byte(void **state)
{
	struct mh_endpoint ep, again;
	struct mh_err err;
	char buf[512];

	(void)state;
	memset(&ep, 0, sizeof(ep));
	ep.proto = MH_PROTO_POP3;
	ep.security = MH_SEC_TLS;
	strcpy(ep.host, "h");
	ep.port = 995;
	strcpy(ep.user, "a@b:c/d%e f\x01?#[]");
	mh_endpoint_format(&ep, buf, sizeof(buf));
	assert_string_equal(buf, "pop3s://a%40b%3Ac%2Fd%25e%20f%01%3F%23%5B%5D@h:995");
	assert_int_equal(mh_endpoint_parse(buf, &again, &err), 0);
	assert_string_equal(again.user, ep.user);
	mh_endpoint_cleanup(&again);
}

static void test_format_truncates(void **state)
{
	struct mh_endpoint ep;
	struct mh_err err;
	char buf[10];

	(void)state;
	assert_int_equal(mh_endpoint_parse("imaps://alice@mail.example.com", &ep, &err), 0);
	memset(buf, 'X', sizeof(buf));
	mh_endpoint_format(&ep, buf, sizeof(buf));
	assert_string_equal(buf, "imaps://a");
	mh_endpoint_format(&ep, buf, 1);
	assert_string_equal(buf, "");
	mh_endpoint_cleanup(&ep);
}

static void expect_bad(const char *url, const char *secret)
{
	struct mh_endpoint ep;
	struct mh_err err;

	mh_err_clear(&err);
	if (mh_endpoint_parse(url, &ep, &err) != -1)
		fail_msg("accepted %s", url);
	assert_int_equal(err.code, MH_E_BAD_URL);
	assert_true(err.detail[0] != '\0');
	assert_null(ep.password);
	if (secret != NULL && strstr(err.detail, secret) != NULL)
		fail_msg("detail for %s shows the password: %s", url, err.detail);
	mh_endpoint_cleanup(&ep);
}

static void test_reject_bad_scheme(void **state)
{
	(void)state;
	expect_bad("http://u@h", NULL);
	expect_bad("imapx://u@h", NULL);
	expect_bad("imap:/u@h", NULL);
	expect_bad("u@h", NULL);
	expect_bad("", NULL);
	expect_bad("://u@h", NULL);
	expect_bad(NULL, NULL);
}

static void test_reject_missing_user(void **state)
{
	(void)state;
	expect_bad("imap://h", NULL);
	expect_bad("imap://@h", NULL);
	expect_bad("imaps://:pw@h", "pw");
	expect_bad("imap://h:143", NULL);
}

static void test_reject_bad_port(void **state)
{
	(void)state;
	expect_bad("imap://u@h:0", NULL);
	expect_bad("imap://u@h:65536", NULL);
	expect_bad("imap://u@h:99999", NULL);
	expect_bad("imap://u@h:abc", NULL);
	expect_bad("imap://u@h:", NULL);
	expect_bad("imap://u@h:+143", NULL);
	expect_bad("imap://u@h:-1", NULL);
	expect_bad("imap://u@h: 143", NULL);
	expect_bad("imap://u@h:143x", NULL);
	expect_bad("imap://u@h:000143", NULL);
	expect_bad("imap://u@[::1]:0", NULL);
}

static void test_reject_bad_percent_escape(void **state)
{
	(void)state;
	expect_bad("imap://a%4@h", NULL);
	expect_bad("imap://a%@h", NULL);
	expect_bad("imap://a%zz@h", NULL);
	expect_bad("imap://a%00b@h", NULL);
	expect_bad("imap://a%4g@h", NULL);
	expect_bad("imap://a b@h", NULL);
	expect_bad("imap://a/b@h", NULL);
	expect_bad("imaps://u:hunter%2@h", "hunter");
	expect_bad("imaps://u:hunter%00x@h", "hunter");
}

static void test_reject_bad_host_and_path(void **state)
{
	(void)state;
	expect_bad("imap://u@", NULL);
	expect_bad("imap://u@/", NULL);
	expect_bad("imap://u@h/INBOX", NULL);
	expect_bad("imap://u@h//", NULL);
	expect_bad("imap://u@h:143/x", NULL);
	expect_bad("imap://u@h?x=1", NULL);
	expect_bad("imap://u@h#f", NULL);
	expect_bad("imap://u@h%41", NULL);
	expect_bad("imap://u@[::1", NULL);
	expect_bad("imap://u@[]", NULL);
	expect_bad("imap://u@[not:v6]", NULL);
	expect_bad("imap://u@[::1]x", NULL);
	expect_bad("imap://u@::1", NULL);
}

static void test_password_in_url_never_in_detail(void **state)
{
	(void)state;
	expect_bad("imaps://u:Sekr1t@", "Sekr1t");
	expect_bad("imaps://u:Sekr1t@h:0", "Sekr1t");
	expect_bad("imaps://u:Sekr1t@h/path", "Sekr1t");
	expect_bad("imaps://u:Sekr1t@bad host", "Sekr1t");
	expect_bad("imaps://u:Sekr1t@[zz]", "Sekr1t");
	expect_bad("imaps://u:Sek@r1t@h", "Sek");       /* raw '@' must be %40 */
	expect_bad("imaps://u:Sekr1t/x@h", "Sekr1t");
	expect_bad("imaps://u:Sekr1t", "Sekr1t");
	expect_bad("imaps://u:@h", NULL);                /* empty password */
	expect_bad("imaps://u:Sekr1t@h:65536/", "Sekr1t");
}

static void test_set_password(void **state)
{
	struct mh_endpoint ep;
	struct mh_err err;

	(void)state;
	assert_int_equal(mh_endpoint_parse("imaps://u:old@h", &ep, &err), 0);
	assert_true(ep.password_in_url);
	mh_endpoint_set_password(&ep, "new");
	assert_string_equal(ep.password, "new");
	assert_false(ep.password_in_url);
	mh_endpoint_set_password(&ep, NULL);
	assert_null(ep.password);
	mh_endpoint_cleanup(&ep);
	mh_endpoint_cleanup(&ep);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(mh_proto_name(MH_PROTO_IMAP), "imap");
	assert_string_equal(mh_proto_name(MH_PROTO_POP3), "pop3");
	assert_string_equal(mh_security_name(MH_SEC_PLAIN), "plain");
	assert_string_equal(mh_security_name(MH_SEC_STARTTLS), "starttls");
	assert_string_equal(mh_security_name(MH_SEC_TLS), "tls");
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/mh_test_pwXXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void expect_password_file(const char *content, size_t len, const char *want)
{
	char *path = write_temp(content, len);
	char *pw = (char *)"untouched";
	struct mh_err err;
	int rc;

	mh_err_clear(&err);
	rc = mh_password_read_file(path, &pw, &err);
	if (want != NULL) {
		assert_int_equal(rc, 0);
		assert_string_equal(pw, want);
		free(pw);
	} else {
		assert_int_equal(rc, -1);
		assert_null(pw);
		assert_int_equal(err.code, MH_E_CONFIG_FILE);
		assert_non_null(strstr(err.detail, path));
	}
	unlink(path);
	free(path);
}

#define PWFILE(s, want) expect_password_file(s, sizeof(s) - 1, want)

static void test_password_file(void **state)
{
	char big[5000];

	(void)state;
	PWFILE("hunter2", "hunter2");
	PWFILE("hunter2\n", "hunter2");
	PWFILE("hunter2\r\n", "hunter2");
	PWFILE("hunter2\nsecond line\n", "hunter2");
	PWFILE(" spaced pass \n", " spaced pass ");
	PWFILE("", NULL);
	PWFILE("\n", NULL);
	PWFILE("\r\n", NULL);
	PWFILE("\nhunter2\n", NULL);
	PWFILE("hun\0ter\n", NULL);
	memset(big, 'a', sizeof(big));
	expect_password_file(big, sizeof(big), NULL);
	big[4000] = '\n';
	big[4001] = 'b';
	{
		char *path = write_temp(big, sizeof(big));
		char *pw = NULL;
		struct mh_err err;

		assert_int_equal(mh_password_read_file(path, &pw, &err), 0);
		assert_int_equal(strlen(pw), 4000);
		free(pw);
		unlink(path);
		free(path);
	}
}

static void test_password_file_missing(void **state)
{
	char *pw = (char *)"untouched";
	struct mh_err err;

	(void)state;
	assert_int_equal(mh_password_read_file("/nonexistent/mh-pw", &pw, &err), -1);
	assert_null(pw);
	assert_int_equal(err.code, MH_E_CONFIG_FILE);
	assert_non_null(strstr(err.detail, "/nonexistent/mh-pw"));
	assert_non_null(strstr(err.detail, "No such file or directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_encodes_every_special_user_byte),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_reject_bad_scheme),
		cmocka_unit_test(test_reject_missing_user),
		cmocka_unit_test(test_reject_bad_port),
		cmocka_unit_test(test_reject_bad_percent_escape),
		cmocka_unit_test(test_reject_bad_host_and_path),
		cmocka_unit_test(test_password_in_url_never_in_detail),
		cmocka_unit_test(test_set_password),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_password_file_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
