/* report.c - the live progress line and the end-of-run summary (text and JSON). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "syncstore.h"

void progress_init(struct progress *p, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->quiet = quiet;
	p->tty = isatty(STDERR_FILENO);
	p->started_ms = mh_now_ms();
}

void progress_update(struct progress *p, const struct mh_job_summary *s)
{
	const struct mh_counts *c = &s->counts;
	uint64_t now = mh_now_ms(), done = c->copied + c->skipped + c->failed;
	uint64_t done_bytes = c->copied_bytes + c->skipped_bytes + c->failed_bytes;
	double secs = (double)(now - p->started_ms) / 1000.0;
	char moved[32], total[32], eta[32] = "-";

	if (p->quiet || (!p->tty && now - p->last_print_ms < 5000))
		return;
	p->last_print_ms = now;
	mh_fmt_bytes(moved, sizeof(moved), done_bytes);
	mh_fmt_bytes(total, sizeof(total), c->bytes);
	if (s->state == MH_JOB_QUEUED || s->state == MH_JOB_PLANNING) {
		fprintf(stderr, "%s%s: looking at both mailboxes...%s", p->tty ? "\r\033[K" : "",
			mh_job_summary_state(s), p->tty ? "" : "\n");
	} else {
		double rate = secs > 0 ? (double)c->copied / secs : 0;
		double byte_rate = secs > 0 ? (double)c->copied_bytes / secs : 0;
		char brate[32];

		if (byte_rate > 0 && c->bytes > done_bytes)
			mh_fmt_duration(eta, sizeof(eta), (double)(c->bytes - done_bytes) / byte_rate);
		mh_fmt_bytes(brate, sizeof(brate), (uint64_t)byte_rate);
		fprintf(stderr,
			"%s%" PRIu64 "/%" PRIu64 " messages (%" PRIu64 " copied, %" PRIu64 " skipped, %" PRIu64
			" failed), %s/%s, %.0f msg/s, %s/s, ETA %s%s",
			p->tty ? "\r\033[K" : "", done, c->messages, c->copied, c->skipped, c->failed, moved, total, rate,
			brate, eta, p->tty ? "" : "\n");
	}
	p->line_open = p->tty;
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (p->line_open)
		fputs("\r\033[K", stderr);
	p->line_open = false;
}

static double duration_s(const struct mh_job_summary *s)
{
	uint64_t start = s->started_ms ? s->started_ms : s->created_ms;
	uint64_t end = s->ended_ms ? s->ended_ms : mh_now_ms();

	return end > start ? (double)(end - start) / 1000.0 : 0.0;
}

static const char *folder_name(const struct mh_job_summary *s, uint32_t idx)
{
	return idx < s->folder_count ? s->folders[idx].src : "?";
}

static int cmp_failure(const void *a, const void *b)
{
	const struct mh_failure *x = a, *y = b;
	int c = strcmp(x->code, y->code);

	if (c != 0)
		return c;
	if (x->folder_idx != y->folder_idx)
		return x->folder_idx < y->folder_idx ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* The health check that opened the job, when it found something: its problems, each with
 * cause and fix, as `mailhaul check` prints them. */
static void report_check_problems(FILE *out, const struct mh_job_summary *s)
{
	const char *problems;

	if (s->check_text == NULL || strcmp(s->check_verdict, "ok") == 0)
		return;
	problems = strstr(s->check_text, "Problems:");
	if (problems == NULL)
		return;
	fprintf(out, "\n  Health check (%s):\n", s->check_verdict);
	for (const char *line = problems; *line != '\0';) {
		const char *end = strchr(line, '\n');
		int len = end != NULL ? (int)(end - line) : (int)strlen(line);

		if (len > 0)
			fprintf(out, "  %.*s\n", len, line);
		line += len + (end != NULL);
	}
}

/* What the target folder should hold now: what it held before, plus our copies. */
static const char *folder_verdict(const struct mh_folder_summary *f, char *buf, size_t len)
{
	int64_t want;

	if (f->dst_after < 0 || f->dst_before < 0)
		return "-";
	want = f->dst_before + (int64_t)f->counts.copied;
	if (f->dst_after == want)
		return f->counts.failed > 0 ? "ok, less failed" : "ok";
	snprintf(buf, len, "%+" PRId64 " vs expected", f->dst_after - want);
	return buf;
}

/* Columns a code point takes on a terminal: 2 for the East Asian wide ranges (CJK,
 * Hangul, full-width forms), else 1. Without the locale's wcwidth(): the CLI runs in
 * whatever locale it is given. */
static int columns_of(uint32_t cp)
{
	return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
			       (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
			       (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0xFFE0 && cp <= 0xFFE6) ||
			       (cp >= 0x20000 && cp <= 0x3FFFD)
		       ? 2
		       : 1;
}

/* A folder name padded to width terminal columns (names are UTF-8) and a space; a longer
 * name pushes the row right rather than being cut. */
static void put_cell(FILE *out, const char *text, int width)
{
	int chars = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0';) {
		uint32_t cp = *p;
		int more = *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : 0;

		if (more > 0)
			cp &= 0x3Fu >> more;
		for (p++; more > 0 && (*p & 0xC0) == 0x80; more--, p++)
			cp = cp << 6 | (*p & 0x3Fu);
		chars += columns_of(cp);
	}
	fputs(text, out);
	for (; chars < width; chars++)
		fputc(' ', out);
	fputc(' ', out);
}

/* The source-vs-target table: per folder what the source held, what happened to it, and
 * what the target held before and holds now (counted when the job completed). */
static void report_folders(FILE *out, const struct mh_job_summary *s)
{
	bool odd = false;
	char before[24], after[24], verdict[48];

	fprintf(out, "\n  %-24s %-24s %7s %7s %7s %7s %7s %7s  %s\n", "source folder", "target folder", "source",
		"copied", "skipped", "failed", "target", "target", "check");
	fprintf(out, "  %-24s %-24s %7s %7s %7s %7s %7s %7s\n", "", "", "", "", "", "", "before", "after");
	for (size_t i = 0; i < s->folder_count; i++) {
		const struct mh_folder_summary *f = &s->folders[i];
		const char *v = folder_verdict(f, verdict, sizeof(verdict));

		snprintf(before, sizeof(before), f->dst_before >= 0 ? "%" PRId64 : "-", f->dst_before);
		snprintf(after, sizeof(after), f->dst_after >= 0 ? "%" PRId64 : "-", f->dst_after);
		fputs("  ", out);
		put_cell(out, f->src, 24);
		put_cell(out, f->dst, 24);
		fprintf(out, "%7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7s %7s  %s\n", f->counts.messages,
			f->counts.copied, f->counts.skipped, f->counts.failed, before, after, v);
		odd |= v[0] == '+' || v[0] == '-';
	}
	if (s->warning[0] != '\0')
		fprintf(out, "  warning: %s\n", s->warning);
	if (s->verify_error[0] != '\0')
		fprintf(out, "  The target folders could not be counted after the run: %s\n", s->verify_error);
	else if (strcmp(s->verify, "done") != 0)
		fprintf(out, "  (target counted once every message has a result)\n");
	fprintf(out, "  source = copied + skipped (already on the target) + failed; target after = target before "
		     "+ copied.\n");
	if (odd)
		fprintf(out, "  A folder off by some messages changed on the target during the run (new mail "
			     "delivered, or messages deleted there).\n");
}

void report_human(FILE *out, const struct mh_job_summary *s)
{
	const struct mh_counts *c = &s->counts;
	double secs = duration_s(s);
	char b1[32], b2[32], b3[32], dur[32];

	mh_fmt_duration(dur, sizeof(dur), secs);
	fprintf(out, "\nMigration %s: %s in %s\n", s->job_id, mh_job_summary_state(s), dur);
	fprintf(out, "  from      %s\n  to        %s\n", s->src, s->dst);
	report_check_problems(out, s);
	if (s->error[0] != '\0') {
		enum mh_err_code code = mh_err_from_name(s->error);
		fprintf(out, "\n  ERROR %s: %s.\n", s->error, mh_err_text(code));
		if (s->error_detail[0] != '\0')
			fprintf(out, "        detail: %s\n", s->error_detail);
		fprintf(out, "        fix: %s.\n", mh_err_fix(code));
		return;
	}
	mh_fmt_bytes(b1, sizeof(b1), c->copied_bytes);
	mh_fmt_bytes(b2, sizeof(b2), c->skipped_bytes);
	mh_fmt_bytes(b3, sizeof(b3), c->failed_bytes);
	fprintf(out, "  folders   %zu\n", s->folder_count);
	fprintf(out, "  messages  %" PRIu64 " copied, %" PRIu64 " skipped (already on the target), %" PRIu64
		" failed, of %" PRIu64 "\n", c->copied, c->skipped, c->failed, c->messages);
	fprintf(out, "  bytes     %s copied, %s skipped, %s failed\n", b1, b2, b3);
	if (s->sync_opts != 0 || s->flags_updated + s->deleted > 0)
		fprintf(out, "  syncs     %s: %" PRIu64 " copies given their source's changed flags, %" PRIu64
			" copies of messages deleted on the source deleted\n",
			mh_sync_opts_describe(s->sync_opts), s->flags_updated, s->deleted);
	if (secs > 0) {
		mh_fmt_bytes(b1, sizeof(b1), (uint64_t)((double)c->copied_bytes / secs));
		fprintf(out, "  rate      %.0f messages/s, %s/s\n", (double)c->copied / secs, b1);
	}
	if (s->folder_count > 0)
		report_folders(out, s);
	if (s->failure_count > 0) {
		qsort(s->failures, s->failure_count, sizeof(*s->failures), cmp_failure);
		fprintf(out, "\n  Failed messages, by cause:\n");
		for (size_t i = 0; i < s->failure_count;) {
			size_t j = i;
			enum mh_err_code code = mh_err_from_name(s->failures[i].code);
			while (j < s->failure_count && strcmp(s->failures[j].code, s->failures[i].code) == 0)
				j++;
			fprintf(out, "  %s (%zu): %s.\n    fix: %s.\n", s->failures[i].code, j - i, mh_err_text(code),
				mh_err_fix(code));
			for (size_t k = i; k < j && k < i + 20; k++) {
				mh_fmt_bytes(b1, sizeof(b1), s->failures[k].size);
				fprintf(out, "    - %s, UID %" PRIu32 ", %s%s%s%s%s%s%s\n",
					folder_name(s, s->failures[k].folder_idx), s->failures[k].uid, b1,
					s->failures[k].date[0] ? ", " : "", s->failures[k].date,
					s->failures[k].subject[0] ? ", subject " : "", s->failures[k].subject,
					s->failures[k].detail[0] ? ": " : "", s->failures[k].detail);
			}
			if (j - i > 20)
				fprintf(out, "    ... and %zu more\n", j - i - 20);
			i = j;
		}
		fprintf(out,
			"\n  To retry after the fix: mailhaul requeue %s [--error CODE] (a cluster job), or run the\n"
			"  same migration again: what is already on the target is skipped, never copied twice.\n",
			s->job_id);
	}
}

/* --- JSON ----------------------------------------------------------------------------- */

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

void report_json(FILE *out, const struct mh_job_summary *s)
{
	report_json_object(out, s);
	fputc('\n', out);
}

void report_json_object(FILE *out, const struct mh_job_summary *s)
{
	double secs = duration_s(s);

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
		mh_json_str(out, folder_name(s, f->folder_idx));
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
