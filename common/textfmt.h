/* textfmt.h - small formatting helpers for reports: sizes, durations, JSON strings. */
#ifndef MH_TEXTFMT_H
#define MH_TEXTFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "512 B", "1.5 KB", "223.4 MB" (powers of 1000, as disks and quotas are sold). */
void mh_fmt_bytes(char *buf, size_t len, uint64_t bytes);
/* "42.0 s", "3:05", "2:10:00". */
void mh_fmt_duration(char *buf, size_t len, double seconds);
/* An interval as people write it: "30s", "15m", "3h", "1d", "1h30m", "2d6h" (the two
 * largest units; seconds are rounded down to whole ones). */
void mh_fmt_interval(char *buf, size_t len, uint64_t seconds);
/* Unix ms as "2026-12-07T23:27:01Z" (UTC); "-" for 0. */
void mh_fmt_utc(char *buf, size_t len, uint64_t ms);
/* s as a JSON string, quotes included ("null" for NULL). */
void mh_json_str(FILE *out, const char *s);

#endif
