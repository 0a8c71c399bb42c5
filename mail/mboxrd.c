/* mboxrd.c: the mboxrd format: From-line quoting, the header block we write,
   and reading back the sender and date of a "From " line. */
#include "mail/mboxrd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* The delivery time as a "From " line wants it and as RFC 5322 does. */
static int format_dates(time_t when, char ctime_line[32], char rfc_date[64])
{
	struct tm tm;

	if (!localtime_r(&when, &tm) ||
	    !strftime(ctime_line, 32, "%a %b %e %H:%M:%S %Y", &tm) ||
	    !strftime(rfc_date, 64, "%a, %d %b %Y %H:%M:%S %z", &tm))
		return -EINVAL;
	return 0;
}

/* snprintf at buf + *len, moving *len on: 0, or -ENOSPC when it would not fit. */
static int append(char *buf, size_t size, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *len)
		return -ENOSPC;
	*len += (size_t)n;
	return 0;
}

/* What the Received line says the message came with. */
static const char *protocol_name(const struct envelope *e)
{
	if (e->kind == RECORD_HEADED)
		return "MYSMTP";
	return e->esmtp ? "ESMTP" : "SMTP";
}

/* The header lines an SMTP record puts after MBOXRD_PREPENDED: length or -ENOSPC. */
static int smtp_prepended(char *buf, size_t size, const struct envelope *e,
			  const char *recipient, uint64_t text_len, uint64_t uid,
			  const char *rfc_date)
{
	size_t len = 0;

	if (append(buf, size, &len,
		   "Content-Length: %llu\n"
		   MBOXRD_UID "%llu\n"
		   "Return-Path: <%s>\n"
		   "Received: from %s (%s)\n"
		   "\tby %s (My_SMTP) with %s id %s\n"
		   "\tfor <%s>; %s\n",
		   (unsigned long long)(text_len - e->body_start), (unsigned long long)uid, e->sender,
		   e->helo, e->peer, e->hostname, protocol_name(e),
		   e->message_id, recipient, rfc_date) < 0 ||
	    (e->add_from && append(buf, size, &len, "From: %s\n", e->sender) < 0) ||
	    (e->add_date && append(buf, size, &len, "Date: %s\n", rfc_date) < 0) ||
	    (e->add_message_id &&
	     append(buf, size, &len, "Message-ID: <%s>\n", e->message_id) < 0) ||
	    (e->body_start == 0 && append(buf, size, &len, "\n") < 0))
		return -ENOSPC;
	return (int)len;
}

/* The header block of an SMTP record: the "From " line, MBOXRD_PREPENDED and
   the lines it counts. */
static int smtp_header(char *buf, size_t size, const struct envelope *e,
		       const char *recipient, uint64_t text_len, uint64_t uid)
{
	char ctime_line[32], rfc_date[64], rest[MBOXRD_HEADER_MAX];
	int len, n;

	if (e->body_start > text_len || format_dates(e->when, ctime_line, rfc_date) < 0)
		return -EINVAL;
	len = smtp_prepended(rest, sizeof rest, e, recipient, text_len, uid, rfc_date);
	if (len < 0)
		return len;
	n = snprintf(buf, size, "From %s %s\n" MBOXRD_PREPENDED "%d\n%s",
		     e->sender[0] ? e->sender : MBOXRD_NULL_SENDER, ctime_line, len, rest);
	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

int mboxrd_header(char *buf, size_t size, const struct envelope *e,
		  const char *recipient, uint64_t text_len, uint64_t uid)
{
	char ctime_line[32], rfc_date[64];
	int n;

	if (e->kind != RECORD_MYSMTP)
		return smtp_header(buf, size, e, recipient, text_len, uid);
	if (format_dates(e->when, ctime_line, rfc_date) < 0)
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
		     MBOXRD_UID "%llu\n"
		     "Content-Length: %llu\n"
		     "\n",
		     e->sender, ctime_line, e->sender, e->helo, e->peer,
		     e->hostname, e->message_id, recipient, rfc_date,
		     e->sender, recipient, rfc_date, e->message_id,
		     (unsigned long long)uid, (unsigned long long)text_len);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

int mboxrd_message_id(char *buf, size_t size, time_t when, unsigned long n, const char *host)
{
	int len = snprintf(buf, size, "%lld.%ld.%lu@%s", (long long)when, (long)getpid(), n, host);

	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
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
	if (n > 0 && n <= FROM_SENDER_MAX) {	/* else "?", and the date all the same */
		for (size_t i = 0; i < n; i++)
			sender[i] = p[i] > ' ' && p[i] < 127 ? p[i] : '?';
		sender[n] = '\0';
	}
	if (sp < end)
		asctime_to_date(sp + 1, end, date);
}
