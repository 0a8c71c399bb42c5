# Makefile: build mysmtpd (server) and mysmtp (client), run them (rs, rc),
# test them (check, also under AddressSanitizer and UBSan), clean up.

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2
HARDEN    = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
LDHARDEN  = -pie -Wl,-z,relro,-z,now
SANITIZE  = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
PORT     ?= 2525
HOST     ?= 127.0.0.1

BUILD_PKGS = gcc make pkg-config libsystemd-dev libedit-dev
TEST_PKGS  = python3 tmux systemd

# The server: one idea per file (see README.md, "Source map").
SERVER_SRCS = mysmtpd.c listener.c log.c protocol.c io.c address.c data.c \
              spool.c mboxrd.c store.c mbindex.c
CLIENT_SRCS = mysmtp.c
UNIT_SRCS   = tests/unit/unit.c address.c data.c mboxrd.c spool.c io.c

SD_CFLAGS  = $(shell pkg-config --cflags libsystemd 2>/dev/null)
EDIT_LIBS  = -ledit

ALL_CFLAGS = $(WARN) $(HARDEN) $(SD_CFLAGS) $(CFLAGS)

.PHONY: all deps test-deps rs rc check clean asan
all: mysmtpd mysmtp mysmtp_server mysmtp_client

deps:
	@scripts/need $(BUILD_PKGS)

test-deps: deps
	@scripts/need $(TEST_PKGS)

build/%.o: %.c $(wildcard *.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(wildcard *.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SD_CFLAGS) $(SANITIZE) -c -o $@ $<

mysmtpd: $(SERVER_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) $(LDFLAGS) -o $@ $^

mysmtp: $(CLIENT_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) $(LDFLAGS) -o $@ $^ $(EDIT_LIBS)

mysmtp_server: mysmtpd
	ln -sf mysmtpd $@

mysmtp_client: mysmtp
	ln -sf mysmtp $@

build/unit: $(UNIT_SRCS:%.c=build/%.o)
	$(CC) $(LDHARDEN) -o $@ $^

build/asan/mysmtpd: $(SERVER_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) -o $@ $^

build/asan/mysmtp: $(CLIENT_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) -o $@ $^ $(EDIT_LIBS)

build/asan/unit: $(UNIT_SRCS:%.c=build/asan/%.o)
	$(CC) $(SANITIZE) -o $@ $^

asan: build/asan/mysmtpd build/asan/mysmtp build/asan/unit

# Run the server in the foreground on port $(PORT), storing mail in ./mailbox.
rs: mysmtpd
	./mysmtpd -d mailbox -l $(PORT)

# Talk to it.
rc: mysmtp
	./mysmtp $(HOST) $(PORT)

# Every test, against the normal build and then against the sanitized one.
check: all build/unit asan | test-deps
	tests/run plain asan

clean:
	rm -rf build mysmtpd mysmtp mysmtp_server mysmtp_client
