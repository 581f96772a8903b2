/* msgdate.c - INTERNALDATE from a message's Received or Date header (see msgdate.h). */
#include "msgdate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define FIELD_MAX 2048 /* an unfolded Received or Date value; longer ones are cut */

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct cursor {
	const char *p, *end;
};

/* Skips white space and (nested) comments, CFWS of RFC 5322 section 3.2.2. */
static void skip_cfws(struct cursor *c)
{
	while (c->p < c->end) {
		if (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n') {
			c->p++;
		} else if (*c->p == '(') {
			int depth = 0;
			do {
				if (*c->p == '\\' && c->p + 1 < c->end)
					c->p++;
				else if (*c->p == '(')
					depth++;
				else if (*c->p == ')')
					depth--;
				c->p++;
			} while (c->p < c->end && depth > 0);
		} else {
			break;
		}
	}
}

/* Up to max digits; at least min. */
static int digits(struct cursor *c, int min, int max, int *v_r)
{
	int n = 0, v = 0;

	while (c->p < c->end && n < max && *c->p >= '0' && *c->p <= '9') {
		v = v * 10 + (*c->p - '0');
		c->p++;
		n++;
	}
	if (n < min)
		return -1;
	*v_r = v;
	return n;
}

static int word(struct cursor *c, char *buf, size_t cap)
{
	size_t n = 0;

	while (c->p < c->end && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z'))) {
		if (n + 1 < cap)
			buf[n++] = *c->p;
		c->p++;
	}
	buf[n] = '\0';
	return (int)n;
}

/* Zone in minutes east of UTC. Obsolete names (RFC 5322 section 4.3); the military
 * letters were defined backwards in RFC 822, so they mean "unknown": +0000. */
static int zone(struct cursor *c, int *min_r)
{
	static const struct {
		const char *name;
		int hours;
	} names[] = {{"UT", 0},   {"UTC", 0},  {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4},
		     {"CST", -6}, {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
	char w[8];

	if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
		int sign = *c->p == '-' ? -1 : 1, v;
		c->p++;
		if (digits(c, 4, 4, &v) != 4 || v % 100 > 59)
			return -1;
		*min_r = sign * ((v / 100) * 60 + v % 100);
		return 0;
	}
	if (word(c, w, sizeof(w)) == 0)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(w, names[i].name) == 0) {
			*min_r = names[i].hours * 60;
			return 0;
		}
	}
	if (strlen(w) == 1) {
		*min_r = 0;
		return 0;
	}
	return -1;
}

/* Every field is range-checked by the callers: the result is exactly 26 characters. */
static void format_date(char out[MH_IMAP_DATE_LEN], int day, int mon, int year, int hh, int mm, int ss, int zmin)
{
	char tmp[96];
	int za = zmin < 0 ? -zmin : zmin;

	snprintf(tmp, sizeof(tmp), "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d", day, months[mon], year, hh, mm, ss,
		 zmin < 0 ? '-' : '+', za / 60, za % 60);
	memcpy(out, tmp, MH_IMAP_DATE_LEN - 1);
	out[MH_IMAP_DATE_LEN - 1] = '\0';
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int mh_date_rfc5322_to_imap(const char *s, size_t len, char out[MH_IMAP_DATE_LEN])
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct cursor c = {s, s + len};
	char w[8];
	int day, mon = -1, year, ny, hh, mm, ss = 0, zmin;
	const char *save;

	skip_cfws(&c);
	/* optional day name and comma */
	save = c.p;
	if (word(&c, w, sizeof(w)) > 0) {
		skip_cfws(&c);
		if (c.p >= c.end || *c.p != ',')
			return -1;
		c.p++;
		skip_cfws(&c);
	} else {
		c.p = save;
	}
	if (digits(&c, 1, 2, &day) < 0)
		return -1;
	skip_cfws(&c);
	if (word(&c, w, sizeof(w)) != 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(w, months[i]) == 0)
			mon = i;
	if (mon < 0)
		return -1;
	skip_cfws(&c);
	if ((ny = digits(&c, 2, 4, &year)) < 0)
		return -1;
	if (ny == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ny == 3)
		year += 1900;
	skip_cfws(&c);
	if (digits(&c, 1, 2, &hh) < 0)
		return -1;
	skip_cfws(&c);
	if (c.p >= c.end || *c.p != ':')
		return -1;
	c.p++;
	skip_cfws(&c);
	if (digits(&c, 2, 2, &mm) < 0)
		return -1;
	skip_cfws(&c);
	if (c.p < c.end && *c.p == ':') {
		c.p++;
		skip_cfws(&c);
		if (digits(&c, 2, 2, &ss) < 0)
			return -1;
		skip_cfws(&c);
	}
	if (zone(&c, &zmin) < 0)
		return -1;
	skip_cfws(&c);
	if (c.p != c.end)
		return -1; /* trailing words: not a date */
	/* 60 is a leap second; IMAP date-time allows it */
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap(year)) || year < 1900 || year > 9999 ||
	    hh > 23 || mm > 59 || ss > 60)
		return -1;
	format_date(out, day, mon, year, hh, mm, ss, zmin);
	return 0;
}

/* The unfolded value of the header line at p (which starts with "name:"); sets *next_r
 * to the line after it. */
static size_t unfold(const char *p, const char *end, size_t name_len, char *buf, size_t cap, const char **next_r)
{
	size_t n = 0;

	p += name_len + 1;
	while (p < end) {
		if (*p == '\r' || *p == '\n') {
			const char *q = p;
			if (*q == '\r' && q + 1 < end && q[1] == '\n')
				q++;
			q++;
			p = q;
			if (q < end && (*q == ' ' || *q == '\t'))
				continue; /* a continuation line */
			break;
		}
		if (n + 1 < cap)
			buf[n++] = *p;
		p++;
	}
	buf[n] = '\0';
	*next_r = p;
	return n;
}

static bool line_is(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':';
}

enum mh_date_source mh_header_internaldate(const char *hdr, size_t len, char out[MH_IMAP_DATE_LEN])
{
	const char *p = hdr, *end = hdr + len;
	char value[FIELD_MAX];
	bool have_date = false;
	char date[MH_IMAP_DATE_LEN];

	while (p < end && *p != '\r' && *p != '\n') {
		const char *next;
		if (line_is(p, end, "Received")) {
			size_t n = unfold(p, end, 8, value, sizeof(value), &next);
			char *semi = memrchr(value, ';', n);
			if (semi != NULL &&
			    mh_date_rfc5322_to_imap(semi + 1, n - (size_t)(semi + 1 - value), out) == 0)
				return MH_DATE_RECEIVED;
		} else if (line_is(p, end, "Date") && !have_date) {
			size_t n = unfold(p, end, 4, value, sizeof(value), &next);
			have_date = mh_date_rfc5322_to_imap(value, n, date) == 0;
		} else {
			next = memchr(p, '\n', (size_t)(end - p));
			next = next != NULL ? next + 1 : end;
		}
		p = next;
	}
	if (!have_date)
		return MH_DATE_NONE;
	memcpy(out, date, MH_IMAP_DATE_LEN);
	return MH_DATE_DATE;
}

void mh_imap_date_from_time(time_t t, char out[MH_IMAP_DATE_LEN])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	format_date(out, tm.tm_mday, tm.tm_mon, tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, 0);
}
