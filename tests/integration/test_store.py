"""test_store.py: what mysmtpd writes to disk, and how it reads it back.

PROTOCOL.md sections 2 (DATA, limits, all-or-nothing delivery), 3 (addresses
and mailbox names) and 4 (storage: mboxrd, ids, locks, failures, index).
"""

import mailbox
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time

from support import (DATA_PROMPT, SERVER, SLOW, STORED, FLAVOUR, ProtocolError, ServerTest,
                     index_file, mailbox_file, mboxrd_quote, parse_mbox, read_bytes,
                     stuff, today_dates, tree, vm_hwm_kib, without_huge_pages,
                     env_under_strace)

class StoreTest(ServerTest):
    pass


class AwkwardBodies(StoreTest):
    BODIES = [
        ("from-lines", [b"From here to there", b">From quoted once", b">>From quoted twice",
                        b">>>From thrice", b"From", b" From not at start", b"From:colon"]),
        ("header-like", [b"PS: call me", b"X-Not: a header of its own", b"", b"after blank"]),
        ("header-then-text", [b"Subject: not a header", b"From: mallory@evil.com", b"text",
                              b"", b"after blank"]),
        ("dots", [b".", b"..", b"...", b".leading", b"..two leading", b" .", b"x.", b". "]),
        ("blank-first-and-last", [b"", b"middle", b""]),
        ("only-blank-lines", [b"", b""]),
        ("high-bytes", [b"caf\xc3\xa9 na\xc3\xafve", b"\xff\xfe\x80\x81", b"\xe2\x82\xac 10"]),
        ("lone-cr", [b"a\rb", b"\rstart", b"mid\r\rdle", b"end"]),
        ("empty", []),
        ("998-octet-line", [b"y" * 998]),
        ("20000-octet-line", [b"L" * 20000, b"short"]),
        ("tabs-and-spaces", [b"\tindented", b"   ", b"trailing spaces   "]),
    ]

    def test_awkward_bodies_round_trip(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        for name, lines in self.BODIES:
            self.ok(c, "MAIL FROM: john@test.com")
            self.ok(c, "RCPT TO: david@test.com")
            self.assertEqual(c.data(lines), STORED, name)
        self.quit(c)
        got = self.read_back(d, "david@test.com")
        self.assertEqual(len(got), len(self.BODIES))
        dates = today_dates()
        for (name, lines), (sender, date, back) in zip(self.BODIES, got):
            with self.subTest(body=name):
                self.assertEqual(sender, "john@test.com")
                self.assertIn(date, dates)
                self.assertEqual(back, lines, "GET_MAIL text of %s" % name)
        self.check_mbox(d, "david@test.com", [b for _, b in self.BODIES],
                        sender="john@test.com", helo="test.com")

    def test_bare_lf_and_cr_before_lf(self):
        """A line ends at LF; one CR right before it is dropped, any other CR is data."""
        d = self.mkdir()
        c = self.pipe_session(d)
        c.send(b"HELO test.com\n")
        self.assertEqual(c.reply(), "200 OK")
        c.send(b"MAIL FROM: john@test.com\n")
        self.assertEqual(c.reply(), "200 OK")
        c.send(b"RCPT TO: david@test.com\n")
        self.assertEqual(c.reply(), "200 OK")
        c.send(b"DATA\n")
        self.assertEqual(c.reply(), DATA_PROMPT)
        c.send(b"bare lf\nends with cr\r\r\nx\r\r\r\n..dot\n\n.\n")
        self.assertEqual(c.reply(), STORED)
        self.quit(c)
        want = [b"bare lf", b"ends with cr\r", b"x\r\r", b".dot", b""]
        (_, _, back), = self.read_back(d, "david@test.com")
        self.assertEqual(back, want)
        self.check_mbox(d, "david@test.com", [want], sender="john@test.com")


class OwnHeaderBlock(StoreTest):
    """A My_SMTP text that opens with a header block of its own (PROTOCOL.md,
    amendments of turn three) is joined to ours with no empty line between,
    so that mail readers (Python's mailbox and email) see its Subject; the
    trace fields are ours, From, Date and Message-ID ours only where it has
    none; GET_MAIL gives the text back byte for byte."""

    TEXTS = [
        [b"From: John Smith <john@test.com>", b"To: david@test.com", b"Subject: Quarterly numbers",
         b"Date: Mon, 3 Aug 2026 09:00:00 +0200", b"Message-ID: <q3@test.com>", b"",
         b"Hello David,", b"From the numbers:", b".", b"", b"PS: call me", b""],
        [b"Subject: caf\xc3\xa9 =?UTF-8?Q?caf=C3=A9?=", b"X-Folded: one", b"\ttwo", b"", b"body"],
        [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8", b""],
    ]

    def test_joined_and_given_back_as_sent(self):
        d = self.mkdir()
        for lines in self.TEXTS:
            self.deliver(d, "john@test.com", ["david@test.com"], lines)
        got = self.read_back(d, "david@test.com")
        self.assertEqual([lines for _, _, lines in got], self.TEXTS, "GET_MAIL: the text as sent")
        path = mailbox_file(d, "david@test.com")
        msgs = parse_mbox(read_bytes(path), path)
        self.assertEqual([m.body for m in msgs],
                         [mboxrd_quote(t[t.index(b"") + 1:]) for t in self.TEXTS],
                         "the body is what follows the text's own header block")
        box = mailbox.mbox(path, create=False)
        try:
            one, two, three = [box.get_message(k) for k in box.keys()]
        finally:
            box.close()
        self.assertEqual(one["Subject"], "Quarterly numbers")
        self.assertEqual(one.get_all("From"), ["John Smith <john@test.com>"])
        self.assertEqual(one.get_all("Date"), ["Mon, 3 Aug 2026 09:00:00 +0200"])
        self.assertEqual(one.get_all("Message-ID"), ["<q3@test.com>"])
        self.assertEqual(one["Return-Path"], "<john@test.com>")
        self.assertIn("with MYSMTP id", one["Received"])
        self.assertEqual(one.get_payload(), "Hello David,\n>From the numbers:\n.\n\nPS: call me\n\n")
        for m in (two, three):
            self.assertEqual(m.get_all("From"), ["john@test.com"], "ours, where it has none")
            self.assertEqual(len(m.get_all("Date")), 1)
            self.assertEqual(len(m.get_all("Message-ID")), 1)
        self.assertEqual(two["X-Folded"], "one\n\ttwo")
        self.assertEqual(three["MIME-Version"], "1.0")
        self.assertEqual(three.get_payload(), "")

    def test_seed_example_stays_as_it_was(self):
        """A text without a header block of its own: our block, an empty
        line, the text, as before."""
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["david@test.com"],
                     [b"Hello David,", b"Hope you are doing well."])
        data = read_bytes(mailbox_file(d, "david@test.com"))
        self.assertIn(b"\nContent-Length: 38\n\nHello David,\nHope you are doing well.\n\n", data)
        self.assertNotIn(b"Prepended", data)


class Concurrency(StoreTest):
    SESSIONS = 20
    PER_SESSION = 20

    def test_concurrent_sessions_one_mailbox(self):
        d = self.mkdir()
        sessions = [self.pipe_session(d) for _ in range(self.SESSIONS)]
        sent = {}
        errors = []

        def body(s, m):
            return [b"session %02d message %02d" % (s, m), b"From the thread %d" % s,
                    b".dot line %d" % m, b"x" * (100 + 37 * m + s)]

        def run(s, c):
            try:
                r = c.cmd("HELO test.com")
                assert r == "200 OK", r
                for m in range(self.PER_SESSION):
                    for line in ("MAIL FROM: s%d@test.com" % s, "RCPT TO: shared@test.com"):
                        r = c.cmd(line)
                        assert r == "200 OK", (line, r)
                    r = c.data(body(s, m), timeout=30 * SLOW)
                    assert r == STORED, r
                r = c.cmd("QUIT")
                assert r == "200 Goodbye", r
                c.expect_eof()
            except BaseException as e:  # reported below
                errors.append("session %d: %r" % (s, e))

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        self.assertFalse([t for t in threads if t.is_alive()], "sessions still running")
        self.assertEqual(errors, [])
        for c in sessions:
            self.assertEqual(c.server.wait(), 0, "exit status of a concurrent session")
        for s in range(self.SESSIONS):
            for m in range(self.PER_SESSION):
                sent[b"session %02d message %02d" % (s, m)] = (s, body(s, m))
        got = self.read_back(d, "shared@test.com")
        total = self.SESSIONS * self.PER_SESSION
        self.assertEqual(len(got), total, "messages listed")
        seen = set()
        for sender, date, lines in got:
            self.assertTrue(lines and lines[0] in sent, "unknown message %r" % lines[:1])
            s, want = sent[lines[0]]
            self.assertEqual(lines, want)
            self.assertEqual(sender, "s%d@test.com" % s)
            seen.add(lines[0])
        self.assertEqual(len(seen), total, "every message distinct and present")
        # Per session, the messages keep their order.
        order = {}
        for sender, date, lines in got:
            order.setdefault(sender, []).append(lines[0])
        for sender, firsts in order.items():
            self.assertEqual(firsts, sorted(firsts), "order of %s's messages" % sender)
        msgs = parse_mbox(read_bytes(mailbox_file(d, "shared@test.com")))
        self.assertEqual(len(msgs), total)
        mids = [m.header("message-id") for m in msgs]
        self.assertNotIn(None, mids)
        self.assertEqual(len(set(mids)), total, "Message-IDs of concurrent sessions collide")
        self.assertEqual([m.text_lines() for m in msgs], [g[2] for g in got],
                         "file order is id order")
        mb = mailbox.mbox(mailbox_file(d, "shared@test.com"), create=False)
        self.assertEqual(len(mb.keys()), total)
        mb.close()


class LockOrder(StoreTest):
    def test_opposite_recipient_orders_do_not_deadlock(self):
        """Several mailboxes are locked in a fixed order: sessions naming the same
        two recipients in opposite orders all deliver."""
        d = self.mkdir()
        n_sessions, per = 8, 10
        sessions = [self.pipe_session(d, ["-w", "10"]) for _ in range(n_sessions)]
        errors = []

        def run(i, c):
            try:
                rcpts = ["p@test.com", "q@test.com"] if i % 2 else ["q@test.com", "p@test.com"]
                assert c.cmd("HELO test.com") == "200 OK"
                for m in range(per):
                    assert c.cmd("MAIL FROM: s%d@test.com" % i) == "200 OK"
                    for r in rcpts:
                        assert c.cmd("RCPT TO: " + r) == "200 OK"
                    r = c.data([b"s%d m%d" % (i, m)], timeout=30 * SLOW)
                    assert r == STORED, r
                assert c.cmd("QUIT") == "200 Goodbye"
                c.expect_eof()
            except BaseException as e:
                errors.append("session %d: %r" % (i, e))

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        self.assertFalse([t for t in threads if t.is_alive()], "sessions still running (deadlock?)")
        self.assertEqual(errors, [])
        for c in sessions:
            self.assertEqual(c.server.wait(), 0)
        for r in ("p@test.com", "q@test.com"):
            got = sorted(g[2][0] for g in self.read_back(d, r))
            self.assertEqual(got, sorted(b"s%d m%d" % (i, m) for i in range(n_sessions) for m in range(per)))


class KillDuringDelivery(StoreTest):
    RCPTS = ["k1@test.com", "k2@test.com", "k3@test.com"]
    LINES = 8000            # ~0.5 MB per copy
    ROUNDS_AFTER_DOT = 20
    FRACTIONS_BEFORE_DOT = (0.3, 0.7, 1.0)

    def big(self, tag):
        return [b"%s line %05d " % (tag, i) + b"z" * 48 for i in range(self.LINES)]

    def start_delivery(self, d, lines):
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: killer@test.com")
        for r in self.RCPTS:
            self.ok(c, "RCPT TO: " + r)
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        payload = b"".join(stuff(l) + b"\r\n" for l in lines)
        return c, payload

    def test_kill9_at_many_moments(self):
        d = self.mkdir()
        known = {}                  # first line -> whole text
        # Calibrate: how long from the final dot to the reply?
        lines = self.big(b"calibrate")
        known[lines[0]] = lines
        c, payload = self.start_delivery(d, lines)
        c.send(payload)
        t0 = time.monotonic()
        c.send(b".\r\n")
        self.assertEqual(c.reply(), STORED)
        span = time.monotonic() - t0
        self.quit(c)
        # From the dot to well past the reply: later rounds take longer (bigger files).
        delays = [span * 2.0 * i / (self.ROUNDS_AFTER_DOT - 1) for i in range(self.ROUNDS_AFTER_DOT)]
        moments = [("before-dot", f) for f in self.FRACTIONS_BEFORE_DOT] + \
                  [("after-dot", x) for x in delays]
        counts = {r: 1 for r in self.RCPTS}     # messages known to be there (lower bound)
        certain = {r: True for r in self.RCPTS}  # whether counts[r] is exact
        for rnd, (kind, x) in enumerate(moments):
            tag = b"round%02d" % rnd
            lines = self.big(tag)
            known[lines[0]] = lines
            c, payload = self.start_delivery(d, lines)
            if kind == "before-dot":
                c.send(payload[:int(len(payload) * x)])
                time.sleep(0.01)
            else:
                c.send(payload)
                c.send(b".\r\n")
                t0 = time.monotonic()
                while time.monotonic() - t0 < x:
                    pass
            os.kill(c.server.pid, signal.SIGKILL)
            c.server.wait()
            # What LIST and GET_MAIL show now: only whole messages, none lost.
            with self.subTest(round=rnd, moment="%s %.4f" % (kind, x)):
                rc = self.pipe_session(d)
                self.ok(rc, "HELO test.com")
                for r in self.RCPTS:
                    certain[r] = False
                    code, entries = rc.list(r)
                    self.assertEqual(code, "200 OK", "LIST %s after a kill -9 (%s %.4fs after the dot)"
                                     % (r, kind, x))
                    n = len(entries)
                    self.assertEqual([e[0] for e in entries], list(range(1, n + 1)))
                    self.assertGreaterEqual(n, counts[r], "%s lost messages" % r)
                    if certain[r]:
                        self.assertLessEqual(n, counts[r] + 1)
                    if kind == "before-dot":
                        self.assertEqual(n, counts[r], "a message killed before its final dot was stored")
                    for i in range(counts[r] + 1, n + 1):
                        code, sender, date, text = rc.get_mail(r, i)
                        self.assertEqual(code, "200 OK", "GET_MAIL %s %d" % (r, i))
                        self.assertTrue(text and text[0] in known,
                                        "%s id %d is not a message that was sent: %r" % (r, i, text[:1]))
                        self.assertEqual(text, known[text[0]], "%s id %d is partial or damaged" % (r, i))
                    counts[r] = n
                    certain[r] = True
                self.quit(rc)
            # One more delivery: afterwards no trace of a partial message.
            small = [b"after round %d" % rnd, b"From small"]
            known[small[0]] = small
            self.deliver(d, "after@test.com", self.RCPTS, small, helo="test.com")
            for r in self.RCPTS:
                counts[r] += 1
        stray = [f for f in os.listdir(d) if not f.endswith((".txt", ".idx"))]
        self.assertEqual(stray, [], "files left in the mailbox directory by killed deliveries")
        # The files: whole messages only, each one that was sent, covering every byte.
        for r in self.RCPTS:
            with self.subTest(file=r):
                data = read_bytes(mailbox_file(d, r))
                msgs = parse_mbox(data, r)
                self.assertEqual(sum(m.end - m.start for m in msgs), len(data))
                for m in msgs:
                    text = m.text_lines()
                    self.assertTrue(text and text[0] in known, "%s: unknown message %r" % (r, text[:1]))
                    self.assertEqual(text, known[text[0]], "%s: partial message in the file" % r)
                if certain[r]:
                    self.assertEqual(len(msgs), counts[r], "messages in the file of %s" % r)
                else:
                    self.assertGreaterEqual(len(msgs), counts[r], "messages in the file of %s" % r)
                mb = mailbox.mbox(mailbox_file(d, r), create=False)
                self.assertEqual(len(mb.keys()), len(msgs))
                mb.close()
                got = self.read_back(d, r)
                self.assertEqual([g[2] for g in got], [m.text_lines() for m in msgs],
                                 "LIST/GET_MAIL agree with the file for %s" % r)


class WriteFailure(StoreTest):
    def _run(self, ignore_sigxfsz):
        d = self.mkdir()
        first = [b"first message", b"From the past"]
        self.deliver(d, "john@test.com", ["w@test.com"], first)
        path = mailbox_file(d, "w@test.com")
        before = read_bytes(path)
        limit = len(before) + 2048

        def pre():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN if ignore_sigxfsz else signal.SIG_DFL)

        c = self.pipe_session(d, preexec_fn=pre, restore_signals=False)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: w@test.com")
        big = [b"line %04d of a message too large for RLIMIT_FSIZE" % i + b"." * 30 for i in range(400)]
        try:
            r = c.data(big)
        except ProtocolError as e:
            self.fail("no reply to a message whose write fails (server exit status %s): %s"
                      % (c.server.proc.poll(), e))
        self.assertTrue(r.startswith("500"), "reply when the mailbox cannot grow: %r" % r)
        self.ok(c, "NOOP")
        self.quit(c)
        self.assertEqual(read_bytes(path), before, "mailbox changed by a failed write")
        self.assertEqual([g[2] for g in self.read_back(d, "w@test.com")], [first])
        second = [b"second message"]
        self.deliver(d, "john@test.com", ["w@test.com"], second)
        self.assertEqual([g[2] for g in self.read_back(d, "w@test.com")], [first, second])
        self.check_mbox(d, "w@test.com", [first, second], sender="john@test.com")

    def test_write_failure_efbig(self):
        """RLIMIT_FSIZE with SIGXFSZ ignored: write() fails with EFBIG."""
        self._run(ignore_sigxfsz=True)

    def test_write_failure_sigxfsz_default(self):
        """RLIMIT_FSIZE with SIGXFSZ at its default (as inetd/systemd start it):
        the server must still answer 500 and leave the file as it was."""
        self._run(ignore_sigxfsz=False)


class DiskFull(StoreTest):
    def test_disk_full(self):
        """ENOSPC (a small tmpfs): 500, and the mailbox is as it was."""
        mnt = os.path.join(self.root, "small")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "cannot mount a small tmpfs (needs root): %r" % r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        d = os.path.join(mnt, "mailbox")
        os.mkdir(d)
        first = [b"first", b"From before the disk filled"]
        self.deliver(d, "john@test.com", ["f@test.com"], first)
        before = read_bytes(mailbox_file(d, "f@test.com"))
        filler = os.path.join(mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(1000):
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        os.truncate(filler, max(0, os.path.getsize(filler) - 8192))   # leave 8 KiB
        big = [b"%05d " % i + b"f" * 90 for i in range(500)]            # ~48 KiB
        r = self.deliver(d, "john@test.com", ["f@test.com", "g@test.com"], big, expect=None)
        self.assertTrue(r.startswith("500"), "delivery onto a full disk: %r" % r)
        self.assertEqual(read_bytes(mailbox_file(d, "f@test.com")), before, "mailbox changed")
        self.assertIn(read_bytes(mailbox_file(d, "g@test.com")), (None, b""))
        os.unlink(filler)
        self.deliver(d, "john@test.com", ["f@test.com"], big)
        self.assertEqual([g[2] for g in self.read_back(d, "f@test.com")], [first, big])
        self.check_mbox(d, "f@test.com", [first, big], sender="john@test.com")


class AllOrNothing(StoreTest):
    RCPTS = ["a@d.com", "b@d.com", "c@d.com"]

    def test_multi_recipient_one_fails(self):
        for bad in range(3):
            for preexisting in (True, False):
                with self.subTest(bad=self.RCPTS[bad], preexisting=preexisting):
                    d = self.mkdir("mb-%d-%d" % (bad, preexisting))
                    good = [r for i, r in enumerate(self.RCPTS) if i != bad]
                    if preexisting:
                        self.deliver(d, "x@d.com", good, [b"earlier"])
                    before = {r: read_bytes(mailbox_file(d, r)) for r in good}
                    os.mkdir(mailbox_file(d, self.RCPTS[bad]))
                    r = self.deliver(d, "x@d.com", self.RCPTS, [b"all or nothing", b"From x"],
                                     expect=None)
                    self.assertTrue(r.startswith("500"),
                                    "delivery with %s a directory: %r" % (self.RCPTS[bad], r))
                    for g in good:
                        after = read_bytes(mailbox_file(d, g))
                        if before[g] is None:
                            self.assertIn(after, (None, b""), "%s got a copy" % g)
                        else:
                            self.assertEqual(after, before[g], "%s changed" % g)
                    self.assertTrue(os.path.isdir(mailbox_file(d, self.RCPTS[bad])))
                    # The good ones still work, and read back right.
                    self.deliver(d, "x@d.com", good, [b"later"])
                    for g in good:
                        want = ([[b"earlier"]] if preexisting else []) + [[b"later"]]
                        self.assertEqual([x[2] for x in self.read_back(d, g)], want)
                        self.check_mbox(d, g, want, sender="x@d.com")


class UnsafeTargets(StoreTest):
    def _plant(self, kind, base):
        d = os.path.join(base, "mailbox")
        out = os.path.join(base, "outside")
        os.makedirs(d)
        os.makedirs(out)
        target = os.path.join(out, "target")
        path = mailbox_file(d, "x@test.com")
        if kind == "symlink":
            with open(target, "wb") as f:
                f.write(b"From someone Mon Jan  6 12:00:00 2025\nFrom: someone\n\nsecret\n\n")
            os.symlink(target, path)
        elif kind == "dangling-symlink":
            os.symlink(target, path)
        elif kind == "directory":
            os.mkdir(path)
            with open(os.path.join(path, "inside"), "wb") as f:
                f.write(b"keep")
        elif kind == "hardlink":
            with open(target, "wb") as f:
                f.write(b"From someone Mon Jan  6 12:00:00 2025\nFrom: someone\n\nsecret\n\n")
            os.link(target, path)
        elif kind == "fifo":
            os.mkfifo(path)
        return d

    def test_planted_mailbox_paths(self):
        for kind in ("symlink", "dangling-symlink", "directory", "hardlink", "fifo"):
            with self.subTest(kind=kind):
                base = os.path.join(self.root, kind)
                d = self._plant(kind, base)
                before = tree(base)
                c = self.pipe_session(d)
                self.ok(c, "HELO test.com")
                self.ok(c, "MAIL FROM: john@test.com")
                self.ok(c, "RCPT TO: x@test.com")
                r = c.data([b"must not land"])
                self.assertTrue(r.startswith("500"), "delivery to a %s: %r" % (kind, r))
                self.code(c, "LIST x@test.com", "500")
                self.code(c, "GET_MAIL x@test.com 1", "500")
                self.quit(c)
                after = tree(base)
                # An index beside a refused mailbox is not part of the question.
                after = {k: v for k, v in after.items() if not k.endswith(".idx")}
                self.assertEqual(after, before, "files changed around a planted %s" % kind)

    def test_planted_index_symlink(self):
        """A symlink where the index goes is never followed: its target stays as it was."""
        base = os.path.join(self.root, "idx")
        d = os.path.join(base, "mailbox")
        out = os.path.join(base, "outside")
        os.makedirs(d)
        os.makedirs(out)
        target = os.path.join(out, "target")
        with open(target, "wb") as f:
            f.write(b"precious\n")
        os.symlink(target, index_file(d, "x@test.com"))
        r = self.deliver(d, "john@test.com", ["x@test.com"], [b"hello"], expect=None)
        self.assertTrue(r in (STORED,) or r.startswith("500"), r)
        self.assertEqual(read_bytes(target), b"precious\n", "index symlink was followed")
        self.assertEqual(sorted(os.listdir(out)), ["target"])
        if r == STORED:
            self.assertEqual([g[2] for g in self.read_back(d, "x@test.com")], [[b"hello"]])
            self.assertEqual(read_bytes(target), b"precious\n", "index symlink was followed")


class BadAddresses(StoreTest):
    BAD = [
        b"../x@test.com", b"a/b@test.com", b"x@../../t", b"x@test.com/../../y",
        b"/etc/passwd", b"x@test.com/", b"..@test.com",
        b"x\x00y@test.com", b"x@test.com\x00.txt", b"x\\y@test.com", b"x@te\\st.com",
        b"x\x01y@test.com", b"x\ty@test.com", b"x\x7fy@test.com", b"x\ry@test.com",
        b"x\x1b[31m@test.com",
        b"a" * 65 + b"@test.com",
        b"x@" + b".".join([b"a" * 63] * 4)[:250] + b".com",   # domain of 254 octets
        b"x@-bad.com", b"x@bad-.com", b"x@" + b"a" * 64 + b".com",
        b".x@test.com", b"x.@test.com", b"x..y@test.com",
        b"x@test..com", b"x@.test.com", b"x@test.com.",
        b"\"x\"@test.com", b"'x'@test.com", b"x y@test.com", b"x@test com",
        b"x\xc3\xa9@test.com", b"x@t\xc3\xa9st.com", b"x\xff@test.com",
        b"@test.com", b"x@", b"x", b"x@@test.com", b"x@y@test.com", b"<x@test.com",
        b"x%y@test.com", b"x!y@test.com", b"x*@test.com", b"x@test_com.com",
        b"x@test.com:25", b"~x@test.com", b"x@[127.0.0.1]",
    ]

    def test_bad_addresses_get_400_and_create_nothing(self):
        top = os.path.join(self.root, "top")
        d = os.path.join(top, "a", "b", "mailbox")
        os.makedirs(d)
        cwd = os.path.join(top, "a", "b")
        self.assertIn(254, [len(a) - 2 for a in self.BAD if a.startswith(b"x@aaa")])
        # One valid message so LIST and GET_MAIL have something to refuse to reach.
        self.deliver(d, "john@test.com", ["john@test.com"], [b"hi"], args=["-A"], cwd=cwd)
        before = tree(top)
        c = self.pipe_session(d, ["-A", "-j", "100000"], cwd=cwd)
        self.ok(c, "HELO test.com")
        for addr in self.BAD:
            with self.subTest(addr=addr):
                self.code(c, b"MAIL FROM: " + addr, "400")
                self.ok(c, "NOOP")
                self.code(c, b"MAIL FROM: <" + addr + b">", "400")
                self.ok(c, "NOOP")
                self.code(c, b"LIST " + addr, "400")
                self.ok(c, "NOOP")
                self.code(c, b"GET_MAIL " + addr + b" 1", "400")
                self.ok(c, "NOOP")
        self.ok(c, "MAIL FROM: john@test.com")
        for addr in self.BAD:
            with self.subTest(rcpt=addr):
                self.code(c, b"RCPT TO: " + addr, "400")
                self.ok(c, "NOOP")
                self.code(c, b"RCPT TO:<" + addr + b">", "400")
                self.ok(c, "NOOP")
        # No recipient was taken: DATA is still refused.
        self.code(c, "DATA", "403")
        self.quit(c)
        after = tree(top)
        self.assertEqual(sorted(after), sorted(before), "files created or removed")
        self.assertEqual(after, before, "files changed")

    def test_boundary_addresses_are_valid(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-A"])
        self.ok(c, "HELO test.com")
        longdom = ".".join(["a" * 63] * 3) + "." + "b" * 61   # 253 octets
        self.assertEqual(len(longdom), 253)
        self.ok(c, "MAIL FROM: " + "l" * 64 + "@test.com")
        self.ok(c, "RCPT TO: " + "a" * 64 + "@test.com")
        self.ok(c, "RCPT TO: a.b_c+d-e@x-y.z9.com")
        # Valid, but no file name can hold more than 251 octets and ".txt":
        # refused at once rather than with a 500 after DATA.
        self.code(c, "RCPT TO: x@" + longdom, "403")
        self.code(c, "LIST x@" + longdom, "401")
        longest = "x@" + longdom[:249]
        self.assertEqual(len(longest), 251)
        self.ok(c, "RCPT TO: " + longest)
        self.assertEqual(c.data([b"to the longest address"]), STORED)
        r, entries = c.list(longest)
        self.assertEqual((r, len(entries)), ("200 OK", 1))
        self.quit(c)


class LockHolder:
    """Another process holding an fcntl lock on a file (fcntl.lockf)."""
    SCRIPT = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX if sys.argv[2] == "ex" else fcntl.LOCK_SH)
sys.stdout.write("locked\n"); sys.stdout.flush()
sys.stdin.read()
"""

    def __init__(self, test, path, mode):
        self.p = subprocess.Popen([sys.executable, "-c", self.SCRIPT, path, mode],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        test.addCleanup(self.release)
        line = self.p.stdout.readline()
        test.assertEqual(line, b"locked\n")

    def release(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(5)
        for f in (self.p.stdin, self.p.stdout):
            f.close()


class Locks(StoreTest):
    def setup_box(self):
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["l@test.com", "m@test.com"], [b"first"])
        return d

    def try_deliver(self, d, rcpts):
        c = self.pipe_session(d, ["-w", "1"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        for r in rcpts:
            self.ok(c, "RCPT TO: " + r)
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        c.send(b"blocked\r\n")
        t0 = time.monotonic()
        r = c.cmd(".", timeout=10 * SLOW)
        dt = time.monotonic() - t0
        self.ok(c, "NOOP")
        self.quit(c)
        return r, dt

    def test_lock_timeout_exclusive_holder(self):
        d = self.setup_box()
        path = mailbox_file(d, "l@test.com")
        before = read_bytes(path)
        h = LockHolder(self, path, "ex")
        r, dt = self.try_deliver(d, ["l@test.com"])
        self.assertTrue(r.startswith("500"), "delivery into a locked mailbox: %r" % r)
        self.assertGreater(dt, 0.8, "gave up before the lock timeout")
        self.assertLess(dt, 5 * SLOW, "-w 1 took too long")
        # A reader waits for a writer's lock too.
        c = self.pipe_session(d, ["-w", "1"])
        self.ok(c, "HELO test.com")
        self.code(c, "LIST l@test.com", "500")
        self.quit(c)
        h.release()
        self.assertEqual(read_bytes(path), before, "mailbox changed under a lock")
        self.deliver(d, "john@test.com", ["l@test.com"], [b"second"], args=["-w", "1"])
        self.assertEqual([g[2] for g in self.read_back(d, "l@test.com")], [[b"first"], [b"second"]])

    def test_shared_holder_blocks_writers_not_readers(self):
        d = self.setup_box()
        path = mailbox_file(d, "l@test.com")
        before = read_bytes(path)
        h = LockHolder(self, path, "sh")
        c = self.pipe_session(d, ["-w", "1"])
        self.ok(c, "HELO test.com")
        t0 = time.monotonic()
        r, entries = c.list("l@test.com")
        self.assertEqual(r, "200 OK", "LIST while another reader holds a shared lock")
        self.assertEqual(len(entries), 1)
        self.assertLess(time.monotonic() - t0, 0.8, "LIST waited for a shared lock")
        self.quit(c)
        r, dt = self.try_deliver(d, ["l@test.com"])
        self.assertTrue(r.startswith("500"), "delivery while a reader holds the lock: %r" % r)
        h.release()
        self.assertEqual(read_bytes(path), before)

    def test_waits_for_a_lock_that_is_released(self):
        """-w is a wait, not a try: a lock released meanwhile lets the delivery through."""
        d = self.setup_box()
        h = LockHolder(self, mailbox_file(d, "l@test.com"), "ex")
        timer = threading.Timer(0.5, h.release)
        timer.start()
        self.addCleanup(timer.cancel)
        c = self.pipe_session(d, ["-w", "5"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: l@test.com")
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        c.send(b"waited\r\n")
        t0 = time.monotonic()
        r = c.cmd(".", timeout=10 * SLOW)
        dt = time.monotonic() - t0
        self.assertEqual(r, STORED, "delivery after the lock was released")
        self.assertGreater(dt, 0.3, "did not wait for the lock")
        self.quit(c)
        timer.join()
        self.assertEqual([g[2] for g in self.read_back(d, "l@test.com")], [[b"first"], [b"waited"]])

    def test_lock_timeout_on_second_recipient_is_all_or_nothing(self):
        d = self.setup_box()
        before = {r: read_bytes(mailbox_file(d, r)) for r in ("l@test.com", "m@test.com")}
        h = LockHolder(self, mailbox_file(d, "m@test.com"), "ex")
        r, dt = self.try_deliver(d, ["l@test.com", "m@test.com"])
        self.assertTrue(r.startswith("500"), r)
        h.release()
        for a, b in before.items():
            self.assertEqual(read_bytes(mailbox_file(d, a)), b, "%s changed" % a)
        self.assertEqual([g[2] for g in self.read_back(d, "l@test.com")], [[b"first"]])


class Index(StoreTest):
    A = "i@test.com"
    BODIES = [[b"one", b"From one"], [b".two", b"", b">From two"], [b"three " * 50]]

    def build(self, d):
        """Deliver BODIES one by one; after each, save (mbox, idx, mbox mtime)."""
        saved = []
        for b in self.BODIES:
            self.deliver(d, "john@test.com", [self.A], b)
            saved.append((read_bytes(mailbox_file(d, self.A)), read_bytes(index_file(d, self.A)),
                          os.stat(mailbox_file(d, self.A)).st_mtime_ns))
        return saved

    def check(self, d, bodies):
        got = self.read_back(d, self.A)
        self.assertEqual([g[2] for g in got], bodies)
        return got

    def restore(self, d, mbox, idx, mtime_ns):
        """Put the mailbox back as it was (same bytes and mtime), with this index."""
        p = mailbox_file(d, self.A)
        if read_bytes(p) != mbox:
            with open(p, "r+b") as f:
                f.truncate(len(mbox))
                f.seek(0)
                f.write(mbox)
        os.utime(p, ns=(mtime_ns, mtime_ns))
        q = index_file(d, self.A)
        if os.path.exists(q):
            os.unlink(q)
        if idx is not None:
            with open(q, "wb") as f:
                f.write(idx)

    def foreign_index(self):
        """The index of another mailbox holding three messages of other sizes."""
        d = self.mkdir("foreign")
        for b in ([b"a" * 500], [b"b"], [b"c" * 70, b"d" * 900]):
            self.deliver(d, "john@test.com", [self.A], b)
        return read_bytes(index_file(d, self.A))

    def test_index_missing_stale_or_corrupt(self):
        d = self.mkdir()
        saved = self.build(d)
        self.assertIsNotNone(saved[-1][1], "no index file %s beside the mailbox" % index_file(d, self.A))
        mbox3, idx3, t3 = saved[2]
        mbox2, idx2, t2 = saved[1]
        _, idx1, _ = saved[0]
        rnd = random.Random(7)
        variants = [
            ("deleted", mbox3, None, t3, 3),
            ("empty", mbox3, b"", t3, 3),
            ("truncated-half", mbox3, idx3[:len(idx3) // 2], t3, 3),
            ("truncated-1", mbox3, idx3[:-1], t3, 3),
            ("garbage", mbox3, bytes(rnd.randrange(256) for _ in range(len(idx3))), t3, 3),
            ("all-ones", mbox3, b"\xff" * len(idx3), t3, 3),
            ("stale-older", mbox3, idx2, t3, 3),
            ("stale-much-older", mbox3, idx1, t3, 3),
            ("stale-newer", mbox2, idx3, t2, 2),
            ("extended", mbox3, idx3 + b"\0" * 64, t3, 3),
            ("foreign", mbox3, self.foreign_index(), t3, 3),
        ] + [("byte-%d-flipped" % i, mbox3,
              idx3[:i] + bytes([idx3[i] ^ 0x5a]) + idx3[i + 1:], t3, 3)
             for i in sorted({0, len(idx3) // 4, len(idx3) // 2, 3 * len(idx3) // 4, len(idx3) - 1})]
        for name, mbox, idx, mtime, n in variants:
            with self.subTest(index=name):
                self.restore(d, mbox, idx, mtime)
                self.check(d, self.BODIES[:n])
                # and a delivery on top of it lands as the next id
                self.deliver(d, "john@test.com", [self.A], [b"next after " + name.encode()])
                self.check(d, self.BODIES[:n] + [[b"next after " + name.encode()]])
                self.check_mbox(d, self.A, self.BODIES[:n] + [[b"next after " + name.encode()]],
                                sender="john@test.com")

    def test_message_appended_by_hand(self):
        d = self.mkdir()
        self.build(d)
        hand = (b"From alice@test.com Mon Jan  6 12:00:00 2025\n"
                b"Return-Path: <alice@test.com>\n"
                b"From: alice@test.com\n"
                b"To: i@test.com\n"
                b"Date: Mon, 06 Jan 2025 12:00:00 +0000\n"
                b"Message-ID: <hand.1@test.com>\n"
                b"\n"
                b"by hand\n"
                b">From quoted\n"
                b"..x\n"
                b"\n")
        with open(mailbox_file(d, self.A), "ab") as f:
            f.write(hand)
        want = self.BODIES + [[b"by hand", b"From quoted", b"..x"]]
        got = self.check(d, want)
        self.assertEqual(got[3][:2], ("alice@test.com", "06-01-2025"), "LIST entry of the hand-made message")
        self.deliver(d, "john@test.com", [self.A], [b"after hand"])
        self.check(d, want + [[b"after hand"]])

    def test_get_mail_ids(self):
        d = self.mkdir()
        self.build(d)
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        for bad in ("0", "-1", "abc", "1x", "", "+1", "0x1", "1.0", " "):
            with self.subTest(id=bad):
                self.code(c, "GET_MAIL i@test.com " + bad, "400")
                self.ok(c, "NOOP")
        for missing in ("4", "1000000", "4294967297"):
            with self.subTest(id=missing):
                self.code(c, "GET_MAIL i@test.com " + missing, "401")
        r = c.cmd("GET_MAIL i@test.com 99999999999999999999999999")
        self.assertTrue(r.startswith("400") or r.startswith("401"), r)
        self.code(c, "GET_MAIL nobody@test.com 1", "401")
        self.code(c, "LIST nobody@test.com", "401")
        r, s, dt, text = c.get_mail("i@test.com", "02")
        self.assertEqual((r, text), ("200 OK", self.BODIES[1]), "id with a leading zero")
        self.quit(c)


def hand_mbox(n, tag=b"msg"):
    """An mboxrd file of n small messages written by hand, and their texts."""
    parts, texts = [], []
    for i in range(1, n + 1):
        text = [b"%s %d" % (tag, i), b"From line %d" % i, b".dot"]
        texts.append(text)
        parts.append(b"From alice@test.com Mon Jan  6 12:00:00 2025\n"
                     b"Return-Path: <alice@test.com>\nFrom: alice@test.com\nTo: big@test.com\n"
                     b"Date: Mon, 06 Jan 2025 12:00:00 +0000\nMessage-ID: <%d.hand@test.com>\n\n" % i
                     + mboxrd_quote(text) + b"\n")
    return b"".join(parts), texts


class IndexUnderStress(StoreTest):
    A = "big@test.com"

    def test_concurrent_readers_mend_a_missing_index(self):
        d = self.mkdir()
        data, texts = hand_mbox(2000)
        with open(mailbox_file(d, self.A), "wb") as f:
            f.write(data)
        rnd = random.Random(3)
        for round_ in range(3):
            p = index_file(d, self.A)
            if os.path.exists(p):
                os.unlink(p)
            sessions = [self.pipe_session(d) for _ in range(8)]
            errors = []
            extra = [b"written in round %d" % round_]

            def reader(c, ids):
                try:
                    assert c.cmd("HELO test.com") == "200 OK"
                    r, entries = c.list(self.A)
                    assert r == "200 OK", r
                    assert len(entries) in (len(texts), len(texts) + 1), len(entries)
                    assert [e[0] for e in entries] == list(range(1, len(entries) + 1))
                    for i in ids:
                        r, s, dt, text = c.get_mail(self.A, i)
                        assert r == "200 OK", (i, r)
                        assert text == texts[i - 1], (i, text)
                    assert c.cmd("QUIT") == "200 Goodbye"
                except BaseException as e:
                    errors.append(repr(e))

            def writer(c):
                try:
                    for line in ("HELO test.com", "MAIL FROM: w@test.com", "RCPT TO: " + self.A):
                        assert c.cmd(line) == "200 OK", line
                    r = c.data(extra, timeout=30 * SLOW)
                    assert r == STORED, r
                    assert c.cmd("QUIT") == "200 Goodbye"
                except BaseException as e:
                    errors.append("writer: %r" % e)

            threads = [threading.Thread(target=reader, args=(c, [rnd.randrange(1, len(texts) + 1)
                                                                 for _ in range(5)] + [len(texts)]))
                       for c in sessions[:-1]]
            threads.append(threading.Thread(target=writer, args=(sessions[-1],)))
            for t in threads:
                t.start()
            for t in threads:
                t.join(60 * SLOW)
            self.assertFalse([t for t in threads if t.is_alive()], "sessions hang")
            self.assertEqual(errors, [], "round %d" % round_)
            for c in sessions:
                self.assertEqual(c.server.wait(), 0)
            texts.append(extra)
        got = self.read_back(d, self.A)
        self.assertEqual([g[2] for g in got], texts)

    def test_kill9_while_the_index_is_mended(self):
        d = self.mkdir()
        n = 10000
        data, texts = hand_mbox(n)
        with open(mailbox_file(d, self.A), "wb") as f:
            f.write(data)
        # Calibrate: a LIST that has to build the index.
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        t0 = time.monotonic()
        r, entries = c.list(self.A)
        span = time.monotonic() - t0
        self.assertEqual((r, len(entries)), ("200 OK", n))
        self.quit(c)
        rnd = random.Random(5)
        for k in range(15):
            with self.subTest(round=k):
                if k % 3 == 0 and os.path.exists(index_file(d, self.A)):
                    os.unlink(index_file(d, self.A))
                elif k % 3 == 1 and os.path.exists(index_file(d, self.A)):
                    os.truncate(index_file(d, self.A), os.path.getsize(index_file(d, self.A)) // 3)
                c = self.pipe_session(d)
                self.ok(c, "HELO test.com")
                c.send("LIST %s\r\n" % self.A)
                delay = span * k / 12
                t0 = time.monotonic()
                while time.monotonic() - t0 < delay:
                    pass
                os.kill(c.server.pid, signal.SIGKILL)
                c.server.wait()
                c = self.pipe_session(d)
                self.ok(c, "HELO test.com")
                for i in (1, rnd.randrange(1, n + 1), n):
                    r, s, dt, text = c.get_mail(self.A, i)
                    self.assertEqual((r, text), ("200 OK", texts[i - 1]), "GET_MAIL %d" % i)
                r, entries = c.list(self.A)
                self.assertEqual((r, len(entries)), ("200 OK", n))
                self.quit(c)
        self.assertEqual(read_bytes(mailbox_file(d, self.A)), data, "a reader changed the mailbox")


class Limits(StoreTest):
    def test_max_message_size(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-s", "100"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: s@test.com")
        self.assertEqual(c.data([b"small"]), STORED)
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: s@test.com")
        r = c.data([b"x" * 50, b"y" * 50, b"z" * 50])
        self.assertTrue(r.startswith("403"), "message over -s 100: %r" % r)
        self.check_reply_form(r)
        self.ok(c, "NOOP")
        # The transaction is over; a new one works.
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: s@test.com")
        self.assertEqual(c.data([b"small again"]), STORED)
        self.quit(c)
        self.assertEqual([g[2] for g in self.read_back(d, "s@test.com")], [[b"small"], [b"small again"]])

    def test_max_message_size_boundary(self):
        """-s counts the message text, each line end as one octet, after unstuffing."""
        d = self.mkdir()
        c = self.pipe_session(d, ["-s", "100"])
        self.ok(c, "HELO test.com")
        for lines, ok in (([b"x" * 99], True), ([b"x" * 100], False),
                          ([b"." + b"y" * 98], True), ([b"a" * 49, b"b" * 49], True),
                          ([b"a" * 49, b"b" * 50], False), ([b""] * 100, True), ([b""] * 101, False)):
            with self.subTest(lines=[len(l) for l in lines]):
                self.ok(c, "MAIL FROM: john@test.com")
                self.ok(c, "RCPT TO: s@test.com")
                r = c.data(lines)
                if ok:
                    self.assertEqual(r, STORED)
                else:
                    self.assertTrue(r.startswith("403"), r)
        self.quit(c)

    def test_max_recipients(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-r", "2"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: r1@test.com")
        self.ok(c, "RCPT TO: r2@test.com")
        self.code(c, "RCPT TO: r3@test.com", "403")
        self.assertEqual(c.data([b"two only"]), STORED)
        self.quit(c)
        for r in ("r1@test.com", "r2@test.com"):
            self.assertEqual([g[2] for g in self.read_back(d, r)], [[b"two only"]])
        self.assertFalse(os.path.exists(mailbox_file(d, "r3@test.com")))

    def test_duplicate_recipient_kept_once(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: dup@test.com")
        self.ok(c, "RCPT TO: <dup@test.com>")
        self.ok(c, "RCPT TO: DUP@Test.Com")
        self.assertEqual(c.data([b"once"]), STORED)
        self.quit(c)
        self.assertEqual([g[2] for g in self.read_back(d, "dup@test.com")], [[b"once"]])
        self.assertEqual(sorted(f for f in os.listdir(d) if f.endswith(".txt")), ["dup@test.com.txt"])

    def _timeout_case(self, d, before_idle):
        c = self.pipe_session(d, ["-t", "1"])
        before_idle(c)
        t0 = time.monotonic()
        r = c.reply(timeout=6 * SLOW)
        dt = time.monotonic() - t0
        self.assertEqual(r, "500 SERVER ERROR timeout")
        self.assertGreater(dt, 0.7, "closed before the idle timeout")
        self.assertLess(dt, 1 + 3 * SLOW, "-t 1 took too long")
        c.expect_eof()
        rc = c.server.wait()
        self.assertNotIn(rc, (98, 99), "sanitizer error")
        self.assertGreaterEqual(rc, 0, "killed by a signal")
        return c

    def test_idle_timeout(self):
        d = self.mkdir()
        with self.subTest(case="after greeting"):
            self._timeout_case(d, lambda c: None)
        with self.subTest(case="partial line"):
            self._timeout_case(d, lambda c: c.send(b"NOOP"))

        def in_data(c):
            self.ok(c, "HELO test.com")
            self.ok(c, "MAIL FROM: john@test.com")
            self.ok(c, "RCPT TO: t@test.com")
            self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
            c.send(b"half a message\r\n")
        with self.subTest(case="inside DATA"):
            self._timeout_case(d, in_data)
            self.assertFalse(os.path.exists(mailbox_file(d, "t@test.com")) and
                             read_bytes(mailbox_file(d, "t@test.com")),
                             "an unfinished message was stored")

    def test_timeout_not_reset_by_dribbled_bytes(self):
        """'[300] s without a complete line': a byte now and then is not a line."""
        d = self.mkdir()
        c = self.pipe_session(d, ["-t", "1"])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4 * SLOW:
            try:
                c.send(b"N", timeout=1)
            except ProtocolError:
                break           # closed on us: the reply is in the buffer
            c._fill(0.2)
            if b"\n" in c.buf or c.eof:
                break
        dt = time.monotonic() - t0
        try:
            got = c.reply(timeout=1)
        except ProtocolError as e:
            self.fail("no timeout after %.1fs of bytes trickling in without a line end "
                      "under -t 1: %s" % (dt, e))
        self.assertEqual(got, "500 SERVER ERROR timeout")
        self.assertLess(dt, 1 + 2 * SLOW)

    def test_max_errors(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-e", "3"])
        # a 200 in between resets the count
        self.assertEqual(c.cmd("BOGUS"), "400 ERR unknown command")
        self.code(c, "MAIL FROM: john@test.com", "403")
        self.ok(c, "NOOP")
        self.code(c, "BOGUS", "400")
        self.code(c, "BOGUS", "400")
        self.ok(c, "NOOP")
        self.code(c, "BOGUS 1", "400")
        self.code(c, "BOGUS 2", "400")
        self.code(c, "BOGUS 3", "400")
        self.assertEqual(c.reply(), "403 FORBIDDEN too many errors")
        c.expect_eof()
        rc = c.server.wait()
        self.assertNotIn(rc, (98, 99))
        self.assertGreaterEqual(rc, 0)

    def _hwm_baseline(self, d):
        c = self.pipe_session(d, preexec_fn=without_huge_pages())
        self.ok(c, "HELO test.com")
        base = vm_hwm_kib(c.server.pid)
        self.quit(c)
        return base

    def test_huge_command_line(self):
        d = self.mkdir()
        base = self._hwm_baseline(d)
        c = self.pipe_session(d, preexec_fn=without_huge_pages())
        c.send(b"A" * (10 << 20) + b"\r\nNOOP\r\n", timeout=30 * SLOW)
        self.assertEqual(c.reply(), "400 ERR line too long")
        self.assertEqual(c.reply(), "200 OK", "in step after the long line")
        hwm = vm_hwm_kib(c.server.pid)
        self.ok(c, "HELO test.com")
        self.quit(c)
        self.assertLess(hwm - base, 4096, "peak memory grew by %d KiB for a 10 MiB line" % (hwm - base))
        if FLAVOUR != "asan":
            self.assertLess(hwm, 20 << 10, "peak memory %d KiB" % hwm)

    def test_line_of_513_octets(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.assertEqual(c.cmd("NOOP " + "x" * 600), "400 ERR line too long")
        self.ok(c, "NOOP")
        # 510 octets + CRLF = 512: not too long (whatever LIST thinks of the address)
        line = "LIST " + "a" * 64 + "@" + "b" * (510 - 5 - 65)
        self.assertEqual(len(line) + 2, 512)
        r = c.cmd(line)
        self.assertNotEqual(r, "400 ERR line too long", "a 512-octet line is allowed")
        line = "LIST " + "a" * 64 + "@" + "b" * (511 - 5 - 65)
        self.assertEqual(c.cmd(line), "400 ERR line too long", "513 octets with CRLF")
        self.ok(c, "NOOP")
        self.quit(c)

    def test_huge_message_bounded_memory(self):
        d = self.mkdir()
        base = self._hwm_baseline(d)
        c = self.pipe_session(d, ["-s", "1048576"], preexec_fn=without_huge_pages())
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: h@test.com")
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        c.send(b"B" * (10 << 20) + b"\r\n" + (b"C" * 1000 + b"\r\n") * 1000 + b".\r\nNOOP\r\n",
               timeout=30 * SLOW)
        r = c.reply()
        self.assertTrue(r.startswith("403"), "11 MiB message over -s 1 MiB: %r" % r)
        self.assertEqual(c.reply(), "200 OK", "in step after the refused message")
        hwm = vm_hwm_kib(c.server.pid)
        self.quit(c)
        self.assertLess(hwm - base, 6144, "peak memory grew by %d KiB" % (hwm - base))
        self.assertFalse(read_bytes(mailbox_file(d, "h@test.com")), "refused message stored")

    def test_nul_in_message(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: n@test.com")
        r = c.data([b"abc", b"\x00.", b"def\x00ghi", b"end"])
        self.assertTrue(r.startswith("400"), "message holding a NUL: %r" % r)
        self.check_reply_form(r)
        self.ok(c, "NOOP")     # nothing else pending: '\0.' did not end the message
        self.quit(c)
        self.assertFalse(read_bytes(mailbox_file(d, "n@test.com")), "message with NUL stored")

    def test_nul_in_command(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.code(c, b"HELO test.com\x00", "400")
        self.code(c, b"NO\x00OP", "400")
        self.ok(c, "NOOP")
        self.quit(c)


class TornWithTheLongestHeader(StoreTest):
    """PROTOCOL.md section 4 with the longest header block a client can
    cause (a 318-octet sender, a 253-octet HELO domain, a 251-octet
    recipient, a 253-octet host name: over 2.5 KiB): mysmtpd is killed at
    every write of a delivery in turn (strace's fault injection), and after
    each kill LIST and GET_MAIL show the messages that got their 200 and at
    most one more, whole, never part of one."""

    def test_kill9_at_every_write(self):
        import shutil
        strace = shutil.which("strace")
        self.assertTrue(strace, "strace is not installed (make check installs it)")
        domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
        host = ".".join(["h" * 63, "i" * 63, "j" * 63, "k" * 61])
        sender = "s" * 64 + "@" + domain
        rcpt = "r" * 64 + "@" + ".".join(["e" * 63, "f" * 63, "g" * 58])
        self.assertEqual((len(domain), len(sender), len(rcpt)), (253, 318, 251))
        d = self.mkdir()
        whole = []
        for k in range(1, 40):
            text = [b"round %02d, line %d" % (k, i) for i in range(3)]
            session = ("HELO %s\r\nMAIL FROM: %s\r\nRCPT TO: %s\r\nDATA\r\n" % (domain, sender, rcpt)
                       ).encode() + b"".join(l + b"\r\n" for l in text) + b".\r\nQUIT\r\n"
            r = subprocess.run([strace, "-f", "-o", "/dev/null", "-e",
                                "inject=write:signal=SIGKILL:when=%d" % k, SERVER,
                                "-d", d, "-n", host], input=session, capture_output=True,
                               timeout=60 * SLOW, env=env_under_strace())
            if b"200 Message stored successfully" in r.stdout:
                whole.append(text)
            with self.subTest(kill_at_write=k):
                got = [lines for _, _, lines in self.read_back(d, rcpt)]
                self.assertIn(got, (whole, whole + [text]),
                              "only messages that got their 200, and at most the one killed, whole")
                if got == whole + [text]:
                    whole.append(text)
            if b"200 Goodbye" in r.stdout:
                break
        else:
            self.fail("the session never got past the last write")
        print("[killed at each of %d writes; %d messages whole]" % (k - 1, len(whole)), end=" ", flush=True)
        self.assertGreater(k, 5, "the delivery's writes were reached")
