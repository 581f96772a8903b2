/* test_seal.c - AES-256-GCM sealing of credentials and seal key files (common/seal.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "seal.h"

static const char secret[] = "correct horse battery staple";

struct fixture {
	char dir[64];
	struct mh_seal_key key;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/mh-test-seal-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	mh_seal_key_random(&f->key);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct mh_bytes blob, blob2;
	struct mh_err err;
	char *plain = NULL;
	size_t len;

	assert_int_equal(mh_seal(&f->key, "job-1", secret, strlen(secret), &blob, &err), 0);
	assert_int_equal(blob.len, strlen(secret) + 28);
	/* the secret must not appear in the blob */
	assert_null(memmem(blob.data, blob.len, "horse", 5));
	assert_int_equal(mh_unseal(&f->key, "job-1", blob.data, blob.len, &plain, &len, &err), 0);
	assert_int_equal(len, strlen(secret));
	assert_string_equal(plain, secret);
	mh_secret_free(&plain);
	assert_null(plain);
	mh_secret_free(&plain); /* NULL is fine */

	/* a fresh nonce each time: same input, different blob */
	assert_int_equal(mh_seal(&f->key, "job-1", secret, strlen(secret), &blob2, &err), 0);
	assert_int_not_equal(memcmp(blob.data, blob2.data, blob.len), 0);
	mh_bytes_free(&blob);
	mh_bytes_free(&blob2);

	/* empty secret, NULL aad, len_r NULL */
	assert_int_equal(mh_seal(&f->key, NULL, "", 0, &blob, &err), 0);
	assert_int_equal(blob.len, 28);
	assert_int_equal(mh_unseal(&f->key, "", blob.data, blob.len, &plain, NULL, &err), 0);
	assert_string_equal(plain, "");
	mh_secret_free(&plain);
	mh_bytes_free(&blob);
}

static void test_tamper_each_byte(void **state)
{
	struct fixture *f = *state;
	struct mh_bytes blob;
	struct mh_err err;
	char *plain = (char *)"sentinel";

	assert_int_equal(mh_seal(&f->key, "job-1", secret, strlen(secret), &blob, &err), 0);
	for (size_t i = 0; i < blob.len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 7) {
			blob.data[i] ^= (unsigned char)(1u << bit);
			assert_int_equal(
				mh_unseal(&f->key, "job-1", blob.data, blob.len, &plain, NULL, &err), -1);
			assert_int_equal(err.code, MH_E_SEAL);
			assert_null(plain);
			blob.data[i] ^= (unsigned char)(1u << bit);
		}
	}
	assert_int_equal(mh_unseal(&f->key, "job-1", blob.data, blob.len, &plain, NULL, &err), 0);
	mh_secret_free(&plain);
	mh_bytes_free(&blob);
}

static void test_wrong_key_and_aad(void **state)
{
	struct fixture *f = *state;
	struct mh_seal_key other = f->key;
	struct mh_bytes blob;
	struct mh_err err;
	char *plain = NULL;

	other.bytes[31] ^= 1;
	assert_int_equal(mh_seal(&f->key, "job-1", secret, strlen(secret), &blob, &err), 0);
	assert_int_equal(mh_unseal(&other, "job-1", blob.data, blob.len, &plain, NULL, &err), -1);
	assert_int_equal(err.code, MH_E_SEAL);
	/* a blob cannot be moved to another job */
	assert_int_equal(mh_unseal(&f->key, "job-2", blob.data, blob.len, &plain, NULL, &err), -1);
	assert_int_equal(mh_unseal(&f->key, "job-10", blob.data, blob.len, &plain, NULL, &err), -1);
	assert_int_equal(mh_unseal(&f->key, NULL, blob.data, blob.len, &plain, NULL, &err), -1);
	assert_int_equal(err.code, MH_E_SEAL);
	assert_null(strstr(err.detail, "horse"));
	assert_null(plain);
	mh_bytes_free(&blob);
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	struct mh_bytes blob;
	struct mh_err err;
	char *plain = NULL;

	assert_int_equal(mh_seal(&f->key, "j", secret, strlen(secret), &blob, &err), 0);
	for (size_t n = 0; n < blob.len; n++) {
		unsigned char *p = malloc(n ? n : 1);

		memcpy(p, blob.data, n);
		assert_int_equal(mh_unseal(&f->key, "j", p, n, &plain, NULL, &err), -1);
		assert_int_equal(err.code, MH_E_SEAL);
		free(p);
	}
	/* extended by one byte */
	{
		unsigned char *p = malloc(blob.len + 1);

		memcpy(p, blob.data, blob.len);
		p[blob.len] = 0;
		assert_int_equal(mh_unseal(&f->key, "j", p, blob.len + 1, &plain, NULL, &err), -1);
		free(p);
	}
	assert_int_equal(mh_unseal(&f->key, "j", NULL, 0, &plain, NULL, &err), -1);
	assert_null(plain);
	mh_bytes_free(&blob);
}

static void test_key_file_good(void **state)
{
	struct fixture *f = *state;
	struct mh_seal_key a, b;
	struct mh_bytes blob;
	struct mh_err err;
	char path[128], path2[128];
	char *plain = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/gen.key", f->dir);
	assert_int_equal(mh_seal_key_generate_file(path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 65);
	/* never overwrites */
	assert_int_equal(mh_seal_key_generate_file(path, &err), -1);
	assert_int_equal(err.code, MH_E_SEAL);
	assert_non_null(strstr(err.detail, "gen.key"));

	/* a key from the file seals and another load of it opens */
	assert_int_equal(mh_seal_key_load(path, &a, &err), 0);
	assert_int_equal(mh_seal_key_load(path, &b, &err), 0);
	assert_memory_equal(a.bytes, b.bytes, sizeof(a.bytes));
	assert_int_equal(mh_seal(&a, "j", secret, strlen(secret), &blob, &err), 0);
	assert_int_equal(mh_unseal(&b, "j", blob.data, blob.len, &plain, NULL, &err), 0);
	mh_secret_free(&plain);
	mh_bytes_free(&blob);

	/* surrounding white space and upper case are fine */
	snprintf(path2, sizeof(path2), "%s/hand.key", f->dir);
	write_file(path2, "  \n\t000102030405060708090A0B0C0D0E0F"
			  "101112131415161718191a1b1c1d1e1f \r\n\n");
	assert_int_equal(mh_seal_key_load(path2, &a, &err), 0);
	for (int i = 0; i < 32; i++)
		assert_int_equal(a.bytes[i], i);
}

static void test_key_file_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"   \n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",   /* 63 */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", /* 65 */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",  /* non-hex */
		"000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1",  /* inner space */
		"0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	};
	struct fixture *f = *state;
	struct mh_seal_key k;
	struct mh_err err;
	char path[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "%s/bad%zu.key", f->dir, i);
		write_file(path, bad[i]);
		assert_int_equal(mh_seal_key_load(path, &k, &err), -1);
		assert_int_equal(err.code, MH_E_SEAL);
		assert_non_null(strstr(err.detail, path));
		/* the detail never quotes key material */
		assert_null(strstr(err.detail, "0a0b0c"));
	}
	snprintf(path, sizeof(path), "%s/missing.key", f->dir);
	assert_int_equal(mh_seal_key_load(path, &k, &err), -1);
	assert_int_equal(err.code, MH_E_SEAL);
	/* a huge file is refused without reading it all */
	snprintf(path, sizeof(path), "%s/huge.key", f->dir);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		for (int i = 0; i < 10000; i++)
			fputs("                ", fp);
		fclose(fp);
	}
	assert_int_equal(mh_seal_key_load(path, &k, &err), -1);
	assert_non_null(strstr(err.detail, "too large"));
	/* a directory */
	assert_int_equal(mh_seal_key_load(f->dir, &k, &err), -1);
	/* generate into a missing directory */
	snprintf(path, sizeof(path), "%s/nodir/x.key", f->dir);
	assert_int_equal(mh_seal_key_generate_file(path, &err), -1);
	assert_int_equal(err.code, MH_E_SEAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tamper_each_byte),
		cmocka_unit_test(test_wrong_key_and_aad),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_key_file_good),
		cmocka_unit_test(test_key_file_bad),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
