/* seal.h - credentials sealed at rest (AES-256-GCM, OpenSSL EVP).
 *
 * A sealed blob is nonce(12) || ciphertext || tag(16). The associated data (the job id)
 * binds a blob to its job, so blobs cannot be swapped between jobs. Every coordinator and
 * worker of a cluster shares one key (MAILHAUL_SEAL_KEY_FILE: 64 hex digits); a single
 * embedded migration uses a random key that never leaves the process. */
#ifndef MH_SEAL_H
#define MH_SEAL_H

#include <stddef.h>

#include "err.h"
#include "wire.h"

#define MH_SEAL_KEY_LEN 32

struct mh_seal_key {
	unsigned char bytes[MH_SEAL_KEY_LEN];
};

void mh_seal_key_random(struct mh_seal_key *key);
/* A file holding 64 hex digits (surrounding white space allowed). 0 or -1 (MH_E_SEAL). */
int mh_seal_key_load(const char *path, struct mh_seal_key *key, struct mh_err *err);
/* Writes a new random key file with mode 0600. */
int mh_seal_key_generate_file(const char *path, struct mh_err *err);

int mh_seal(const struct mh_seal_key *key, const char *aad, const void *plain, size_t len,
	    struct mh_bytes *out, struct mh_err *err);
/* On success *plain_r is a NUL-terminated heap copy; wipe it with mh_secret_free(). */
int mh_unseal(const struct mh_seal_key *key, const char *aad, const void *sealed, size_t len,
	      char **plain_r, size_t *len_r, struct mh_err *err);
/* Wipes (OPENSSL_cleanse) and frees a NUL-terminated secret; NULLs *secret. */
void mh_secret_free(char **secret);

#endif
