/* summary_json.c - a job's summary as JSON (see summary_json.h). */
#include "summary_json.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "syncstore.h"
#include "textfmt.h"

double mh_job_summary_duration_s(const struct mh_job_summary *s)
{
	uint64_t start = s->started_ms ? s->started_ms : s->created_ms;
	uint64_t end = s->ended_ms ? s->ended_ms : mh_now_ms();

	return end > start ? (double)(end - start) / 1000.0 : 0.0;
}

const char *mh_job_summary_folder(const struct mh_job_summary *s, uint32_t idx)
{
	return idx < s->folder_count ? s->folders[idx].src : "?";
}

static void json_count_or_null(FILE *out, int64_t n)
{
	if (n < 0)
		fputs("null", out);
	else
		fprintf(out, "%" PRId64, n);
}

static void json_counts(FILE *out, const struct mh_counts *c)
{
	fprintf(out,
		"\"messages\":{\"total\":%" PRIu64 ",\"copied\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"failed\":%" PRIu64
		"},\"bytes\":{\"total\":%" PRIu64 ",\"copied\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"failed\":%" PRIu64
		"}",
		c->messages, c->copied, c->skipped, c->failed, c->bytes, c->copied_bytes, c->skipped_bytes,
		c->failed_bytes);
}

void mh_summary_json(FILE *out, const struct mh_job_summary *s)
{
	double secs = mh_job_summary_duration_s(s);

	fputs("{\"job\":", out);
	mh_json_str(out, s->job_id);
	fputs(",\"state\":", out);
	mh_json_str(out, mh_job_summary_state(s));
	fputs(",\"source\":", out);
	mh_json_str(out, s->src);
	fputs(",\"target\":", out);
	mh_json_str(out, s->dst);
	fprintf(out, ",\"started_ms\":%" PRIu64 ",\"ended_ms\":%" PRIu64 ",\"duration_s\":%.3f,", s->started_ms,
		s->ended_ms, secs);
	json_counts(out, &s->counts);
	fprintf(out, ",\"rate\":{\"messages_per_s\":%.1f,\"bytes_per_s\":%.0f}",
		secs > 0 ? (double)s->counts.copied / secs : 0.0, secs > 0 ? (double)s->counts.copied_bytes / secs : 0.0);
	fputs(",\"error\":", out);
	if (s->error[0] != '\0') {
		enum mh_err_code code = mh_err_from_name(s->error);
		fputs("{\"code\":", out);
		mh_json_str(out, s->error);
		fputs(",\"text\":", out);
		mh_json_str(out, mh_err_text(code));
		fputs(",\"fix\":", out);
		mh_json_str(out, mh_err_fix(code));
		fputs(",\"detail\":", out);
		mh_json_str(out, s->error_detail);
		fputc('}', out);
	} else {
		fputs("null", out);
	}
	fputs(",\"check\":", out);
	if (s->check_verdict[0] != '\0') {
		fputs("{\"verdict\":", out);
		mh_json_str(out, s->check_verdict);
		fputc('}', out);
	} else {
		fputs("null", out);
	}
	fputs(",\"verified\":", out);
	fputs(strcmp(s->verify, "done") == 0 && s->verify_error[0] == '\0' ? "true" : "false", out);
	fputs(",\"verify_error\":", out);
	if (s->verify_error[0] != '\0')
		mh_json_str(out, s->verify_error);
	else
		fputs("null", out);
	fputs(",\"autosync\":", out);
	if (s->autosync_ms > 0)
		fprintf(out, "{\"every_s\":%" PRIu64 ",\"next_ms\":%" PRIu64 "}", s->autosync_ms / 1000, s->next_sync_ms);
	else
		fputs("null", out);
	fprintf(out, ",\"sync\":{\"flags\":%s,\"deletes\":%s,\"flags_updated\":%" PRIu64 ",\"deleted\":%" PRIu64 "}",
		(s->sync_opts & MH_SYNC_FLAGS) ? "true" : "false", (s->sync_opts & MH_SYNC_DELETES) ? "true" : "false",
		s->flags_updated, s->deleted);
	fputs(",\"warning\":", out);
	if (s->warning[0] != '\0')
		mh_json_str(out, s->warning);
	else
		fputs("null", out);
	fputs(",\"folders\":[", out);
	for (size_t i = 0; i < s->folder_count; i++) {
		fputs(i ? ",{\"source\":" : "{\"source\":", out);
		mh_json_str(out, s->folders[i].src);
		fputs(",\"target\":", out);
		mh_json_str(out, s->folders[i].dst);
		fputs(",\"target_before\":", out);
		json_count_or_null(out, s->folders[i].dst_before);
		fputs(",\"target_after\":", out);
		json_count_or_null(out, s->folders[i].dst_after);
		fputc(',', out);
		json_counts(out, &s->folders[i].counts);
		fputc('}', out);
	}
	fputs("],\"failures\":[", out);
	for (size_t i = 0; i < s->failure_count; i++) {
		const struct mh_failure *f = &s->failures[i];
		enum mh_err_code code = mh_err_from_name(f->code);
		fputs(i ? ",{\"folder\":" : "{\"folder\":", out);
		mh_json_str(out, mh_job_summary_folder(s, f->folder_idx));
		fprintf(out, ",\"uid\":%" PRIu32 ",\"size\":%" PRIu64 ",\"date\":", f->uid, f->size);
		mh_json_str(out, f->date);
		fputs(",\"subject\":", out);
		mh_json_str(out, f->subject);
		fputs(",\"code\":", out);
		mh_json_str(out, f->code);
		fputs(",\"text\":", out);
		mh_json_str(out, mh_err_text(code));
		fputs(",\"fix\":", out);
		mh_json_str(out, mh_err_fix(code));
		fputs(",\"detail\":", out);
		mh_json_str(out, f->detail);
		fputc('}', out);
	}
	fputs("]}", out);
}

void mh_history_json(FILE *out, const struct mh_run *runs, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		const struct mh_run *u = &runs[i];
		char start[32], end[32];

		mh_fmt_utc(start, sizeof(start), u->started_ms);
		mh_fmt_utc(end, sizeof(end), u->ended_ms);
		fprintf(out,
			"%s{\"run\":%zu,\"started\":\"%s\",\"ended\":\"%s\",\"duration_s\":%.3f,\"state\":\"%s\","
			"\"copied\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"flags_updated\":%" PRIu64
			",\"deleted\":%" PRIu64 "}",
			i ? "," : "", i + 1, start, end,
			u->ended_ms > u->started_ms ? (double)(u->ended_ms - u->started_ms) / 1000.0 : 0.0, u->state,
			u->copied, u->skipped, u->failed, u->flags_updated, u->deleted);
	}
	fputc(']', out);
}
