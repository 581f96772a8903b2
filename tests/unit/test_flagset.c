/* test_flagset.c - flags as text: what a FETCH FLAGS list gives (no \Recent), comparing
 * sets across servers (order, case, repeats), adding and taking out one flag; and the
 * interval format status shows ("3h", "1h30m"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "flagset.h"
#include "imap_parser.h"
#include "textfmt.h"

static void test_from_list_drops_recent(void **state)
{
	struct imap_arg items[] = {
		{.type = IMAP_ARG_ATOM, .str = "\\Seen", .len = 5},
		{.type = IMAP_ARG_ATOM, .str = "\\Recent", .len = 7},
		{.type = IMAP_ARG_ATOM, .str = "$Label1", .len = 7},
	};
	struct imap_arg list = {.type = IMAP_ARG_LIST, .items = items, .count = 3};
	char *s = mh_flags_from_list(&list);

	(void)state;
	assert_string_equal(s, "\\Seen $Label1");
	free(s);
}

static void test_canonical_and_same(void **state)
{
	char *c = mh_flags_canonical("\\Seen  $Label1 \\Flagged \\seen \\Recent");

	(void)state;
	assert_string_equal(c, "$Label1 \\Flagged \\Seen");
	free(c);
	c = mh_flags_canonical("");
	assert_string_equal(c, "");
	free(c);
	assert_true(mh_flags_same("\\Seen \\Flagged", "\\FLAGGED \\Seen \\Recent"));
	assert_true(mh_flags_same("", "\\Recent"));
	assert_false(mh_flags_same("\\Seen", "\\Seen \\Flagged"));
	assert_false(mh_flags_same("$Work", "$Home"));
}

static void test_has_and_with(void **state)
{
	char *s;

	(void)state;
	assert_true(mh_flags_has("\\Seen \\deleted", "\\Deleted"));
	assert_false(mh_flags_has("\\Seen \\DeletedX", "\\Deleted"));
	assert_false(mh_flags_has("", "\\Deleted"));
	s = mh_flags_with("\\Seen \\Deleted $A", "\\Deleted", false);
	assert_string_equal(s, "\\Seen $A");
	free(s);
	s = mh_flags_with("\\Seen", "\\Deleted", true);
	assert_string_equal(s, "\\Seen \\Deleted");
	free(s);
	s = mh_flags_with("", "\\Deleted", true);
	assert_string_equal(s, "\\Deleted");
	free(s);
	s = mh_flags_with("\\deleted", "\\Deleted", true); /* once, whatever the case */
	assert_true(mh_flags_same(s, "\\Deleted"));
	free(s);
}

static void test_interval(void **state)
{
	char b[32];

	(void)state;
	mh_fmt_interval(b, sizeof(b), 2);
	assert_string_equal(b, "2s");
	mh_fmt_interval(b, sizeof(b), 15 * 60);
	assert_string_equal(b, "15m");
	mh_fmt_interval(b, sizeof(b), 3 * 3600);
	assert_string_equal(b, "3h");
	mh_fmt_interval(b, sizeof(b), 5400);
	assert_string_equal(b, "1h30m");
	mh_fmt_interval(b, sizeof(b), 86400 + 6 * 3600 + 59);
	assert_string_equal(b, "1d6h");
	mh_fmt_interval(b, sizeof(b), 0);
	assert_string_equal(b, "0s");
	mh_fmt_interval(b, 3, 86400 * 1000);
	assert_true(strlen(b) < 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_list_drops_recent),
		cmocka_unit_test(test_canonical_and_same),
		cmocka_unit_test(test_has_and_with),
		cmocka_unit_test(test_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
