/* mboxrd.c: the mboxrd format: From-line quoting, the header block we write,
   and reading back the sender and date of a "From " line. */
#include "mboxrd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char from_[] = "From ";
static const char many_gt[] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";

void from_quoter_init(struct from_quoter *q, int delta, mboxrd_out out, void *ctx)
{
	q->delta = delta;
	q->mid_line = 0;
	q->gt = 0;
	q->matched = 0;
	q->out = out;
	q->ctx = ctx;
}

static void put_gt(struct from_quoter *q, uint64_t n)
{
	while (n > 0) {
		size_t k = n < sizeof many_gt - 1 ? (size_t)n : sizeof many_gt - 1;

		q->out(q->ctx, many_gt, k);
		n -= k;
	}
}

/* Emit the held prefix of the line: its '>'s (one more or less when the line
   is a From line) and what matched of "From ". */
static void release_prefix(struct from_quoter *q, int is_from_line)
{
	uint64_t gt = q->gt;

	if (is_from_line && (q->delta > 0 || gt > 0))
		gt += (uint64_t)(int64_t)q->delta;
	put_gt(q, gt);
	q->out(q->ctx, from_, q->matched);
	q->mid_line = 1;
}

void from_quoter_feed(struct from_quoter *q, const char *data, size_t len)
{
	const char *end = data + len;

	while (data < end) {
		if (q->mid_line) {
			const char *lf = memchr(data, '\n', (size_t)(end - data));
			const char *stop = lf ? lf + 1 : end;

			q->out(q->ctx, data, (size_t)(stop - data));
			data = stop;
			if (lf) {
				q->mid_line = 0;
				q->gt = 0;
				q->matched = 0;
			}
		} else if (q->matched == 0 && *data == '>') {
			q->gt++;
			data++;
		} else if (*data == from_[q->matched]) {
			data++;
			if (++q->matched == sizeof from_ - 1)
				release_prefix(q, 1);
		} else {
			release_prefix(q, 0);
		}
	}
}

void from_quoter_finish(struct from_quoter *q)
{
	if (!q->mid_line && (q->gt > 0 || q->matched > 0))
		release_prefix(q, 0);
	q->mid_line = 0;
	q->gt = 0;
	q->matched = 0;
}

int mboxrd_header(char *buf, size_t size, const struct envelope *e,
		  const char *recipient, uint64_t body_len)
{
	char ctime_line[32], rfc_date[64];
	struct tm tm;
	int n;

	if (!localtime_r(&e->when, &tm) ||
	    !strftime(ctime_line, sizeof ctime_line, "%a %b %e %H:%M:%S %Y", &tm) ||
	    !strftime(rfc_date, sizeof rfc_date, "%a, %d %b %Y %H:%M:%S %z", &tm))
		return -EINVAL;
	n = snprintf(buf, size,
		     "From %s %s\n"
		     "Return-Path: <%s>\n"
		     "Received: from %s (%s)\n"
		     "\tby %s (My_SMTP) with MYSMTP id %s\n"
		     "\tfor <%s>; %s\n"
		     "From: %s\n"
		     "To: %s\n"
		     "Date: %s\n"
		     "Message-ID: <%s>\n"
		     "Content-Length: %llu\n"
		     "\n",
		     e->sender, ctime_line, e->sender, e->helo, e->peer,
		     e->hostname, e->message_id, recipient, rfc_date,
		     e->sender, recipient, rfc_date, e->message_id,
		     (unsigned long long)body_len);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

static int month_number(const char *name)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (memcmp(months + 3 * i, name, 3) == 0)
			return i + 1;
	return 0;
}

/* Read a decimal number of 1 to maxdigits digits at *p, moving past it. */
static int read_number(const char **p, const char *end, int maxdigits, unsigned *value)
{
	int digits = 0;

	*value = 0;
	while (*p < end && **p >= '0' && **p <= '9' && digits < maxdigits) {
		*value = *value * 10 + (unsigned)(**p - '0');
		(*p)++;
		digits++;
	}
	return digits > 0 ? 0 : -EINVAL;
}

static void skip_spaces(const char **p, const char *end)
{
	while (*p < end && **p == ' ')
		(*p)++;
}

/* "Www Mmm dd hh:mm:ss yyyy" (asctime) to "dd-mm-yyyy". */
static int asctime_to_date(const char *p, const char *end, char date[11])
{
	unsigned day, year, hms;
	int month;

	if (end - p < 24 || p[3] != ' ' || (month = month_number(p + 4)) == 0)
		return -EINVAL;
	p += 7;
	skip_spaces(&p, end);
	if (read_number(&p, end, 2, &day) < 0 || day < 1 || day > 31)
		return -EINVAL;
	skip_spaces(&p, end);
	for (int i = 0; i < 3; i++)
		if (read_number(&p, end, 2, &hms) < 0 || (i < 2 && (p >= end || *p++ != ':')))
			return -EINVAL;
	skip_spaces(&p, end);
	if (read_number(&p, end, 4, &year) < 0 || year < 1000)
		return -EINVAL;
	snprintf(date, 11, "%02u-%02u-%04u", day % 100, (unsigned)month % 100, year % 10000);
	return 0;
}

void mboxrd_parse_from_line(const char *line, size_t len,
			    char sender[FROM_SENDER_MAX + 1], char date[11])
{
	const char *p = line + 5, *end = line + len, *sp;
	size_t n;

	memcpy(sender, "?", 2);
	memcpy(date, "00-00-0000", 11);
	if (len < 5 || memcmp(line, from_, 5) != 0)
		return;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp)
		sp = end;
	n = (size_t)(sp - p);
	if (n == 0 || n > FROM_SENDER_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		sender[i] = p[i] > ' ' && p[i] < 127 ? p[i] : '?';
	sender[n] = '\0';
	if (sp < end)
		asctime_to_date(sp + 1, end, date);
}
