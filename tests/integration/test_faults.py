"""test_faults.py: fault injection on the store (PROTOCOL.md sections 2 and 4:
all-or-nothing delivery; a failed delivery leaves every mailbox as it was).

The server runs with tests/faults/shim.c preloaded (build/faults/shim.so,
or $FAULT_SHIM), which makes the Nth write, writev, pwrite, fsync,
fdatasync, ftruncate, rename or open(at) on a file under the store fail. A
clean delivery first counts the calls; then the delivery is made once for
every N, with the store put back as it was before each. Whatever N and the
fault, the reply is 500 and every mailbox file is byte for byte as it was,
or the reply is 200 and each recipient's mailbox holds exactly the new
message more; a fault that the server must retry (EINTR or a short write, on
a write) gives 200. LIST and GET_MAIL then agree with the files.
"""

import os
import re
import subprocess
import time

from support import (SANITIZER_MARKS, SERVER, SLOW, STORED, TOP, ServerTest, Sweep, parse_mbox,
                     read_bytes, sweep_test)

SHIM = os.environ.get("FAULT_SHIM") or os.path.join(TOP, "build", "faults", "shim.so")
WRITES = "write,writev,pwrite"
STORE_FAILED = "500 SERVER ERROR the store failed"
NO_STORE = "500 SERVER ERROR mailbox directory unavailable"
SPOOL_FAILED = "500 SERVER ERROR cannot hold the message"
FAILED = (STORE_FAILED, NO_STORE, SPOOL_FAILED)
# ENOSPC, EIO and EINTR on every kind of call; a short write, and a short
# write followed by ENOSPC (a disk filling mid-write), on the write calls.
# Last, two faults in a row (EIO,EIO): the second may hit the truncate that
# takes a failed copy back, which no server can then do, so what is asked
# there is what a kill -9 must leave: earlier messages untouched, the new
# one whole or absent, and the next delivery clears any torn tail.
SWEEPS = [("all", "ENOSPC"), ("all", "EIO"), ("all", "EINTR"),
          (WRITES, "SHORT"), (WRITES, "SHORT,ENOSPC"), ("all", "EIO,EIO")]
RETRIED = {"SHORT"}          # these (and EINTR on a write) must be retried: 200 only
DOUBLE = {"EIO,EIO"}


def preload():
    """LD_PRELOAD for the server: the shim, after libasan for a sanitized build."""
    libs = [SHIM]
    out = subprocess.run(["ldd", SERVER], capture_output=True, text=True).stdout
    m = re.search(r"(\S*libasan\.so\S*) => (\S+)", out)
    if m:
        libs.insert(0, m.group(2))
    return " ".join(libs)


def session_input(rcpts, lines, helo="test.com", sender="f@test.com"):
    s = b"HELO %s\r\nMAIL FROM: %s\r\n" % (helo.encode(), sender.encode())
    s += b"".join(b"RCPT TO: %s\r\n" % r.encode() for r in rcpts)
    s += b"DATA\r\n" + b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
    return s + b".\r\nQUIT\r\n"


class Scenario:
    """A store holding some mailboxes, and one delivery to make onto it."""

    def __init__(self, name, existing, rcpts, lines):
        self.name, self.existing, self.rcpts, self.lines = name, existing, rcpts, lines


BIG = [b"%05d big line " % i + b"b" * 1000 for i in range(70)]     # > 64 KiB: spooled to a file
SCENARIOS = [
    Scenario("one recipient, existing mailbox", ["a@test.com"], ["a@test.com"],
             [b"new message", b"From the shim", b".dot"]),
    Scenario("one recipient, new mailbox", ["a@test.com"], ["n@test.com"], [b"to a new box"]),
    Scenario("three recipients, one new", ["a@test.com", "b@test.com"],
             ["b@test.com", "n@test.com", "a@test.com"], [b"for three", b"", b"From x"]),
    Scenario("big message, two recipients", ["a@test.com"], ["n@test.com", "a@test.com"], BIG),
]


class Faults(ServerTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isfile(SHIM), "fault shim %s missing (make build/faults/shim.so)" % SHIM)
        self.preload = preload()
        self.runs = 0
        self.torn = 0           # double faults that left something to mend
        self.calls_seen = {}    # scenario -> {kinds: calls counted in a clean delivery}
        self.points = Sweep("test_faults.every_fault_at_every_call")

    # -- running the server
    def run_server(self, d, data, fault=None, report=None):
        """One piped session; (stdout text, exit status, stderr bytes)."""
        env = dict(os.environ)
        if fault is not None:
            kinds, at, mode = fault
            env.update(LD_PRELOAD=self.preload, FAULT_DIR=d, FAULT_CALLS=kinds,
                       FAULT_AT=str(at), FAULT_MODE=mode, FAULT_REPORT=report)
        p = subprocess.run([SERVER, "-d", d, "-n", "test.host", "-w", "5"], input=data,
                           capture_output=True, env=env, timeout=30 * SLOW)
        self.runs += 1
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, p.stderr, "sanitizer report (fault %r): %r" % (fault, p.stderr[:2000]))
        return p.stdout.decode("latin-1"), p.returncode, p.stderr

    def count_calls(self, d, data, kinds):
        """Counted calls of a clean run: (number, [kinds in order])."""
        report = os.path.join(self.root, "report")
        if os.path.exists(report):
            os.unlink(report)
        out, rc, _ = self.run_server(d, data, (kinds, 0, ""), report)
        self.assertEqual(rc, 0)
        self.assertIn(STORED, out)
        m = re.match(r"calls (\d+) fired 0 kinds (\S*)$", read_bytes(report).decode().strip())
        self.assertTrue(m, "shim report %r" % read_bytes(report))
        return int(m.group(1)), m.group(2).split(",") if m.group(2) else []

    def delivery_reply(self, out):
        lines = out.split("\r\n")
        if lines and lines[0] == NO_STORE:
            return NO_STORE
        for l in lines:
            if l == STORED or l.startswith("500 "):
                return l
        return None

    # -- the store before and after
    def snapshot(self, d):
        return {f: read_bytes(os.path.join(d, f)) for f in sorted(os.listdir(d))}

    def restore(self, d, snap):
        """Put every file back as it was, in place (same inode), and remove new ones."""
        for f in os.listdir(d):
            if f not in snap:
                os.unlink(os.path.join(d, f))
        for f, data in snap.items():
            with open(os.path.join(d, f), "r+b" if os.path.exists(os.path.join(d, f)) else "wb") as fh:
                fh.write(data)
                fh.truncate()

    def check_outcome(self, d, sc, snap, reply, what):
        """500 and every mailbox as before, or 200 and each recipient one message more."""
        names = sorted(os.listdir(d))
        stray = [f for f in names if not f.endswith((".txt", ".idx"))]
        self.assertEqual(stray, [], "%s: stray files" % what)
        boxes = {f for f in names if f.endswith(".txt")} | {f for f in snap if f.endswith(".txt")}
        rcpt_files = {r + ".txt" for r in sc.rcpts}
        for f in sorted(boxes):
            before, after = snap.get(f), read_bytes(os.path.join(d, f))
            if reply == STORED and f in rcpt_files:
                old = before or b""
                self.assertTrue(after is not None and after.startswith(old),
                                "%s: %s lost its earlier messages" % (what, f))
                msgs = parse_mbox(after[len(old):], f)
                self.assertEqual(len(msgs), 1, "%s: %s holds %d new messages" % (what, f, len(msgs)))
                self.assertEqual(msgs[0].text_lines(), sc.lines, "%s: new message in %s" % (what, f))
                self.assertEqual(msgs[0].header("to"), f[:-4])
            else:
                self.assertEqual(after, before, "%s (reply %r): %s changed" % (what, reply, f))

    def check_torn_at_most(self, d, sc, snap, what):
        """After a 500 with a second fault: earlier messages untouched; a
        clean delivery next leaves, after them, the failed message whole or
        not at all, then the new one."""
        left = 0
        for f, before in snap.items():
            if f.endswith(".txt"):
                after = read_bytes(os.path.join(d, f))
                self.assertTrue(after is not None and after.startswith(before),
                                "%s: earlier messages of %s touched" % (what, f))
                left += after != before
        self.torn += left > 0
        marker = [b"after the double fault"]
        out, rc, _ = self.run_server(d, session_input(sc.rcpts, marker))
        self.assertIn(STORED, out, "%s: the next delivery" % what)
        for r in sc.rcpts:
            after = read_bytes(os.path.join(d, r + ".txt"))
            old = snap.get(r + ".txt") or b""
            msgs = parse_mbox(after[len(old):], r)
            texts = [m.text_lines() for m in msgs]
            self.assertIn(texts, ([marker], [sc.lines, marker]),
                          "%s: %s after the next delivery" % (what, r))

    def check_read_back(self, d, sc, snap, reply, what):
        """LIST and GET_MAIL (no faults) see exactly the messages of the files."""
        data = b"HELO test.com\r\n"
        want = {}
        for r in sorted(set(sc.rcpts) | set(sc.existing)):
            old = snap.get(r + ".txt")
            n = len(parse_mbox(old)) if old else 0
            if reply == STORED and r in sc.rcpts:
                n += 1
            want[r] = n
            data += b"LIST %s\r\n" % r.encode()
        data += b"QUIT\r\n"
        out, rc, _ = self.run_server(d, data)
        self.assertEqual(rc, 0)
        got, cur, lines = {}, None, out.split("\r\n")
        addrs = iter(sorted(want))
        for l in lines[2:]:
            if cur is None:
                cur = next(addrs, None)
                if cur is None:
                    break
                got[cur] = 0 if l == "200 OK" else -1
                if l != "200 OK":
                    cur = None
            elif l == ".":
                cur = None
            else:
                got[cur] += 1
        for r, n in want.items():
            self.assertEqual(got.get(r, -1) if n else max(got.get(r, 0), 0), n,
                             "%s: LIST %s after the fault (reply %r): %r" % (what, r, reply, out[:300]))

    # -- the sweep
    def prepare(self, sc):
        d = self.mkdir("store-" + re.sub(r"\W+", "-", sc.name))
        for i, r in enumerate(sc.existing):
            for k in range(2):
                out, rc, _ = self.run_server(d, session_input([r], [b"earlier %d to %s" % (k, r.encode()),
                                                                    b"From before"]))
                self.assertIn(STORED, out)
        return d

    def sweep(self, sc):
        """Every N, every fault: returns (number of runs, {reply: count})."""
        d = self.prepare(sc)
        data = session_input(sc.rcpts, sc.lines)
        snap = self.snapshot(d)
        self.check_read_back(d, sc, snap, None, sc.name + ": as prepared")
        report = os.path.join(self.root, "report")
        tried, replies = 0, {}
        for kinds, mode in SWEEPS:
            self.restore(d, snap)
            calls, kind_of = self.count_calls(d, data, kinds)
            self.assertGreater(calls, 0, "no %s calls seen under the store: the shim misses them" % kinds)
            self.calls_seen.setdefault(sc.name, {})[kinds] = calls
            for n in range(1, calls + 1):
                if not self.points.take(sc.name, kinds, mode, n):
                    continue
                what = "%s: %s at call %d of %d (%s)" % (sc.name, mode, n, calls, kinds)
                self.restore(d, snap)
                if os.path.exists(report):
                    os.unlink(report)
                out, rc, _ = self.run_server(d, data, (kinds, n, mode), report)
                self.assertRegex(read_bytes(report).decode(), r"fired [1-9]", what)
                reply = self.delivery_reply(out)
                self.assertIn(reply, (STORED,) + FAILED, "%s: reply %r" % (what, out[-300:]))
                self.assertEqual(rc, 75 if reply == NO_STORE else 0, "%s: exit status" % what)
                if mode in RETRIED or (mode == "EINTR" and kind_of[n - 1] in WRITES.split(",")):
                    self.assertEqual(reply, STORED, "%s: a retryable fault was not retried" % what)
                if mode in DOUBLE and reply != STORED:
                    self.check_torn_at_most(d, sc, snap, what)
                else:
                    self.check_outcome(d, sc, snap, reply, what)
                    if reply == STORED or self.snapshot(d) != snap:   # else: as prepared
                        self.check_read_back(d, sc, snap, reply, what)
                replies[(mode, reply[:3])] = replies.get((mode, reply[:3]), 0) + 1
                tried += 1
        return tried, replies

    def test_shim_sees_the_store_calls(self):
        """The interposition hits the real binary: opens (__openat_2 in a
        _FORTIFY_SOURCE build), writes, fdatasync and the index's pwrites."""
        d = self.prepare(SCENARIOS[2])
        n, kinds = self.count_calls(d, session_input(["a@test.com", "z@test.com"], [b"x"]), "all")
        for k in ("open", "write", "fdatasync", "fsync", "pwrite"):
            self.assertIn(k, kinds, "no %s call seen under the store (saw %s)" % (k, kinds))
        # and a fault on the first open of a mailbox does reach the server
        calls, kinds = self.count_calls(d, session_input(["a@test.com"], [b"x"]), "open")
        report = os.path.join(self.root, "r2")
        out, rc, _ = self.run_server(d, session_input(["a@test.com"], [b"x"]), ("open", 2, "EIO"), report)
        self.assertEqual(self.delivery_reply(out), STORE_FAILED)

    def test_unopenable_index_leaves_no_new_mailbox(self):
        """A delivery that made a new mailbox and then cannot open its index
        (here a directory stands where the index goes) answers 500 and takes
        the new mailbox back: LIST still says 401, as before."""
        d = self.mkdir()
        os.mkdir(os.path.join(d, "n@test.com.idx"))
        out, rc, _ = self.run_server(d, session_input(["a@test.com", "n@test.com"], [b"x"]))
        self.assertEqual(self.delivery_reply(out), STORE_FAILED)
        self.assertEqual(sorted(os.listdir(d)), ["n@test.com.idx"],
                         "files left by a delivery that failed")
        out, rc, _ = self.run_server(d, b"HELO test.com\r\nLIST n@test.com\r\nQUIT\r\n")
        self.assertIn("\r\n401 ", out)

    @sweep_test
    def test_every_fault_at_every_call(self):
        t0 = time.monotonic()
        total, summary = 0, {}
        for sc in SCENARIOS:
            with self.subTest(scenario=sc.name):
                n, replies = self.sweep(sc)
                total += n
                for k, v in replies.items():
                    summary[k] = summary.get(k, 0) + v
        figures = ", ".join("%s->%s x%d" % (m, r, c) for (m, r), c in sorted(summary.items()))
        figures += "; calls per delivery (all/writes): " + ", ".join(
            "%d/%d" % (v["all"], v[WRITES]) for v in self.calls_seen.values())
        print("[%d faulted deliveries, %d server runs in %.1fs: %s; %d double faults left a tail"
              " the next delivery mended; %s]" % (total, self.runs, time.monotonic() - t0, figures,
                                                  self.torn, self.points.note()), end=" ", flush=True)


class SyncAfterUnlock(ServerTest):
    """A delivery makes its copies durable after it lets their locks go, so
    that deliveries to one mailbox share the journal's commits. When that
    sync fails, another delivery may have appended after the copy meanwhile:
    the copy is then taken out by its UID, and the other message stays."""

    def deliver_raw(self, d, data):
        p = subprocess.run([SERVER, "-d", d, "-n", "test.host"], input=data,
                           capture_output=True, timeout=30 * SLOW)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, p.stderr)
        return p.stdout.decode("latin-1")

    def test_a_failed_sync_takes_back_only_its_own_copy(self):
        d = self.mkdir()
        self.assertTrue(os.path.isfile(SHIM), "fault shim %s missing" % SHIM)
        for k in range(2):
            self.assertIn(STORED, self.deliver_raw(d, session_input(["a@test.com"],
                                                                    [b"earlier %d" % k])))
        before = read_bytes(os.path.join(d, "a@test.com.txt"))
        env = dict(os.environ, LD_PRELOAD=preload(), FAULT_DIR=d, FAULT_CALLS="fdatasync",
                   FAULT_AT="1", FAULT_MODE="EIO", FAULT_DELAY_MS=str(int(1000 * SLOW)))
        failing = subprocess.Popen([SERVER, "-d", d, "-n", "test.host"], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        self.addCleanup(failing.kill)
        failing.stdin.write(session_input(["a@test.com"], [b"the one whose sync fails"]))
        failing.stdin.close()
        deadline = time.monotonic() + 10 * SLOW
        while b"the one whose sync fails" not in read_bytes(os.path.join(d, "a@test.com.txt")):
            self.assertLess(time.monotonic(), deadline, "the failing copy never appeared")
            time.sleep(0.01)
        out = self.deliver_raw(d, session_input(["a@test.com"], [b"appended after it"]))
        self.assertIn(STORED, out, "a delivery while the other waits for its sync")
        self.assertIsNone(failing.poll(), "the second delivery waited for the first's sync")
        out, err = failing.stdout.read(), failing.stderr.read()
        failing.wait(30 * SLOW)
        self.assertIn(STORE_FAILED, out.decode(), "the failed sync's reply")
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err)
        after = read_bytes(os.path.join(d, "a@test.com.txt"))
        self.assertTrue(after.startswith(before), "earlier messages touched")
        msgs = parse_mbox(after[len(before):])
        self.assertEqual([m.text_lines() for m in msgs], [[b"appended after it"]])
        out = self.deliver_raw(d, b"HELO test.com\r\nLIST a@test.com\r\nQUIT\r\n")
        self.assertEqual(out.count("Email from f@test.com"), 3, out)

    def test_a_reader_syncs_before_it_reads(self):
        """The delivery indexed its copy before syncing it, so a reader finds
        the index current: it syncs the mailbox all the same before LIST,
        and when that sync fails it answers 500 rather than list a copy a
        crash could take back."""
        d = self.mkdir()
        self.assertIn(STORED, self.deliver_raw(d, session_input(["a@test.com"], [b"one"])))
        report = os.path.join(self.root, "report")
        listing = b"HELO test.com\r\nLIST a@test.com\r\nQUIT\r\n"
        for mode, want in (("", "1: Email from f@test.com"), ("EIO", "500 SERVER ERROR")):
            with self.subTest(mode=mode or "no fault"):
                env = dict(os.environ, LD_PRELOAD=preload(), FAULT_DIR=d, FAULT_CALLS="fdatasync",
                           FAULT_AT="1" if mode else "0", FAULT_MODE=mode, FAULT_REPORT=report)
                p = subprocess.run([SERVER, "-d", d], input=listing, capture_output=True,
                                   env=env, timeout=30 * SLOW)
                self.assertIn(want, p.stdout.decode())
                calls = read_bytes(report).decode().splitlines()[-1]
                self.assertRegex(calls, r"^calls [1-9]", "the reader synced nothing")
