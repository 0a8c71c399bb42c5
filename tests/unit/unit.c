/* tests/unit/unit.c: unit tests for the parts of mysmtpd that are pure
   functions: the address grammar, the DATA state machine (and its strict
   variant), mboxrd quoting, From-line parsing, the header blocks, the spool,
   and SMTP mode's argument parsing and header-section scan; and the session
   engine serving a tagged toy dialect (engine.c). Prints one line per test
   and "N passed, N failed" last. */
#define _GNU_SOURCE
#include "mail/address.h"
#include "mail/data.h"
#include "mail/mboxrd.h"
#include "mail/rfc5322.h"
#include "mail/smtparg.h"
#include "store/spool.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;
int test_failed;

static void run(const char *name, void (*fn)(void))
{
	test_failed = 0;
	fn();
	printf("%s %s\n", test_failed ? "FAIL" : "ok  ", name);
	if (test_failed)
		failed++;
	else
		passed++;
}

/* A growing buffer that collects output callbacks. */
struct buf {
	char data[65536];
	size_t len;
};

static void buf_out(void *ctx, const char *p, size_t n)
{
	struct buf *b = ctx;

	if (b->len + n <= sizeof b->data) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
}

static int parses(const char *s, size_t len, const char *want)
{
	char out[ADDRESS_MAX + 1];
	int rc = address_parse(s, len, out);

	return want ? rc == 0 && strcmp(out, want) == 0 : rc < 0;
}

static void test_address_valid(void)
{
	char local64[80], domain253[300];

	CHECK(parses("john@test.com", 13, "john@test.com"));
	CHECK(parses("John.Smith+tag_x-y@Sub.Test-1.COM", 33, "john.smith+tag_x-y@sub.test-1.com"));
	CHECK(parses("a@b", 3, "a@b"));
	memset(local64, 'a', 64);
	memcpy(local64 + 64, "@d.com", 7);
	CHECK(parses(local64, 70, local64));
	memcpy(domain253, "x@", 2);
	memset(domain253 + 2, 'a', 253);
	for (int i = 2 + 63; i < 2 + 253; i += 64)
		domain253[i] = '.';		/* labels of 63: 253 octets in all */
	domain253[2 + 253] = '\0';
	CHECK(parses(domain253, 2 + 253, domain253));
}

static void test_address_invalid(void)
{
	static const char *const bad[] = {
		"", "@", "a@", "@b", "a", "a@@b", "a@b@c", "../x@d", "a/b@d", "x@../../t",
		"x@d/e", "a\\b@d", "\"a\"@d", "a b@d", "a@b c", ".a@d", "a.@d", "a..b@d",
		"a@-d.com", "a@d-.com", "a@d..com", "a@.d", "a@d.", "a\t@d", "a\x01@d",
		"caf\xc3\xa9@d", "a@d\x7f", "a%b@d", "a!b@d", "a=b@d", "<a@d>",
	};
	char local65[80], longdomain[300];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(parses(bad[i], strlen(bad[i]), NULL));
	CHECK(parses("a\0b@d", 5, NULL));
	CHECK(parses("ab@d\0", 5, NULL));
	memset(local65, 'a', 65);
	memcpy(local65 + 65, "@d", 3);
	CHECK(parses(local65, 67, NULL));
	memcpy(longdomain, "a@", 2);
	memset(longdomain + 2, 'b', 254);	/* one label of 254 */
	CHECK(parses(longdomain, 256, NULL));
	for (int i = 2 + 63; i < 256; i += 64)
		longdomain[i] = '.';		/* labels fine, 254 in all */
	CHECK(parses(longdomain, 256, NULL));
}

static void test_unbracket(void)
{
	const char *p = "<a@b>";
	size_t len = 5;

	CHECK(address_unbracket(&p, &len) == 0 && len == 3 && memcmp(p, "a@b", 3) == 0);
	p = "a@b";
	len = 3;
	CHECK(address_unbracket(&p, &len) == 0 && len == 3);
	p = "<a@b";
	len = 4;
	CHECK(address_unbracket(&p, &len) < 0);
	p = "a@b>";
	CHECK(address_unbracket(&p, &len) < 0);
	p = "<";
	len = 1;
	CHECK(address_unbracket(&p, &len) < 0);
}

static void test_helo_and_domains(void)
{
	CHECK(helo_id_valid("test.com", 8) == 0);
	CHECK(helo_id_valid("localhost", 9) == 0);
	CHECK(helo_id_valid("[127.0.0.1]", 11) == 0);
	CHECK(helo_id_valid("[IPv6:::1]", 10) == 0);
	CHECK(helo_id_valid("[::1]", 5) < 0);
	CHECK(helo_id_valid("[1.2.3]", 7) < 0);
	CHECK(helo_id_valid("bad_name", 8) < 0);
	CHECK(helo_id_valid("", 0) < 0);
	CHECK(helo_id_valid("a..b", 4) < 0);
	CHECK(address_in_domain("a@test.com", "TEST.com"));
	CHECK(!address_in_domain("a@test.com", "test.co"));
	CHECK(!address_in_domain("a@sub.test.com", "test.com"));
}

/* Feed input to a fresh data_rx in pieces of step octets. */
static size_t feed(const char *in, size_t len, size_t step, struct buf *out,
		   struct data_rx *d, uint64_t max, int strict)
{
	size_t used = 0;

	out->len = 0;
	if (strict)
		data_rx_init_strict(d, max, buf_out, out);
	else
		data_rx_init(d, max, buf_out, out);
	while (used < len && !d->done) {
		size_t n = len - used < step ? len - used : step;

		used += data_rx_feed(d, in + used, n);
	}
	return used;
}

/* strict: 0 lenient framing, 1 strict with no bare LF, 2 strict with one. */
static int data_gives(const char *in, size_t len, const char *want, size_t want_len,
		      size_t want_used, int strict)
{
	struct data_rx d;
	struct buf out;
	static const size_t steps[] = { 1, 2, 3, 7, 100000 };

	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		size_t used = feed(in, len, steps[i], &out, &d, 1 << 20, strict > 0);

		if (!d.done || used != want_used || out.len != want_len ||
		    memcmp(out.data, want, want_len) != 0 || d.bare_lf != (strict == 2))
			return 0;
	}
	return 1;
}

#define DATA_GIVES(in, want, used) \
	data_gives(in, sizeof in - 1, want, sizeof want - 1, used, 0)
#define STRICT_GIVES(in, want, used, bare) \
	data_gives(in, sizeof in - 1, want, sizeof want - 1, used, 1 + (bare))

static void test_data_framing(void)
{
	CHECK(DATA_GIVES(".\r\n", "", 3));
	CHECK(DATA_GIVES(".\n", "", 2));
	CHECK(DATA_GIVES("a\r\nb\n.\r\nNEXT", "a\nb\n", 8));
	CHECK(DATA_GIVES("..x\r\n.\r\n", ".x\n", 8));
	CHECK(DATA_GIVES("..\r\n.\r\n", ".\n", 7));
	CHECK(DATA_GIVES(" .\r\n.\r\n", " .\n", 7));
	CHECK(DATA_GIVES("\0.\r\n.\r\n", "\0.\n", 7));
	CHECK(DATA_GIVES("a\rb\r\n.\r\n", "a\rb\n", 8));
	CHECK(DATA_GIVES("a\r\r\n.\r\n", "a\r\n", 7));
	CHECK(DATA_GIVES(".\r.\r\n.\n", "\r.\n", 7));	/* "\r.\r" never ends a line */
	CHECK(DATA_GIVES("\r.\r\n.\n", "\r.\n", 6));
	CHECK(DATA_GIVES(".x\n.\n", "x\n", 5));
	CHECK(DATA_GIVES("\n.\n", "\n", 3));
	CHECK(DATA_GIVES("x\n.\r\r\n.\n", "x\n\r\n", 8));
}

static void test_data_strict(void)
{
	CHECK(STRICT_GIVES(".\r\n", "", 3, 0));
	CHECK(STRICT_GIVES("a\r\nb\r\n.\r\nNEXT", "a\nb\n", 9, 0));
	CHECK(STRICT_GIVES("..x\r\n.\r\n", ".x\n", 8, 0));
	CHECK(STRICT_GIVES("a\r\r\n.\r\n", "a\r\n", 7, 0));
	/* The smuggling variants are data; only CRLF "." CRLF ends. */
	CHECK(STRICT_GIVES("a\n.\nb\r\n.\r\n", "a\n.\nb\n", 10, 1));
	CHECK(STRICT_GIVES("a\r\n.\nb\r\n.\r\n", "a\n\nb\n", 11, 1));
	CHECK(STRICT_GIVES("a\n.\r\nb\r\n.\r\n", "a\n.\nb\n", 11, 1));
	CHECK(STRICT_GIVES("a\r.\rb\r\n.\r\n", "a\r.\rb\n", 10, 0));
	CHECK(STRICT_GIVES("\r.\r\n.\r\n", "\r.\n", 7, 0));
	CHECK(STRICT_GIVES("\n.\n.\r\n.\r\n", "\n.\n.\n", 9, 1));
}

static void test_data_limits(void)
{
	struct data_rx d;
	struct buf out;
	const char in[] = "12345\n67890\n\0\n.\n";

	feed(in, sizeof in - 1, 4, &out, &d, 8, 0);
	CHECK(d.done);
	CHECK(d.size == 14);
	CHECK(d.has_nul);
	CHECK(out.len == 8);		/* text past the limit is not passed on */
	CHECK(d.lines == 4);
}

static void quote_with(int delta, const char *in, size_t len, size_t step, struct buf *out)
{
	struct from_quoter q;

	out->len = 0;
	from_quoter_init(&q, delta, buf_out, out);
	for (size_t i = 0; i < len; i += step)
		from_quoter_feed(&q, in + i, len - i < step ? len - i : step);
	from_quoter_finish(&q);
}

static void test_from_quoting(void)
{
	const char in[] = "From a\n>From b\n>>From c\nFrom\n>From\nFro\nxFrom d\n>\n>>x\nFrom ";
	const char quoted[] = ">From a\n>>From b\n>>>From c\nFrom\n>From\nFro\nxFrom d\n>\n>>x\n>From ";
	struct buf q, u;

	for (size_t step = 1; step < 9; step++) {
		quote_with(+1, in, sizeof in - 1, step, &q);
		CHECK(q.len == sizeof quoted - 1 && memcmp(q.data, quoted, q.len) == 0);
		quote_with(-1, q.data, q.len, step, &u);
		CHECK(u.len == sizeof in - 1 && memcmp(u.data, in, u.len) == 0);
	}
}

static void test_from_quoting_random(void)
{
	static const char alphabet[] = "From>\n x";
	char in[4096];
	struct buf q, u;

	srand(7);
	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)(rand() % (int)sizeof in);

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
		quote_with(+1, in, len, (size_t)(1 + rand() % 50), &q);
		quote_with(-1, q.data, q.len, (size_t)(1 + rand() % 50), &u);
		CHECK(u.len == len && memcmp(u.data, in, len) == 0);
		for (size_t i = 0; i + 5 <= q.len; i++)
			CHECK(!((i == 0 || q.data[i - 1] == '\n') && memcmp(q.data + i, "From ", 5) == 0));
	}
}

static void test_from_line(void)
{
	char sender[FROM_SENDER_MAX + 1], date[11];
	const char line[] = "From john@test.com Thu Nov  6 16:09:49 2026";
	const char line2[] = "From a@b Sat Aug 15 01:02:03 2025";

	mboxrd_parse_from_line(line, sizeof line - 1, sender, date);
	CHECK(strcmp(sender, "john@test.com") == 0 && strcmp(date, "06-11-2026") == 0);
	mboxrd_parse_from_line(line2, sizeof line2 - 1, sender, date);
	CHECK(strcmp(sender, "a@b") == 0 && strcmp(date, "15-08-2025") == 0);
	mboxrd_parse_from_line("From x", 6, sender, date);
	CHECK(strcmp(sender, "x") == 0 && strcmp(date, "00-00-0000") == 0);
	mboxrd_parse_from_line("Fro", 3, sender, date);
	CHECK(strcmp(sender, "?") == 0);
}

static void test_header(void)
{
	struct envelope e = { .sender = "a@b.c", .helo = "b.c", .peer = "127.0.0.1",
			      .hostname = "h", .message_id = "1.2.3@h", .when = 0 };
	char buf[MBOXRD_HEADER_MAX], sender[FROM_SENDER_MAX + 1], date[11];
	int n = mboxrd_header(buf, sizeof buf, &e, "d@e.f", 42, 1);

	CHECK(n > 0 && buf[n - 1] == '\n' && buf[n - 2] == '\n');
	CHECK(strstr(buf, "\nContent-Length: 42\n") != NULL);
	CHECK(strstr(buf, "\nTo: d@e.f\n") != NULL);
	CHECK(strstr(buf, "\nMessage-ID: <1.2.3@h>\n") != NULL);
	mboxrd_parse_from_line(buf, (size_t)(strchr(buf, '\n') - buf), sender, date);
	CHECK(strcmp(sender, "a@b.c") == 0 && strcmp(date, "00-00-0000") != 0);
	CHECK(mboxrd_header(buf, 40, &e, "d@e.f", 42, 1) < 0);
}

/* The header block of an SMTP-mode record, and what its counts say. */
static void test_smtp_header(void)
{
	struct envelope e = { .sender = "", .helo = "c.example", .peer = "127.0.0.1",
			      .hostname = "h", .message_id = "1.2.3@h", .when = 0,
			      .kind = RECORD_SMTP, .esmtp = 1, .body_start = 10,
			      .add_date = 0, .add_message_id = 1 };
	char buf[MBOXRD_HEADER_MAX], sender[FROM_SENDER_MAX + 1], date[11], *first, *rest;
	int n = mboxrd_header(buf, sizeof buf, &e, "d@e.f", 52, 1);

	CHECK(n > 0 && buf[n - 1] == '\n' && buf[n - 2] != '\n');
	first = strchr(buf, '\n') + 1;
	CHECK(strncmp(first, MBOXRD_PREPENDED, strlen(MBOXRD_PREPENDED)) == 0);
	rest = strchr(first, '\n') + 1;
	CHECK(strtoul(first + strlen(MBOXRD_PREPENDED), NULL, 10) == (unsigned long)(buf + n - rest));
	CHECK(strncmp(rest, "Content-Length: 42\n" MBOXRD_UID "1\nReturn-Path: <>\n", 51) == 0);
	CHECK(strstr(buf, "with ESMTP id 1.2.3@h\n\tfor <d@e.f>; ") != NULL);
	CHECK(strstr(buf, "\nMessage-ID: <1.2.3@h>\n") != NULL && !strstr(buf, "\nDate: "));
	mboxrd_parse_from_line(buf, (size_t)(first - 1 - buf), sender, date);
	CHECK(strcmp(sender, MBOXRD_NULL_SENDER) == 0);
	e.body_start = 0;		/* no header section: ours ends with the blank line */
	e.add_date = 1;
	n = mboxrd_header(buf, sizeof buf, &e, "d@e.f", 52, 1);
	CHECK(n > 0 && buf[n - 1] == '\n' && buf[n - 2] == '\n');
	CHECK(strstr(buf, "\nContent-Length: 52\n") && strstr(buf, "\nDate: "));
	e.body_start = 53;
	CHECK(mboxrd_header(buf, sizeof buf, &e, "d@e.f", 52, 1) < 0);
}

/* Scan text in pieces of step octets, checking it passes through unchanged. */
static void scan(const char *text, size_t step, struct msg_scan *m)
{
	struct buf out = { .len = 0 };
	size_t len = strlen(text);

	msg_scan_init(m, buf_out, &out);
	for (size_t i = 0; i < len; i += step)
		msg_scan_feed(m, text + i, len - i < step ? len - i : step);
	CHECK(out.len == len && memcmp(out.data, text, len) == 0);
}

static void test_msg_scan(void)
{
	struct msg_scan m;

	for (size_t step = 1; step < 8; step++) {
		scan("Subject: a\nDATE: x\n\tmore\n\nbody\n\nMessage-ID: y\n", step, &m);
		CHECK(m.body_start == 26 && m.has_date && !m.has_message_id);
		scan("Message-Id : <x>\nX-Long-Field-Name-Here:1\n\n", step, &m);
		CHECK(m.body_start == 43 && m.has_message_id && !m.has_date);
		scan("\nbody\n", step, &m);
		CHECK(m.body_start == 1 && m.fields == 0);
		scan("Hello David,\n\nDate: x\n", step, &m);
		CHECK(m.body_start == 0 && !m.has_date);
		scan("Subject: only headers\n", step, &m);
		CHECK(m.body_start == 0);
		scan(" continued first\n\n", step, &m);
		CHECK(m.body_start == 0);
		scan(">From x\n\n", step, &m);
		CHECK(m.body_start == 0);
	}
}

/* What makes a My_SMTP text's header section its own (rfc5322_headed). */
static void test_headed(void)
{
	static const struct { const char *text; int headed, from; } cases[] = {
		{ "From: a@b.c\nTo: d@e.f\nSubject: Quarterly numbers\n\nHello\n", 1, 1 },
		{ "subject: x\n\n", 1, 0 },
		{ "MIME-Version: 1.0\nContent-Type: text/plain;\n charset=utf-8\n\nx\n", 1, 0 },
		{ "Message-ID: <1@x>\n\n", 1, 0 },
		{ "X-Mailer: y\nDate: now\n\nbody", 1, 0 },
		{ "PS: call me\n\nthen text\n", 0, 0 },
		{ "X-Only: a\nX-Other: b\n\n", 0, 0 },
		{ "Subject: no empty line after it\n", 0, 0 },
		{ "Subject: x\nnot a header\n\n", 0, 0 },
		{ "\nSubject: after an empty line\n", 0, 0 },
		{ " Subject: a continuation first\n\n", 0, 0 },
		{ "Hello David,\nHope you are doing well.\n", 0, 0 },
		{ "From john Sat Aug 15\n\n", 0, 0 },
		{ "", 0, 0 },
	};

	for (size_t step = 1; step < 6; step++)
		for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
			struct msg_scan m;

			scan(cases[i].text, step, &m);
			CHECK(rfc5322_headed(&m) == cases[i].headed);
			CHECK(!cases[i].headed || m.has_from == cases[i].from);
		}
}

static void test_smtparg(void)
{
	struct smtp_path p;

	CHECK(smtparg_mail("FROM:<>", &p) == 0 && p.address[0] == '\0' && !p.has_size);
	CHECK(smtparg_mail("from:<John.O'Neil+x@Example.COM> SIZE=1000 BODY=8BITMIME", &p) == 0 &&
	      strcmp(p.address, "John.O'Neil+x@Example.COM") == 0 && p.has_size && p.size == 1000);
	CHECK(smtparg_mail("FROM: <a@b.c>", &p) == 0 && strcmp(p.address, "a@b.c") == 0);
	CHECK(smtparg_mail("FROM:a@b.c body=7bit", &p) == 0 && strcmp(p.address, "a@b.c") == 0);
	CHECK(smtparg_mail("FROM:<@r1.x,@r2.x:a@b.c>", &p) == 0 && strcmp(p.address, "a@b.c") == 0);
	CHECK(smtparg_mail("FROM:<a@[127.0.0.1]>", &p) == 0);
	CHECK(smtparg_mail("FROM:<a@b.c> SIZE=99999999999999999999", &p) == 0 &&
	      p.size == UINT64_MAX);
	CHECK(smtparg_mail("FROM:<a@b.c", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("FROM:<a@b.c>SIZE=1", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("FROM:<a@b.c> SIZE=x", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("FROM:<a@b.c> BODY=BINARYMIME", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("TO:<a@b.c>", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("FROM:", &p) == SMTPARG_SYNTAX);
	CHECK(smtparg_mail("FROM:<\"q r\"@b.c>", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_mail("FROM:<a..b@b.c>", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_mail("FROM:<a@b_c>", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_mail("FROM:<a@b.c> FOO=1", &p) == SMTPARG_UNKNOWN_PARAM && strcmp(p.param, "FOO") == 0);
	CHECK(smtparg_rcpt("TO:<David@Test.COM>", "h.example", &p) == 0 &&
	      strcmp(p.address, "david@test.com") == 0);
	CHECK(smtparg_rcpt("To: <Postmaster>", "H.example", &p) == 0 &&
	      strcmp(p.address, "postmaster@h.example") == 0);
	CHECK(smtparg_rcpt("TO:<a=b@c.d>", "h", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_rcpt("TO:<>", "h", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_rcpt("TO:<../x@c.d>", "h", &p) == SMTPARG_BAD_PATH);
	CHECK(smtparg_rcpt("TO:<a@c.d> NOTIFY=NEVER", "h", &p) == SMTPARG_UNKNOWN_PARAM &&
	      strcmp(p.param, "NOTIFY") == 0);
	CHECK(smtparg_rcpt("FROM:<a@c.d>", "h", &p) == SMTPARG_SYNTAX);
}

static void test_spool(void)
{
	char dir[] = "/tmp/mysmtp-unit-XXXXXX";
	struct spool s;
	char chunk[1000], back[200000];
	int dirfd, fd;
	size_t total = 0;

	CHECK(mkdtemp(dir) != NULL);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	spool_init(&s, dirfd);
	for (int i = 0; i < 150; i++) {
		memset(chunk, 'a' + i % 26, sizeof chunk);
		spool_write(&s, chunk, sizeof chunk);
		total += sizeof chunk;
	}
	CHECK(s.error == 0 && s.size == total && s.fd >= 0);
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	CHECK(spool_copy_to(&s, fd) == 0);
	CHECK(pread(fd, back, sizeof back, 0) == (ssize_t)total);
	CHECK(back[0] == 'a' && back[1000] == 'b' && back[total - 1] == 'a' + 149 % 26);
	close(fd);
	spool_reset(&s);
	spool_write(&s, "small", 5);
	CHECK(s.fd < 0 && s.size == 5);
	spool_free(&s);
	close(dirfd);
	rmdir(dir);
}

int main(void)
{
	run("address: valid addresses normalise to lower case", test_address_valid);
	run("address: invalid addresses are refused", test_address_invalid);
	run("address: angle brackets", test_unbracket);
	run("address: HELO ids and domains", test_helo_and_domains);
	run("data: framing, unstuffing, lone CR, split input", test_data_framing);
	run("data: strict framing (SMTP mode), bare LF and smuggling", test_data_strict);
	run("data: size limit and NUL", test_data_limits);
	run("mboxrd: From quoting and unquoting", test_from_quoting);
	run("mboxrd: quoting round-trips random text", test_from_quoting_random);
	run("mboxrd: From line sender and date", test_from_line);
	run("mboxrd: header block", test_header);
	run("mboxrd: SMTP-mode header block and its counts", test_smtp_header);
	run("rfc5322: header section, Date and Message-ID", test_msg_scan);
	run("rfc5322: a My_SMTP text's own header section", test_headed);
	run("smtparg: MAIL FROM and RCPT TO arguments", test_smtparg);
	run("spool: memory, then a temporary file", test_spool);
	run("engine: a tagged dialect with literals and a watched descriptor",
	    test_engine_tagged_dialect);
	run("engine: IDLE, a wait for a line inside a command", test_engine_idle);
	run("engine: octets a transport holds answer before the watched wait",
	    test_engine_held_input);
	run("engine: a literal past the line limit streamed to a sink", test_engine_literal_sink);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
