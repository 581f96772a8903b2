/* test_msgheader.c - header fields: Message-ID and any field, folded lines, the end of
 * the header block (common/msgheader.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msgheader.h"

static void expect_str(char *got, const char *want)
{
	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_message_id(void **state)
{
	const char *h = "From: a@b\r\nMessage-Id:\r\n <x@y.example>\r\nSubject: s\r\n\r\n";
	const char *body_only = "From: a@b\r\n\r\nMessage-ID: <in-the-body@x>\r\n";

	(void)state;
	expect_str(mh_header_message_id(h, strlen(h)), "<x@y.example>");
	expect_str(mh_header_message_id("message-id: bare-value \n", 24), "bare-value");
	/* a whole message: a Message-ID line in the body is not the header's */
	expect_str(mh_header_message_id(body_only, strlen(body_only)), NULL);
	expect_str(mh_header_message_id("", 0), NULL);
}

static void test_any_field(void **state)
{
	const char *h = "Subjectivity: no\nSubject: Quarterly\n\treport  \n and more\nX: y\n\nSubject: body\n";

	(void)state;
	expect_str(mh_header_field(h, strlen(h), "subject"), "Quarterly report   and more"); /* unfolding keeps the white space */
	expect_str(mh_header_field(h, strlen(h), "X"), "y");
	expect_str(mh_header_field(h, strlen(h), "Date"), NULL);
	expect_str(mh_header_field("Subject:   \r\n\r\n", 15, "Subject"), NULL); /* empty */
	expect_str(mh_header_field("Subject: cut", 12, "Subject"), "cut"); /* no line end */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_id),
		cmocka_unit_test(test_any_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
