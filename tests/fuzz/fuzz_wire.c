/* fuzz_wire.c - libFuzzer target for the three wire decoders.
 *
 * Every input goes to each decoder. Whatever decodes must re-encode and decode again
 * (the encoders accept everything the decoders produce), and is then cleaned up so
 * LeakSanitizer sees any field a cleanup forgets. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wire.h"

static void reencode_job(const struct mh_job_spec *s)
{
	struct mh_job_spec t;
	struct mh_bytes b;
	struct mh_err err;

	if (mh_job_spec_encode(s, &b, &err) < 0 || mh_job_spec_decode(b.data, b.len, &t, &err) < 0)
		abort();
	mh_job_spec_cleanup(&t);
	mh_bytes_free(&b);
}

static void reencode_batch(const struct mh_batch *s)
{
	struct mh_batch t;
	struct mh_bytes b;
	struct mh_err err;

	if (mh_batch_encode(s, &b, &err) < 0 || mh_batch_decode(b.data, b.len, &t, &err) < 0)
		abort();
	if (t.count != s->count)
		abort();
	mh_batch_cleanup(&t);
	mh_bytes_free(&b);
}

static void reencode_result(const struct mh_batch_result *s)
{
	struct mh_batch_result t;
	struct mh_bytes b;
	struct mh_err err;

	if (mh_batch_result_encode(s, &b, &err) < 0 ||
	    mh_batch_result_decode(b.data, b.len, &t, &err) < 0)
		abort();
	if (t.count != s->count)
		abort();
	mh_batch_result_cleanup(&t);
	mh_bytes_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mh_job_spec s;
	struct mh_batch b;
	struct mh_batch_result r;
	struct mh_err err;

	if (mh_job_spec_decode(data, size, &s, &err) == 0) {
		reencode_job(&s);
		mh_job_spec_cleanup(&s);
	}
	if (mh_batch_decode(data, size, &b, &err) == 0) {
		reencode_batch(&b);
		mh_batch_cleanup(&b);
	}
	if (mh_batch_result_decode(data, size, &r, &err) == 0) {
		reencode_result(&r);
		mh_batch_result_cleanup(&r);
	}
	return 0;
}
