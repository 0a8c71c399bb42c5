"""test_pop3.py: mysmtpd --pop3 (PROTOCOL.md section 9): real mail readers
(Python's poplib, curl, fetchmail, mpop, getmail6) fetch and delete what
the other dialects delivered, over the same mailboxes; sizes are exact in
CRLF octets, RETR and TOP are dot-stuffed and end with CRLF before the
final dot, UIDLs last across sessions and deletions and are never reused,
a second session gets [IN-USE], deliveries during a session are kept, and
a dropped connection deletes nothing.
"""

import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time

from support import (REPLY_TIMEOUT, SERVER, SLOW, ServerTest, failure_delay_args, mailbox_file,
                     parse_mbox, read_bytes)
from test_accounts import two_accounts

DAVID, PASSWORD = "david@test.com", "secret1"


def raw_response(sock_file):
    """The lines of a multi-line POP3 response after its +OK line, each with
    its line end, up to (not with) the final '.' line."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise AssertionError("connection closed inside a multi-line response")
        if line == b".\r\n":
            return lines
        lines.append(line)


class Pop3Test(ServerTest):
    def setUp(self):
        super().setUp()
        self.d = self.mkdir()
        self.accounts = two_accounts(self.root)
        self.pop, self.port = self.start_listener(self.d, ["--pop3", "-u", self.accounts])

    def deliver_text(self, lines, to=DAVID):
        """One message by the My_SMTP dialect (no accounts: the same store)."""
        self.deliver(self.d, "john@test.com", [to], lines, args=("-A",))

    def session(self, user=DAVID, password=PASSWORD):
        p = poplib.POP3("127.0.0.1", self.port, timeout=REPLY_TIMEOUT)
        self.closers.append(p.close)
        p.user(user)
        p.pass_(password)
        return p

    def uidls(self, p):
        return dict(l.decode().split() for l in p.uidl()[1])

    def raw(self):
        """A logged-in POP3 socket and its file, for octet-exact reading."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=REPLY_TIMEOUT)
        self.closers.append(s.close)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK "))
        s.sendall(b"USER %s\r\nPASS %s\r\n" % (DAVID.encode(), PASSWORD.encode()))
        self.assertTrue(f.readline().startswith(b"+OK"))
        self.assertTrue(f.readline().startswith(b"+OK"), "login")
        return s, f


class Basics(Pop3Test):
    def test_fetch_delete_and_fetch_again(self):
        """Three messages: STAT, LIST, UIDL, RETR; DELE 2 and QUIT; the next
        session has 1 and 3 under the same UIDLs, and a new delivery gets a
        UIDL never seen before, even the deleted one's."""
        for i in range(3):
            self.deliver_text([b"message %d" % i, b"From here", b".dot line"])
        p = self.session()
        count, octets = p.stat()
        self.assertEqual(count, 3)
        sizes = [int(l.split()[1]) for l in p.list()[1]]
        self.assertEqual(sum(sizes), octets, "STAT is the sum of LIST")
        first = self.uidls(p)
        self.assertEqual(len(set(first.values())), 3, "UIDLs unique")
        for n in (1, 2, 3):
            resp, lines, got = p.retr(n)
            self.assertEqual(got, sizes[n - 1], "RETR's octets are LIST's size")
            self.assertIn(b"message %d" % (n - 1), lines)
            self.assertIn(b"From here", lines, "mboxrd quoting undone")
            self.assertIn(b".dot line", lines, "dot-stuffing undone by poplib")
            self.assertTrue(any(l.startswith(b"Received: from test.com") for l in lines))
        p.dele(2)
        self.assertEqual(p.stat(), (2, octets - sizes[1]))
        self.assertTrue(p.quit().startswith(b"+OK"))
        p = self.session()
        again = self.uidls(p)
        self.assertEqual(again, {"1": first["1"], "2": first["3"]}, "UIDLs kept, numbers moved up")
        p.quit()
        self.deliver_text([b"a fourth"])
        p = self.session()
        newest = self.uidls(p)["3"]
        self.assertNotIn(newest, first.values(), "a UIDL is never given twice")
        p.quit()
        self.assertEqual(len(parse_mbox(read_bytes(mailbox_file(self.d, DAVID)))), 3)

    def test_dropped_connection_deletes_nothing_and_rset_unmarks(self):
        for i in range(2):
            self.deliver_text([b"keep %d" % i])
        before = read_bytes(mailbox_file(self.d, DAVID))
        s, f = self.raw()
        s.sendall(b"DELE 1\r\nDELE 2\r\n")
        self.assertEqual(f.readline(), b"+OK message 1 deleted\r\n")
        self.assertEqual(f.readline(), b"+OK message 2 deleted\r\n")
        f.close()
        s.close()
        self.pop.wait_log(r"Client disconnected\.$")
        p = self.session()
        self.assertEqual(p.stat()[0], 2, "a dropped connection deletes nothing")
        p.dele(1)
        p.rset()
        p.quit()
        self.assertEqual(read_bytes(mailbox_file(self.d, DAVID)), before, "RSET unmarked")

    def test_second_session_is_in_use_and_deliveries_go_on(self):
        self.deliver_text([b"one"])
        p = self.session()
        q = poplib.POP3("127.0.0.1", self.port, timeout=REPLY_TIMEOUT)
        self.closers.append(q.close)
        q.user(DAVID)
        with self.assertRaises(poplib.error_proto) as e:
            q.pass_(PASSWORD)
        self.assertIn(b"[IN-USE]", e.exception.args[0])
        q.quit()
        t0 = time.monotonic()
        self.deliver_text([b"two, during the session"])
        self.assertLess(time.monotonic() - t0, 10 * SLOW, "a delivery is not held up")
        self.assertEqual(p.stat()[0], 1, "numbers are fixed for the session")
        p.dele(1)
        p.quit()
        p = self.session()
        self.assertEqual(p.stat()[0], 1)
        self.assertIn(b"two, during the session", p.retr(1)[1])
        p.quit()

    def test_refusals(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=REPLY_TIMEOUT)
        self.closers.append(s.close)
        f = s.makefile("rb")
        f.readline()
        for line, want in [(b"STAT", b"-ERR log in first"), (b"PASS x", b"-ERR send USER first"),
                           (b"USER david@test.com", b"+OK send PASS"),
                           (b"PASS wrong", b"-ERR [AUTH] authentication failed"),
                           (b"BOGUS", b"-ERR unknown command")]:
            s.sendall(line + b"\r\n")
            self.assertEqual(f.readline(), want + b"\r\n", line)
        s.sendall(b"USER david@test.com\r\nPASS secret1\r\nRETR 9\r\nTOP 1\r\nDELE x\r\nQUIT\r\n")
        got = [f.readline() for _ in range(6)]
        self.assertEqual(got[2:5], [b"-ERR no such message\r\n", b"-ERR syntax: TOP <message> <lines>\r\n",
                                    b"-ERR syntax: a message number\r\n"])
        self.assertIn(b"Authentication failed for david@test.com from 127.0.0.1", self.pop.log())

    def test_needs_accounts(self):
        r = subprocess.run([SERVER, "--pop3", "-d", self.d], capture_output=True, timeout=REPLY_TIMEOUT)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"--pop3 needs --accounts", r.stderr)

    def test_plaintext_refused_from_a_network_peer(self):
        env = dict(os.environ, REMOTE_ADDR="192.0.2.7")
        p = subprocess.run([SERVER, "--pop3", "-d", self.d, "-u", self.accounts],
                           input=b"CAPA\r\nUSER david@test.com\r\nQUIT\r\n", capture_output=True,
                           env=env, timeout=REPLY_TIMEOUT)
        out = p.stdout.decode()
        self.assertNotIn("\r\nUSER\r\n", out, "USER is not offered without TLS")
        self.assertIn("-ERR [AUTH] TLS required", out)


class Octets(Pop3Test):
    """The octets RETR and TOP send, read off the socket."""

    def put_foreign(self, data):
        """Mail another program appended: the store takes it as it is."""
        with open(mailbox_file(self.d, DAVID), "ab") as f:
            f.write(data)

    def retr_octets(self, s, f, n, top=None):
        s.sendall(b"RETR %d\r\n" % n if top is None else b"TOP %d %d\r\n" % (n, top))
        first = f.readline()
        self.assertTrue(first.startswith(b"+OK"), first)
        lines = raw_response(f)
        for l in lines:
            self.assertTrue(l.endswith(b"\r\n"), "every line ends in CRLF: %r" % l)
            self.assertNotEqual(l, b".\r\n")
        return [l[1:] if l.startswith(b".") else l for l in lines]

    def test_edge_messages(self):
        """A line holding only '.', a bare CR, a 3,000-octet line, From
        lines, and another program's message without a final line end:
        each RETR is LIST's size exactly, dot-stuffed, CRLF before the dot."""
        self.deliver_text([b".", b"..", b"a\rb", b"x" * 3000, b"From me", b">From you", b""])
        self.put_foreign(b"From x@y Sat Aug 15 10:00:00 2025\nSubject: foreign\n\nno line end")
        s, f = self.raw()
        s.sendall(b"LIST\r\n")
        f.readline()
        sizes = [int(l.split()[1]) for l in raw_response(f)]
        self.assertEqual(len(sizes), 2)
        one = self.retr_octets(s, f, 1)
        self.assertEqual(sum(map(len, one)), sizes[0])
        body = one[one.index(b"\r\n") + 1:]
        self.assertEqual(body, [b".\r\n", b"..\r\n", b"a\rb\r\n", b"x" * 3000 + b"\r\n",
                                b"From me\r\n", b">From you\r\n", b"\r\n"])
        two = self.retr_octets(s, f, 2)
        self.assertEqual(two, [b"Subject: foreign\r\n", b"\r\n", b"no line end\r\n"])
        self.assertEqual(sum(map(len, two)), sizes[1], "the CRLF added is counted")
        top = self.retr_octets(s, f, 1, top=2)
        self.assertEqual(top[top.index(b"\r\n") + 1:], [b".\r\n", b"..\r\n"])
        self.assertEqual(self.retr_octets(s, f, 1, top=99), one, "TOP past the end is RETR")
        self.assertEqual(self.retr_octets(s, f, 2, top=0), [b"Subject: foreign\r\n", b"\r\n"])
        s.sendall(b"QUIT\r\n")

    def test_retr_hides_the_stores_bookkeeping(self):
        """RETR and TOP show the message as delivered: none of the store's
        own X-MySMTP-Prepended, Content-Length and X-MySMTP-UID lines, but
        every line of those names that the sender's message or another
        program's carried; LIST sizes stay exact and UIDLs as they were."""
        self.deliver_text([b"Hello David,", b"Content-Length: 3", b"X-MySMTP-UID: 9"])
        c = self.pipe_session(self.d, ["-S", "-u", self.accounts], greet=False)
        c.send(b"HELO c.example\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<david@test.com>\r\n"
               b"DATA\r\nSubject: mine\r\nContent-Length: 5\r\nX-MySMTP-UID: 77\r\n\r\n"
               b"body\r\n.\r\nQUIT\r\n")
        replies = [c.reply()]
        while not replies[-1].startswith("221"):
            replies.append(c.reply())
        self.assertIn("250 2.0.0 Ok: stored as", " ".join(replies))
        self.put_foreign(b"From x@y Sat Aug 15 10:00:00 2025\nX-MySMTP-UID: 5\n"
                         b"Content-Length: 6\n\nabcde\n")
        s, f = self.raw()
        s.sendall(b"LIST\r\n")
        f.readline()
        sizes = [int(l.split()[1]) for l in raw_response(f)]
        one, two, three = (self.retr_octets(s, f, n) for n in (1, 2, 3))
        self.assertEqual([sum(map(len, m)) for m in (one, two, three)], sizes)
        self.assertEqual(one[:2], [b"Return-Path: <john@test.com>\r\n", b"Received: from test.com (local)\r\n"])
        self.assertEqual(one[-4:], [b"\r\n", b"Hello David,\r\n", b"Content-Length: 3\r\n",
                                    b"X-MySMTP-UID: 9\r\n"], "the text's lines are shown")
        self.assertFalse([l for l in one[:-3] if l.startswith((b"X-MySMTP-", b"Content-Length"))])
        self.assertEqual(two[0], b"Return-Path: <x@example.org>\r\n")
        self.assertEqual(two[-5:], [b"Subject: mine\r\n", b"Content-Length: 5\r\n",
                                    b"X-MySMTP-UID: 77\r\n", b"\r\n", b"body\r\n"],
                         "the sender's own lines of those names are shown")
        self.assertFalse([l for l in two[:-5] if l.startswith((b"X-MySMTP-", b"Content-Length"))])
        self.assertEqual(three, [b"X-MySMTP-UID: 5\r\n", b"Content-Length: 6\r\n", b"\r\n",
                                 b"abcde\r\n"], "another program's message as it is")
        top = self.retr_octets(s, f, 2, top=0)
        self.assertEqual(top, two[:-1])
        s.sendall(b"UIDL\r\n")
        f.readline()
        self.assertEqual([l.split()[1] for l in raw_response(f)][:2], [b"1", b"2"])
        s.sendall(b"QUIT\r\n")

    def test_index_of_the_former_format_is_counted_anew(self):
        """An index written before RETR left out the store's bookkeeping
        lines (format MYSMTPX2) holds the sizes of then: it is rebuilt, so
        LIST gives the octets RETR now sends, and the UIDLs stay, those of
        another program's messages (written by Python's mailbox) too."""
        import mailbox
        import struct
        self.deliver_text([b"message 0"])
        mb = mailbox.mbox(mailbox_file(self.d, DAVID))
        for i in range(2):
            m = mailbox.mboxMessage("Subject: other %d\n\nbody of other %d\n" % (i, i))
            m.set_from("other@mda.example", time.gmtime(1700000000 + i))
            mb.add(m)
        mb.close()
        os.chmod(mailbox_file(self.d, DAVID), 0o600)
        for i in (1, 2):
            self.deliver_text([b"message %d" % i])
        p = self.session()
        uidls, sizes = self.uidls(p), [int(l.split()[1]) for l in p.list()[1]]
        p.quit()
        self.assertEqual(len(uidls), 5)
        M = (1 << 64) - 1

        def mix(x):
            x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
            x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M
            return x ^ (x >> 31)
        path = mailbox_file(self.d, DAVID)[:-4] + ".idx"
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[0:8] = b"MYSMTPX2"
            for n in range((len(data) - 64) // 32):
                at = 64 + 32 * n
                offset, uid, octets, _ = struct.unpack_from("<4Q", data, at)
                octets += 52        # what the bookkeeping lines once added
                check = mix(offset ^ mix(uid ^ mix(octets ^ mix(n + 0x9e3779b97f4a7c15))))
                struct.pack_into("<4Q", data, at, offset, uid, octets, check)
            f.seek(0)
            f.write(data)
        p = self.session()
        self.assertEqual([int(l.split()[1]) for l in p.list()[1]], sizes)
        self.assertEqual(self.uidls(p), uidls)
        self.assertEqual([p.retr(n)[2] for n in range(1, 6)], sizes)
        p.quit()
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"MYSMTPX3")
        self.deliver_text([b"message 3"])
        p = self.session()
        after = self.uidls(p)
        p.quit()
        self.assertEqual({n: u for n, u in after.items() if n != "6"}, uidls)
        self.assertNotIn(after["6"], uidls.values(), "a new UID, never one given before")

    def test_own_header_block_seen_by_poplib_and_email(self):
        """A My_SMTP text that opens with its own header block: a mail reader
        (poplib, then Python's email parser) sees its Subject and its body
        without the header lines; GET_MAIL still gives the text as sent."""
        import email
        import email.policy
        text = [b"From: John <john@test.com>", b"To: david@test.com",
                b"Subject: Quarterly numbers", b"", b"Hello David,", b"the numbers."]
        self.deliver_text(text)
        self.deliver_text([b"PS: call me", b"", b"Hello"])
        p = self.session()
        _, lines, octets = p.retr(1)
        self.assertEqual(octets, int(p.list(1).split()[2]))
        msg = email.message_from_bytes(b"\n".join(lines) + b"\n", policy=email.policy.default)
        self.assertEqual(msg["Subject"], "Quarterly numbers")
        self.assertEqual(msg.get_all("From"), ["John <john@test.com>"])
        self.assertEqual(msg.get_content(), "Hello David,\nthe numbers.\n")
        msg = email.message_from_bytes(b"\n".join(p.retr(2)[1]) + b"\n",
                                       policy=email.policy.default)
        self.assertIsNone(msg["Subject"])
        self.assertEqual(msg["From"], "john@test.com")
        self.assertEqual(msg.get_content(), "PS: call me\n\nHello\n", "no header block: all text")
        p.quit()
        got = self.read_back(self.d, DAVID)
        self.assertEqual([lines for _, _, lines in got], [text, [b"PS: call me", b"", b"Hello"]])

    def test_poplib_long_lines(self):
        self.deliver_text([b"y" * 3000])
        old = poplib._MAXLINE
        poplib._MAXLINE = 10000
        self.addCleanup(setattr, poplib, "_MAXLINE", old)
        p = self.session()
        self.assertIn(b"y" * 3000, p.retr(1)[1])
        p.quit()


class RealClients(Pop3Test):
    def smtp_listener(self):
        return self.start_listener(self.d, ["-S", "-u", self.accounts])

    def test_smtplib_in_poplib_out_byte_for_byte(self):
        """A message sent with smtplib (logged in) comes out of poplib.retr
        with its header and body as sent, behind our trace lines."""
        msg = (b"From: David <david@test.com>\r\nTo: david@test.com\r\nSubject: round trip\r\n"
               b"Message-ID: <rt.1@test.com>\r\nX-Odd:  two  spaces \r\n\r\n"
               b"body line\r\n.leading dot\r\nFrom the start\r\n\r\nlast\r\n")
        _, sport = self.smtp_listener()
        with smtplib.SMTP("127.0.0.1", sport, timeout=REPLY_TIMEOUT) as c:
            c.login(DAVID, PASSWORD)
            c.sendmail(DAVID, [DAVID], msg)
        p = self.session()
        _, lines, octets = p.retr(1)
        got = b"\r\n".join(lines) + b"\r\n"
        self.assertTrue(got.endswith(msg), "the message as sent, byte for byte:\n%r" % got)
        self.assertTrue(got.startswith(b"Return-Path: <david@test.com>\r\nReceived: "), got)
        self.assertNotIn(b"X-MySMTP-", got)
        self.assertNotIn(b"Content-Length", got)
        self.assertEqual(octets, len(got))
        p.quit()

    def test_curl(self):
        curl = shutil.which("curl")
        self.assertTrue(curl, "curl is not installed (make check installs it)")
        for i in range(2):
            self.deliver_text([b"curl %d" % i])
        url = "pop3://127.0.0.1:%d/" % self.port
        auth = ["-u", "%s:%s" % (DAVID, PASSWORD), "-sS", "--max-time", str(int(30 * SLOW))]
        r = subprocess.run([curl] + auth + [url], capture_output=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2, "LIST: %r" % r.stdout)
        r = subprocess.run([curl] + auth + [url + "2"], capture_output=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"curl 1\r\n", r.stdout)
        r = subprocess.run([curl] + auth + ["-X", "DELE 1", "-I", url], capture_output=True,
                           timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.session()
        self.assertEqual(p.stat()[0], 1)
        self.assertIn(b"curl 1", p.retr(1)[1])
        p.quit()

    def fetchmail(self, *opts):
        fm = shutil.which("fetchmail")
        self.assertTrue(fm, "fetchmail is not installed (make check installs it)")
        home = os.path.join(self.root, "fm")
        os.makedirs(home, exist_ok=True)
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 service %d protocol pop3 auth password\n'
                    '  user "%s" password "%s" sslproto ""\n' % (self.port, DAVID, PASSWORD))
        os.chmod(rc, 0o600)
        out = os.path.join(self.root, "fetched")
        os.makedirs(out, exist_ok=True)
        mda = "sh -c 'cat > %s/$(date +%%s%%N)'" % out
        env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
        r = subprocess.run([fm, "-f", rc, "--idfile", os.path.join(home, "ids"), "--mda", mda,
                            "--nodetach", "--nosyslog", "--invisible",
                            "--pidfile", os.path.join(home, "pid")] + list(opts),   # not root's shared one
                           capture_output=True, env=env, timeout=120 * SLOW)
        self.assertIn(r.returncode, (0, 1), "fetchmail: %r %r" % (r.stdout, r.stderr))
        got = sorted(read_bytes(os.path.join(out, n)) for n in os.listdir(out))
        shutil.rmtree(out)
        return got

    def test_fetchmail_keep_with_uidl_then_flush(self):
        for i in range(3):
            self.deliver_text([b"fetch %d" % i])
        first = self.fetchmail("--keep", "--uidl")
        self.assertEqual(len(first), 3, "all three fetched")
        self.assertEqual(self.fetchmail("--keep", "--uidl"), [], "seen UIDLs are not fetched again")
        self.deliver_text([b"fetch 3"])
        again = self.fetchmail("--keep", "--uidl")
        self.assertEqual(len(again), 1)
        self.assertIn(b"fetch 3", again[0])
        everything = self.fetchmail("--all", "--nokeep")
        self.assertEqual(len(everything), 4, "flush: all of them, deleted after")
        p = self.session()
        self.assertEqual(p.stat(), (0, 0), "nothing lost, nothing left")
        p.quit()

    def test_mpop(self):
        mpop = shutil.which("mpop")
        self.assertTrue(mpop, "mpop is not installed (make check installs it)")
        for i in range(2):
            self.deliver_text([b"mpop %d" % i])
        box = os.path.join(self.root, "mpop.mbox")
        cmd = [mpop, "--host=127.0.0.1", "--port=%d" % self.port, "--user=" + DAVID,
               "--passwordeval=echo " + PASSWORD, "--tls=off", "--auth=user",
               "--delivery=mbox," + box, "--uidls-file=" + os.path.join(self.root, "uidls"),
               "--received-header=off"]
        def run(keep):
            r = subprocess.run(cmd + ["--keep=" + keep], capture_output=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
            return len(re.findall(rb"(?m)^From ", read_bytes(box)))

        self.assertEqual(run("on"), 2)
        self.assertEqual(run("on"), 2, "seen UIDLs are not fetched again")
        self.deliver_text([b"mpop 2"])
        self.assertEqual(run("off"), 3, "the new one, then all deleted")
        p = self.session()
        self.assertEqual(p.stat(), (0, 0))
        p.quit()


class Tls(ServerTest):
    """STLS (RFC 2595) and implicit TLS (port 995), and AUTH PLAIN (RFC 5034)."""

    def setUp(self):
        super().setUp()
        from test_tls import make_certificate
        self.d = self.mkdir()
        self.accounts = two_accounts(self.root)
        self.cert, self.key = make_certificate(self.root)
        self.tls = ["-C", self.cert, "-K", self.key]
        import ssl
        self.ctx = ssl.create_default_context(cafile=self.cert)
        self.deliver(self.d, "john@test.com", [DAVID], [b"over TLS"], args=("-A",))

    def test_stls_then_login(self):
        """CAPA offers STLS; after it, USER and SASL PLAIN but not STLS, and
        the login and RETR work over TLS."""
        s, port = self.start_listener(self.d, ["--pop3", "-u", self.accounts] + self.tls)
        p = poplib.POP3("localhost", port, timeout=REPLY_TIMEOUT)
        self.closers.append(p.close)
        self.assertIn("STLS", p.capa())
        p.stls(context=self.ctx)
        capa = p.capa()
        self.assertNotIn("STLS", capa)
        self.assertIn("USER", capa)
        self.assertEqual(capa.get("SASL"), ["PLAIN"])
        p.user(DAVID)
        p.pass_(PASSWORD)
        self.assertIn(b"over TLS", p.retr(1)[1])
        p.quit()
        s.wait_log(r"TLS started: TLSv1\.[23]")

    def test_implicit_tls(self):
        s, port = self.start_listener(self.d, ["--pop3", "-u", self.accounts, "-i"] + self.tls)
        p = poplib.POP3_SSL("localhost", port, timeout=REPLY_TIMEOUT, context=self.ctx)
        self.closers.append(p.close)
        p.user(DAVID)
        p.pass_(PASSWORD)
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_auth_plain(self):
        """AUTH lists PLAIN; AUTH PLAIN with an initial response and after
        "+ "; "*" aborts; a wrong password is [AUTH]."""
        import base64
        good = base64.b64encode(b"\0" + DAVID.encode() + b"\0" + PASSWORD.encode())
        bad = base64.b64encode(b"\0" + DAVID.encode() + b"\0wrong")
        talk = (b"AUTH\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN " + bad + b"\r\nAUTH PLAIN\r\n" + good +
                b"\r\nSTAT\r\nQUIT\r\n")
        args = ["--pop3", "-d", self.d, "-u", self.accounts]
        p = subprocess.run([SERVER] + args + failure_delay_args(args), input=talk,
                           capture_output=True, timeout=30 * SLOW)
        lines = p.stdout.split(b"\r\n")
        self.assertEqual(lines[1:9], [b"+OK mechanisms follow", b"PLAIN", b".", b"+ ",
                                      b"-ERR authentication aborted",
                                      b"-ERR [AUTH] authentication failed", b"+ ",
                                      b"+OK logged in, 1 messages (%d octets)" % int(
                                          lines[9].split()[2])])
        self.assertTrue(lines[9].startswith(b"+OK 1 "))
