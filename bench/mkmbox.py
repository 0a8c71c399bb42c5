#!/usr/bin/env python3
"""bench/mkmbox.py N FILE [SENDER]: write an mbox of N short messages in the
form mysmtpd stores them (with X-MySMTP-UID and Content-Length), fast, for the retrieval bench.
No index is written: mysmtpd rebuilds it from the mbox on first use."""
import sys
import time


def record(i, sender, rcpt, stamp, rfc):
    body = b"bench message %d\n" % i
    return (b"From %s %s\nReturn-Path: <%s>\nReceived: from test.com (local)\n"
            b"\tby bench (My_SMTP) with MYSMTP id %d.bench@bench\n\tfor <%s>; %s\n"
            b"From: %s\nTo: %s\nDate: %s\nMessage-ID: <%d.bench@bench>\n"
            b"X-MySMTP-UID: %d\nContent-Length: %d\n\n%s\n"
            % (sender, stamp, sender, i, rcpt, rfc, sender, rcpt, rfc, i, i, len(body), body))


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    sender = (sys.argv[3] if len(sys.argv) > 3 else "bench@test.com").encode()
    now = time.localtime()
    stamp = time.strftime("%a %b %e %H:%M:%S %Y", now).encode()
    rfc = time.strftime("%a, %d %b %Y %H:%M:%S +0000", now).encode()
    with open(path, "wb") as f:
        chunk = []
        for i in range(1, n + 1):
            chunk.append(record(i, sender, b"bench@test.com", stamp, rfc))
            if len(chunk) == 10000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))


if __name__ == "__main__":
    main()
