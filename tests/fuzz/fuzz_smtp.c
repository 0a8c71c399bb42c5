/* tests/fuzz/fuzz_smtp.c: libFuzzer harness over one whole standard SMTP
   session (mysmtpd -S). The input is what a client sends; session_run() with smtp_dialect
   reads it from a memfd and answers into another, with the store in a fresh
   directory. Whatever the input, it checks:
   - the replies: every line a code 2xx-5xx, then ' ' or '-', printable text,
     CRLF; the lines of a multi-line reply share their code and only the last
     has ' '; the first reply is the 220 greeting and no other is 220; an
     enhanced status code, where there is one, has the reply's class, and
     every reply but the greeting, 354 and the answers to EHLO/HELO has one;
     221 and 421 come last and only as the session's end says;
     "250 2.0.0 Ok: stored as ID" comes right after a 354, with a new ID;
     no 451: the store is sound (tmpfs, no faults, no other locker), so
     every message the session takes is stored;
   - the store: nothing made beside it; in it only ADDRESS.txt and .idx files
     for valid addresses, regular, one link, each mailbox reading back
     through store_list and store_message;
   - the deliveries, exactly: the session logs each accepted MAIL FROM, each
     new RCPT TO and each stored message, and each queued reply is one
     stored message (one to one, in order). The transaction of the k-th
     queued reply had recipients R_k (distinct, at least one, no more than
     -r, no more than its "250 2.1.5" replies). Then every mailbox A holds,
     after what was planted in it, exactly the messages k with A in R_k, in
     order, each once: its Received names A, ID_k, the EHLO/HELO name and
     ESMTP or SMTP; its From line and Return-Path the sender (MAILER-DAEMON
     for <>); its text ends in LF, holds no NUL, and its size as RFC 1870
     counts it (CRLF as two) is within -s; it has our empty line exactly
     when the text has no header section (RFC 5322 fields, then an empty
     line), and our Date and Message-ID exactly when that section lacks one;
   - no descriptor is left open.
   The configuration (limits, -D, a 240-octet host name) and whether the
   store starts with mailboxes not of our making (foreign junk, a record of
   another SMTP-mode server with a long header section, a torn tail, a bad
   index) are picked from the input's length, so one input always runs the
   same way. Seeds: tests/fuzz/seeds-smtp/; words: tests/fuzz/smtp.dict. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_smtp"
#include "mail/address.h"
#include "store/mbindex.h"
#include "store/mboxscan.h"
#include "mail/mboxrd.h"
#include "protocol.h"
#include "smtp.h"
#include "store/store_internal.h"
#include "fuzz_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RCPT_MAX 8		/* the largest -r of the configurations */
#define ID_MAX 400
#define BLOCK_MAX 8192		/* our header lines of one record, and more */

/* What the session said it did, from its log, and what its replies said. */
struct delivery {
	char sender[ADDRESS_MAX + 1];
	char helo[256];
	int esmtp;
	char rcpt[RCPT_MAX][ADDRESS_MAX + 1];
	size_t nrcpt;
	char id[ID_MAX];		/* from the queued reply */
	unsigned rcpt_oks;		/* "250 2.1.5" replies in its transaction */
	unsigned copies;		/* found in the store */
};

struct tally {
	const struct config *cfg;
	char helo[256];
	int esmtp;
	int in_mail;
	struct delivery now;		/* the open transaction */
	struct delivery *d;
	size_t n, cap;
};

static int starts(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

static void copy_word(char *dst, size_t size, const char *src, size_t len)
{
	REQUIRE(len < size, "logged word too long: %.*s", (int)len, src);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void tally_log(void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Every log line is formatted; the few that tell what was accepted are kept. */
static void tally_log(void *ctx, const char *fmt, ...)
{
	struct tally *t = ctx;
	char line[1024];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	len = strlen(line);
	if (starts(line, len, "EHLO received from ") || starts(line, len, "HELO received from ")) {
		t->esmtp = line[0] == 'E';
		copy_word(t->helo, sizeof t->helo, line + 19, len - 19);
		t->in_mail = 0;
	} else if (starts(line, len, "MAIL FROM: <")) {
		REQUIRE(line[len - 1] == '>', "MAIL log %s", line);
		copy_word(t->now.sender, sizeof t->now.sender, line + 12, len - 13);
		memcpy(t->now.helo, t->helo, sizeof t->helo);
		t->now.esmtp = t->esmtp;
		t->now.nrcpt = 0;
		t->in_mail = 1;
	} else if (starts(line, len, "RCPT TO: ")) {
		char parsed[ADDRESS_MAX + 1];
		const char *a = line + 9;

		REQUIRE(t->in_mail, "RCPT accepted outside a transaction");
		REQUIRE(t->now.nrcpt < t->cfg->max_recipients, "more than -r recipients");
		REQUIRE(address_parse(a, len - 9, parsed) == 0 && strcmp(parsed, a) == 0 &&
			strlen(a) <= STORE_ADDRESS_MAX, "recipient %s is no mailbox name", a);
		for (size_t i = 0; i < t->now.nrcpt; i++)
			REQUIRE(strcmp(t->now.rcpt[i], a) != 0, "recipient %s taken twice", a);
		memcpy(t->now.rcpt[t->now.nrcpt++], a, len - 9 + 1);
	} else if (strcmp(line, "DATA received, message stored.") == 0) {
		REQUIRE(t->in_mail && t->now.nrcpt > 0, "a message stored without recipients");
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 8;
			t->d = realloc(t->d, t->cap * sizeof *t->d);
			REQUIRE(t->d, "out of memory");
		}
		t->d[t->n++] = t->now;
	}
	if (starts(line, len, "DATA received"))
		t->in_mail = 0;		/* whatever became of it, the transaction is over */
}

/* "C.SSS.DDD " with C the class of code: 1; no enhanced code: 0; else -1. */
static int enhanced_code(int code, const char *text, size_t len)
{
	size_t i = 2, digits;

	if (len < 2 || text[0] < '0' || text[0] > '9' || text[1] != '.')
		return 0;
	if (text[0] - '0' != code / 100)
		return -1;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++)
			digits++;
		if (digits < 1 || digits > 3 || i >= len || text[i] != (part == 0 ? '.' : ' '))
			return -1;
		i++;
	}
	return 1;
}

/* Walk the replies line by line; fill in the queued IDs of the deliveries. */
static void check_replies(const char *out, size_t len, const struct config *cfg,
			  enum session_end end, struct tally *t)
{
	const char *p = out, *stop = out + len;
	int prev_code = 0, prev_more = 0, prev_354 = 0, last_code = 0;
	unsigned lines = 0, rcpt_oks = 0;
	size_t queued = 0;
	char greeting[400];

	snprintf(greeting, sizeof greeting, "%s ESMTP My_SMTP", cfg->hostname);
	REQUIRE(len > 0, "no greeting");
	while (p < stop) {
		const char *lf = memchr(p, '\n', (size_t)(stop - p)), *text;
		size_t l, tl;
		int code;

		REQUIRE(lf, "output ends without a line end: %.40s", p);
		REQUIRE(lf > p && lf[-1] == '\r', "a line not ending in CRLF at offset %zu",
			(size_t)(p - out));
		l = (size_t)(lf - 1 - p);
		REQUIRE(l >= 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
			p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'),
			"not a reply line: %.*s", (int)(l < 80 ? l : 80), p);
		code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		text = p + 4;
		tl = l - 4;
		for (size_t i = 0; i < tl; i++)
			REQUIRE(text[i] >= ' ' && text[i] < 127, "unprintable octet in %.*s", (int)l, p);
		REQUIRE(last_code != 221 && last_code != 421, "a reply after %d", last_code);
		REQUIRE(code != 451, "451 from a sound store: %.*s", (int)l, p);
		if (lines++ == 0)
			REQUIRE(code == 220 && p[3] == ' ' && tl == strlen(greeting) &&
				memcmp(text, greeting, tl) == 0, "greeting %.*s", (int)l, p);
		else
			REQUIRE(code != 220, "a second 220");
		if (prev_more)
			REQUIRE(code == prev_code, "multi-line reply %d goes on as %d", prev_code, code);
		if (p[3] == '-' || prev_more) {
			REQUIRE(code == 250, "a multi-line %d reply", code);
		} else if (code == 334) {
			REQUIRE(tl == 0, "a 334 challenge other than the empty one of PLAIN: %.*s",
				(int)l, p);
		} else if (code != 220 && code != 354 && !(code == 250 && tl == strlen(cfg->hostname) &&
							     memcmp(text, cfg->hostname, tl) == 0)) {
			REQUIRE(enhanced_code(code, text, tl) == 1, "no enhanced code: %.*s", (int)l, p);
		}
		REQUIRE(enhanced_code(code, text, tl) >= 0, "enhanced code of the wrong class: %.*s",
			(int)l, p);
		if (p[3] == ' ') {
			if (starts(p, l, "250 2.1.0 Ok") && l == 12)
				rcpt_oks = 0;
			else if (starts(p, l, "250 2.1.5 Ok") && l == 12)
				rcpt_oks++;
			else if (starts(p, l, "250 2.0.0 Ok: stored as ")) {
				REQUIRE(prev_354, "queued without a 354 before it");
				REQUIRE(queued < t->n, "more queued replies than messages stored");
				copy_word(t->d[queued].id, ID_MAX, p + 24, l - 24);
				REQUIRE(l > 24, "an empty queue ID");
				for (size_t k = 0; k < queued; k++)
					REQUIRE(strcmp(t->d[k].id, t->d[queued].id) != 0, "queue ID %s twice",
						t->d[k].id);
				t->d[queued].rcpt_oks = rcpt_oks;
				queued++;
			}
			prev_354 = code == 354;
			last_code = code;
		}
		prev_code = code;
		prev_more = p[3] == '-';
		p = lf + 1;
	}
	REQUIRE(!prev_more, "multi-line reply not ended");
	REQUIRE(queued == t->n, "%zu queued replies but %zu messages stored", queued, t->n);
	REQUIRE((end == END_QUIT) == (last_code == 221) && (end == END_ERRORS) == (last_code == 421),
		"session ended %d after a %d", (int)end, last_code);
	for (size_t k = 0; k < t->n; k++)
		REQUIRE(t->d[k].nrcpt >= 1 && t->d[k].nrcpt <= t->d[k].rcpt_oks,
			"message %zu: %zu recipients, %u accepted", k + 1, t->d[k].nrcpt,
			t->d[k].rcpt_oks);
}

/* Offset just past the empty line ending the header section that text
   starts with (RFC 5322 fields: a name of octets 33-126 but ':', blanks,
   ':'; continuation lines after a field), or 0 when it has none. Sets
   *date and *mid when the section has those fields. */
static size_t header_section(const char *text, size_t len, int *date, int *mid)
{
	size_t pos = 0, fields = 0;

	*date = *mid = 0;
	while (pos < len) {
		const char *lf = memchr(text + pos, '\n', len - pos);
		size_t end, name = pos;

		if (!lf)
			return 0;
		end = (size_t)(lf - text);
		if (end == pos)
			return pos + 1;
		if (text[pos] == ' ' || text[pos] == '\t') {
			if (fields == 0)
				return 0;
		} else {
			size_t i = pos, nlen;

			while (i < end && text[i] > ' ' && text[i] < 127 && text[i] != ':')
				i++;
			nlen = i - name;
			while (i < end && (text[i] == ' ' || text[i] == '\t'))
				i++;
			if (nlen == 0 || i >= end || text[i] != ':')
				return 0;
			fields++;
			*date |= nlen == 4 && strncasecmp(text + name, "date", 4) == 0;
			*mid |= nlen == 10 && strncasecmp(text + name, "message-id", 10) == 0;
		}
		pos = end + 1;
	}
	return 0;
}

struct text {
	char *buf;
	size_t len, cap;
};

static void collect(void *ctx, const char *data, size_t len)
{
	struct text *t = ctx;

	if (len == 0)
		return;
	if (t->len + len > t->cap) {
		t->cap = (t->len + len) * 2;
		t->buf = realloc(t->buf, t->cap);
		REQUIRE(t->buf, "out of memory");
	}
	memcpy(t->buf + t->len, data, len);
	t->len += len;
}

/* Take the line "PREFIX...\n" at *p: its rest (without the LF) and length. */
static int take_line(const char **p, const char *end, const char *prefix, const char **rest,
		     size_t *rlen)
{
	const char *lf = memchr(*p, '\n', (size_t)(end - *p));

	if (!lf || !starts(*p, (size_t)(lf - *p), prefix))
		return 0;
	*rest = *p + strlen(prefix);
	*rlen = (size_t)(lf - *rest);
	*p = lf + 1;
	return 1;
}

/* Message id of mailbox (address), the k-th delivery: our header lines and
   its text are what that delivery says. */
static void check_record(struct mailbox *mb, const char *address, uint64_t id,
			 const struct stored_message *m, const struct delivery *d,
			 const struct config *cfg)
{
	char block[BLOCK_MAX], expect[1024];
	const char *p = block, *end, *r;
	struct mbox_head h;
	struct text text = { 0 };
	uint64_t start, stop;
	size_t rl, blen, lfs = 0;
	int date, mid, has_section, own_blank, added_date = 0, added_mid = 0;

	REQUIRE(mbindex_locate(&mb->ix, id, &start, &stop) == 0, "locate %s %llu", address,
		(unsigned long long)id);
	REQUIRE(mbox_read_head(mb->fd, start, stop, &h) == HEAD_WHOLE && h.prepended,
		"%s %llu is not a whole SMTP-mode record", address, (unsigned long long)id);
	REQUIRE(h.body_start + h.length + 1 == stop, "%s %llu: Content-Length %llu is wrong",
		address, (unsigned long long)id, (unsigned long long)h.length);
	REQUIRE(h.text_start > start && h.text_start - start <= sizeof block &&
		m->text_start == h.text_start, "%s %llu: X-MySMTP-Prepended", address,
		(unsigned long long)id);
	blen = (size_t)(h.text_start - start);
	REQUIRE(pread(mb->fd, block, blen, (off_t)start) == (ssize_t)blen, "read %s", address);
	end = block + blen;

	snprintf(expect, sizeof expect, "From %s ", d->sender[0] ? d->sender : MBOXRD_NULL_SENDER);
	REQUIRE(take_line(&p, end, expect, &r, &rl) && rl == 24, "%s %llu: From line", address,
		(unsigned long long)id);
	REQUIRE(strcmp(m->sender, d->sender[0] ? d->sender : MBOXRD_NULL_SENDER) == 0 &&
		strcmp(m->date, "00-00-0000") != 0, "%s %llu: LIST shows %s %s", address,
		(unsigned long long)id, m->sender, m->date);
	REQUIRE(take_line(&p, end, MBOXRD_PREPENDED, &r, &rl) &&
		take_line(&p, end, "Content-Length: ", &r, &rl) &&
		take_line(&p, end, MBOXRD_UID, &r, &rl) && rl > 0 && rl <= 18 &&
		strspn(r, "0123456789") == rl && strtoull(r, NULL, 10) == h.uid && h.uid > 0,
		"%s %llu: first lines", address, (unsigned long long)id);
	snprintf(expect, sizeof expect, "Return-Path: <%s>", d->sender);
	REQUIRE(take_line(&p, end, expect, &r, &rl) && rl == 0, "%s %llu: Return-Path", address,
		(unsigned long long)id);
	snprintf(expect, sizeof expect, "Received: from %s (local)", d->helo);
	REQUIRE(take_line(&p, end, expect, &r, &rl) && rl == 0, "%s %llu: Received from", address,
		(unsigned long long)id);
	snprintf(expect, sizeof expect, "\tby %s (My_SMTP) with %s id %s", cfg->hostname,
		 d->esmtp ? "ESMTP" : "SMTP", d->id);
	REQUIRE(take_line(&p, end, expect, &r, &rl) && rl == 0, "%s %llu: Received by/id (for %s)",
		address, (unsigned long long)id, d->id);
	snprintf(expect, sizeof expect, "\tfor <%s>; ", address);
	REQUIRE(take_line(&p, end, expect, &r, &rl), "%s %llu: Received for", address,
		(unsigned long long)id);
	if (take_line(&p, end, "Date: ", &r, &rl))
		added_date = 1;
	snprintf(expect, sizeof expect, "Message-ID: <%s>", d->id);
	if (take_line(&p, end, expect, &r, &rl)) {
		REQUIRE(rl == 0, "%s %llu: Message-ID", address, (unsigned long long)id);
		added_mid = 1;
	}
	own_blank = p < end && *p == '\n';
	p += own_blank;
	REQUIRE(p == end, "%s %llu: stray header lines: %.*s", address, (unsigned long long)id,
		(int)(end - p), p);

	REQUIRE(store_message_text(mb, m, collect, &text) == 0, "text of %s %llu", address,
		(unsigned long long)id);
	REQUIRE(text.len == 0 || text.buf[text.len - 1] == '\n', "%s %llu: text without a last LF",
		address, (unsigned long long)id);
	REQUIRE(text.len == 0 || !memchr(text.buf, '\0', text.len), "%s %llu: NUL in the text",
		address, (unsigned long long)id);
	for (size_t i = 0; i < text.len; i++)
		lfs += text.buf[i] == '\n';
	REQUIRE(text.len + lfs <= cfg->max_message, "%s %llu: %zu octets over -s %llu", address,
		(unsigned long long)id, text.len + lfs, (unsigned long long)cfg->max_message);
	has_section = header_section(text.buf, text.len, &date, &mid) > 0;
	REQUIRE(has_section != own_blank, "%s %llu: header section %d but our empty line %d",
		address, (unsigned long long)id, has_section, own_blank);
	REQUIRE(added_date == !(has_section && date) && added_mid == !(has_section && mid),
		"%s %llu: Date added %d, Message-ID added %d, the message's own %d %d", address,
		(unsigned long long)id, added_date, added_mid, has_section && date,
		has_section && mid);
	free(text.buf);
}

/* The mailboxes planted for a third of the inputs, and how many messages
   the store lists in each (measured once, at start). */
static char planted[4096];
static size_t planted_len;
static const char *const planted_names[] = { "b@test.com", "c@test.com" };
static uint64_t planted_count;
static char planted_senders[8][FROM_SENDER_MAX + 1];

static uint64_t foreign_in(const char *address, int was_planted)
{
	if (!was_planted)
		return 0;
	for (size_t i = 0; i < sizeof planted_names / sizeof *planted_names; i++)
		if (strcmp(address, planted_names[i]) == 0)
			return planted_count;
	return 0;
}

/* The mailbox of address: what was planted, then exactly the deliveries to
   it, in order. */
static uint64_t check_mailbox(const char *address, int was_planted, struct tally *t,
			      const struct config *cfg)
{
	struct mailbox *mb;
	struct stored_message m;
	uint64_t foreign = foreign_in(address, was_planted), id;
	size_t k = 0;
	int rc = store_mailbox_open(&st, address, &mb);

	REQUIRE(rc == 0, "mailbox %s does not open: %s", address, strerror(-rc));
	REQUIRE(mb->count >= foreign, "%s: planted messages lost", address);
	for (id = 1; id <= mb->count; id++) {
		REQUIRE(store_message(mb, id, &m) == 0, "GET_MAIL %s %llu", address,
			(unsigned long long)id);
		if (id <= foreign) {
			REQUIRE(strcmp(m.sender, planted_senders[id - 1]) == 0, "%s: planted %llu changed",
				address, (unsigned long long)id);
			continue;
		}
		for (; k < t->n; k++) {
			size_t i = 0;

			while (i < t->d[k].nrcpt && strcmp(t->d[k].rcpt[i], address) != 0)
				i++;
			if (i < t->d[k].nrcpt)
				break;
		}
		REQUIRE(k < t->n, "%s %llu: a message no queued reply was for", address,
			(unsigned long long)id);
		check_record(mb, address, id, &m, &t->d[k], cfg);
		t->d[k++].copies++;
	}
	REQUIRE(store_message(mb, mb->count + 1, &m) == -ENOENT, "id past the end");
	store_mailbox_close(mb);
	return id - 1;		/* the messages read */
}

static int list_each(void *ctx, uint64_t id, const char *sender, const char *date)
{
	uint64_t *count = ctx;

	REQUIRE(id == *count + 1 && sender[0] && strlen(date) == 10, "LIST order");
	(*count)++;
	return 0;
}

/* LIST agrees with the index. */
static void check_list(const char *address)
{
	struct mailbox *mb;
	uint64_t count = 0;

	REQUIRE(store_mailbox_open(&st, address, &mb) == 0, "mailbox %s", address);
	REQUIRE(store_list(mb, list_each, &count) == 0 && count == mb->count, "LIST %s", address);
	store_mailbox_close(mb);
}

/* Only "mailbox" beside the store; in it, only NAME.txt and NAME.idx for
   valid addresses, regular files with one link, each mailbox holding what
   was planted and then what was delivered to it. Empties the store. */
struct walk {
	int was_planted;
	struct tally *t;
	const struct config *cfg;
};

static void check_one(const char *address, void *ctx)
{
	struct walk *w = ctx;

	check_mailbox(address, w->was_planted, w->t, w->cfg);
	check_list(address);
}

static void check_and_empty_store(int was_planted, struct tally *t, const struct config *cfg)
{
	struct walk w = { was_planted, t, cfg };

	fuzz_store_walk(check_one, &w);
	for (size_t k = 0; k < t->n; k++)
		REQUIRE(t->d[k].copies == t->d[k].nrcpt, "message %s: %u copies for %zu recipients",
			t->d[k].id, t->d[k].copies, t->d[k].nrcpt);
	fuzz_store_empty();
}

/* b@test.com with no index, c@test.com with a bad one. */
static void plant_mailboxes(void)
{
	plant("b@test.com.txt", planted, planted_len);
	plant("c@test.com.txt", planted, planted_len);
	plant("c@test.com.idx", "MYSMTPX1 but not an index at all, forty octets and more", 56);
}

static int note_sender(void *ctx, uint64_t id, const char *sender, const char *date)
{
	(void)ctx;
	(void)date;
	if (id > sizeof planted_senders / sizeof *planted_senders)
		return -E2BIG;
	snprintf(planted_senders[id - 1], sizeof planted_senders[0], "%s", sender);
	return 0;
}

/* A mailbox not all of our making: a whole message, foreign junk, another,
   a record of an SMTP-mode server whose header section is longer than the
   index reads at once (and has a Content-Length of its own), a torn last
   record of ours (only ours may be cut). How many of them the store lists is measured here, once. */
static void make_planted(void)
{
	static const char head[] =
		"From alice@test.com Mon Jan  6 12:00:00 2025\n"
		"From: alice@test.com\nContent-Length: 6\n\nhello\n\n"
		"junk that is not a message\n\n"
		"From bob@test.com Tue Jan  7 12:00:00 2025\n"
		"Return-Path: <bob@test.com>\n\n>From quoted\n.dot\n\n"
		"From MAILER-DAEMON Wed Jan  8 12:00:00 2025\n"
		MBOXRD_PREPENDED "18\nContent-Length: 5\n"
		"Subject: long\nContent-Length: 99999\nX-Long: ";
	static const char tail[] =
		"\n\nbody\n\n"
		"From carol@test.com Thu Jan  9 12:00:00 2025\n"
		"Return-Path: <carol@test.com>\nReceived: from x (local)\n"
		"\tby h (My_SMTP) with MYSMTP id 1.2.3@h\n\tfor <b@test.com>; today\n"
		"Content-Length: 999\n\ntorn";
	struct mailbox *mb;
	size_t len = sizeof head - 1;

	memcpy(planted, head, len);
	memset(planted + len, 'l', 2500);
	len += 2500;
	memcpy(planted + len, tail, sizeof tail - 1);
	planted_len = len + sizeof tail - 1;
	plant("b@test.com.txt", planted, planted_len);
	REQUIRE(store_mailbox_open(&st, "b@test.com", &mb) == 0 &&
		store_list(mb, note_sender, NULL) == 0, "the planted mailbox does not read");
	planted_count = mb->count;
	store_mailbox_close(mb);
	REQUIRE(planted_count == 3, "the planted mailbox lists %llu messages",
		(unsigned long long)planted_count);
	unlinkat(st.dirfd, "b@test.com.txt", 0);
	unlinkat(st.dirfd, "b@test.com.idx", 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_store_init();
	make_planted();
	return 0;
}

static const char *const served[] = { "test.com", "example.org" };

/* 240 octets: postmaster@ it is 251, the longest address a mailbox file takes. */
static const char long_host[] =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."
	"test.host.example.org.fuzz.test.host.example.org";

/* The session's settings, picked by the input's length. */
static void pick_config(struct config *cfg, size_t size)
{
	*cfg = (struct config){ .max_message = 3000, .max_recipients = 4, .timeout = 10,
				.max_errors = 20, .max_junk = 100, .max_session = 3600,
				.hostname = "fuzz.host", .bare_lf_reject = size % 2 };
	if (size % 5 == 4)	/* accounts on, logins failing without their delay */
		cfg->accounts_file = accounts_file;
	switch (size % 4) {
	case 1: cfg->domains = served; cfg->ndomains = 2; cfg->max_recipients = 2; break;
	case 2: cfg->max_message = 40; cfg->max_errors = 3; break;
	case 3: cfg->hostname = long_host; cfg->max_message = 100000;
		cfg->max_recipients = RCPT_MAX; break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct tally t = { 0 };
	struct session_env env = { .peer = "local", .log = tally_log, .log_ctx = &t };
	enum session_end end;
	int was_planted = size % 3 == 0, free_fd = dup(parent_fd), fd;
	size_t len;
	char *out;

	close(free_fd);
	pick_config(&cfg, size);
	t.cfg = &cfg;
	if (was_planted)
		plant_mailboxes();
	env.in_fd = memfd_with(data, size);
	env.out_fd = memfd_create("fuzz-out", MFD_CLOEXEC);
	REQUIRE(env.out_fd >= 0, "memfd_create");
	end = session_run(&cfg, &st, &env, &smtp_dialect);
	REQUIRE(end == END_QUIT || end == END_EOF || end == END_ERRORS, "session ended %d", (int)end);
	out = slurp(env.out_fd, &len);
	check_replies(out, len, &cfg, end, &t);
	check_and_empty_store(was_planted, &t, &cfg);
	free(out);
	free(t.d);
	close(env.in_fd);
	close(env.out_fd);
	fd = dup(parent_fd);
	close(fd);
	REQUIRE(fd == free_fd, "a descriptor left open (the lowest free is %d, was %d)", fd, free_fd);
	return 0;
}
