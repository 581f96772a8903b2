/* test_folder_map.c - special use, and source folder names to target folder names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "folder_map.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_special_use_from_attr(void **state)
{
	static const struct {
		const char *attr;
		unsigned su;
	} t[] = {
		{"\\Sent", MH_SU_SENT},       {"\\sent", MH_SU_SENT},       {"\\SENT", MH_SU_SENT},
		{"\\Drafts", MH_SU_DRAFTS},   {"\\Trash", MH_SU_TRASH},     {"\\Junk", MH_SU_JUNK},
		{"\\Archive", MH_SU_ARCHIVE}, {"\\All", MH_SU_ALL},         {"\\Flagged", MH_SU_FLAGGED},
		{"\\Noselect", 0},            {"\\HasChildren", 0},         {"\\Important", 0},
		{"Sent", 0},                  {"\\Sentx", 0},               {"\\", 0},
		{"", 0},                      {"\\Sen", 0},                 {"\\\\Sent", 0},
	};

	(void)state;
	for (size_t i = 0; i < COUNT(t); i++)
		if (mh_special_use_from_attr(t[i].attr, strlen(t[i].attr)) != t[i].su)
			fail_msg("attr %s", t[i].attr);
	/* Only len bytes count. */
	assert_int_equal(mh_special_use_from_attr("\\Sentxyz", 5), MH_SU_SENT);
	assert_int_equal(mh_special_use_from_attr("\\Trash", 4), 0);
}

static void test_special_use_guess(void **state)
{
	static const struct {
		const char *name;
		unsigned su;
	} t[] = {
		{"Sent", MH_SU_SENT},
		{"sent items", MH_SU_SENT},
		{"Sent Messages", MH_SU_SENT},
		{"SENT MAIL", MH_SU_SENT},
		{"[Gmail]/Sent Mail", MH_SU_SENT},
		{"[Google Mail]/Sent Mail", MH_SU_SENT},
		{"INBOX.Sent", MH_SU_SENT},
		{"inbox/Sent", MH_SU_SENT},
		{"Gesendet", MH_SU_SENT},
		{"Gesendete Objekte", MH_SU_SENT},
		{"Envoy\xc3\xa9s", MH_SU_SENT},
		{"ENVOY\xc3\x89S", MH_SU_SENT},
		{"Elementos enviados", MH_SU_SENT},
		{"Drafts", MH_SU_DRAFTS},
		{"Entw\xc3\xbcrfe", MH_SU_DRAFTS},
		{"ENTW\xc3\x9cRFE", MH_SU_DRAFTS},
		{"Brouillons", MH_SU_DRAFTS},
		{"[Gmail]/Drafts", MH_SU_DRAFTS},
		{"Trash", MH_SU_TRASH},
		{"Deleted Items", MH_SU_TRASH},
		{"Deleted Messages", MH_SU_TRASH},
		{"Bin", MH_SU_TRASH},
		{"[Gmail]/Bin", MH_SU_TRASH},
		{"Papierkorb", MH_SU_TRASH},
		{"Corbeille", MH_SU_TRASH},
		{"Junk", MH_SU_JUNK},
		{"Junk E-mail", MH_SU_JUNK},
		{"Junk Email", MH_SU_JUNK},
		{"Spam", MH_SU_JUNK},
		{"[Gmail]/Spam", MH_SU_JUNK},
		{"Bulk Mail", MH_SU_JUNK},
		{"Archive", MH_SU_ARCHIVE},
		{"Archives", MH_SU_ARCHIVE},
		{"Archiv", MH_SU_ARCHIVE},
		{"[Gmail]/All Mail", MH_SU_ALL},
		{"[Gmail]/Starred", MH_SU_FLAGGED},
		{"INBOX", 0},
		{"Projects/Sent", 0},
		{"Sent/2019", 0},
		{"Sentx", 0},
		{"Sent ", 0},
		{"INBOX.", 0},
		{"[Gmail]/", 0},
		{"", 0},
		{"Entw\xc3\xbd" "rfe", 0},
		{"Envoy\xc3\xb7s", 0}, /* U+00F7 is not a letter */
	};

	(void)state;
	for (size_t i = 0; i < COUNT(t); i++)
		if (mh_special_use_guess(t[i].name) != t[i].su)
			fail_msg("guess %s", t[i].name);
}

static void test_special_use_name(void **state)
{
	(void)state;
	assert_string_equal(mh_special_use_name(MH_SU_SENT), "Sent");
	assert_string_equal(mh_special_use_name(MH_SU_DRAFTS), "Drafts");
	assert_string_equal(mh_special_use_name(MH_SU_TRASH), "Trash");
	assert_string_equal(mh_special_use_name(MH_SU_JUNK), "Junk");
	assert_string_equal(mh_special_use_name(MH_SU_ARCHIVE), "Archive");
	assert_string_equal(mh_special_use_name(MH_SU_ALL), "All");
	assert_string_equal(mh_special_use_name(MH_SU_FLAGGED), "Flagged");
	assert_null(mh_special_use_name(0));
	assert_null(mh_special_use_name(MH_SU_SENT | MH_SU_TRASH));
	assert_null(mh_special_use_name(128));
}

static void test_dedupe_prefers_canonical_name(void **state)
{
	struct mh_folder f[] = {
		{"Sent Items", '/', MH_SU_SENT},
		{"INBOX", '/', 0},
		{"sent", '/', MH_SU_SENT},
		{"Sent Messages", '/', MH_SU_SENT},
	};

	(void)state;
	mh_special_use_dedupe(f, COUNT(f));
	assert_int_equal(f[0].special, 0);
	assert_int_equal(f[1].special, 0);
	assert_int_equal(f[2].special, MH_SU_SENT);
	assert_int_equal(f[3].special, 0);
}

static void test_dedupe_first_when_none_canonical(void **state)
{
	struct mh_folder f[] = {
		{"INBOX.Sent Items", '.', MH_SU_SENT},
		{"INBOX.Sent Messages", '.', MH_SU_SENT},
		{"INBOX.Deleted Items", '.', MH_SU_TRASH},
	};

	(void)state;
	mh_special_use_dedupe(f, COUNT(f));
	assert_int_equal(f[0].special, MH_SU_SENT);
	assert_int_equal(f[1].special, 0);
	assert_int_equal(f[2].special, MH_SU_TRASH);
}

static void test_dedupe_uses_last_level(void **state)
{
	struct mh_folder f[] = {
		{"[Gmail]/Sent Mail", '/', MH_SU_SENT},
		{"INBOX.Sent", '.', MH_SU_SENT},
		{"Sent.x", 0, MH_SU_SENT}, /* flat: the whole name is the level */
	};

	(void)state;
	mh_special_use_dedupe(f, COUNT(f));
	assert_int_equal(f[0].special, 0);
	assert_int_equal(f[1].special, MH_SU_SENT);
	assert_int_equal(f[2].special, 0);
}

static void test_dedupe_bit_by_bit(void **state)
{
	struct mh_folder f[] = {
		{"Archive", '/', MH_SU_ARCHIVE | MH_SU_ALL},
		{"All", '/', MH_SU_ALL},
		{"Old", '/', MH_SU_ARCHIVE},
	};

	(void)state;
	mh_special_use_dedupe(f, COUNT(f));
	assert_int_equal(f[0].special, MH_SU_ARCHIVE);
	assert_int_equal(f[1].special, MH_SU_ALL);
	assert_int_equal(f[2].special, 0);
	mh_special_use_dedupe(NULL, 0);
}

/* Namespaces of the servers in the table. */
static const struct mh_namespace dovecot_slash = {"", '/'};
static const struct mh_namespace dovecot_dot = {"", '.'};
static const struct mh_namespace courier = {"INBOX.", '.'};
static const struct mh_namespace cyrus_slash = {"INBOX/", '/'};
static const struct mh_namespace flat = {"", 0};
static const struct mh_namespace comma = {"", ','};

static const struct mh_folder target_exchange[] = {
	{"INBOX", '/', 0},
	{"Sent Items", '/', MH_SU_SENT},
	{"Deleted Items", '/', MH_SU_TRASH},
	{"Junk E-mail", '/', MH_SU_JUNK},
};

static const struct mh_folder target_courier[] = {
	{"INBOX", '.', 0},
	{"INBOX.Sent", '.', MH_SU_SENT},
	{"INBOX.Papierkorb", '.', MH_SU_TRASH},
};

struct map_case {
	const char *what;
	const char *name;
	char sep;
	unsigned special;
	const struct mh_namespace *src_ns;
	const struct mh_namespace *dst_ns;
	const struct mh_folder *dst_existing;
	size_t dst_count;
	const char *want; /* NULL: must fail with MH_E_FOLDER_NAME */
	bool renamed;
};

static const struct map_case map_cases[] = {
	/* INBOX in any case */
	{"inbox", "INBOX", '/', 0, &dovecot_slash, &courier, NULL, 0, "INBOX", false},
	{"inbox lower", "inbox", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, "INBOX", false},
	{"inbox mixed courier", "InBoX", '.', 0, &courier, &dovecot_slash, NULL, 0, "INBOX",
	 false},
	{"inbox special", "INBOX", '/', MH_SU_SENT, &dovecot_slash, &dovecot_slash, NULL, 0,
	 "INBOX", false},
	/* separators between Dovecot layouts */
	{"slash to dot", "a/b", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, "a.b", false},
	{"dot to slash", "a.b", '.', 0, &dovecot_dot, &dovecot_slash, NULL, 0, "a/b", false},
	{"same", "Work", '/', 0, &dovecot_slash, &dovecot_slash, NULL, 0, "Work", false},
	{"nested", "a/b/c/d", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, "a.b.c.d", false},
	/* Courier INBOX. prefix both ways */
	{"to courier", "a/b", '/', 0, &dovecot_slash, &courier, NULL, 0, "INBOX.a.b", false},
	{"from courier", "INBOX.a.b", '.', 0, &courier, &dovecot_slash, NULL, 0, "a/b", false},
	{"from courier case", "inbox.Work", '.', 0, &courier, &dovecot_slash, NULL, 0, "Work",
	 false},
	{"courier to courier", "INBOX.a.b", '.', 0, &courier, &courier, NULL, 0, "INBOX.a.b",
	 false},
	{"cyrus to courier", "INBOX/a/b", '/', 0, &cyrus_slash, &courier, NULL, 0, "INBOX.a.b",
	 false},
	{"outside namespace", "Shared.x", '.', 0, &courier, &dovecot_slash, NULL, 0, "Shared/x",
	 false},
	/* children of INBOX on a prefix-less source stay under INBOX */
	{"inbox child", "INBOX/x", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, "INBOX.x",
	 false},
	{"inbox child lower", "inbox/x/y", '/', 0, &dovecot_slash, &dovecot_slash, NULL, 0,
	 "INBOX/x/y", false},
	{"inbox child to courier", "INBOX/x", '/', 0, &dovecot_slash, &courier, NULL, 0,
	 "INBOX.x", false},
	{"inbox child to cyrus", "Inbox.x", '.', 0, &dovecot_dot, &cyrus_slash, NULL, 0,
	 "INBOX/x", false},
	/* special use: existing target folder with another name */
	{"sent to exchange", "Sent", '/', MH_SU_SENT, &dovecot_slash, &dovecot_slash,
	 target_exchange, COUNT(target_exchange), "Sent Items", false},
	{"trash to exchange", "INBOX.Trash", '.', MH_SU_TRASH, &courier, &dovecot_slash,
	 target_exchange, COUNT(target_exchange), "Deleted Items", false},
	{"junk to courier", "Junk E-mail", '/', MH_SU_JUNK, &dovecot_slash, &courier,
	 target_courier, COUNT(target_courier), "INBOX.Junk", false},
	{"trash to courier", "[Gmail]/Bin", '/', MH_SU_TRASH, &dovecot_slash, &courier,
	 target_courier, COUNT(target_courier), "INBOX.Papierkorb", false},
	{"lowest bit", "X", '/', MH_SU_ARCHIVE | MH_SU_SENT, &dovecot_slash, &dovecot_slash,
	 target_exchange, COUNT(target_exchange), "Sent Items", false},
	{"unknown bits ignored", "X", '/', 128, &dovecot_slash, &dovecot_slash, target_exchange,
	 COUNT(target_exchange), "X", false},
	/* special use: no such target folder */
	{"archive canonical", "Archives", '/', MH_SU_ARCHIVE, &dovecot_slash, &dovecot_dot,
	 target_exchange, COUNT(target_exchange), "Archive", false},
	{"archive courier", "Archives", '/', MH_SU_ARCHIVE, &dovecot_slash, &courier,
	 target_courier, COUNT(target_courier), "INBOX.Archive", false},
	{"all mail", "[Gmail]/All Mail", '/', MH_SU_ALL, &dovecot_slash, &dovecot_dot, NULL, 0,
	 "All", false},
	/* separator conflicts */
	{"dot in level", "a.b/c", '/', 0, &dovecot_slash, &courier, NULL, 0, "INBOX.a_b.c",
	 true},
	{"slash in level", "x/y.z", '.', 0, &dovecot_dot, &dovecot_slash, NULL, 0, "x_y/z", true},
	{"flat source", "a/b", 0, 0, &flat, &dovecot_slash, NULL, 0, "a_b", true},
	{"flat to flat", "a/b", 0, 0, &flat, &flat, NULL, 0, "a/b", false},
	/* non-ASCII names */
	{"umlaut", "Projekte/&AMQ-nderungen", '/', 0, &dovecot_slash, &courier, NULL, 0,
	 "INBOX.Projekte.&AMQ-nderungen", false},
	{"rfc3501", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", '/', 0, &dovecot_slash, &dovecot_dot,
	 NULL, 0, "~peter.mail.&U,BTFw-.&ZeVnLIqe-", false},
	{"non-ascii conflict", "Caf&AOk-.Bar/x", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0,
	 "Caf&AOk-_Bar.x", true},
	{"base64 comma is not a separator", "&U,BTFw-/x", '/', 0, &dovecot_slash, &comma, NULL,
	 0, "&U,BTFw-,x", false},
	{"comma separator in text", "a,b/c", '/', 0, &dovecot_slash, &comma, NULL, 0, "a_b,c",
	 true},
	{"ampersand", "R&-D/x", '/', 0, &dovecot_slash, &courier, NULL, 0, "INBOX.R&-D.x", false},
	{"guessed", "Gesendete Objekte", '/', 0, &dovecot_slash, &dovecot_slash, NULL, 0,
	 "Gesendete Objekte", false},
	/* failures */
	{"empty name", "", '/', 0, &dovecot_slash, &dovecot_slash, NULL, 0, NULL, false},
	{"empty level", "a//b", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL, false},
	{"leading sep", "/a", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL, false},
	{"trailing sep", "a/", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL, false},
	{"prefix only", "INBOX.", '.', 0, &courier, &dovecot_slash, NULL, 0, NULL, false},
	{"bad utf7", "&Jjo", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL, false},
	{"raw utf8", "Caf\xc3\xa9", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL, false},
	{"non-canonical utf7", "&AGE-", '/', 0, &dovecot_slash, &dovecot_dot, NULL, 0, NULL,
	 false},
	{"nested to flat", "a/b", '/', 0, &dovecot_slash, &flat, NULL, 0, NULL, false},
	{"bad utf7 special", "&Jjo", '/', MH_SU_SENT, &dovecot_slash, &dovecot_dot, NULL, 0,
	 NULL, false},
};

static void test_folder_map_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < COUNT(map_cases); i++) {
		const struct map_case *c = &map_cases[i];
		struct mh_folder src = {c->name, c->sep, c->special};
		char *out = (char *)"untouched";
		bool renamed = !c->renamed;
		struct mh_err err;
		int rc;

		mh_err_clear(&err);
		rc = mh_folder_map(&src, c->src_ns, c->dst_existing, c->dst_count, c->dst_ns, &out,
				   &renamed, &err);
		if (c->want == NULL) {
			if (rc != -1)
				fail_msg("%s: accepted as %s", c->what, out);
			assert_null(out);
			assert_int_equal(err.code, MH_E_FOLDER_NAME);
			assert_true(err.detail[0] != '\0');
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", c->what, err.detail);
		if (strcmp(out, c->want) != 0)
			fail_msg("%s: got '%s', want '%s'", c->what, out, c->want);
		if (renamed != c->renamed)
			fail_msg("%s: renamed is %d", c->what, renamed);
		free(out);
	}
}

static void test_folder_map_guessed_special(void **state)
{
	struct mh_folder src = {"Gesendete Objekte", '/', 0};
	struct mh_err err;
	char *out = NULL;

	(void)state;
	src.special = mh_special_use_guess("Gesendete Objekte");
	assert_int_equal(mh_folder_map(&src, &dovecot_slash, target_exchange,
				       COUNT(target_exchange), &dovecot_slash, &out, NULL, &err),
			 0);
	assert_string_equal(out, "Sent Items");
	free(out);
	src.name = "Entw&APw-rfe";
	src.special = mh_special_use_guess("Entw\xc3\xbcrfe");
	assert_int_equal(mh_folder_map(&src, &dovecot_slash, target_courier,
				       COUNT(target_courier), &courier, &out, NULL, &err),
			 0);
	assert_string_equal(out, "INBOX.Drafts");
	free(out);
}

static void test_folder_map_two_sent_after_dedupe(void **state)
{
	struct mh_folder src[] = {
		{"Sent Items", '/', MH_SU_SENT},
		{"Sent", '/', MH_SU_SENT},
	};
	struct mh_err err;
	char *a = NULL, *b = NULL;

	(void)state;
	mh_special_use_dedupe(src, COUNT(src));
	assert_int_equal(mh_folder_map(&src[0], &dovecot_slash, target_courier,
				       COUNT(target_courier), &courier, &a, NULL, &err),
			 0);
	assert_int_equal(mh_folder_map(&src[1], &dovecot_slash, target_courier,
				       COUNT(target_courier), &courier, &b, NULL, &err),
			 0);
	assert_string_equal(a, "INBOX.Sent Items");
	assert_string_equal(b, "INBOX.Sent");
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_special_use_from_attr),
		cmocka_unit_test(test_special_use_guess),
		cmocka_unit_test(test_special_use_name),
		cmocka_unit_test(test_dedupe_prefers_canonical_name),
		cmocka_unit_test(test_dedupe_first_when_none_canonical),
		cmocka_unit_test(test_dedupe_uses_last_level),
		cmocka_unit_test(test_dedupe_bit_by_bit),
		cmocka_unit_test(test_folder_map_table),
		cmocka_unit_test(test_folder_map_guessed_special),
		cmocka_unit_test(test_folder_map_two_sent_after_dedupe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
