/* tests/fuzz/fuzz_address.c: libFuzzer harness over an address argument as
   MAIL FROM, RCPT TO, LIST and GET_MAIL take it, through to the mailbox file.
   Whatever the input, a valid address holds only a-z 0-9 . _ + - and one
   '@', is not "." or "..", parses again to itself, and a delivery to it makes
   exactly NAME.txt and NAME.idx inside the store and nothing anywhere else
   (or, when NAME.txt is longer than a file name may be, fails and makes
   nothing). HELO ids and domains are parsed too, for crashes. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_address"
#include "mail/address.h"
#include "store/store_internal.h"
#include "fuzz_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_store_init();
	return 0;
}

static void check_octets(const char *a)
{
	size_t len = strlen(a), ats = 0;

	REQUIRE(len >= 3 && len <= ADDRESS_MAX, "length %zu", len);
	REQUIRE(strcmp(a, ".") && strcmp(a, ".."), "dot name");
	REQUIRE(a[0] != '.' && a[0] != '@', "leading %c", a[0]);
	for (size_t i = 0; i < len; i++) {
		char c = a[i];

		ats += c == '@';
		REQUIRE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			c == '_' || c == '+' || c == '-' || c == '@', "octet 0x%02x in %s",
			(unsigned char)c, a);
	}
	REQUIRE(ats == 1, "%zu '@' in %s", ats, a);
}

/* The store directory holds exactly the names given (NULL-ended), and its
   parent nothing but the store. */
static void check_dir(const char *const *names)
{
	DIR *d = fdopendir(dup(parent_fd));
	struct dirent *e;
	size_t want = 0, seen = 0;

	REQUIRE(d, "opendir parent");
	while ((e = readdir(d)))
		REQUIRE(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
			!strcmp(e->d_name, "mailbox"), "made outside the store: %s", e->d_name);
	closedir(d);
	while (names[want])
		want++;
	d = fdopendir(dup(st.dirfd));
	REQUIRE(d, "opendir store");
	rewinddir(d);
	while ((e = readdir(d))) {
		int known = 0;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		for (size_t i = 0; i < want; i++)
			known |= !strcmp(names[i], e->d_name);
		REQUIRE(known, "unexpected file in the store: %s", e->d_name);
		seen++;
	}
	closedir(d);
	REQUIRE(seen == want, "%zu of %zu files made", seen, want);
}

/* Deliver an empty message to address and see where it lands. */
static void deliver_to(const char *address)
{
	char txt[ADDRESS_MAX + 8], idx[ADDRESS_MAX + 8];
	const char *names[3] = { txt, idx, NULL }, *none[1] = { NULL };
	const char *rcpt[1] = { address };
	struct envelope e = { .sender = "fuzz@test.com", .helo = "test.com", .peer = "local",
			      .hostname = "fuzz.host", .message_id = "1@fuzz.host", .when = 0 };
	struct spool text;
	struct mailbox *mb;
	int rc;

	snprintf(txt, sizeof txt, "%s.txt", address);
	snprintf(idx, sizeof idx, "%s.idx", address);
	spool_init(&text, st.dirfd);
	rc = store_deliver(&st, &e, &text, rcpt, 1);
	if (strlen(txt) > NAME_MAX) {
		REQUIRE(rc == -ENAMETOOLONG, "delivery to an over-long name: %d", rc);
		check_dir(none);
		return;
	}
	REQUIRE(rc == 0, "delivery to %s: %s", address, strerror(-rc));
	check_dir(names);
	REQUIRE(store_mailbox_open(&st, address, &mb) == 0 && mb->count == 1, "read back %s", address);
	store_mailbox_close(mb);
	unlinkat(st.dirfd, txt, 0);
	unlinkat(st.dirfd, idx, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char address[ADDRESS_MAX + 1], again[ADDRESS_MAX + 1];
	const char *text = (const char *)data;
	size_t len = size;
	const char *at;

	(void)helo_id_valid(text, size);
	(void)domain_valid(text, size);
	if (address_unbracket(&text, &len) < 0 || address_parse(text, len, address) < 0)
		return 0;
	REQUIRE(strlen(address) == len, "NUL inside a valid address");
	check_octets(address);
	REQUIRE(address_parse(address, len, again) == 0 && strcmp(again, address) == 0,
		"not idempotent: %s", address);
	at = strchr(address, '@');
	REQUIRE(at && at - address <= LOCAL_MAX && strlen(at + 1) <= DOMAIN_MAX, "part lengths");
	REQUIRE(address_in_domain(address, at + 1), "not in its own domain: %s", address);
	deliver_to(address);
	return 0;
}
