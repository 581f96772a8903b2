/* seal.c - credentials sealed at rest with AES-256-GCM (OpenSSL EVP).
 *
 * Blob layout: nonce(12) || ciphertext || tag(16); the job id is the associated data.
 * A fresh random nonce per seal keeps (key, nonce) pairs unique without any state. */
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_OVERHEAD (SEAL_NONCE_LEN + SEAL_TAG_LEN)
#define SEAL_KEY_HEX (2 * MH_SEAL_KEY_LEN)
#define SEAL_KEY_FILE_MAX 4096 /* a key file is 64 digits plus white space */

/* Fills a key from the CSPRNG. Without randomness nothing can be sealed safely, so a
 * failing RAND_bytes aborts. */
void mh_seal_key_random(struct mh_seal_key *key)
{
	if (RAND_bytes(key->bytes, MH_SEAL_KEY_LEN) != 1)
		abort();
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Loads a key file: exactly 64 hex digits, surrounding white space allowed. The file's
 * bytes are wiped from memory afterwards. Returns 0, or -1 with MH_E_SEAL (the detail
 * names the path and the problem, never the key).
 */
int mh_seal_key_load(const char *path, struct mh_seal_key *key, struct mh_err *err)
{
	unsigned char buf[SEAL_KEY_FILE_MAX + 1];
	size_t len = 0, start, end;
	ssize_t n;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mh_err_set(err, MH_E_SEAL, "seal key file %s: %s", path, strerror(errno));
	/* Read one byte past the limit so an oversized file is noticed. */
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mh_err_set(err, MH_E_SEAL, "seal key file %s: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > SEAL_KEY_FILE_MAX) {
		mh_err_set(err, MH_E_SEAL, "seal key file %s: too large", path);
		goto out;
	}
	start = 0;
	end = len;
	while (start < end && is_space(buf[start]))
		start++;
	while (end > start && is_space(buf[end - 1]))
		end--;
	if (end - start != SEAL_KEY_HEX) {
		mh_err_set(err, MH_E_SEAL, "seal key file %s: expected %d hex digits, found %zu bytes",
			   path, SEAL_KEY_HEX, end - start);
		goto out;
	}
	for (size_t i = 0; i < MH_SEAL_KEY_LEN; i++) {
		int hi = hex_val(buf[start + 2 * i]), lo = hex_val(buf[start + 2 * i + 1]);

		if (hi < 0 || lo < 0) {
			mh_err_set(err, MH_E_SEAL, "seal key file %s: not a hex digit at offset %zu",
				   path, start + 2 * i + (hi >= 0));
			OPENSSL_cleanse(key->bytes, sizeof(key->bytes));
			goto out;
		}
		key->bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

/*
 * Creates path (O_EXCL: an existing file is never overwritten) with mode 0600 holding a
 * new random key as 64 hex digits and a newline. On a write error the partial file is
 * removed. Returns 0, or -1 with MH_E_SEAL.
 */
int mh_seal_key_generate_file(const char *path, struct mh_err *err)
{
	static const char digits[] = "0123456789abcdef";
	struct mh_seal_key key;
	char hex[SEAL_KEY_HEX + 1];
	size_t off = 0;
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return mh_err_set(err, MH_E_SEAL, "cannot create seal key file %s: %s", path,
				  strerror(errno));
	mh_seal_key_random(&key);
	for (size_t i = 0; i < MH_SEAL_KEY_LEN; i++) {
		hex[2 * i] = digits[key.bytes[i] >> 4];
		hex[2 * i + 1] = digits[key.bytes[i] & 0xf];
	}
	hex[SEAL_KEY_HEX] = '\n';
	OPENSSL_cleanse(&key, sizeof(key));
	while (off < sizeof(hex)) {
		ssize_t n = write(fd, hex + off, sizeof(hex) - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	OPENSSL_cleanse(hex, sizeof(hex));
	if (close(fd) < 0) {
		saved = errno;
		unlink(path);
		return mh_err_set(err, MH_E_SEAL, "cannot write seal key file %s: %s", path,
				  strerror(saved));
	}
	return 0;
fail:
	saved = errno;
	OPENSSL_cleanse(hex, sizeof(hex));
	close(fd);
	unlink(path);
	return mh_err_set(err, MH_E_SEAL, "cannot write seal key file %s: %s", path,
			  strerror(saved));
}

/* Leaves OpenSSL's per-thread error queue empty so our failures do not surface later
 * in an unrelated TLS error report. */
static int seal_fail(struct mh_err *err, const char *what)
{
	ERR_clear_error();
	return mh_err_set(err, MH_E_SEAL, "%s", what);
}

/*
 * Seals len bytes of plain for the job whose id is aad (NULL counts as ""). out gets a
 * new heap blob of len + 28 bytes (free with mh_bytes_free). Returns 0, or -1 (MH_E_SEAL).
 */
int mh_seal(const struct mh_seal_key *key, const char *aad, const void *plain, size_t len,
	    struct mh_bytes *out, struct mh_err *err)
{
	EVP_CIPHER_CTX *ctx;
	unsigned char *blob;
	size_t aad_len = aad != NULL ? strlen(aad) : 0;
	int n, fin;

	out->data = NULL;
	out->len = 0;
	if (len > (size_t)INT_MAX - SEAL_OVERHEAD || aad_len > INT_MAX)
		return mh_err_set(err, MH_E_SEAL, "secret too large to seal");
	blob = malloc(len + SEAL_OVERHEAD);
	ctx = EVP_CIPHER_CTX_new();
	if (blob == NULL || ctx == NULL)
		abort();
	if (RAND_bytes(blob, SEAL_NONCE_LEN) != 1 ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key->bytes, blob) != 1 ||
	    (aad_len > 0 &&
	     EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1) ||
	    (len > 0 && EVP_EncryptUpdate(ctx, blob + SEAL_NONCE_LEN, &n, plain, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, blob + SEAL_NONCE_LEN + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
				blob + SEAL_NONCE_LEN + len) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		free(blob);
		return seal_fail(err, "sealing failed");
	}
	EVP_CIPHER_CTX_free(ctx);
	out->data = blob;
	out->len = len + SEAL_OVERHEAD;
	return 0;
}

/*
 * Opens a blob made by mh_seal with the same key and aad. Any change to the blob, a
 * different key or aad, or a blob shorter than 28 bytes fails with MH_E_SEAL. On success
 * *plain_r is a NUL-terminated heap copy (wipe with mh_secret_free) and *len_r (may be
 * NULL) its length; on failure *plain_r is NULL.
 */
int mh_unseal(const struct mh_seal_key *key, const char *aad, const void *sealed, size_t len,
	      char **plain_r, size_t *len_r, struct mh_err *err)
{
	const unsigned char *in = sealed;
	size_t aad_len = aad != NULL ? strlen(aad) : 0;
	size_t clen;
	EVP_CIPHER_CTX *ctx;
	unsigned char *plain;
	int n, fin, ok;

	*plain_r = NULL;
	if (len_r != NULL)
		*len_r = 0;
	if (sealed == NULL || len < SEAL_OVERHEAD)
		return mh_err_set(err, MH_E_SEAL, "sealed credential truncated (%zu bytes)", len);
	if (len > (size_t)INT_MAX || aad_len > INT_MAX)
		return mh_err_set(err, MH_E_SEAL, "sealed credential too large");
	clen = len - SEAL_OVERHEAD;
	plain = malloc(clen + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (plain == NULL || ctx == NULL)
		abort();
	/* The tag goes in before Final, which is where GCM verifies it. */
	ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
	     EVP_DecryptInit_ex(ctx, NULL, NULL, key->bytes, in) == 1 &&
	     (aad_len == 0 ||
	      EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) == 1) &&
	     (clen == 0 ||
	      EVP_DecryptUpdate(ctx, plain, &n, in + SEAL_NONCE_LEN, (int)clen) == 1) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
				 (void *)(in + SEAL_NONCE_LEN + clen)) == 1 &&
	     EVP_DecryptFinal_ex(ctx, plain + clen, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		OPENSSL_cleanse(plain, clen + 1);
		free(plain);
		return seal_fail(err, "sealed credential does not open: wrong seal key, wrong job, "
				      "or damaged");
	}
	plain[clen] = '\0';
	*plain_r = (char *)plain;
	if (len_r != NULL)
		*len_r = clen;
	return 0;
}

/* Wipes and frees a NUL-terminated secret and NULLs the pointer; NULL is fine. */
void mh_secret_free(char **secret)
{
	if (secret == NULL || *secret == NULL)
		return;
	OPENSSL_cleanse(*secret, strlen(*secret));
	free(*secret);
	*secret = NULL;
}
