# Makefile: build mysmtpd (server) and mysmtp (client), run them (rs, rc),
# test them (check, also under AddressSanitizer and UBSan; sweep), clean up.

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2
HARDEN    = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE
# Every symbol bound at load (-z now), in the sanitized build too: a lazy
# binding's first call saves the vector registers on the stack (ld.so's
# xsave trampoline), and with them whatever line they last held, a password
# among them.
LDNOW     = -Wl,-z,relro,-z,now
LDHARDEN  = -pie $(LDNOW)
SANITIZE  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
PORT     ?= 2525
HOST     ?= 127.0.0.1

BUILD_PKGS = gcc make pkg-config libsystemd-dev libedit-dev libcrypt-dev libtls-dev
TEST_PKGS  = python3 tmux systemd xinetd groff-base mandoc clang-14 libclang-rt-14-dev \
             curl swaks mutt strace fail2ban msmtp util-linux iproute2 openssl \
             libnet-ssleay-perl libio-socket-ssl-perl gnutls-bin fetchmail mpop ucspi-tcp

# The sources, by room (README.md, "The folders"; doc/SOURCES.md by file): the two programs and the
# dialects at the top, the rest in the folder of its concern.
ENGINE_SRCS   = engine/session.c engine/command_in.c engine/login.c engine/starttls.c \
                engine/deliver.c engine/mailsession.c
STORE_SRCS    = store/store.c store/mbindex.c store/mboxscan.c store/mboxfile.c store/record.c \
                store/expunge.c store/maildrop.c store/spool.c store/siphash.c
MAIL_SRCS     = mail/address.c mail/data.c mail/mboxrd.c mail/rfc5322.c \
                mail/smtparg.c mail/sasl.c
NET_SRCS      = net/io.c net/tlsio.c net/listener.c net/pool.c net/peer.c net/scoreboard.c \
                net/log.c
ACCOUNTS_SRCS = accounts/accounts.c accounts/accounts_edit.c accounts/secret.c
DIALECT_SRCS  = protocol.c smtp.c pop3.c
CLIENT_ROOM   = client/conn.c client/jobs.c client/shell.c client/login.c

SERVER_SRCS = mysmtpd.c $(DIALECT_SRCS) $(ENGINE_SRCS) $(STORE_SRCS) $(MAIL_SRCS) \
              $(NET_SRCS) $(ACCOUNTS_SRCS)
CLIENT_SRCS = mysmtp.c $(CLIENT_ROOM) accounts/secret.c net/tlsio.c net/io.c
UNIT_SRCS   = tests/unit/unit.c mail/address.c mail/data.c mail/mboxrd.c store/spool.c \
              net/io.c mail/smtparg.c mail/rfc5322.c \
              tests/unit/engine.c engine/session.c engine/command_in.c

SD_CFLAGS  = $(shell pkg-config --cflags libsystemd 2>/dev/null)
EDIT_LIBS  = -ledit
CRYPT_LIBS = -lcrypt	# the fuzzers hash their accounts; mysmtpd dlopens libcrypt

# Headers are named from the top (#include "store/store.h"); each object
# depends on the headers it includes (-MMD -MP writes build/**/*.d).
DEPFLAGS   = -I. -MMD -MP
ALL_CFLAGS = $(WARN) $(DEPFLAGS) $(HARDEN) $(SD_CFLAGS) $(CFLAGS)

.PHONY: all deps test-deps rs rc check sweep clean asan bench
all: mysmtpd mysmtp mysmtp_server mysmtp_client

deps:
	@scripts/need $(BUILD_PKGS)

test-deps: deps
	@scripts/need $(TEST_PKGS)

build/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEPFLAGS) $(SD_CFLAGS) $(SANITIZE) -c -o $@ $<

mysmtpd: $(SERVER_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) $(LDFLAGS) -o $@ $^

# The same server linked statically (static PIE): each connection's exec is
# about half as costly and a session's peak RSS about 1 MiB instead of 1.8,
# since no shared libc is mapped and relocated. The price: glibc security
# updates reach it only by a rebuild, and its listening mode under systemd
# dlopens libsystemd.so.0, TLS (-C) libtls.so.26 and accounts (-u)
# libcrypt.so.1, which need the glibc
# it was built with (the linker warns of this, and of getaddrinfo's NSS
# modules for -l host:port).
# make bench measures both; make install installs the dynamic one.
build/static/mysmtpd: $(SERVER_SRCS:%.c=build/%.o)
	@mkdir -p $(dir $@)
	$(CC) -static-pie -Wl,-z,relro,-z,now $(LDFLAGS) -o $@ $^

mysmtp: $(CLIENT_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) $(LDFLAGS) -o $@ $^ $(EDIT_LIBS)

mysmtp_server: mysmtpd
	ln -sf mysmtpd $@

mysmtp_client: mysmtp
	ln -sf mysmtp $@

build/unit: $(UNIT_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) -o $@ $^

build/asan/mysmtpd: $(SERVER_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) $(LDNOW) -o $@ $^

build/asan/mysmtp: $(CLIENT_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) $(LDNOW) -o $@ $^ $(EDIT_LIBS)

build/asan/unit: $(UNIT_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) $(LDNOW) -o $@ $^

asan: build/asan/mysmtpd build/asan/mysmtp build/asan/unit

# Run the server in the foreground on port $(PORT) of every address, storing
# mail in ./mailbox; PORT may name an address too: make rs PORT=127.0.0.1:2525.
rs: mysmtpd
	./mysmtpd -d mailbox -l $(PORT)

# Talk to it: $(HOST) $(PORT), or PORT alone when it names an address too
# (make rc PORT=127.0.0.1:2525, make rc PORT=[::1]:2525).
rc: mysmtp
	./mysmtp $(if $(findstring :,$(PORT)),$(PORT),$(HOST) $(PORT))

# The benchmark: see bench/run for what it measures and doc/PERFORMANCE.md for figures.
build/bench/loadgen: bench/loadgen.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -pthread $(LDHARDEN) -o $@ $<

build/bench/floor: bench/floor.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDHARDEN) -o $@ $<

build/bench/appends: bench/appends.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -pthread $(LDHARDEN) -o $@ $<

# make bench QUICK=1: the same table from fewer sessions, in under a minute.
bench: mysmtpd build/static/mysmtpd build/bench/loadgen build/bench/floor build/bench/appends | test-deps
	QUICK=$(QUICK) bench/run

# Every test, against the normal build and the sanitized one, then the
# fuzzers; tests/run builds what each of them needs. Five minutes at most
# on two cores: the integration tests run several modules at once, and the
# sweeps (a fault or a kill at every call) a seeded sample of their points.
check: test-deps
	tests/run plain asan fuzz

# The sweeps at every point, against both builds, and the fuzzers for
# longer (SWEEP_FUZZ_SECONDS, 120 each); CI runs it after make check.
sweep: test-deps
	tests/run sweep

clean:
	rm -rf build mysmtpd mysmtp mysmtp_server mysmtp_client

# ---------------------------------------------------------------------------
# Hardening (doc/HARDENING.md): libFuzzer harnesses over a whole session, over
# a whole standard SMTP session and over address -> mailbox file (clang-14;
# libFuzzer is in libclang-rt-14-dev), and the LD_PRELOAD shim the
# fault-injection tests load into the server.
# make check fuzzes each for 10 s, all at once (tests/fuzz/run, one test group);
# make fuzz FUZZ_SECONDS=N fuzzes each for N seconds and keeps the corpus.

FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 300
FUZZ_FLAGS    = -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_SRCS     = $(filter-out mysmtpd.c net/listener.c net/pool.c net/scoreboard.c net/log.c \
                accounts/accounts_edit.c accounts/secret.c,$(SERVER_SRCS))
FUZZERS       = build/fuzz/fuzz_session build/fuzz/fuzz_address build/fuzz/fuzz_smtp \
                build/fuzz/fuzz_pop3
FUZZ_OBJS     = $(FUZZ_SRCS:%.c=build/fuzz/obj/%.o)

.PHONY: hardening fuzzers fuzz
.SECONDARY: $(FUZZ_OBJS)
hardening: fuzzers build/faults/shim.so

fuzzers: $(FUZZERS)

build/fuzz/obj/%.o: %.c | test-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) $(DEPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) | test-deps
	$(FUZZ_CC) $(WARN) $(DEPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(CRYPT_LIBS)

build/faults/shim.so: tests/faults/shim.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O2 -g -U_FORTIFY_SOURCE -fPIC -shared -o $@ $< -ldl

fuzz: fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_KEEP=1 tests/fuzz/run

# ---------------------------------------------------------------------------
# Installing: make install [PREFIX=/usr/local] [DESTDIR=staging-dir]
# The server goes to sbin, the client to bin; the systemd units, the
# sysusers.d file and the xinetd entries get the real paths in place of
# @SBINDIR@, @BINDIR@ and @STATEDIR@. The store is STATEDIR, which is what
# the units' StateDirectory=mysmtp makes, so it stays under /var/lib whatever
# PREFIX is. With DESTDIR empty (a real install) the system user mysmtp is
# created and made the owner of the store; a staged install leaves that to
# the package (it ships the sysusers.d file for it).
# The accounts file (ACCOUNTS, /etc/mysmtp/accounts) is made empty, mode
# 0640, group mysmtp, unless it exists; it is never overwritten.
# make uninstall removes the same files, and the store and the accounts
# file only if they are empty.

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
XINETDDIR   ?= /etc/xinetd.d
STATEDIR    ?= /var/lib/mysmtp
ACCOUNTS    ?= /etc/mysmtp/accounts
ACCOUNTS_DIR = $(patsubst %/,%,$(dir $(ACCOUNTS)))
TLSDIR      ?= /etc/mysmtp/tls

UNITS = mysmtp.socket mysmtp@.service mysmtp-listener.socket mysmtp-listener.service \
        mysmtp-smtp.socket mysmtp-smtp@.service mysmtp-smtps.socket mysmtp-smtps@.service \
        mysmtp-pop3.socket mysmtp-pop3@.service mysmtp-pop3s.socket mysmtp-pop3s@.service \
        mysmtp-submission.socket mysmtp-submission@.service
XINETD = mysmtp mysmtp-smtp mysmtp-pop3 mysmtp-pop3s
SUBST = -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
        -e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|@ACCOUNTS@|$(ACCOUNTS)|g' \
        -e 's|@TLSDIR@|$(TLSDIR)|g'
INSTALLED = $(SBINDIR)/mysmtpd $(BINDIR)/mysmtp \
            $(MANDIR)/man8/mysmtpd.8 $(MANDIR)/man1/mysmtp.1 \
            $(UNITS:%=$(UNITDIR)/%) $(SYSUSERSDIR)/mysmtp.conf $(XINETD:%=$(XINETDDIR)/%)

.PHONY: install uninstall
install: mysmtpd mysmtp
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(XINETDDIR)
	install -m 0755 mysmtpd $(DESTDIR)$(SBINDIR)/mysmtpd
	install -m 0755 mysmtp $(DESTDIR)$(BINDIR)/mysmtp
	install -m 0644 man/mysmtpd.8 $(DESTDIR)$(MANDIR)/man8/mysmtpd.8
	install -m 0644 man/mysmtp.1 $(DESTDIR)$(MANDIR)/man1/mysmtp.1
	for u in $(UNITS); do \
		sed $(SUBST) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	sed $(SUBST) systemd/mysmtp.sysusers > $(DESTDIR)$(SYSUSERSDIR)/mysmtp.conf
	chmod 0644 $(DESTDIR)$(SYSUSERSDIR)/mysmtp.conf
	for x in $(XINETD); do \
		sed $(SUBST) xinetd/$$x > $(DESTDIR)$(XINETDDIR)/$$x && \
		chmod 0644 $(DESTDIR)$(XINETDDIR)/$$x || exit 1; \
	done
	install -d -m 0700 $(DESTDIR)$(STATEDIR)
	@# The accounts file is made empty (no one can log in, and no mail is
	@# taken) unless it is there; an existing one is never touched.
	@set -e; made_dir=; made=; \
	if [ ! -d $(DESTDIR)$(ACCOUNTS_DIR) ]; then \
		install -d -m 0750 $(DESTDIR)$(ACCOUNTS_DIR); made_dir=1; \
	fi; \
	if [ ! -e $(DESTDIR)$(ACCOUNTS) ]; then \
		install -m 0640 /dev/null $(DESTDIR)$(ACCOUNTS); made=1; \
	fi; \
	if [ -z "$(DESTDIR)" ]; then \
		if ! getent passwd mysmtp > /dev/null; then \
			if command -v systemd-sysusers > /dev/null; then \
				systemd-sysusers $(SYSUSERSDIR)/mysmtp.conf; \
			else \
				useradd --system --user-group --home-dir $(STATEDIR) \
					--no-create-home --shell /usr/sbin/nologin mysmtp; \
			fi; \
		fi; \
		chown mysmtp:mysmtp $(STATEDIR); \
		chmod 0700 $(STATEDIR); \
		if [ -n "$$made_dir" ]; then chgrp mysmtp $(ACCOUNTS_DIR); fi; \
		if [ -n "$$made" ]; then chgrp mysmtp $(ACCOUNTS); fi; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi; \
	if [ -n "$$made" ]; then \
		echo "install: $(ACCOUNTS) is empty: no one can log in or get mail until you add"; \
		echo "install: accounts: mysmtpd --accounts $(ACCOUNTS) --set-password user@domain"; \
	fi

uninstall:
	rm -f $(INSTALLED:%=$(DESTDIR)%)
	@if [ -d $(DESTDIR)$(STATEDIR) ] && ! rmdir $(DESTDIR)$(STATEDIR) 2> /dev/null; then \
		echo "uninstall: kept $(DESTDIR)$(STATEDIR): it holds mail"; \
	fi
	@if [ -s $(DESTDIR)$(ACCOUNTS) ]; then \
		echo "uninstall: kept $(DESTDIR)$(ACCOUNTS): it holds accounts"; \
	else \
		rm -f $(DESTDIR)$(ACCOUNTS); rmdir $(DESTDIR)$(ACCOUNTS_DIR) 2> /dev/null || true; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# What -MMD found each object to include (none before the first build).
-include $(wildcard build/*.d build/*/*.d build/*/*/*.d build/*/*/*/*.d)
