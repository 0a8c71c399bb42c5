"""test_locks.py: mailbox locks (PROTOCOL.md section 4: "A lock that cannot
be had within [30] s fails the command with 500 and changes nothing";
several mailboxes are locked in a fixed order).

test_store.Locks covers a POSIX (lockf) holder of a whole mailbox, shared
holders, a lock released while the server waits, and a held second
recipient; test_store.LockOrder eight sessions in opposite orders. Here: a
holder with an open-file-description lock, and one locking a single byte, on
the last of three recipients, one of which the delivery has to create; and
exactly two sessions naming {a, b} and {b, a} sending their final dot at the
same instant, 100 times (OFD locks have no deadlock detection: only the
order prevents one).
"""

import os
import subprocess
import sys
import threading
import time

from support import DATA_PROMPT, SLOW, STORED, ServerTest, mailbox_file, read_bytes

HOLDER = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
kind = sys.argv[2]
if kind == "ofd":       # whole file, open file description lock
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
else:                   # one byte in the middle, classic POSIX lock
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 10)
sys.stdout.write("locked\n"); sys.stdout.flush()
sys.stdin.read()
"""


class Locks(ServerTest):
    def hold(self, path, kind):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, path, kind],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)

        def release():
            if p.poll() is None:
                p.kill()
            p.wait(5)
            p.stdin.close()
            p.stdout.close()
        self.addCleanup(release)
        self.assertEqual(p.stdout.readline(), b"locked\n")
        return release

    def test_held_last_mailbox_fails_all_after_lock_timeout(self):
        for kind in ("ofd", "byte"):
            with self.subTest(holder=kind):
                d = self.mkdir("mb-" + kind)
                self.deliver(d, "john@test.com", ["b@test.com", "c@test.com"], [b"earlier"])
                before = {f: read_bytes(os.path.join(d, f)) for f in os.listdir(d)}
                release = self.hold(mailbox_file(d, "c@test.com"), kind)
                c = self.pipe_session(d, ["-w", "1"])
                self.ok(c, "HELO test.com")
                self.ok(c, "MAIL FROM: john@test.com")
                for r in ("c@test.com", "a@test.com", "b@test.com"):   # locked in order a, b, c
                    self.ok(c, "RCPT TO: " + r)
                self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
                c.send(b"blocked\r\n")
                t0 = time.monotonic()
                r = c.cmd(".", timeout=10 * SLOW)
                dt = time.monotonic() - t0
                self.assertEqual(r, "500 SERVER ERROR the store failed")
                self.assertGreater(dt, 0.9, "gave up before -w 1")
                self.assertLess(dt, 1 + 2 * SLOW, "-w 1 took %.1fs" % dt)
                self.ok(c, "NOOP")
                self.quit(c)
                after = {f: read_bytes(os.path.join(d, f)) for f in os.listdir(d)}
                self.assertEqual(after, before, "files changed by a delivery that timed out "
                                 "(a@test.com was made and must be gone again)")
                release()
                self.deliver(d, "john@test.com", ["c@test.com", "a@test.com"], [b"later"])
                self.assertEqual([g[2] for g in self.read_back(d, "c@test.com")], [[b"earlier"], [b"later"]])
                self.assertEqual([g[2] for g in self.read_back(d, "a@test.com")], [[b"later"]])

    def test_two_sessions_opposite_orders_at_once_100_times(self):
        d = self.mkdir()
        rounds = 100
        sessions = [self.pipe_session(d, ["-w", "10"]) for _ in range(2)]
        orders = (["a@test.com", "b@test.com"], ["b@test.com", "a@test.com"])
        barrier = threading.Barrier(2, timeout=30 * SLOW)
        body = (b"z" * 1000 + b"\r\n") * 60      # 60 KB: each copy holds the locks a while
        errors, slowest = [], [0.0]

        def run(i, c):
            try:
                assert c.cmd("HELO test.com") == "200 OK"
                for n in range(rounds):
                    assert c.cmd("MAIL FROM: s%d@test.com" % i) == "200 OK"
                    for r in orders[i]:
                        assert c.cmd("RCPT TO: " + r) == "200 OK"
                    assert c.cmd("DATA") == DATA_PROMPT
                    c.send(b"session %d round %03d\r\n" % (i, n) + body)
                    barrier.wait()
                    t0 = time.monotonic()
                    r = c.cmd(".", timeout=20 * SLOW)
                    slowest[0] = max(slowest[0], time.monotonic() - t0)
                    assert r == STORED, "round %d: %r" % (n, r)
                assert c.cmd("QUIT") == "200 Goodbye"
            except BaseException as e:
                errors.append("session %d: %r" % (i, e))
                barrier.abort()

        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        self.assertFalse([t for t in threads if t.is_alive()], "sessions hang (deadlock?)")
        self.assertEqual(errors, [])
        for c in sessions:
            c.expect_eof()
            self.assertEqual(c.server.wait(), 0)
        want = sorted(b"session %d round %03d" % (i, n) for i in range(2) for n in range(rounds))
        for r in ("a@test.com", "b@test.com"):
            got = sorted(g[2][0] for g in self.read_back(d, r))
            self.assertEqual({len(g[2]) for g in self.read_back(d, r)}, {61})
            self.assertEqual(got, want, "messages in %s" % r)
        print("[%d simultaneous pairs in %.1fs, slowest delivery %.3fs]"
              % (rounds, time.monotonic() - t0, slowest[0]), end=" ", flush=True)
        self.assertLess(slowest[0], 5 * SLOW, "a delivery waited long for a lock")


class RewriteDuringGetMail(ServerTest):
    """A mail reader that takes the fcntl lock and rewrites the mailbox in
    place (as mutt does on saving) while a slow client is fetching a large
    message: the client gets the message as it was, whole, never a splice
    of the old file and the new (GET_MAIL copies it out under the lock)."""

    def test_slow_get_mail_and_an_in_place_rewrite(self):
        import fcntl
        import struct
        d = self.mkdir()
        lines = [b"line %06d " % i + b"o" * 40 for i in range(40000)]     # about 2 MiB
        self.deliver(d, "john@test.com", ["big@test.com"], lines)
        path = mailbox_file(d, "big@test.com")
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        c.send(b"GET_MAIL big@test.com 1\r\n")
        # Part of the reply is in the pipe, which we do not read: the server
        # is in the middle of sending it.
        deadline = time.monotonic() + 10 * SLOW
        while _unread(c.rfd) < 32768:
            self.assertLess(time.monotonic(), deadline, "the server never began the reply")
            time.sleep(0.01)
        with open(path, "r+b") as f:
            fcntl.fcntl(f, fcntl.F_SETLKW, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
            data = f.read()
            f.seek(0)
            f.write(data.replace(b"line ", b"LINE "))      # same length, every line changed
            f.flush()
            fcntl.fcntl(f, fcntl.F_SETLK, struct.pack("hhqqi", fcntl.F_UNLCK, 0, 0, 0, 0))
        self.assertEqual(c.reply(), "200 OK")
        got = c.multiline(timeout=60 * SLOW)
        self.assertEqual(got[2:], lines, "the message as it was when it was asked for")
        self.quit(c)


def _unread(fd):
    """Octets waiting in a pipe or socket."""
    import array
    import fcntl
    import termios
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]
