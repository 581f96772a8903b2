/* finish.c - ends a job once every planned message has a result. */
#include "finish.h"

#include <inttypes.h>

#include "jobstore.h"
#include "log.h"

void finish_if_complete(struct rq *q, const char *job_id)
{
	struct mh_counts n;
	struct mh_err err;
	enum mh_job_state final;
	int rc = mh_job_request_verify(q, job_id, &err);

	if (rc == 1)
		mh_info("coordinator", "%s: every message has a result; counting the target folders", job_id);
	if (rc == 0 || rc == 1)
		return;
	if (rc == 2)
		rc = mh_job_finish(q, job_id, &final, &n, &err);
	if (rc == 0)
		return;
	if (rc < 0 || mh_job_purge_credentials(q, job_id, &err) < 0) {
		mh_error("coordinator", "%s: cannot finish: %s", job_id, err.detail);
		return;
	}
	mh_info("coordinator",
		"%s %s: %" PRIu64 " copied, %" PRIu64 " skipped, %" PRIu64 " failed of %" PRIu64 " messages", job_id,
		mh_job_state_name(final), n.copied, n.skipped, n.failed, n.messages);
}
