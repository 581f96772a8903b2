/* textfmt.c - formatting helpers for reports (see textfmt.h). */
#include "textfmt.h"

#include <inttypes.h>
#include <time.h>

void mh_fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	const char *units[] = {"B", "KB", "MB", "GB", "TB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

void mh_fmt_duration(char *buf, size_t len, double s)
{
	unsigned long t = (unsigned long)(s + 0.5);

	if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else if (t < 3600)
		snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
	else
		snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
}

void mh_fmt_interval(char *buf, size_t len, uint64_t seconds)
{
	static const struct {
		uint64_t secs;
		char unit;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	size_t o = 0;
	int shown = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && shown < 2; i++) {
		uint64_t n = seconds / units[i].secs;
		if (n == 0) {
			if (shown > 0)
				break; /* "1d" and not "1d0h5m": the two largest units, adjacent */
			continue;
		}
		seconds -= n * units[i].secs;
		o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%" PRIu64 "%c", n, units[i].unit);
		shown++;
		if (o >= len)
			return;
	}
	if (shown == 0)
		snprintf(buf, len, "0s");
}

void mh_fmt_utc(char *buf, size_t len, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mh_json_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}
