"""test_session.py: one inetd-style session (PROTOCOL.md sections 1, 2, 5, 6).

The transcripts test exact dialogues; these check what needs a real process:
exit status, stderr logs, options, timing of pipelined input.
"""

import os
import socket
import subprocess

from support import (DATA_PROMPT, GOODBYE, HELP_TEXT, SEED_BODY, SEED_LOG, SERVER, STORED,
                     SLOW, ServerTest, TcpSession, is_subsequence, mailbox_file, read_bytes,
                     seed_session)


class Session(ServerTest):
    def test_seed_example(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        seed_session(self, c)
        self.check_mbox(d, "david@test.com", [SEED_BODY], sender="john@test.com",
                        helo="test.com", peer="local")
        lines = c.server.log_lines()
        msgs = [l.split("] ", 1)[1] if l.startswith("[") and "] " in l else l for l in lines]
        self.assertTrue(is_subsequence(SEED_LOG, msgs),
                        "log lines out of order or missing:\n%s" % "\n".join(lines))
        self.assertTrue(any(m.startswith("Client connected") for m in msgs), lines)

    def test_greeting_hostname(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-n", "mx.example.org"], greet=False)
        self.assertEqual(c.reply(), "200 mx.example.org My_SMTP ready")
        self.quit(c)
        c = self.pipe_session(d, greet=False)
        self.assertEqual(c.reply(), "200 %s My_SMTP ready" % socket.gethostname())
        self.quit(c)

    def test_help_noop_rset_unknown(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.assertEqual(c.cmd("HELP"), HELP_TEXT)
        self.ok(c, "NOOP")
        self.ok(c, "RSET")
        self.assertEqual(c.cmd("FROBNICATE"), "400 ERR unknown command")
        self.assertEqual(c.cmd(""), "400 ERR unknown command")
        self.quit(c)

    def test_case_and_address_forms(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "helo Test.COM")
        for form in ("mail from: john@test.com", "Mail From:<John@Test.com>",
                     "MAIL FROM: <john@TEST.com>", "MAIL FROM:john@test.com"):
            self.ok(c, form)
            self.ok(c, "rset")
        self.ok(c, "MAIL FROM: <John@Test.Com>")
        self.ok(c, "rcpt to:<David@Test.COM>")
        self.assertEqual(c.data([b"Mixed Case Body"]), STORED)
        r, entries = c.list("DAVID@test.com")
        self.assertEqual(r, "200 OK")
        self.assertEqual([(e[0], e[1]) for e in entries], [(1, "john@test.com")])
        r, sender, date, text = c.get_mail("david@TEST.COM", 1)
        self.assertEqual((r, sender, text), ("200 OK", "john@test.com", [b"Mixed Case Body"]))
        self.quit(c)
        self.assertEqual(sorted(f for f in os.listdir(d) if f.endswith(".txt")), ["david@test.com.txt"])

    def test_state_rules(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.code(c, "MAIL FROM: john@test.com", "403")
        self.code(c, "RCPT TO: david@test.com", "403")
        self.code(c, "DATA", "403")
        self.code(c, "LIST david@test.com", "403")
        self.code(c, "GET_MAIL david@test.com 1", "403")
        self.code(c, "HELO", "400")
        self.code(c, "HELO bad/host", "400")
        self.code(c, "HELO -bad.com", "400")
        self.ok(c, "HELO [127.0.0.1]")
        self.ok(c, "HELO test.com")
        self.code(c, "RCPT TO: david@test.com", "403")
        self.code(c, "DATA", "403")
        self.ok(c, "MAIL FROM: john@test.com")
        self.code(c, "MAIL FROM: john@test.com", "403")
        self.code(c, "DATA", "403")
        self.ok(c, "RCPT TO: david@test.com")
        self.ok(c, "RSET")
        self.code(c, "DATA", "403")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: david@test.com")
        self.ok(c, "HELO test.com")            # starts afresh
        self.code(c, "DATA", "403")
        self.quit(c)
        self.assertIsNone(read_bytes(mailbox_file(d, "david@test.com")))

    def test_helo_domain_rule(self):
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["eve@other.com", "david@test.com"], [b"x"])
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.code(c, "MAIL FROM: mallory@other.com", "403")
        self.code(c, "LIST eve@other.com", "403")
        self.code(c, "GET_MAIL eve@other.com 1", "403")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: eve@other.com")    # RCPT may name any domain
        self.quit(c)
        c = self.pipe_session(d, ["-A"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: mallory@other.com")
        r, entries = c.list("eve@other.com")
        self.assertEqual((r, len(entries)), ("200 OK", 1))
        self.quit(c)

    def test_served_domains(self):
        d = self.mkdir()
        c = self.pipe_session(d, ["-D", "test.com", "-D", "Example.ORG"])
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: david@test.com")
        self.ok(c, "RCPT TO: ann@example.org")
        self.code(c, "RCPT TO: eve@other.com", "403")
        self.code(c, "RCPT TO: eve@sub.test.com", "403")
        self.assertEqual(c.data([b"served"]), STORED)
        self.quit(c)
        self.assertIsNone(read_bytes(mailbox_file(d, "eve@other.com")))
        self.assertIsNotNone(read_bytes(mailbox_file(d, "ann@example.org")))

    def test_pipelined_commands(self):
        """Commands sent in one write are answered one by one, in order."""
        d = self.mkdir()
        c = self.pipe_session(d)
        c.send(b"HELO test.com\r\nMAIL FROM: john@test.com\r\nRCPT TO: p@test.com\r\nDATA\r\n"
               b"line one\r\n..dot\r\n.\r\nNOOP\r\nLIST p@test.com\r\nQUIT\r\n")
        for want in ("200 OK", "200 OK", "200 OK", DATA_PROMPT, STORED, "200 OK", "200 OK"):
            self.assertEqual(c.reply(), want)
        self.assertEqual(c.multiline()[0][:14], b"1: Email from ")
        self.assertEqual(c.reply(), GOODBYE)
        c.expect_eof()
        self.assertEqual(c.server.wait(), 0)
        self.assertEqual([g[2] for g in self.read_back(d, "p@test.com")], [[b"line one", b".dot"]])

    def test_eof_mid_message_stores_nothing(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: e@test.com")
        self.assertEqual(c.cmd("DATA"), DATA_PROMPT)
        c.send(b"unfinished\r\nno final dot\r\n")
        c.server.proc.stdin.close()
        rc = c.server.wait()
        self.assertNotIn(rc, (98, 99), "sanitizer error")
        self.assertGreaterEqual(rc, 0, "killed by a signal")
        self.assertFalse(read_bytes(mailbox_file(d, "e@test.com")), "unfinished message stored")

    def test_quit_inside_data_is_text(self):
        d = self.mkdir()
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.ok(c, "MAIL FROM: john@test.com")
        self.ok(c, "RCPT TO: q@test.com")
        self.assertEqual(c.data([b"QUIT", b"RSET", b"HELO x"]), STORED)
        self.quit(c)
        self.assertEqual([g[2] for g in self.read_back(d, "q@test.com")], [[b"QUIT", b"RSET", b"HELO x"]])

    def test_log_escapes_client_text(self):
        """Client text in a log line is escaped and cut short."""
        d = self.mkdir()
        c = self.pipe_session(d, ["-A"])
        self.ok(c, "HELO test.com")
        c.cmd(b"MAIL FROM: x\x1b[2J\x07@test.com")
        c.cmd(b"LIST a\x7f\xff\xfe@test.com")
        c.cmd(b"GET_MAIL a@test.com 1\x1b]0;title\x07")
        c.cmd(b"HELO " + b"a" * 400 + b"\x1b")
        c.cmd(b"X\x1b" + b"b" * 500)
        self.quit(c)
        log = c.server.log()
        bad = sorted({b for b in log if (b < 0x20 and b not in (0x0a,)) or b >= 0x7f})
        self.assertEqual(bad, [], "raw control or non-ASCII bytes from the client in the log: %r"
                         % [l for l in log.split(b"\n") if any(x in l for x in bytes(bad))][:3])
        self.assertLess(max(len(l) for l in log.split(b"\n")), 1024, "a log line is not cut short")

    def test_peer_from_launcher_environment(self):
        """REMOTE_ADDR (systemd), TCPREMOTEIP (tcpserver), REMOTE_HOST (xinetd) name the peer."""
        for var, addr in (("REMOTE_ADDR", "192.0.2.7"), ("TCPREMOTEIP", "198.51.100.9"),
                          ("REMOTE_HOST", "203.0.113.5")):
            with self.subTest(var=var):
                d = self.mkdir(var)
                env = {k: v for k, v in os.environ.items()
                       if k not in ("REMOTE_ADDR", "TCPREMOTEIP", "REMOTE_HOST")}
                env[var] = addr
                self.deliver(d, "john@test.com", ["david@test.com"], [b"hi"], env=env)
                self.check_mbox(d, "david@test.com", [[b"hi"]], sender="john@test.com",
                                helo="test.com", peer=addr)
                self.assertIn("Client connected: " + addr,
                              [l.split("] ", 1)[-1] for l in self.servers[-1].log_lines()])

    def test_peer_with_line_break_does_not_inject_headers(self):
        d = self.mkdir()
        env = dict(os.environ, REMOTE_ADDR="192.0.2.7\nX-Injected: yes\n\nFrom evil")
        self.deliver(d, "john@test.com", ["david@test.com"], [b"hi"], env=env)
        msgs = self.check_mbox(d, "david@test.com", [[b"hi"]], sender="john@test.com", peer=None)
        self.assertIsNone(msgs[0].header("x-injected"), "header injected through the peer address")
        log = self.servers[-1].log_lines()
        self.assertFalse([l for l in log if l.startswith("X-Injected")], "line injected into the log")

    def test_logs_never_reach_the_client(self):
        """xinetd style: stdin, stdout and stderr are all the TCP connection; the
        client sees replies only (logs go to syslog)."""
        d = self.mkdir()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        client = TcpSession(lsock.getsockname()[1])
        self.closers.append(client.close)
        conn, _ = lsock.accept()
        self.addCleanup(conn.close)
        s = self.spawn(["-d", d], argv=[SERVER, "-d", d], stdin=conn.fileno(),
                       stdout=conn.fileno(), stderr_fd=conn.fileno())
        conn.close()
        self.assertRegex(client.reply(), r"^200 \S+ My_SMTP ready$")
        seed_session(self, client)
        self.assertEqual(s.wait(), 0)
        self.check_mbox(d, "david@test.com", [SEED_BODY], sender="john@test.com", peer="127.0.0.1")

    def test_bad_options_and_missing_directory(self):
        d = self.mkdir()
        for args in (["-s", "abc"], ["-c", "0"], ["-t", "-1"], ["--no-such-option"],
                     ["-r", "99999999999999999999999"], ["-l", "127.0.0.1:99999"], ["-U", "0"],
                     ["--max-use", "1000001"]):
            with self.subTest(args=args):
                s = self.spawn(["-d", d] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
                try:
                    out, _ = s.proc.communicate(timeout=2 * SLOW)
                except subprocess.TimeoutExpired:
                    s.kill()
                    self.fail("still running with bad options %s; log %r" % (args, s.log()[-300:]))
                self.assertEqual(s.proc.returncode, 64, "exit status for bad options %s" % args)
                self.assertNotIn(b"My_SMTP ready", out)
        with self.subTest(case="port in use"):
            busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(busy.close)
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            s = self.spawn(["-d", d, "-l", "127.0.0.1:%d" % busy.getsockname()[1]],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            self.assertEqual(s.wait(), 71, "exit status when the port cannot be bound")
        s = self.spawn(["-d", os.path.join(self.root, "no-such-dir")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            out, _ = s.proc.communicate(timeout=5 * SLOW)
        except subprocess.TimeoutExpired:
            s.kill()
            self.fail("still running without a mailbox directory")
        rc = s.proc.returncode
        self.assertFalse(os.path.exists(os.path.join(self.root, "no-such-dir")),
                         "the mailbox directory was created")
        self.assertEqual(rc, 75, "exit status when the mailbox directory cannot be opened "
                         "(output %r)" % out)

    def test_hostname_in_headers(self):
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["david@test.com"], [b"hi"], args=["-n", "mx.example.org"])
        msgs = self.check_mbox(d, "david@test.com", [[b"hi"]], sender="john@test.com")
        self.assertIn("mx.example.org", msgs[0].header("received"))
