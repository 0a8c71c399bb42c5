"""test_delete.py: deleting mail (PROTOCOL.md section 9), one mechanism
under DELETE and POP3's QUIT: ids move up after a deletion; another
program's mail around the deleted message stays octet for octet; a kill -9
at every system call of a deletion (strace) and a fault at every store call
(tests/faults/shim.c) leave the mailbox byte for byte as it was or as it is
after, and the next reader sees it whole; 64 clients delivering while
another deletes lose nothing; a reader that opened the mailbox before a
deletion reads on, whole; POP3's QUIT deletes another program's marked
message wherever a deletion moved it, and says -ERR, never +OK, when a
rewrite leaves it unknown, in place (mutt) or by rename.
"""

import os
import poplib
import re
import shutil
import subprocess
import threading
import time

from support import (REPLY_TIMEOUT, SANITIZER_MARKS, SERVER, SLOW, ServerTest, Sweep,
                     env_under_strace, index_file, mailbox_file, parse_mbox, read_bytes, sweep_test)
from test_accounts import two_accounts
from test_faults import SHIM, preload

DAVID = "david@test.com"
FOREIGN = (b"From other@mda.example Sat Aug 15 10:00:00 2025\nSubject: foreign one\n"
           b"Content-Length: 999\n\nwritten by another MDA\n>From kept as it is\n\n")
# Every call a deletion makes on the store, for strace to kill it at.
# Every call of a deletion that changes a file or a lock, for strace to
# kill it before.
SYSCALLS = ["openat", "fcntl", "ftruncate", "copy_file_range", "pwrite64", "fdatasync", "fchmod",
            "fchown", "unlinkat", "linkat", "renameat", "renameat2", "fsync", "close"]


def session_bytes(*lines):
    return b"".join(l.encode() + b"\r\n" for l in lines)


class DeleteTest(ServerTest):
    def setUp(self):
        super().setUp()
        self.d = self.mkdir()

    def fill(self, n, to=DAVID):
        for i in range(n):
            self.deliver(self.d, "john@test.com", [to], [b"message %d" % i, b"From line %d" % i],
                         args=("-A",))

    def pipe(self, data, extra=(), env=None, wrap=()):
        p = subprocess.run(list(wrap) + [SERVER, "-d", self.d, "-A", "--open-delete"] + list(extra), input=data,
                           capture_output=True, timeout=60 * SLOW, env=env)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, p.stderr)
        return p

    def bodies(self):
        return [m.text_lines()[0] for m in parse_mbox(read_bytes(mailbox_file(self.d, DAVID)) or b"")]


class Command(DeleteTest):
    def test_ids_move_up_and_errors(self):
        self.fill(3)
        c = self.pipe_session(self.d, ["-A", "--open-delete"])
        self.ok(c, "HELO test.com")
        self.ok(c, "DELETE %s 2" % DAVID)
        r, entries = c.list(DAVID)
        self.assertEqual([e[0] for e in entries], [1, 2])
        self.assertEqual(c.get_mail(DAVID, 2)[3][0], b"message 2", "id 3 became 2")
        self.code(c, "DELETE %s 3" % DAVID, "401")
        self.code(c, "DELETE nobody@test.com 1", "401")
        self.code(c, "DELETE %s 0" % DAVID, "400")
        self.code(c, "DELETE %s" % DAVID, "400")
        self.code(c, "DELETE bad 1", "400")
        self.quit(c)
        self.assertEqual(self.bodies(), [b"message 0", b"message 2"])

    def test_only_the_owner_deletes(self):
        self.fill(1)
        accounts = two_accounts(self.root)
        c = self.pipe_session(self.d, ["-u", accounts])
        self.ok(c, "HELO test.com")
        self.code(c, "DELETE %s 1" % DAVID, "403")
        self.ok(c, "AUTH john@test.com hunter2")
        self.code(c, "DELETE %s 1" % DAVID, "403")
        self.quit(c)
        self.assertEqual(self.bodies(), [b"message 0"])
        c = self.pipe_session(self.d, ["-u", accounts])
        self.ok(c, "HELO test.com")
        self.ok(c, "AUTH %s secret1" % DAVID)
        self.ok(c, "DELETE %s 1" % DAVID)
        self.quit(c)
        self.assertEqual(self.bodies(), [])

    def test_foreign_mail_around_it_stays_octet_for_octet(self):
        """Junk before the first message, another MDA's message with a wrong
        Content-Length, one without a final LF: deleting ours between them
        cuts exactly its octets, and its mode stays."""
        path = mailbox_file(self.d, DAVID)
        with open(path, "wb") as f:
            f.write(b"junk before any From line\n" + FOREIGN)
        os.chmod(path, 0o640)
        self.fill(1)
        with open(path, "ab") as f:
            f.write(FOREIGN + b"From last@mda.example Sat Aug 15 10:00:00 2025\n\nno LF")
        before = read_bytes(path)
        ours = before.index(b"From john@test.com ")
        end = before.index(b"From other@", ours)
        r = self.pipe(session_bytes("HELO test.com", "DELETE %s 2" % DAVID, "QUIT"))
        self.assertEqual(r.stdout.split(b"\r\n")[2], b"200 OK")
        self.assertEqual(read_bytes(path), before[:ours] + before[end:])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)
        self.assertEqual(sorted(os.listdir(self.d)), [DAVID + ".idx", DAVID + ".txt"])


class KillAtEveryStep(DeleteTest):
    """kill -9 at each system call a DELETE makes, one after another."""

    def test_kill9_at_every_call(self):
        strace = shutil.which("strace")
        self.assertTrue(strace, "strace is not installed (make check installs it)")
        self.fill(4)
        path, idx = mailbox_file(self.d, DAVID), index_file(self.d, DAVID)
        with open(path, "ab") as f:
            f.write(FOREIGN)
        old, old_idx = read_bytes(path), read_bytes(idx)
        data = session_bytes("HELO test.com", "DELETE %s 2" % DAVID, "QUIT")
        self.assertEqual(self.pipe(data).stdout.split(b"\r\n")[2], b"200 OK")
        new = read_bytes(path)
        self.assertEqual(len(parse_mbox(new)), 4)
        counts = {"old": 0, "new": 0}
        runs = 0
        for call in SYSCALLS:
            for k in range(1, 200):
                with open(path, "wb") as f:
                    f.write(old)
                with open(idx, "wb") as f:
                    f.write(old_idx)
                r = self.pipe(data, env=env_under_strace(), wrap=[
                    strace, "-f", "-o", "/dev/null", "-e", "trace=%s" % call,
                    "-e", "inject=%s:signal=SIGKILL:when=%d" % (call, k)])
                runs += 1
                got = read_bytes(path)
                with self.subTest(call=call, at=k):
                    self.assertIn(got, (old, new), "the mailbox is the old one or the new one")
                    if r.stdout.split(b"\r\n")[2:3] == [b"200 OK"]:
                        self.assertEqual(got, new, "a 200 is durable")
                    counts["old" if got == old else "new"] += 1
                    leftovers = set(os.listdir(self.d)) - {DAVID + ".txt", DAVID + ".idx",
                                                           DAVID + ".tmp"}
                    self.assertEqual(leftovers, set())
                    back = self.read_back(self.d, DAVID)
                    self.assertEqual(len(back), len(parse_mbox(got)), "the next reader sees it all")
                if b"200 Goodbye" in r.stdout:
                    break
        print("[%d kills: %d left the old mailbox, %d the new]" % (runs, counts["old"], counts["new"]),
              end=" ", flush=True)
        self.assertGreater(counts["new"], 0)
        self.assertGreater(counts["old"], 10)


class FaultAtEveryCall(DeleteTest):
    """ENOSPC, EIO, EINTR, a short write, at every store call of a DELETE."""

    @sweep_test
    def test_every_fault(self):
        self.assertTrue(os.path.isfile(SHIM), "fault shim %s missing" % SHIM)
        self.fill(3)
        path, idx = mailbox_file(self.d, DAVID), index_file(self.d, DAVID)
        with open(path, "ab") as f:
            f.write(FOREIGN)
        old = read_bytes(path)

        def restore():     # the same start each time: the old mailbox, no index
            with open(path, "wb") as f:
                f.write(old)
            if os.path.exists(idx):
                os.unlink(idx)

        restore()
        data = session_bytes("HELO test.com", "DELETE %s 1" % DAVID, "QUIT")
        report = os.path.join(self.root, "report")
        env = dict(os.environ, LD_PRELOAD=preload(), FAULT_DIR=self.d, FAULT_CALLS="all",
                   FAULT_AT="0", FAULT_REPORT=report)
        self.assertEqual(self.pipe(data, env=env).stdout.split(b"\r\n")[2], b"200 OK")
        calls = int(re.match(r"calls (\d+)", read_bytes(report).decode()).group(1))
        kinds = read_bytes(report).decode().split()[-1].split(",")
        # After the mailbox's rename, only the directory's fsync is left: if
        # it fails the reply is 500, but the running system has the new file.
        installed = max(i for i, k in enumerate(kinds) if k == "rename") + 1
        for k in ("copy", "fdatasync", "link", "rename", "fsync"):
            self.assertIn(k, kinds, "the shim sees the deletion's %s" % k)
        new = read_bytes(path)
        replies = {}
        points = Sweep("test_delete.every_fault")
        for mode in ("ENOSPC", "EIO", "EINTR", "SHORT"):
            for at in range(1, calls + 1):
                if not points.take(mode, at):
                    continue
                restore()
                env.update(FAULT_AT=str(at), FAULT_MODE=mode)
                out = self.pipe(data, env=env).stdout
                got = read_bytes(path)
                reply = (out.split(b"\r\n") + [b""] * 3)[2]
                ok = reply == b"200 OK"
                with self.subTest(mode=mode, at=at):
                    self.assertTrue(ok or b"500 SERVER ERROR " in out, out)
                    if ok or at <= installed:
                        self.assertEqual(got, new if ok else old, "200: the new mailbox; 500: the old")
                    else:
                        self.assertIn(got, (old, new))
                    self.assertEqual(len(self.read_back(self.d, DAVID)), len(parse_mbox(got)))
                replies[(mode, ok)] = replies.get((mode, ok), 0) + 1
        print("[%d store calls a deletion; %s; %s]" % (calls, ", ".join(
            "%s->%s x%d" % (m, "200" if o else "500", n) for (m, o), n in sorted(replies.items())),
            points.note()), end=" ", flush=True)


class Concurrency(DeleteTest):
    def test_deliveries_racing_a_deleter_lose_nothing(self):
        """64 clients deliver one message each while another session takes
        message 1 and deletes it, again and again: every message is either
        in the mailbox or was the one deleted, once."""
        self.fill(1)
        delivered, errors, taken = [b"message 0"], [], []
        lock = threading.Lock()
        done = threading.Event()

        def deliverer(i):
            body = b"racer %d" % i
            r = self.pipe(session_bytes("HELO test.com", "MAIL FROM: john@test.com",
                                        "RCPT TO: " + DAVID, "DATA", body.decode(), ".", "QUIT"))
            with lock:
                if b"200 Message stored successfully" in r.stdout:
                    delivered.append(body)
                else:
                    errors.append(r.stdout)

        def deleter():
            deadline = time.monotonic() + 60 * SLOW
            while time.monotonic() < deadline and len(taken) < 40:
                r = self.pipe(session_bytes("HELO test.com", "GET_MAIL %s 1" % DAVID,
                                            "DELETE %s 1" % DAVID, "QUIT"))
                lines = r.stdout.split(b"\r\n")
                got = lines[2] == b"200 OK"
                if got and lines[lines.index(b".", 3) + 1] == b"200 OK":
                    taken.append(lines[5])
                if done.is_set() and not got:
                    break

        threads = [threading.Thread(target=deliverer, args=(i,)) for i in range(64)]
        killer = threading.Thread(target=deleter)
        killer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        done.set()
        killer.join(120 * SLOW)
        self.assertEqual(errors, [])
        left = self.bodies()
        self.assertEqual(sorted(left + taken), sorted(delivered),
                         "each message kept or deleted, exactly once")
        self.assertGreater(len(taken), 0)
        print("[64 deliveries, %d deleted during them]" % len(taken), end=" ", flush=True)


class ReaderBefore(DeleteTest):
    def test_pop3_session_reads_on_after_a_delete(self):
        """A POP3 session's messages stay readable after a DELETE replaced
        the file; its own DELE then removes the right one, by UIDL."""
        self.fill(3)
        accounts = two_accounts(self.root)
        _, port = self.start_listener(self.d, ["--pop3", "-u", accounts])
        p = poplib.POP3("127.0.0.1", port, timeout=REPLY_TIMEOUT)
        self.closers.append(p.close)
        p.user(DAVID)
        p.pass_("secret1")
        self.assertEqual(p.stat()[0], 3)
        r = self.pipe(session_bytes("HELO test.com", "DELETE %s 1" % DAVID, "QUIT"))
        self.assertEqual(r.stdout.split(b"\r\n")[2], b"200 OK")
        for n in (1, 2, 3):
            self.assertIn(b"message %d" % (n - 1), p.retr(n)[1], "message %d whole" % n)
        p.dele(3)
        p.quit()
        self.assertEqual(self.bodies(), [b"message 1"])

    def foreign_mailbox(self, n):
        """n messages written by another program (Python's mailbox), none
        with a UID of ours; their subjects."""
        import mailbox
        mb = mailbox.mbox(mailbox_file(self.d, DAVID))
        for i in range(n):
            m = mailbox.mboxMessage("Subject: other %d\n\nbody of other %d\n" % (i, i))
            m.set_from("other@mda.example", time.gmtime(1700000000 + i))
            mb.add(m)
        mb.close()
        os.chmod(mailbox_file(self.d, DAVID), 0o600)
        return ["other %d" % i for i in range(n)]

    def subjects(self):
        return [m.header("subject") for m in parse_mbox(read_bytes(mailbox_file(self.d, DAVID)))]

    def pop3_dele_3_then(self, meanwhile):
        """A POP3 session marks message 3 of another program's four; then
        meanwhile() rewrites the mailbox; then QUIT. The reply to QUIT."""
        accounts = two_accounts(self.root)
        _, port = self.start_listener(self.d, ["--pop3", "-u", accounts])
        p = poplib.POP3("127.0.0.1", port, timeout=REPLY_TIMEOUT)
        self.closers.append(p.close)
        p.user(DAVID)
        p.pass_("secret1")
        self.assertEqual(p.stat()[0], 4)
        self.assertIn(b"Subject: other 2", p.top(3, 0)[1])
        p.dele(3)
        meanwhile()
        try:
            return p.quit().decode()
        except poplib.error_proto as e:
            return e.args[0].decode()

    def test_pop3_deletes_another_programs_message_after_a_delete(self):
        """Another program's message marked by DELE is found at QUIT after
        a DELETE of an earlier one moved it: +OK, and it is the one gone."""
        self.foreign_mailbox(4)
        reply = self.pop3_dele_3_then(lambda: self.assertEqual(self.pipe(session_bytes(
            "HELO test.com", "DELETE %s 1" % DAVID, "QUIT")).stdout.split(b"\r\n")[2], b"200 OK"))
        self.assertEqual(reply, "+OK bye, 1 messages deleted")
        self.assertEqual(self.subjects(), ["other 1", "other 3"])

    def test_pop3_quit_says_err_when_the_marked_message_cannot_be_told(self):
        """Another program rewrote the mailbox (its index made anew, its
        messages numbered afresh): the marked message cannot be told from
        the others, so QUIT answers -ERR [SYS/TEMP] and nothing is lost."""
        import mailbox
        self.foreign_mailbox(4)

        def rewrite():
            mb = mailbox.mbox(mailbox_file(self.d, DAVID))
            mb.lock()
            mb.remove(mb.keys()[0])
            mb.flush()
            mb.unlock()
            mb.close()
        reply = self.pop3_dele_3_then(rewrite)
        self.assertEqual(reply, "-ERR [SYS/TEMP] some deleted messages not removed (0 were)")
        self.assertEqual(self.subjects(), ["other 1", "other 2", "other 3"])

    def test_pop3_quit_tells_the_marked_message_by_its_octets_after_an_in_place_rewrite(self):
        """Another program rewrote the mailbox in place, as mutt does (the
        same file, under its lock), putting a message of the same length
        where the marked one was, and its index was lost: that message now
        has the marked one's UID and offset, but not its octets. QUIT
        deletes neither and answers -ERR [SYS/TEMP]."""
        import fcntl
        self.foreign_mailbox(4)
        path = mailbox_file(self.d, DAVID)

        def swap_3_and_4():
            with open(path, "r+b") as f:
                fcntl.lockf(f, fcntl.LOCK_EX)
                data = f.read()
                starts = [m.start() for m in re.finditer(rb"^From ", data, re.M)]
                third, fourth = data[starts[2]:starts[3]], data[starts[3]:]
                self.assertEqual(len(third), len(fourth))
                f.seek(starts[2])
                f.write(fourth + third)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
                fcntl.lockf(f, fcntl.LOCK_UN)
            os.unlink(index_file(self.d, DAVID))
        reply = self.pop3_dele_3_then(swap_3_and_4)
        self.assertEqual(reply, "-ERR [SYS/TEMP] some deleted messages not removed (0 were)")
        self.assertEqual(self.subjects(), ["other 0", "other 1", "other 3", "other 2"])
