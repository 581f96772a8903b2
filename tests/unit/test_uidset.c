/* test_uidset.c - UID sets both ways: formatting runs as ranges, walking and parsing what
 * servers send (APPENDUID, MODIFIED, ESEARCH ALL) and what we record, with hostile input
 * refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uidset.h"

static void test_format_collapses_runs(void **state)
{
	const uint32_t uids[] = {1, 2, 3, 5, 7, 8, 4294967295u};
	char *s = imap_uid_set_format(uids, 7);

	(void)state;
	assert_string_equal(s, "1:3,5,7:8,4294967295");
	free(s);
	s = imap_uid_set_format(uids, 0);
	assert_string_equal(s, "");
	free(s);
}

static void check_parse(const char *text, size_t max, int rc, const uint32_t *want, size_t nwant)
{
	uint32_t *uids = NULL;
	size_t n = 0;

	assert_int_equal(imap_uid_set_parse(text, strlen(text), max, &uids, &n), rc);
	if (rc != 0)
		return;
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(uids[i], want[i]);
	free(uids);
}

static void test_parse_sorts_and_merges(void **state)
{
	const uint32_t a[] = {4, 7, 8, 9};
	const uint32_t b[] = {1, 2, 3, 5};

	(void)state;
	check_parse("4,7:9", 100, 0, a, 4);
	check_parse("9:7,4", 100, 0, a, 4);          /* reversed range, any order */
	check_parse("5,1:3,2", 100, 0, b, 4);        /* repeats once */
	check_parse("", 100, 0, NULL, 0);            /* the empty set we record */
	check_parse("4294967295", 1, 0, (const uint32_t[]){4294967295u}, 1);
}

static void test_parse_refuses_malformed_and_huge(void **state)
{
	static const char *const bad[] = {"0", "1,", ",1", "1::2", "1:", "a", "1 2", "4294967296", "1:*", "-1", "01x"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_parse(bad[i], 100, -1, NULL, 0);
	check_parse("1:4294967295", 1000000, -1, NULL, 0); /* a hostile server's "everything" */
	check_parse("1:10,20:30", 15, -1, NULL, 0);
}

static int count_ranges(void *ctx, uint32_t lo, uint32_t hi)
{
	(void)lo;
	(void)hi;
	return ++*(int *)ctx == 2; /* stop after the second */
}

static void test_walk_stops_when_asked(void **state)
{
	int seen = 0;

	(void)state;
	assert_int_equal(imap_uid_set_walk("1,2:3,9,garbage", 15, count_ranges, &seen), 0);
	assert_int_equal(seen, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_collapses_runs),
		cmocka_unit_test(test_parse_sorts_and_merges),
		cmocka_unit_test(test_parse_refuses_malformed_and_huge),
		cmocka_unit_test(test_walk_stops_when_asked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
