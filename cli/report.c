/* report.c - the live progress line and the end-of-run summary (text and JSON). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "summary_json.h"
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
	double secs = mh_job_summary_duration_s(s);
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
					mh_job_summary_folder(s, s->failures[k].folder_idx), s->failures[k].uid, b1,
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

void report_json(FILE *out, const struct mh_job_summary *s)
{
	mh_summary_json(out, s);
	fputc('\n', out);
}
