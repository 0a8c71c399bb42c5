#!/usr/bin/env python3
"""bench/pop3.py: time POP3 sessions for bench/run, over one connection each.

    bench/pop3.py session HOST PORT USER PASSWORD RUNS
        RUNS sessions of: login (USER/PASS), STAT, UIDL, RETR of the last
        message, QUIT; prints the median and the fastest in ms.
    bench/pop3.py delete-all HOST PORT USER PASSWORD
        one session that marks every message (DELE 1..N, pipelined) and
        QUITs; prints the seconds of the QUIT (the deletion) and in all.
Replies are read off the socket as they come; a -ERR stops the run."""
import socket
import statistics
import sys
import time


class Pop3:
    """Reads in large pieces, so that the client costs little beside the server."""

    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=600)
        self.buf = bytearray()
        self.pos = 0            # what is read of buf
        self.line()

    def more(self):
        piece = self.s.recv(262144)
        if not piece:
            sys.exit("bench: POP3 connection closed")
        if self.pos > 0:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += piece

    def upto(self, mark, start):
        """Read until mark is in buf at or after start: its offset."""
        while True:
            at = self.buf.find(mark, start)
            if at >= 0:
                return at
            start = max(self.pos, len(self.buf) - len(mark) + 1)
            shift = self.pos
            self.more()
            start -= shift

    def line(self):
        at = self.upto(b"\r\n", self.pos)
        l = bytes(self.buf[self.pos:at])
        self.pos = at + 2
        if not l.startswith(b"+OK"):
            sys.exit("bench: POP3 said %r" % l)
        return l

    def block(self):
        """The number of lines of a multi-line reply, read up to its final dot."""
        while len(self.buf) - self.pos < 3:
            self.more()
        if self.buf[self.pos:self.pos + 3] == b".\r\n":
            self.pos += 3
            return 0
        at = self.upto(b"\r\n.\r\n", self.pos)
        n = self.buf.count(b"\r\n", self.pos, at + 2)
        self.pos = at + 5
        return n

    def cmd(self, text, multi=False):
        self.s.sendall(text.encode() + b"\r\n")
        first = self.line()
        return self.block() if multi else first

    def login(self, user, password):
        self.cmd("USER " + user)
        self.cmd("PASS " + password)


def session(host, port, user, password):
    t = time.monotonic()
    p = Pop3(host, port)
    p.login(user, password)
    count = int(p.cmd("STAT").split()[1])
    if p.cmd("UIDL", multi=True) != count:
        sys.exit("bench: UIDL is not STAT's count")
    p.cmd("RETR %d" % count, multi=True)
    p.cmd("QUIT")
    return time.monotonic() - t


def delete_all(host, port, user, password):
    t = time.monotonic()
    p = Pop3(host, port)
    p.login(user, password)
    count = int(p.cmd("STAT").split()[1])
    p.s.sendall(b"".join(b"DELE %d\r\n" % n for n in range(1, count + 1)))
    for _ in range(count):
        p.line()
    q = time.monotonic()
    p.cmd("QUIT")
    end = time.monotonic()
    return end - q, end - t


def main():
    mode, host, port, user, password = sys.argv[1:6]
    if mode == "session":
        runs = [session(host, int(port), user, password) for _ in range(int(sys.argv[6]))]
        print("median_ms=%.2f min_ms=%.2f" % (statistics.median(runs) * 1e3, min(runs) * 1e3))
    else:
        quit_s, total_s = delete_all(host, int(port), user, password)
        print("quit_s=%.3f total_s=%.3f" % (quit_s, total_s))


if __name__ == "__main__":
    main()
