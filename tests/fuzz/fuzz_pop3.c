/* tests/fuzz/fuzz_pop3.c: libFuzzer harness over one whole POP3 session
   (mysmtpd --pop3). The input is what a client sends; session_run() with
   pop3_dialect reads it from a memfd and answers into another, over a
   store where david@test.com's mailbox holds our records of both kinds and
   another program's, some of them with lines POP3 servers got wrong (a lone
   dot, a From line, no final LF). Whatever the input, it checks:
   - the replies: every line ends in CRLF; the first is the +OK greeting;
   - the mailbox after the session: the file is what it was with whole
     records taken out, in order, every kept one octet for octet (a
     deletion never cuts or rewrites mail); unchanged unless the input
     holds a QUIT; it reads back through LIST and GET_MAIL;
   - the store: nothing made beside it; only ADDRESS.txt, .idx and .pop;
   - no descriptor is left open (by LeakSanitizer's view of the fds: each
     session's are closed before the next, or the harness would run out).
   Logins use the cheap hash of fuzz_store.h and no failure delay. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_pop3"
#include "pop3.h"
#include "fuzz_store.h"

#include <stdarg.h>
#include <unistd.h>

static const char planted[] =
	"From john@test.com Thu Jan  9 10:00:00 2025\n"
	"Return-Path: <john@test.com>\nReceived: from test.com (local)\n"
	"\tby h (My_SMTP) with MYSMTP id 1.2.3@h\n\tfor <david@test.com>; today\n"
	"X-MySMTP-UID: 1\nContent-Length: 23\n\n.\n>From quoted\nlast\n\n"
	"From other@mda.example Thu Jan  9 11:00:00 2025\nSubject: foreign\n\nno blank\n"
	"From bob@test.com Thu Jan  9 12:00:00 2025\n"
	"X-MySMTP-Prepended: 100\nContent-Length: 6\nX-MySMTP-UID: 7\n"
	"Return-Path: <bob@test.com>\nReceived: from c (local)\n\tby h (My_SMTP) with SMTP id 4@h\n"
	"Subject: smtp\n\nbody.\n\n"
	"From last@mda.example Thu Jan  9 13:00:00 2025\n\nno final LF";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_store_init();
	return 0;
}

/* The records of the planted mailbox, as its index finds them. */
static uint64_t starts[16], nrecords;

static void index_planted(void)
{
	struct mailbox *mb;
	struct mbentry e[16];

	REQUIRE(store_mailbox_open(&st, "david@test.com", &mb) == 0, "planted mailbox");
	REQUIRE(mb->count < 16 && store_entries(mb, 0, e, mb->count) == 0, "planted index");
	nrecords = mb->count;
	for (uint64_t i = 0; i < nrecords; i++)
		starts[i] = e[i].offset;
	starts[nrecords] = sizeof planted - 1;
	store_mailbox_close(mb);
}

static char *read_mailbox(size_t *len)
{
	int fd = openat(st.dirfd, "david@test.com.txt", O_RDONLY | O_CLOEXEC);
	char *data;

	REQUIRE(fd >= 0, "mailbox gone");
	data = slurp(fd, len);
	close(fd);
	return data;
}

/* The mailbox is the planted one less whole records, in order. */
static void check_mailbox(int quit)
{
	size_t len, at = starts[0];
	char *now = read_mailbox(&len);

	REQUIRE(len >= at && memcmp(now, planted, at) == 0, "what precedes the first message changed");
	for (uint64_t i = 0; i < nrecords; i++) {
		size_t n = (size_t)(starts[i + 1] - starts[i]);

		if (len - at >= n && memcmp(now + at, planted + starts[i], n) == 0)
			at += n;
	}
	REQUIRE(at == len, "the mailbox is not the planted one less whole records");
	REQUIRE(quit || len == sizeof planted - 1, "changed without a QUIT");
	free(now);
}

static void check_replies(const char *out, size_t len)
{
	REQUIRE(len == 0 || strncmp(out, "+OK ", 4) == 0, "no +OK greeting");
	for (size_t i = 0; i < len; i++)
		if (out[i] == '\n')
			REQUIRE(i > 0 && out[i - 1] == '\r', "a line without CRLF at %zu", i);
	REQUIRE(len == 0 || out[len - 1] == '\n', "the output ends inside a line");
}

static void read_back(const char *address, void *ctx)
{
	struct mailbox *mb;
	struct stored_message m;

	(void)ctx;
	REQUIRE(store_mailbox_open(&st, address, &mb) == 0, "mailbox %s", address);
	for (uint64_t id = 1; id <= mb->count; id++)
		REQUIRE(store_message(mb, id, &m) == 0, "message %llu", (unsigned long long)id);
	store_mailbox_close(mb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg = { .max_message = 3000, .max_recipients = 4, .timeout = 10,
			      .max_errors = 20, .max_junk = 100, .max_session = 3600,
			      .hostname = "fuzz.host", .accounts_file = accounts_file };
	struct session_env env = { .peer = size % 2 ? "local" : "192.0.2.1", .log = quiet_log };
	size_t len;
	char *out;

	plant("david@test.com.txt", planted, sizeof planted - 1);
	index_planted();
	env.in_fd = memfd_with(data, size);
	env.out_fd = memfd_create("fuzz-out", MFD_CLOEXEC);
	REQUIRE(env.out_fd >= 0, "memfd_create");
	session_run(&cfg, &st, &env, &pop3_dialect);
	out = slurp(env.out_fd, &len);
	check_replies(out, len);
	check_mailbox(fuzz_holds(data, size, "quit"));
	fuzz_store_walk(read_back, NULL);
	fuzz_store_empty();
	free(out);
	close(env.in_fd);
	close(env.out_fd);
	return 0;
}
