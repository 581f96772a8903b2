/* test_imap_utf7.c - modified UTF-7 (RFC 3501 5.1.3) in both directions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_utf7.h"

struct pair {
	const char *utf7;
	const char *utf8;
};

static const struct pair good[] = {
	{"", ""},
	{"INBOX", "INBOX"},
	{"&-", "&"},
	{"a&-b&-", "a&b&"},
	{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	{"Entw&APw-rfe", "Entw\xc3\xbc" "rfe"},
	{"Envoy&AOk-s", "Envoy\xc3\xa9s"},
	{"&AOkA6QDp-", "\xc3\xa9\xc3\xa9\xc3\xa9"},
	{"&AOk-&-", "\xc3\xa9&"},
	{"&-&AOk-", "&\xc3\xa9"},
	{"&2D3eAA-", "\xf0\x9f\x98\x80"},                         /* U+1F600 */
	{"Fun &2D3eANg93gE-!", "Fun \xf0\x9f\x98\x80\xf0\x9f\x98\x81!"},
	{"&2,,f,w-", "\xf4\x8f\xbf\xbf"},                         /* U+10FFFF */
	{"&AAE-", "\x01"},                                        /* controls are encoded */
	{"&AH8-", "\x7f"},
	{"&,,8-", "\xef\xbf\xbf"},                                /* U+FFFF */
	{"~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}", "~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}"},
};

static void test_decode_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mh_err err;
		char *out = NULL;

		mh_err_clear(&err);
		assert_int_equal(imap_utf7_to_utf8(good[i].utf7, strlen(good[i].utf7), &out, &err),
				 0);
		assert_string_equal(out, good[i].utf8);
		assert_true(imap_utf7_is_valid(good[i].utf7, strlen(good[i].utf7)));
		free(out);
	}
}

static void test_encode_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mh_err err;
		char *out = NULL;

		mh_err_clear(&err);
		assert_int_equal(imap_utf8_to_utf7(good[i].utf8, strlen(good[i].utf8), &out, &err),
				 0);
		assert_string_equal(out, good[i].utf7);
		free(out);
	}
}

static void test_length_not_nul(void **state)
{
	struct mh_err err;
	char *out = NULL;

	(void)state;
	/* Only len bytes are read. */
	assert_int_equal(imap_utf7_to_utf8("&AOk-xyz", 5, &out, &err), 0);
	assert_string_equal(out, "\xc3\xa9");
	free(out);
	assert_int_equal(imap_utf8_to_utf7("\xc3\xa9zz", 2, &out, &err), 0);
	assert_string_equal(out, "&AOk-");
	free(out);
}

static void expect_decode_fails(const char *in, size_t len)
{
	struct mh_err err;
	char *out = (char *)"untouched";

	mh_err_clear(&err);
	assert_int_equal(imap_utf7_to_utf8(in, len, &out, &err), -1);
	assert_null(out);
	assert_int_equal(err.code, MH_E_FOLDER_NAME);
	assert_true(err.detail[0] != '\0');
	assert_false(imap_utf7_is_valid(in, len));
}

#define DECODE_FAILS(s) expect_decode_fails(s, sizeof(s) - 1)

static void test_decode_unterminated_ampersand(void **state)
{
	(void)state;
	DECODE_FAILS("&");
	DECODE_FAILS("a&");
	DECODE_FAILS("&AOk");
	DECODE_FAILS("&U,BTFw");
}

static void test_decode_bad_base64(void **state)
{
	(void)state;
	DECODE_FAILS("&AO/-");  /* '/' is plain base64, not modified */
	DECODE_FAILS("&AOk=-"); /* no padding */
	DECODE_FAILS("&AO k-");
	DECODE_FAILS("&\xc3\xa9-");
}

static void test_decode_non_canonical(void **state)
{
	(void)state;
	DECODE_FAILS("&AGE-");        /* 'a' must be sent as itself */
	DECODE_FAILS("&ACY-");        /* '&' must be "&-" */
	DECODE_FAILS("&ACA-");        /* space */
	DECODE_FAILS("&AOk-&AOk-");   /* two runs must be merged */
	DECODE_FAILS("&AOl-");        /* nonzero padding bits */
	DECODE_FAILS("&AOkA-");       /* a whole extra base64 character */
	DECODE_FAILS("&A-");          /* run encodes nothing */
	DECODE_FAILS("&AA-");
}

static void test_decode_bad_surrogates(void **state)
{
	(void)state;
	DECODE_FAILS("&2D0-");          /* high surrogate alone */
	DECODE_FAILS("&2D0AZQ-");       /* high followed by a non-surrogate */
	DECODE_FAILS("&3gA-");          /* low surrogate alone */
	DECODE_FAILS("&3gDYPQ-");       /* low then high */
	DECODE_FAILS("&2D0-&3gA-");     /* pair split over two runs */
}

static void test_decode_raw_bytes(void **state)
{
	(void)state;
	DECODE_FAILS("a\x01");
	DECODE_FAILS("a\x7f");
	DECODE_FAILS("caf\xc3\xa9"); /* raw UTF-8 is not modified UTF-7 */
	DECODE_FAILS("a\0b");
	DECODE_FAILS("&AAA-");       /* encoded NUL */
}

static void expect_encode_fails(const char *in, size_t len)
{
	struct mh_err err;
	char *out = (char *)"untouched";

	mh_err_clear(&err);
	assert_int_equal(imap_utf8_to_utf7(in, len, &out, &err), -1);
	assert_null(out);
	assert_int_equal(err.code, MH_E_FOLDER_NAME);
	assert_true(err.detail[0] != '\0');
}

#define ENCODE_FAILS(s) expect_encode_fails(s, sizeof(s) - 1)

static void test_encode_invalid_utf8(void **state)
{
	(void)state;
	ENCODE_FAILS("\x80");                 /* stray continuation */
	ENCODE_FAILS("\xc3");                 /* truncated */
	ENCODE_FAILS("\xe6\x97");
	ENCODE_FAILS("\xc0\xaf");             /* overlong '/' */
	ENCODE_FAILS("\xc1\xbf");
	ENCODE_FAILS("\xe0\x80\xaf");         /* overlong */
	ENCODE_FAILS("\xf0\x80\x80\xaf");     /* overlong */
	ENCODE_FAILS("\xed\xa0\x80");         /* U+D800 */
	ENCODE_FAILS("\xed\xbf\xbf");         /* U+DFFF */
	ENCODE_FAILS("\xf4\x90\x80\x80");     /* above U+10FFFF */
	ENCODE_FAILS("\xf5\x80\x80\x80");
	ENCODE_FAILS("\xff");
	ENCODE_FAILS("\xc3\x28");             /* bad continuation */
	ENCODE_FAILS("a\0b");
}

static void test_round_trip_all_bmp_and_some_astral(void **state)
{
	(void)state;
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 97)) {
		char in[8];
		size_t n = 0;
		char *utf7 = NULL, *utf8 = NULL;
		struct mh_err err;

		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		in[n++] = 'x';
		if (cp < 0x80) {
			in[n++] = (char)cp;
		} else if (cp < 0x800) {
			in[n++] = (char)(0xc0 | (cp >> 6));
			in[n++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			in[n++] = (char)(0xe0 | (cp >> 12));
			in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			in[n++] = (char)(0x80 | (cp & 0x3f));
		} else {
			in[n++] = (char)(0xf0 | (cp >> 18));
			in[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			in[n++] = (char)(0x80 | (cp & 0x3f));
		}
		in[n] = '\0';
		assert_int_equal(imap_utf8_to_utf7(in, n, &utf7, &err), 0);
		assert_int_equal(imap_utf7_to_utf8(utf7, strlen(utf7), &utf8, &err), 0);
		assert_string_equal(utf8, in);
		free(utf7);
		free(utf8);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_vectors),
		cmocka_unit_test(test_encode_vectors),
		cmocka_unit_test(test_length_not_nul),
		cmocka_unit_test(test_decode_unterminated_ampersand),
		cmocka_unit_test(test_decode_bad_base64),
		cmocka_unit_test(test_decode_non_canonical),
		cmocka_unit_test(test_decode_bad_surrogates),
		cmocka_unit_test(test_decode_raw_bytes),
		cmocka_unit_test(test_encode_invalid_utf8),
		cmocka_unit_test(test_round_trip_all_bmp_and_some_astral),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
