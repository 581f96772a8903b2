/* test_msgdate.c - INTERNALDATE from Received and Date headers (common/msgdate.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "msgdate.h"

static void expect_date(const char *in, const char *want)
{
	char out[MH_IMAP_DATE_LEN];

	if (want == NULL) {
		assert_int_equal(mh_date_rfc5322_to_imap(in, strlen(in), out), -1);
		return;
	}
	assert_int_equal(mh_date_rfc5322_to_imap(in, strlen(in), out), 0);
	assert_string_equal(out, want);
}

static void test_rfc5322_dates(void **state)
{
	(void)state;
	expect_date("Tue, 1 Jul 2003 10:52:37 +0200", "01-Jul-2003 10:52:37 +0200");
	expect_date("1 Jul 2003 10:52:37 -0730", "01-Jul-2003 10:52:37 -0730");
	expect_date("  Fri, 21 Nov 1997 09:55:06 -0600 (CST)", "21-Nov-1997 09:55:06 -0600");
	expect_date("Thu, 13 Feb 1969 23:32 -0330", "13-Feb-1969 23:32:00 -0330"); /* no seconds */
	expect_date("21 Nov 97 09:55:06 GMT", "21-Nov-1997 09:55:06 +0000");       /* 2-digit year */
	expect_date("21 Nov 03 09:55:06 EST", "21-Nov-2003 09:55:06 -0500");
	expect_date("21 Nov 103 09:55:06 PDT", "21-Nov-2003 09:55:06 -0700");      /* 3-digit year */
	expect_date("Mon, 2 Jan 2006 15:04:05 Z", "02-Jan-2006 15:04:05 +0000");
	expect_date("mon, 2 jan 2006 15:04:05 a", "02-Jan-2006 15:04:05 +0000"); /* military: unknown */
	expect_date("29 Feb 2024 00:00:00 +0000", "29-Feb-2024 00:00:00 +0000");
	expect_date("31 Dec 2016 23:59:60 +0000", "31-Dec-2016 23:59:60 +0000"); /* leap second */
	expect_date("Tue, 1 Jul 2003 10:52:37 +0200 (Central European Summer Time)",
		    "01-Jul-2003 10:52:37 +0200");
}

static void test_rfc5322_not_dates(void **state)
{
	(void)state;
	expect_date("", NULL);
	expect_date("yesterday", NULL);
	expect_date("29 Feb 2023 00:00:00 +0000", NULL);
	expect_date("31 Apr 2023 00:00:00 +0000", NULL);
	expect_date("1 Foo 2023 00:00:00 +0000", NULL);
	expect_date("1 Jan 2023 24:00:00 +0000", NULL);
	expect_date("1 Jan 2023 10:61:00 +0000", NULL);
	expect_date("1 Jan 2023 10:00:00 +0099", NULL);
	expect_date("1 Jan 2023 10:00:00", NULL);                /* no zone */
	expect_date("1 Jan 2023 10:00:00 +0000 garbage", NULL);
	expect_date("Tue 1 Jul 2003 10:52:37 +0200", NULL);      /* day name without comma */
}

static enum mh_date_source internaldate(const char *hdr, char out[MH_IMAP_DATE_LEN])
{
	return mh_header_internaldate(hdr, strlen(hdr), out);
}

static void test_received_first(void **state)
{
	char out[MH_IMAP_DATE_LEN];
	const char *h = "Return-Path: <a@b>\r\n"
			"Received: from relay.example (relay.example [192.0.2.1])\r\n"
			"\tby mx.example with ESMTPS id 123;\r\n"
			"\tWed, 02 Oct 2024 08:15:00 +0000\r\n"
			"Received: from client by relay.example; Wed, 02 Oct 2024 10:14:58 +0200\r\n"
			"Date: Tue, 01 Oct 2024 23:00:00 -0400\r\n"
			"Subject: hi\r\n"
			"\r\n"
			"Received: in the body; 1 Jan 2000 00:00:00 +0000\r\n";

	(void)state;
	assert_int_equal(internaldate(h, out), MH_DATE_RECEIVED);
	assert_string_equal(out, "02-Oct-2024 08:15:00 +0000");
}

static void test_received_without_date_falls_to_next(void **state)
{
	char out[MH_IMAP_DATE_LEN];
	const char *h = "Received: from nowhere by somewhere (no date here)\n"
			"received: by mx; 3 Mar 2021 03:03:03 +0300\n"
			"Date: 1 Mar 2021 01:01:01 +0100\n\n";

	(void)state;
	assert_int_equal(internaldate(h, out), MH_DATE_RECEIVED);
	assert_string_equal(out, "03-Mar-2021 03:03:03 +0300");
}

static void test_date_header(void **state)
{
	char out[MH_IMAP_DATE_LEN];
	const char *h = "From: a@b\r\nDATE:\r\n Sun, 5 May 2019\r\n 07:08:09 +0930\r\nSubject: x\r\n\r\n";

	(void)state;
	assert_int_equal(internaldate(h, out), MH_DATE_DATE);
	assert_string_equal(out, "05-May-2019 07:08:09 +0930");
}

static void test_no_usable_header(void **state)
{
	char out[MH_IMAP_DATE_LEN];

	(void)state;
	assert_int_equal(internaldate("From: a@b\r\nDate: soon\r\n\r\nDate: 1 Jan 2020 00:00:00 +0000\r\n", out),
			 MH_DATE_NONE);
	assert_int_equal(internaldate("", out), MH_DATE_NONE);
	assert_int_equal(internaldate("\r\n", out), MH_DATE_NONE);
	/* truncated in the middle of a field: no crash, no date */
	assert_int_equal(mh_header_internaldate("Date: 1 Jan 2020 00:00", 10, out), MH_DATE_NONE);
}

static void test_date_from_time(void **state)
{
	char out[MH_IMAP_DATE_LEN];

	(void)state;
	mh_imap_date_from_time(0, out);
	assert_string_equal(out, "01-Jan-1970 00:00:00 +0000");
	mh_imap_date_from_time(1709210096, out);
	assert_string_equal(out, "29-Feb-2024 12:34:56 +0000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc5322_dates),
		cmocka_unit_test(test_rfc5322_not_dates),
		cmocka_unit_test(test_received_first),
		cmocka_unit_test(test_received_without_date_falls_to_next),
		cmocka_unit_test(test_date_header),
		cmocka_unit_test(test_no_usable_header),
		cmocka_unit_test(test_date_from_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
