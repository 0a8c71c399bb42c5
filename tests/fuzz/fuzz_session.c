/* tests/fuzz/fuzz_session.c: libFuzzer harness over one whole session. The
   input is what a client sends; session_run() reads it from a memfd and
   answers into another, with the store in a fresh directory. It checks what
   the contract promises whatever the input: every reply line starts with one
   of the five codes (and its word), every line ends with CRLF, multi-line
   replies are dot-stuffed and closed by "."; nothing is made outside the
   store, the store holds only mailbox files with valid names (regular, one
   link), each of which reads back through LIST and GET_MAIL.
   The configuration (limits, domain rules), and whether the store starts
   with mailboxes not of our making, are picked from the input's length, so
   one input always runs the same way and the mutator reaches them all. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_session"
#include "mail/address.h"
#include "protocol.h"
#include "store/store_internal.h"
#include "fuzz_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_store_init();
	return 0;
}

static int is_reply(const char *line, size_t len)
{
	static const char *const words[] = { "200", NULL, "400", "ERR", "401", "NOT FOUND",
					     "403", "FORBIDDEN", "500", "SERVER ERROR" };

	if (len < 4 || line[3] != ' ')
		return 0;
	for (size_t i = 0; i < sizeof words / sizeof *words; i += 2) {
		size_t w = words[i + 1] ? strlen(words[i + 1]) : 0;

		if (memcmp(line, words[i], 3) != 0)
			continue;
		return w == 0 || (len >= 4 + w && memcmp(line + 4, words[i + 1], w) == 0 &&
				  (len == 4 + w || line[4 + w] == ' '));
	}
	return 0;
}

static int starts(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(line, prefix, n) == 0;
}

/* "N: Email from S (DD-MM-YYYY)" */
static int is_list_line(const char *line, size_t len)
{
	size_t digits = 0;

	while (digits < len && line[digits] >= '0' && line[digits] <= '9')
		digits++;
	return digits > 0 && starts(line + digits, len - digits, ": Email from ") &&
	       len > 12 && line[len - 1] == ')' && line[len - 12] == '(';
}

enum block { NONE, LIST_BLOCK, MAIL_BLOCK };

/* Walk the replies line by line. A "200 OK" followed by "From: " opens a
   GET_MAIL block, by "N: Email from" or "." a LIST block; both end at ".". */
static unsigned check_replies(const char *out, size_t len)
{
	enum block in = NONE;
	unsigned stored = 0, n = 0;
	const char *p = out, *end = out + len;
	int after_ok = 0;

	REQUIRE(len > 0, "no greeting");
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t l;

		REQUIRE(lf, "output ends without a line end: %.40s", p);
		REQUIRE(lf > p && lf[-1] == '\r', "a line not ending in CRLF at offset %zu", (size_t)(p - out));
		l = (size_t)(lf - 1 - p);
		if (n++ == 0)
			REQUIRE(starts(p, l, "200 ") && l >= 18 &&
				memcmp(p + l - 14, " My_SMTP ready", 14) == 0, "greeting %.*s", (int)l, p);
		if (in == NONE && after_ok && (starts(p, l, "From: ") || is_list_line(p, l) ||
					       (l == 1 && p[0] == '.'))) {
			in = starts(p, l, "From: ") ? MAIL_BLOCK : LIST_BLOCK;
		}
		if (in != NONE) {
			if (l == 1 && p[0] == '.')
				in = NONE;
			else if (in == LIST_BLOCK)
				REQUIRE(is_list_line(p, l), "bad LIST line %.*s", (int)l, p);
			else
				REQUIRE(l == 0 || p[0] != '.' || (l >= 2 && p[1] == '.'),
					"content line with a single leading dot");
			after_ok = 0;
		} else {
			REQUIRE(is_reply(p, l), "reply without a code: %.*s", (int)(l < 80 ? l : 80), p);
			after_ok = l == 6 && memcmp(p, "200 OK", 6) == 0;
			stored += l == 31 && memcmp(p, "200 Message stored successfully", 31) == 0;
		}
		p = lf + 1;
	}
	REQUIRE(in == NONE, "multi-line reply not closed by '.'");
	return stored;
}

static int list_each(void *ctx, uint64_t id, const char *sender, const char *date)
{
	uint64_t *count = ctx;

	REQUIRE(id == *count + 1 && sender[0] && strlen(date) == 10, "LIST order");
	(*count)++;
	return 0;
}

static void sink(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
}

/* The mailbox of address reads back whole: every listed message opens. */
static uint64_t check_mailbox(const char *address)
{
	struct mailbox *mb;
	struct stored_message m;
	uint64_t count = 0;
	int rc = store_mailbox_open(&st, address, &mb);

	if (rc == -ENOENT)	/* a file that holds nothing: DELETE took every message */
		return 0;
	REQUIRE(rc == 0, "mailbox %s does not open: %s", address, strerror(-rc));
	REQUIRE(store_list(mb, list_each, &count) == 0 && count == mb->count, "LIST %s", address);
	for (uint64_t id = 1; id <= count; id++) {
		REQUIRE(store_message(mb, id, &m) == 0, "GET_MAIL %s %llu", address,
			(unsigned long long)id);
		REQUIRE(store_message_text(mb, &m, sink, NULL) == 0, "text of %s %llu", address,
			(unsigned long long)id);
	}
	REQUIRE(store_message(mb, count + 1, &m) == -ENOENT, "id past the end");
	store_mailbox_close(mb);
	return count;
}

/* Only "mailbox" beside the store; in it, only NAME.txt and NAME.idx for
   valid addresses, regular files with one link. Empties the store. */
static int only_accounts;	/* accounts on and nothing planted: mailboxes only of accounts */

static void count_mailbox(const char *address, void *messages)
{
	REQUIRE(!only_accounts || strcmp(address, "david@test.com") == 0 ||
		strcmp(address, "john@test.com") == 0, "a mailbox %s without an account", address);
	*(uint64_t *)messages += check_mailbox(address);
}

static uint64_t check_and_empty_store(void)
{
	uint64_t messages = 0;

	fuzz_store_walk(count_mailbox, &messages);
	fuzz_store_empty();
	return messages;
}

/* A mailbox not all of our making: whole messages, foreign junk between
   them, a torn last record of ours; planted (for a third of the inputs) as the
   seed's david@test.com with no index, and as b@test.com with a bad one, so
   sessions also run the index's repair paths. */
static const char planted[] =
	"From alice@test.com Mon Jan  6 12:00:00 2025\n"
	"From: alice@test.com\nContent-Length: 6\n\nhello\n\n"
	"junk that is not a message\n\n"
	"From bob@test.com Tue Jan  7 12:00:00 2025\n"
	"Return-Path: <bob@test.com>\n\n>From quoted\n.dot\n\n"
	"From carol@test.com Thu Jan  9 12:00:00 2025\n"
	"Return-Path: <carol@test.com>\nReceived: from x (local)\n"
	"\tby h (My_SMTP) with MYSMTP id 1.2.3@h\n\tfor <b@test.com>; today\n"
	"Content-Length: 999\n\ntorn";

static void plant_mailboxes(void)
{
	plant("david@test.com.txt", planted, sizeof planted - 1);
	plant("b@test.com.txt", planted, sizeof planted - 1);
	plant("b@test.com.idx", "MYSMTPX1 but not an index at all, forty octets and more", 56);
}

static const char *const served[] = { "test.com", "example.org" };

/* The session's settings, picked by the input's length. */
static void pick_config(struct config *cfg, size_t size)
{
	*cfg = (struct config){ .max_message = 3000, .max_recipients = 4, .timeout = 10,
				.max_errors = 20, .max_junk = 100, .max_session = 3600,
				.hostname = "fuzz.host", .open_delete = 1 };
	if (size % 5 == 4)	/* accounts on, logins failing without their delay */
		cfg->accounts_file = accounts_file;
	switch (size % 4) {
	case 1: cfg->any_domain = 1; break;
	case 2: cfg->domains = served; cfg->ndomains = 2; cfg->max_recipients = 2; break;
	case 3: cfg->max_message = 40; cfg->max_errors = 3; break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct session_env env = { .peer = "local", .log = quiet_log };
	enum session_end end;
	unsigned stored;
	uint64_t messages;
	size_t len;
	char *out;

	pick_config(&cfg, size);
	only_accounts = cfg.accounts_file && size % 3 != 0;
	if (size % 3 == 0)
		plant_mailboxes();
	env.in_fd = memfd_with(data, size);
	env.out_fd = memfd_create("fuzz-out", MFD_CLOEXEC);
	REQUIRE(env.out_fd >= 0, "memfd_create");
	end = session_run(&cfg, &st, &env, &mysmtp_dialect);
	REQUIRE(end == END_QUIT || end == END_EOF || end == END_ERRORS, "session ended %d", (int)end);
	out = slurp(env.out_fd, &len);
	stored = check_replies(out, len);
	messages = check_and_empty_store();
	REQUIRE(messages >= stored || fuzz_holds(data, size, "delete"),	/* DELETE takes some */
		"%u stored replies but %llu messages", stored, (unsigned long long)messages);
	REQUIRE(stored > 0 || messages == 0 || size % 3 == 0, "messages without a stored reply");
	free(out);
	close(env.in_fd);
	close(env.out_fd);
	return 0;
}
