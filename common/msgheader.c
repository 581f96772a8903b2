/* msgheader.c - fields of a message header block (see msgheader.h). */
#include "msgheader.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *mh_header_message_id(const char *h, size_t len)
{
	const char *end = h + len, *line = h;

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *next = eol != NULL ? eol + 1 : end;

		if (*line == '\n' || (*line == '\r' && line + 1 < end && line[1] == '\n'))
			break; /* the header block ends: a body may follow (a whole message) */
		if ((size_t)(end - line) > 11 && strncasecmp(line, "message-id:", 11) == 0) {
			char buf[1024];
			size_t o = 0;
			const char *v = line + 11;
			const char *lt, *gt;

			/* the value runs on through continuation lines (leading white space) */
			for (;;) {
				for (; v < next && o + 1 < sizeof(buf); v++)
					if (*v != '\r' && *v != '\n')
						buf[o++] = *v == '\t' ? ' ' : *v;
				if (next >= end || (*next != ' ' && *next != '\t'))
					break;
				v = next;
				eol = memchr(v, '\n', (size_t)(end - v));
				next = eol != NULL ? eol + 1 : end;
			}
			buf[o] = '\0';
			lt = strchr(buf, '<');
			gt = lt != NULL ? strchr(lt, '>') : NULL;
			if (lt != NULL && gt != NULL)
				return strndup(lt, (size_t)(gt - lt + 1));
			/* no angle brackets: the trimmed value, if any */
			{
				char *s = buf, *e = buf + o;
				while (*s == ' ')
					s++;
				while (e > s && e[-1] == ' ')
					e--;
				return e > s ? strndup(s, (size_t)(e - s)) : NULL;
			}
		}
		line = next;
	}
	return NULL;
}

char *mh_header_field(const char *h, size_t len, const char *name)
{
	const char *end = h + len, *line = h;
	size_t nlen = strlen(name);

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *next = eol != NULL ? eol + 1 : end;

		if (*line == '\n' || (*line == '\r' && line + 1 < end && line[1] == '\n'))
			break;
		if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			char buf[1024];
			size_t o = 0;
			const char *v = line + nlen + 1;

			for (;;) { /* the value runs on through continuation lines */
				for (; v < next && o + 1 < sizeof(buf); v++)
					if (*v != '\r' && *v != '\n')
						buf[o++] = *v == '\t' ? ' ' : *v;
				if (next >= end || (*next != ' ' && *next != '\t'))
					break;
				v = next;
				eol = memchr(v, '\n', (size_t)(end - v));
				next = eol != NULL ? eol + 1 : end;
			}
			while (o > 0 && buf[o - 1] == ' ')
				o--;
			buf[o] = '\0';
			v = buf + strspn(buf, " ");
			return *v != '\0' ? strdup(v) : NULL;
		}
		line = next;
	}
	return NULL;
}

char *mh_header_hash_key(const char *h, size_t len, uint64_t size)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *key = malloc(96), last = '\n';
	int o;

	if (ctx == NULL || key == NULL)
		abort();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; i < len; i++) {
		if (h[i] == '\r')
			continue;
		EVP_DigestUpdate(ctx, &h[i], 1);
		if (h[i] == '\n' && last == '\n')
			break; /* the empty line ends the header block (and is part of BODY[HEADER]) */
		last = h[i];
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	o = snprintf(key, 96, "H:%" PRIu64 ":", size);
	for (unsigned i = 0; i < mdlen && o + 3 < 96; i++)
		o += snprintf(key + o, 96 - (size_t)o, "%02x", md[i]);
	return key;
}
