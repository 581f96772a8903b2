/* verify.c - counts what a job's target folders hold; see verify.h. */
#include "verify.h"

#include <stdint.h>
#include <string.h>

#include "imap_client.h"
#include "imap_connect.h"
#include "jobstore.h"
#include "wire.h"

static void on_status(void *ctx, const struct imap_response *r)
{
	int64_t *messages = ctx;
	const struct imap_arg *list;
	uint64_t n;

	if (r->name == NULL || strcmp(r->name, "STATUS") != 0 || r->count < 2 || r->args[1].type != IMAP_ARG_LIST)
		return;
	list = &r->args[1];
	for (size_t i = 0; i + 1 < list->count; i += 2)
		if (imap_arg_is(&list->items[i], "MESSAGES") &&
		    imap_arg_number(&list->items[i + 1], UINT32_MAX, &n) == 0)
			*messages = (int64_t)n;
}

static int count_folders(struct rq *q, struct event_base *base, struct imap_client *c, const char *job_id,
			 uint32_t folders, struct mh_err *err)
{
	for (uint32_t i = 0; i < folders; i++) {
		struct mh_folder_ref f;
		int64_t messages = -1;
		int rc;

		if (mh_job_load_folder(q, job_id, i, &f, err) < 0)
			return -1;
		rc = imap_client_run(base, c, on_status, NULL, &messages, err, "STATUS %s (MESSAGES)", f.dst_raw);
		if (rc == 0)
			mh_err_set(err, err->code, "STATUS %s: %s", f.dst, err->detail);
		else if (rc > 0 && messages < 0)
			rc = mh_err_set(err, MH_E_PROTOCOL, "STATUS %s: no message count in the reply", f.dst);
		mh_folder_ref_cleanup(&f);
		if (rc <= 0)
			return -1;
		if (mh_job_folder_set_count(q, job_id, i, "dst_after", (uint64_t)messages, false, err) < 0)
			return -1;
	}
	return 0;
}

int verify_job(struct rq *q, struct event_base *base, const struct mh_seal_key *key, const struct planner_opts *o,
	       const char *job_id, struct mh_err *err)
{
	struct mh_job_spec spec;
	struct mh_job_summary s;
	struct mh_conn_opts co = {.command_timeout_ms = o->command_timeout_ms};
	struct mh_conn conn;
	int rc;

	memset(&conn, 0, sizeof(conn));
	if (mh_job_load_summary(q, job_id, 0, &s, err) < 0)
		return -1;
	if (mh_job_load_spec(q, job_id, &spec, err) < 0)
		return -1;
	rc = planner_open_side(q, base, key, &spec, MH_SIDE_TARGET, &co, &conn, err);
	if (rc == 0)
		rc = count_folders(q, base, conn.imap, job_id, s.planned_folders, err);
	mh_conn_close(&conn);
	mh_job_spec_cleanup(&spec);
	return rc < 0 ? -1 : 0;
}
