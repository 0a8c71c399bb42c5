"""test_limits.py: the limits against abuse of PROTOCOL.md section 10, each
in both dialects: commands that neither deliver nor read mail (-j), the
session's lifetime (-T), sessions per peer address when listening (-p), the
mailbox size (-m) and the free-space reserve (-F); that refusals are logged
with the peer; and that the client is charged only for its own time.
"""

import fcntl
import os
import socket
import struct
import subprocess
import time

from support import (DATA_PROMPT, SLOW, STORED, TOP, ProtocolError, ServerTest, TcpSession,
                     mailbox_file, read_bytes)

JUNK = "403 FORBIDDEN too many commands without mail"
SMTP_JUNK = "421 4.7.0 test.host Error: too many commands without mail"
LIFETIME = "500 SERVER ERROR session time limit reached"
SMTP_LIFETIME = "421 4.4.2 test.host Error: session time limit exceeded"
BUSY = "500 SERVER ERROR too many connections"
FULL = "403 FORBIDDEN mailbox full"
SMTP_FULL = "552 5.2.2 Error: mailbox full"
NO_ROOM = "500 SERVER ERROR not enough free space in the store"
SMTP_NO_ROOM = "452 4.3.1 Error: insufficient system storage"
BODY = [b"%04d " % i + b"x" * 58 for i in range(16)]     # 1 KiB


class Limits(ServerTest):
    def smtp(self, d, args=()):
        c = self.pipe_session(d, ["-S", "-n", "test.host"] + list(args), greet=False)
        self.assertTrue(c.reply().startswith("220 "))
        return c

    def smtp_open(self, c, rcpts, sender="john@test.com"):
        """EHLO, MAIL, RCPT...: the RCPT replies."""
        c.send(b"EHLO client.example\r\n")
        while not c.reply().startswith("250 "):
            pass
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), "250 2.1.0 Ok")
        return [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]

    def smtp_data(self, c, lines):
        self.assertEqual(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"".join(l + b"\r\n" for l in lines) + b".\r\n")
        return c.reply()

    # -- commands that neither deliver nor read mail
    def test_junk_commands_close_the_session(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-j", "5"])
        for line in ("HELO test.com", "NOOP", "BOGUS", "RSET"):
            c.cmd(line)
        self.ok(c, "MAIL FROM: john@test.com")      # a useful command: the count starts again
        for line in ("NOOP", "HELP", "RSET", "NOOP"):
            self.assertTrue(c.cmd(line).startswith("200"), line)
        self.ok(c, "NOOP")                          # the fifth in a row gets its reply ...
        self.assertEqual(c.reply(), JUNK)           # ... and then the session ends
        c.expect_eof()
        self.assertEqual(c.server.wait(), 0)
        self.assertIn("Too many commands without mail; closing.", c.server.log_lines())

    def test_junk_default_is_100(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        c.send(b"NOOP\r\n" * 120)
        self.assertEqual([c.reply() for _ in range(100)], ["200 OK"] * 100)
        self.assertEqual(c.reply(), JUNK)
        c.expect_eof()

    def test_smtp_junk_commands(self):
        d = self.mkdir()
        c = self.smtp(d, ["-j", "3"])
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(c.cmd("RSET"), "250 2.0.0 Ok")
        self.assertEqual(c.cmd("VRFY x"), "252 2.0.0 Cannot VRFY user, but will accept "
                                          "message and attempt delivery")
        self.assertEqual(c.reply(), SMTP_JUNK)
        c.expect_eof()

    def test_smtp_recipients_past_the_limit_are_no_client_error(self):
        """A pipelining client sends 121 RCPT TO under -r 100 -e 20: the 21
        past the limit get 452, which is not a client error (they could not
        know), so the session goes on and the 100 get the message."""
        d = self.mkdir()
        c = self.smtp(d)
        c.send(b"EHLO client.example\r\nMAIL FROM:<john@test.com>\r\n" +
               b"".join(b"RCPT TO:<r%03d@test.com>\r\n" % i for i in range(121)) + b"DATA\r\n")
        while not c.reply().startswith("250 "):
            pass
        self.assertEqual(c.reply(), "250 2.1.0 Ok")
        got = [c.reply() for _ in range(121)]
        self.assertEqual(got, ["250 2.1.5 Ok"] * 100 + ["452 4.5.3 Error: too many recipients"] * 21)
        self.assertEqual(c.reply(), "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"Subject: to a hundred\r\n\r\nhi\r\n.\r\n")
        self.assertTrue(c.reply().startswith("250 2.0.0 Ok: stored as "))
        self.quit_smtp(c)
        self.assertEqual(len([f for f in os.listdir(d) if f.endswith(".txt")]), 100)

    # -- the session's lifetime
    def test_session_lifetime(self):
        """-T 2 under -t 30: a client that keeps busy is still closed after 2 s."""
        d = self.mkdir()
        for args, helo, noop, bye in ((["-T", "2", "-t", "30"], "HELO test.com", "200 OK", LIFETIME),
                                      (["-S", "-n", "test.host", "-T", "2", "-t", "30"],
                                       "HELO client.example", "250 2.0.0 Ok", SMTP_LIFETIME)):
            with self.subTest(args=args):
                c = self.pipe_session(d, args, greet=False)
                c.reply()
                t0 = time.monotonic()
                c.cmd(helo)
                got = []
                for _ in range(200):
                    try:
                        c.send(b"NOOP\r\n")
                    except ProtocolError:
                        pass            # closed while we slept: its last line is there
                    got.append(c.reply(timeout=10 * SLOW))
                    if got[-1] != noop:
                        break
                    time.sleep(0.25)
                self.assertEqual(got[-1], bye)
                self.assertGreaterEqual(time.monotonic() - t0, 1.9)
                c.expect_eof()
                self.assertEqual(c.server.wait(), 0)

    # -- sessions per peer address when listening
    def test_sessions_per_peer(self):
        """-p 2: a third session from 127.0.0.1 is refused while two run; one
        from 127.0.0.2 is served; when one ends, 127.0.0.1 is served again."""
        d = self.mkdir()
        server, port = self.start_listener(d, ["-p", "2", "-c", "10"])
        first, second = self.tcp_session(port), self.tcp_session(port)
        third = TcpSession(port)
        self.closers.append(third.close)
        self.assertEqual(third.reply(), BUSY)
        third.expect_eof()
        server.wait_log(r"Too many connections from one address; refused 127\.0\.0\.1$")
        other = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW,
                                         source_address=("127.0.0.2", 0))
        self.closers.append(other.close)
        self.assertRegex(other.makefile("rb").readline().decode(), r"^200 \S+ My_SMTP ready\r\n$")
        self.quit(first)
        for _ in range(100):        # until the listener has reaped the first session
            again = TcpSession(port)
            self.closers.append(again.close)
            if again.reply() != BUSY:
                break
            time.sleep(0.05)
        self.ok(again, "HELO test.com")
        for c in (second, again):
            self.quit(c)

    def test_per_peer_cap_counts_sessions_not_exiting_processes(self):
        """8 clients from one address, each connecting again the moment its
        QUIT is answered, under -p 8: none is refused, because a session
        counts until its last reply is sent, not until its process is gone."""
        loadgen = os.path.join(TOP, "build", "bench", "loadgen")
        self.assertTrue(os.access(loadgen, os.X_OK), "%s is missing (make build/bench/loadgen)" % loadgen)
        d = self.mkdir()
        server, port = self.start_listener(d, ["-p", "8"])
        r = subprocess.run([loadgen, "-c", "8", "-n", "400", "-T", str(int(60 * SLOW)),
                            "127.0.0.1", str(port)], capture_output=True, timeout=90 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b" failed=0 ", r.stdout)
        self.assertFalse([l for l in server.log_lines() if "refused" in l])

    # -- the mailbox size limit
    def sizes(self, d, addr):
        data = read_bytes(mailbox_file(d, addr))
        return None if data is None else len(data)

    def test_mailbox_size_limit(self):
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["big@test.com"], BODY)
        size = self.sizes(d, "big@test.com")
        before = read_bytes(mailbox_file(d, "big@test.com"))
        # room for no second copy
        c = self.pipe_session(d, ["-m", str(size + 1000)])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: new@test.com")
        self.ok(c, "RCPT TO: big@test.com")
        self.assertEqual(c.data(BODY), FULL, "all or nothing: no copy for anyone")
        self.quit(c)
        self.assertEqual(read_bytes(mailbox_file(d, "big@test.com")), before)
        self.assertIsNone(read_bytes(mailbox_file(d, "new@test.com")), "no mailbox made")
        # a mailbox at its limit is refused at RCPT TO
        c = self.pipe_session(d, ["-m", str(size)])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.assertEqual(c.cmd("RCPT TO: big@test.com"), FULL)
        self.ok(c, "RCPT TO: new@test.com")
        self.assertEqual(c.data(BODY), STORED)
        self.quit(c)
        self.assertEqual(read_bytes(mailbox_file(d, "big@test.com")), before)
        # SMTP mode: 552 5.2.2, at RCPT and after DATA
        c = self.smtp(d, ["-m", str(size)])
        self.assertEqual(self.smtp_open(c, ["big@test.com"]), [SMTP_FULL])
        self.quit_smtp(c)
        c = self.smtp(d, ["-m", str(size + 300)])
        self.assertEqual(self.smtp_open(c, ["big@test.com"]), ["250 2.1.5 Ok"])
        self.assertEqual(self.smtp_data(c, [b"Subject: x", b"", b"y"]), SMTP_FULL)
        self.quit_smtp(c)
        self.assertEqual(read_bytes(mailbox_file(d, "big@test.com")), before)
        # -m 0: no limit
        self.deliver(d, "john@test.com", ["big@test.com"], BODY, args=["-m", "0"])

    def quit_smtp(self, c):
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        c.expect_eof()

    # -- the free-space reserve
    def small_store(self, kib):
        mnt = os.path.join(self.root, "small")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % kib, "tmpfs", mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "cannot mount a small tmpfs (needs root): %r" % r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        d = os.path.join(mnt, "mailbox")
        os.mkdir(d)
        return mnt, d

    def test_free_space_reserve(self):
        """A 1 MiB store: -F 50 takes mail while more than half of it is free
        and refuses it, before writing anything, once it is not."""
        mnt, d = self.small_store(1024)
        self.deliver(d, "john@test.com", ["f@test.com"], BODY, args=["-F", "50"])
        before = read_bytes(mailbox_file(d, "f@test.com"))
        with open(os.path.join(mnt, "filler"), "wb") as f:
            f.write(b"\0" * (600 << 10))
        r = self.deliver(d, "john@test.com", ["f@test.com", "g@test.com"], BODY,
                         args=["-F", "50"], expect=NO_ROOM)
        self.assertEqual(read_bytes(mailbox_file(d, "f@test.com")), before)
        self.assertIsNone(read_bytes(mailbox_file(d, "g@test.com")))
        c = self.smtp(d, ["-F", "50"])
        self.smtp_open(c, ["f@test.com"])
        self.assertEqual(self.smtp_data(c, [b"Subject: x", b"", b"y"]), SMTP_NO_ROOM)
        self.quit_smtp(c)
        self.assertEqual(read_bytes(mailbox_file(d, "f@test.com")), before)
        # a smaller reserve takes it, and -F 0 is none
        self.deliver(d, "john@test.com", ["f@test.com"], BODY, args=["-F", "20"])
        self.deliver(d, "john@test.com", ["f@test.com"], BODY, args=["-F", "0"])
        self.assertIn("DATA received, refused: the store's file system is nearly full.",
                      self.servers[1].log_lines())
        self.assertTrue(r)

    # -- refusals are logged
    def test_refusals_are_logged_with_the_peer(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-s", "100"])
        self.ok(c, "HELO test.com")
        self.code(c, "MAIL FROM: eve@other.org", "403")
        self.code(c, "LIST david@other.org", "403")
        self.code(c, "LIST nobody@test.com", "401")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: david@test.com")
        self.assertTrue(c.data([b"a\0b"]).startswith("400"))
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: david@test.com")
        self.assertTrue(c.data([b"x" * 200]).startswith("403"))
        self.quit(c)
        refused = [l for l in c.server.log_lines() if l.startswith("Refused ")]
        self.assertEqual(refused, [
            "Refused MAIL from local: 403 FORBIDDEN sender not in the HELO domain",
            "Refused LIST from local: 403 FORBIDDEN mailbox not in the HELO domain",
            "Refused LIST from local: 401 NOT FOUND no such mailbox",
            "Refused DATA from local: 400 ERR message holds a NUL octet",
            "Refused DATA from local: 403 FORBIDDEN message larger than 100 octets"])
        c = self.smtp(d, ["-D", "test.com"])
        self.assertEqual(self.smtp_open(c, ["x@other.org"]), ["550 5.1.2 Error: domain not served here"])
        self.quit_smtp(c)
        self.assertIn("Refused RCPT from local: 550 5.1.2 Error: domain not served here",
                      c.server.log_lines())

    # -- the client's time, not the server's
    def test_the_server_s_own_time_is_not_charged_to_the_client(self):
        """-t 2 -w 10, the mailbox locked by another program for 3 s: the
        delivery waits for the lock and succeeds, and the NOOP the client
        sent at once is answered, not timed out."""
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["locked@test.com"], BODY)
        fd = os.open(mailbox_file(d, "locked@test.com"), os.O_RDWR)
        self.addCleanup(os.close, fd)
        fcntl.fcntl(fd, fcntl.F_SETLKW, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
        c = self.pipe_session(d, ["-t", "2", "-w", "10"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: locked@test.com")
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        c.send(b"".join(l + b"\r\n" for l in BODY) + b".\r\nNOOP\r\n")
        time.sleep(3)
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack("hhqqi", fcntl.F_UNLCK, 0, 0, 0, 0))
        self.assertEqual(c.reply(timeout=10 * SLOW), STORED)
        self.assertEqual(c.reply(), "200 OK", "the NOOP sent in time is answered")
        self.quit(c)

    # -- the default mailbox folder
    def test_default_mailbox_folder_is_made_when_missing(self):
        cwd = os.path.join(self.root, "elsewhere")
        os.mkdir(cwd)
        s = self.spawn([], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = s.proc.communicate(b"HELO test.com\nMAIL FROM: john@test.com\n"
                                    b"RCPT TO: david@test.com\nDATA\nHi\n.\nQUIT\n", timeout=10 * SLOW)
        self.assertIn(b"200 Message stored successfully\r\n", out)
        st = os.stat(os.path.join(cwd, "mailbox"))
        self.assertEqual(st.st_mode & 0o777, 0o700)
        self.assertTrue(os.path.isfile(os.path.join(cwd, "mailbox", "david@test.com.txt")))
        self.assertIn("Created mailbox directory mailbox", s.log_lines())
        # a folder named with -d is never made
        s = self.spawn(["-d", "missing"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = s.proc.communicate(b"QUIT\n", timeout=10 * SLOW)
        self.assertEqual(out, b"500 SERVER ERROR mailbox directory unavailable\r\n")
        self.assertFalse(os.path.exists(os.path.join(cwd, "missing")))

    # -- the lines said with no session, each dialect in its own words
    def test_each_dialect_says_busy_and_unavailable_in_its_own_words(self):
        accounts = os.path.join(self.root, "passwd")
        open(accounts, "w").close()
        dialects = (([], "500 SERVER ERROR", BUSY),
                    (["-S", "-n", "test.host"], "421 4.3.0 Error:",
                     "421 4.7.0 test.host Error: too many connections"),
                    (["--pop3", "-u", accounts], "-ERR [SYS/TEMP]",
                     "-ERR [SYS/TEMP] too many connections"))
        for n, (args, unavailable, busy) in enumerate(dialects):
            with self.subTest(args=args):
                s = self.spawn(args + ["-d", os.path.join(self.root, "missing")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                out, _ = s.proc.communicate(b"", timeout=10 * SLOW)
                self.assertEqual(out, (unavailable + " mailbox directory unavailable\r\n").encode())
                self.assertEqual(s.wait(), 75, "EX_TEMPFAIL")
                server, port = self.start_listener(self.mkdir("box%d" % n), args + ["-c", "1"])
                first = self.tcp_session(port, greet=False)
                self.assertNotEqual(first.reply(), busy, "the first is served")
                second = TcpSession(port)
                self.closers.append(second.close)
                self.assertEqual(second.reply(), busy)
                second.expect_eof()
                server.kill()
