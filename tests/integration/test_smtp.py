"""test_smtp.py: mysmtpd -S, standard SMTP (RFC 5321), against real clients
(curl, swaks, Python's smtplib) and by transcript.

- Every reply code the SMTP mode gives, in its exact text.
- Strict framing: a bare LF gets Postfix's "550 5.5.2 HOST Error: bare <LF>
  received" and the session stays in step; \\n.\\n, \\r.\\r, \\r\\n.\\n and \\n.\\r\\n
  never end a message, so nothing can be smuggled past it.
- Limits (-s with SIZE=, -r, -t, -e, -D, -c) with their SMTP codes.
- What is stored: GET_MAIL (My_SMTP mode) gives the message back exactly as
  sent, headers and body; Python's mailbox.mbox reads it with its own headers;
  the record keeps X-MySMTP-Prepended and Content-Length, so a torn one is
  still told from a whole one.

Only 127.0.0.1 is bound; every wait has a deadline; what is started is
killed by PID.
"""

import base64
import email
import email.generator
import email.message
import email.utils
import io
import mailbox
import os
import re
import shutil
import smtplib
import subprocess
import time

from support import (REPLY_TIMEOUT, SERVER, SLOW, ProtocolError, ServerTest, mailbox_file,
                     mboxrd_quote, parse_mbox, read_bytes, stuff)
from test_accounts import two_accounts

HOST = "test.host"
GREETING = "220 test.host ESMTP My_SMTP"
EHLO_REPLY = ["250-test.host", "250-PIPELINING", "250-SIZE 10485760", "250-8BITMIME",
              "250 ENHANCEDSTATUSCODES"]
QUEUED_RE = r"^250 2\.0\.0 Ok: stored as \d+\.\d+\.\d+@test\.host$"
BARE_LF = "550 5.5.2 test.host Error: bare <LF> received"
WAIT = int(REPLY_TIMEOUT) + 1

# A message with what is hard to keep: a From line, dots, blank lines at both
# ends of the body, trailing blanks, 8-bit octets, a header folded over lines.
MESSAGE = (b"From: John <john@test.com>\n"
           b"To: David <david@test.com>\n"
           b"Subject: a test\n"
           b"X-Folded: one\n"
           b"\ttwo\n"
           b"\n"
           b"\n"
           b"From here on, text.\n"
           b".\n"
           b"..two dots\n"
           b">From quoted\n"
           b"trailing blanks  \t\n"
           b"caf\xc3\xa9 \xff\n"
           b"\n")


def lines_of(msg):
    """The lines of a message (LF line ends) as GET_MAIL gives them."""
    return msg.split(b"\n")[:-1] if msg else []


HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")


def header_section(msg):
    """(header section, body) as the server keeps them: the section ends at
    the first empty line when every line before it is a field or the
    continuation of one; else (None, msg), and the whole is the body."""
    lines = msg.split(b"\n")
    fields = 0
    for i, line in enumerate(lines[:-1]):
        if line == b"":
            return b"".join(l + b"\n" for l in lines[:i]), b"\n".join(lines[i + 1:])
        if line[:1] in (b" ", b"\t") and fields:
            continue
        if not HEADER_LINE.match(line):
            break
        fields += 1
    return None, msg


def wire(msg):
    """A message as DATA carries it: CRLF line ends, dot-stuffed, the final dot."""
    return b"".join(stuff(l) + b"\r\n" for l in lines_of(msg)) + b".\r\n"


class Smtp(ServerTest):
    """SMTP-mode sessions, replies read whole."""

    def smtp(self, d, args=()):
        """mysmtpd -S on pipes, greeting checked."""
        c = self.pipe_session(d, ["-S", "-n", HOST] + list(args), greet=False)
        self.assertEqual(c.reply(), GREETING)
        return c

    def listener(self, d, args=()):
        server, port = self.start_listener(d, ["-S", "-n", HOST] + list(args))
        return port

    def replies(self, c, n=1):
        """The next n whole replies, each a list of its lines."""
        out = []
        for _ in range(n):
            lines = []
            while True:
                line = c.reply()
                m = re.match(r"^(\d{3})([ -])", line)
                if not m:
                    raise ProtocolError("not an SMTP reply line: %r" % line)
                lines.append(line)
                if m.group(2) == " ":
                    break
            out.append(lines)
        return out

    def say(self, c, line, expect):
        """Send one command; its (last) reply line must be expect, or match it
        when expect starts with ^."""
        if isinstance(line, str):
            line = line.encode("latin-1")
        c.send(line + b"\r\n")
        got = self.replies(c)[0][-1]
        if expect.startswith("^"):
            self.assertRegex(got, expect, "reply to %r" % line[:80])
        else:
            self.assertEqual(got, expect, "reply to %r" % line[:80])
        return got

    def ehlo(self, c, name="client.example", size=10485760):
        c.send(("EHLO %s\r\n" % name).encode())
        want = EHLO_REPLY[:2] + ["250-SIZE %d" % size] + EHLO_REPLY[3:]
        self.assertEqual(self.replies(c)[0], want)

    def send_mail(self, c, sender, rcpts, msg, expect=QUEUED_RE):
        """MAIL, RCPT..., DATA, the message: the reply after the final dot."""
        self.say(c, "MAIL FROM:<%s>" % sender, "250 2.1.0 Ok")
        for r in rcpts:
            self.say(c, "RCPT TO:<%s>" % r, "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(wire(msg))
        got = self.replies(c)[0][-1]
        self.assertRegex(got, expect)
        return got

    def smtp_quit(self, c):
        self.say(c, "QUIT", "221 2.0.0 Bye")
        c.expect_eof()
        self.assertEqual(c.server.wait(), 0, "exit status after QUIT (99 = ASan, 98 = UBSan)")

    def smtp_deliver(self, d, sender, rcpts, msg, args=()):
        c = self.smtp(d, args)
        self.ehlo(c)
        self.send_mail(c, sender, rcpts, msg)
        self.smtp_quit(c)

    def check_stored(self, d, addr, messages):
        """messages [(sender, bytes)] are what addr holds: GET_MAIL gives each
        back exactly, the file is strict mboxrd with our counts right, and
        Python's mailbox.mbox reads each with its own headers."""
        got = self.read_back(d, addr)
        self.assertEqual([(s, lines) for s, _, lines in got],
                         [(s or "MAILER-DAEMON", lines_of(m)) for s, m in messages],
                         "LIST and GET_MAIL of %s" % addr)
        path = mailbox_file(d, addr)
        data = read_bytes(path)
        records = parse_mbox(data, path)
        self.assertEqual(len(records), len(messages))
        for rec, (sender, msg) in zip(records, messages):
            self.check_record(data[rec.start:rec.end], rec, sender, msg, addr)
        mb = mailbox.mbox(path, create=False)
        try:
            for key, (sender, msg) in zip(mb.keys(), messages):
                self.check_python_view(mb, key, sender, msg)
        finally:
            mb.close()

    def check_record(self, raw, rec, sender, msg, addr):
        self.assertTrue(rec.from_line.startswith((sender or "MAILER-DAEMON").encode() + b" "))
        self.assertEqual([n for n, _ in rec.headers[:4]],
                         ["x-mysmtp-prepended", "content-length", "x-mysmtp-uid", "return-path"])
        self.assertRegex(rec.header("x-mysmtp-uid"), r"^[1-9][0-9]*$")
        self.assertEqual(int(rec.header("content-length")), len(rec.body),
                         "Content-Length counts the stored body")
        self.assertEqual(rec.header("return-path"), "<%s>" % sender)
        self.assertIn("for <%s>" % addr, rec.header("received"))
        after_from = raw.index(b"\n") + 1
        after_prepended = raw.index(b"\n", after_from) + 1
        start = after_prepended + int(rec.header("x-mysmtp-prepended"))
        self.assertEqual(raw[start:-1], mboxrd_quote(lines_of(msg)),
                         "X-MySMTP-Prepended points at the message as sent")

    def check_python_view(self, mb, key, sender, msg):
        got = mb.get_message(key)
        self.assertTrue(got.get_from().startswith((sender or "MAILER-DAEMON") + " "))
        for name in ("Return-Path", "Received", "Date", "Message-ID"):
            self.assertEqual(len(got.get_all(name, [])), 1, "one %s header" % name)
        section, body = header_section(msg)
        if section:
            for name, value in email.message_from_bytes(section + b"\n").items():
                self.assertIn(value, got.get_all(name, []), "own header %s" % name)
        raw = mb.get_bytes(key)
        self.assertEqual(raw.partition(b"\n\n")[2], mboxrd_quote(lines_of(body)),
                         "the body mailbox.mbox sees")


class Replies(Smtp):
    def test_every_reply_code(self):
        """A transcript of every reply, in its exact text."""
        d = self.mkdir()
        c = self.smtp(d, ["-r", "2", "-s", "1000", "-D", "test.com", "-e", "100", "-B", "reject"])
        for line, expect in (
                ("MAIL FROM:<a@test.com>", "503 5.5.1 Error: send HELO/EHLO first"),
                ("RCPT TO:<a@test.com>", "503 5.5.1 Error: need MAIL command"),
                ("DATA", "503 5.5.1 Error: need MAIL command"),
                ("EHLO", "501 5.5.4 Syntax: EHLO hostname"),
                ("HELO two words", "501 5.5.4 Syntax: HELO hostname"),
                ("HELO client.example", "250 test.host"),
                ("WHAT", "500 5.5.2 Error: command not recognized"),
                ("LIST david@test.com", "500 5.5.2 Error: command not recognized"),
                ("EXPN staff", "502 5.5.1 Error: command not implemented"),
                ("STARTTLS", "502 5.5.1 Error: command not implemented"),
                ("HELP", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"),
                ("VRFY david", "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"),
                ("VRFY", "501 5.5.4 Syntax: VRFY address"),
                ("noop anything", "250 2.0.0 Ok"),
                ("MAIL FROM:<a@test.com> SIZE=1001", "552 5.3.4 Message size exceeds fixed limit"),
                ("MAIL FROM:<a@test.com> XYZ=1", "555 5.5.4 Unsupported option: XYZ"),
                ("MAIL FROM:<a@test.com", "501 5.5.4 Syntax: MAIL FROM:<address>"),
                ("MAIL FROM:<\"a b\"@test.com>", "553 5.1.7 Error: bad sender address syntax"),
                ("MAIL TO:<a@test.com>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
                ("MAIL FROM:<a@test.com> SIZE=1000 BODY=8BITMIME", "250 2.1.0 Ok"),
                ("MAIL FROM:<a@test.com>", "503 5.5.1 Error: nested MAIL command"),
                ("DATA", "554 5.5.1 Error: no valid recipients"),
                ("RCPT TO:<a/b@test.com>", "553 5.1.3 Error: bad recipient address syntax"),
                ("RCPT TO:<x@other.org>", "550 5.1.2 Error: domain not served here"),
                ("RCPT TO:<x@test.com> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"),
                ("RCPT TO:<x@test.com", "501 5.5.4 Syntax: RCPT TO:<address>"),
                ("RCPT TO:<x@test.com>", "250 2.1.5 Ok"),
                ("RCPT TO:<X@Test.Com>", "250 2.1.5 Ok"),
                ("RCPT TO:<y@test.com>", "250 2.1.5 Ok"),
                ("RCPT TO:<z@test.com>", "452 4.5.3 Error: too many recipients"),
                ("DATA now", "501 5.5.4 Syntax: DATA"),
                ("RSET x", "501 5.5.4 Syntax: RSET"),
                ("RSET", "250 2.0.0 Ok"),
                ("RCPT TO:<x@test.com>", "503 5.5.1 Error: need MAIL command"),
                (b"NOOP\x00", "500 5.5.2 Error: bad syntax"),
                (b"NOOP \rx", "500 5.5.2 Error: bad syntax"),
                ("NOOP " + "x" * 600, "500 5.5.2 Error: line too long"),
                ("QUIT now", "501 5.5.4 Syntax: QUIT")):
            self.say(c, line, expect)
        c.send(b"NOOP\n")
        self.assertEqual(self.replies(c), [[BARE_LF]], "a bare LF command is refused")
        self.ehlo(c, size=1000)
        self.send_mail(c, "", ["postmaster"], b"Subject: to the postmaster\n\nhi\n")
        self.say(c, "MAIL FROM:<a@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<x@test.com>", "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"x" * 999 + b"\r\n.\r\n")      # 1001 octets as RFC 1870 counts them
        self.assertEqual(self.replies(c), [["552 5.3.4 Message size exceeds fixed limit"]])
        self.say(c, "MAIL FROM:<a@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<x@test.com>", "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"nul\x00\r\n.\r\n")
        self.assertEqual(self.replies(c), [["554 5.6.0 Error: message holds a NUL octet"]])
        self.send_mail(c, "a@test.com", ["x@test.com"], b"x" * 998 + b"\n")  # exactly 1000
        self.smtp_quit(c)
        self.assertEqual(sorted(os.listdir(d)), ["postmaster@test.host.idx", "postmaster@test.host.txt",
                                                 "x@test.com.idx", "x@test.com.txt"])
        self.check_stored(d, "postmaster@test.host", [("", b"Subject: to the postmaster\n\nhi\n")])

    def test_address_too_long_for_a_mailbox_file(self):
        """A valid address of more than 251 octets can name no file: 553 at once."""
        d = self.mkdir()
        c = self.smtp(d)
        longdom = ".".join(["a" * 63] * 3) + "." + "b" * 61
        self.say(c, "EHLO client.example", "250 ENHANCEDSTATUSCODES")
        self.say(c, "MAIL FROM:<a@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<x@%s>" % longdom, "553 5.1.3 Error: address too long for a mailbox file")
        self.say(c, "RCPT TO:<x@%s>" % longdom[:249], "250 2.1.5 Ok")
        self.smtp_quit(c)
        self.assertEqual(os.listdir(d), [])

    def test_longest_host_name(self):
        """-n takes a host name of up to 253 octets; the Message-ID made of it
        (and the queue ID in the reply) still fits, so mail is stored. With
        a Message-ID buffer of 128 octets every delivery was 451 (found by
        fuzz_smtp)."""
        d = self.mkdir()
        host = ".".join(["h" * 63] * 3) + "." + "t" * 61
        msg = b"Subject: a long host name\n\nbody\n"
        c = self.pipe_session(d, ["-S", "-n", host], greet=False)
        self.assertEqual(c.reply(), "220 %s ESMTP My_SMTP" % host)
        self.say(c, "EHLO client.example", "250 ENHANCEDSTATUSCODES")
        got = self.send_mail(c, "john@test.com", ["david@test.com"], msg,
                             expect=r"^250 2\.0\.0 Ok: stored as \d+\.\d+\.\d+@%s$" % re.escape(host))
        self.smtp_quit(c)
        self.check_stored(d, "david@test.com", [("john@test.com", msg)])
        mb = mailbox.mbox(mailbox_file(d, "david@test.com"), create=False)
        try:
            self.assertEqual(mb.get_message(0)["Message-ID"], "<%s>" % got.split()[-1])
        finally:
            mb.close()

    def test_too_many_errors(self):
        d = self.mkdir()
        c = self.smtp(d, ["-e", "3"])
        self.say(c, "BAD", "500 5.5.2 Error: command not recognized")
        self.say(c, "NOOP", "250 2.0.0 Ok")
        self.say(c, "BAD", "500 5.5.2 Error: command not recognized")
        self.say(c, "MAIL FROM:<a@test.com>", "503 5.5.1 Error: send HELO/EHLO first")
        c.send(b"BAD\r\n")
        self.assertEqual(self.replies(c, 2), [["500 5.5.2 Error: command not recognized"],
                                              ["421 4.7.0 test.host Error: too many errors"]])
        c.expect_eof()
        self.assertEqual(c.server.wait(), 0)

    def test_timeouts(self):
        """-t: 421 and close, between commands and inside DATA."""
        d = self.mkdir()
        c = self.smtp(d, ["-t", "1"])
        t0 = time.monotonic()
        self.assertEqual(self.replies(c), [["421 4.4.2 test.host Error: timeout exceeded"]])
        self.assertGreater(time.monotonic() - t0, 0.9)
        c.expect_eof()
        c = self.smtp(d, ["-t", "1"])
        self.ehlo(c)
        self.say(c, "MAIL FROM:<a@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<b@test.com>", "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"half a line")
        self.assertEqual(self.replies(c), [["421 4.4.2 test.host Error: timeout exceeded"]])
        c.expect_eof()
        self.assertEqual(os.listdir(d), [], "nothing stored")

    def test_listener_refuses_past_the_cap_with_421(self):
        d = self.mkdir()
        port = self.listener(d, ["-c", "1"])
        first = self.tcp_session(port, greet=False)
        self.assertEqual(first.reply(), GREETING)
        second = self.tcp_session(port, greet=False)
        self.assertEqual(second.reply(), "421 4.7.0 test.host Error: too many connections")
        second.expect_eof()
        self.say(first, "QUIT", "221 2.0.0 Bye")

    def test_store_failure_is_451_and_in_step(self):
        d = self.mkdir()
        os.mkdir(mailbox_file(d, "david@test.com"))
        c = self.smtp(d)
        self.ehlo(c)
        self.send_mail(c, "a@test.com", ["david@test.com"], b"Subject: x\n\nbody\n",
                       expect=r"^451 4\.3\.0 Error: the store failed$")
        self.say(c, "NOOP", "250 2.0.0 Ok")
        self.smtp_quit(c)


class Framing(Smtp):
    def smuggle(self, d, args, variant, hidden):
        """A message to david@test.com with variant then hidden in its text,
        then QUIT: the session and its next two replies."""
        c = self.smtp(d, args)
        self.ehlo(c)
        self.say(c, "MAIL FROM:<john@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<david@test.com>", "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"Subject: innocent\r\n\r\nbefore" + variant + hidden + b"\r\n.\r\nQUIT\r\n")
        return c, self.replies(c, 2)

    def test_smuggling_variants_never_end_a_message(self):
        """Each variant hides a second transaction for victim@test.com inside
        the message; only the final CRLF . CRLF ends it, so there is one reply:
        under -B reject 550 when the message holds a bare LF, else 250 with
        the hidden lines stored as text. Nothing reaches the victim."""
        d = self.mkdir()
        hidden = (b"MAIL FROM:<evil@test.com>\r\nRCPT TO:<victim@test.com>\r\nDATA\r\n"
                  b"Subject: smuggled\r\n\r\nsmuggled")
        for variant, bare in ((b"\n.\n", True), (b"\r.\r", False),
                              (b"\r\n.\n", True), (b"\n.\r\n", True)):
            with self.subTest(variant=variant):
                c, got = self.smuggle(d, ["-B", "reject"], variant, hidden)
                if bare:
                    self.assertEqual(got[0], [BARE_LF])
                else:
                    self.assertRegex(got[0][0], QUEUED_RE)
                self.assertEqual(got[1], ["221 2.0.0 Bye"], "no reply to a hidden command")
                c.expect_eof()
        self.assertFalse(os.path.exists(mailbox_file(d, "victim@test.com")))
        text = (b"Subject: innocent\n\nbefore\r.\rMAIL FROM:<evil@test.com>\nRCPT TO:<victim@test.com>\n"
                b"DATA\nSubject: smuggled\n\nsmuggled\n")
        self.check_stored(d, "david@test.com", [("john@test.com", text)])

    def test_smuggling_variants_are_text_when_bare_lf_is_normalized(self):
        """The default, -B normalize: a bare LF ends a line as CRLF would, but
        the same variants still never end the message: each is stored as
        text (a "." line that does not end the message loses its dot, as
        dot-stuffing says), and nothing reaches the victim."""
        d = self.mkdir()
        hidden = (b"MAIL FROM:<evil@test.com>\r\nRCPT TO:<victim@test.com>\r\nDATA\r\n"
                  b"Subject: smuggled\r\n\r\nsmuggled")
        stored = []
        for variant, as_text in ((b"\n.\n", b"\n\n"), (b"\r.\r", b"\r.\r"),
                                 (b"\r\n.\n", b"\n\n"), (b"\n.\r\n", b"\n\n"),
                                 (b"\n..\n", b"\n.\n")):
            with self.subTest(variant=variant):
                c, got = self.smuggle(d, [], variant, hidden)
                self.assertRegex(got[0][0], QUEUED_RE)
                self.assertEqual(got[1], ["221 2.0.0 Bye"], "no reply to a hidden command")
                c.expect_eof()
                stored.append(("john@test.com", b"Subject: innocent\n\nbefore" + as_text +
                               b"MAIL FROM:<evil@test.com>\nRCPT TO:<victim@test.com>\n"
                               b"DATA\nSubject: smuggled\n\nsmuggled\n"))
        self.assertFalse(os.path.exists(mailbox_file(d, "victim@test.com")))
        self.check_stored(d, "david@test.com", stored)

    def test_bare_lf_commands_and_text_are_taken_by_default(self):
        """smtplib.sendmail with LF line ends, curl -T without --crlf: taken."""
        d = self.mkdir()
        c = self.smtp(d)
        c.send(b"EHLO client.example\nMAIL FROM:<john@test.com>\nRCPT TO:<david@test.com>\nDATA\n")
        got = self.replies(c, 4)
        self.assertEqual([r[0] for r in got[1:]], ["250 2.1.0 Ok", "250 2.1.5 Ok",
                                                   "354 End data with <CR><LF>.<CR><LF>"])
        c.send(b"Subject: x\n\nunix line\nend\r\n.\r\n")
        self.assertRegex(self.replies(c)[0][0], QUEUED_RE)
        self.smtp_quit(c)
        self.check_stored(d, "david@test.com", [("john@test.com", b"Subject: x\n\nunix line\nend\n")])

    def test_bare_lf_in_message_is_refused_in_step(self):
        d = self.mkdir()
        c = self.smtp(d, ["-B", "reject"])
        self.ehlo(c)
        self.say(c, "MAIL FROM:<john@test.com>", "250 2.1.0 Ok")
        self.say(c, "RCPT TO:<david@test.com>", "250 2.1.5 Ok")
        self.say(c, "DATA", "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"Subject: x\r\n\r\nunix line\nend\r\n.\r\n")
        self.assertEqual(self.replies(c), [[BARE_LF]])
        self.send_mail(c, "john@test.com", ["david@test.com"], b"Subject: y\n\nfine\n")
        self.smtp_quit(c)
        self.check_stored(d, "david@test.com", [("john@test.com", b"Subject: y\n\nfine\n")])

    def test_pipelined_transactions(self):
        """RFC 2920: commands sent in groups get their replies in order; two
        transactions and a refused recipient in three writes."""
        d = self.mkdir()
        c = self.smtp(d)
        one, two = b"Subject: one\n\nfirst\n", b"Subject: two\n\nsecond\n"
        c.send(b"EHLO client.example\r\nMAIL FROM:<john@test.com>\r\nRCPT TO:<david@test.com>\r\n"
               b"RCPT TO:<bad/name@test.com>\r\nRCPT TO:<eve@test.com>\r\nDATA\r\n")
        got = self.replies(c, 6)
        self.assertEqual(got[0], EHLO_REPLY)
        self.assertEqual([r[0] for r in got[1:]],
                         ["250 2.1.0 Ok", "250 2.1.5 Ok", "553 5.1.3 Error: bad recipient address syntax",
                          "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"])
        c.send(wire(one) + b"MAIL FROM:<>\r\nRCPT TO:<david@test.com>\r\nDATA\r\n")
        got = self.replies(c, 4)
        self.assertRegex(got[0][0], QUEUED_RE)
        self.assertEqual([r[0] for r in got[1:]],
                         ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"])
        c.send(wire(two) + b"QUIT\r\n")
        got = self.replies(c, 2)
        self.assertRegex(got[0][0], QUEUED_RE)
        self.assertEqual(got[1], ["221 2.0.0 Bye"])
        c.expect_eof()
        self.check_stored(d, "david@test.com", [("john@test.com", one), ("", two)])
        self.check_stored(d, "eve@test.com", [("john@test.com", one)])


class Storage(Smtp):
    def test_message_reads_back_exactly(self):
        d = self.mkdir()
        self.smtp_deliver(d, "john@test.com", ["david@test.com"], MESSAGE)
        self.check_stored(d, "david@test.com", [("john@test.com", MESSAGE)])

    def test_date_and_message_id_only_when_missing(self):
        d = self.mkdir()
        own = (b"Date: Sat, 15 Aug 2025 10:00:00 +0000\nMessage-ID: <own@test.com>\n"
               b"Subject: dated\n\nbody\n")
        bare = b"Subject: undated\n\nbody\n"
        self.smtp_deliver(d, "john@test.com", ["david@test.com"], own)
        self.smtp_deliver(d, "john@test.com", ["david@test.com"], bare)
        self.check_stored(d, "david@test.com", [("john@test.com", own), ("john@test.com", bare)])
        mb = mailbox.mbox(mailbox_file(d, "david@test.com"), create=False)
        try:
            first, second = mb.get_message(0), mb.get_message(1)
            self.assertEqual(first.get_all("Date"), ["Sat, 15 Aug 2025 10:00:00 +0000"])
            self.assertEqual(first.get_all("Message-ID"), ["<own@test.com>"])
            self.assertRegex(second["Message-ID"], r"^<\d+\.\d+\.\d+@test\.host>$")
            self.assertIsNotNone(email.utils.parsedate_to_datetime(second["Date"]))
        finally:
            mb.close()

    def test_messages_without_a_header_section(self):
        """Text with no header section ending in an empty line is kept as sent;
        the record's own header block then ends with one, so mbox readers see
        the message as its body."""
        d = self.mkdir()
        messages = [b"Hello David,\n\nHope you are doing well.\n", b"Subject: only a header\n",
                    b"", b"\n", b"\nbody after an empty header section\n",
                    b"From the start\n>From\n"]
        for m in messages:
            self.smtp_deliver(d, "john@test.com", ["david@test.com"], m)
        self.check_stored(d, "david@test.com", [("john@test.com", m) for m in messages])

    def test_both_kinds_of_record_in_one_mailbox(self):
        d = self.mkdir()
        self.deliver(d, "john@test.com", ["david@test.com"], [b"My_SMTP text"])
        self.smtp_deliver(d, "john@test.com", ["david@test.com"], MESSAGE)
        got = self.read_back(d, "david@test.com")
        self.assertEqual([lines for _, _, lines in got], [[b"My_SMTP text"], lines_of(MESSAGE)])

    def test_long_header_section_torn_or_whole(self):
        """A record whose header section is longer than the index reads at
        once: what a cut-short append leaves is still cut off, and a whole one
        with a wrong Content-Length of its own is kept."""
        d = self.mkdir()
        filler = b"".join(b"X-Filler-%03d: %s\n" % (i, b"f" * 60) for i in range(60))
        own_length = b"Content-Length: 999999\n"
        first = b"Subject: first\n\none\n"
        long_msg = b"Subject: long\n" + own_length + filler + b"\nthe body\n"
        self.smtp_deliver(d, "john@test.com", ["t@test.com"], first)
        path = mailbox_file(d, "t@test.com")
        whole = read_bytes(path)
        self.smtp_deliver(d, "john@test.com", ["t@test.com"], long_msg)
        both = read_bytes(path)
        record = both[len(whole):]
        self.assertGreater(record.index(b"\n\n"), 4096)
        self.check_stored(d, "t@test.com", [("john@test.com", first), ("john@test.com", long_msg)])
        os.unlink(path[:-4] + ".idx")     # the index made anew from the mbox keeps both
        self.check_stored(d, "t@test.com", [("john@test.com", first), ("john@test.com", long_msg)])
        self.assertEqual(read_bytes(path), both)
        for cut in (3, 60, 300, 2100, record.index(b"\n\n") + 1, len(record) - 4):
            with self.subTest(cut=cut):
                with open(path, "wb") as f:
                    f.write(whole + record[:cut])
                os.unlink(path[:-4] + ".idx")
                self.assertEqual([l for _, _, l in self.read_back(d, "t@test.com")],
                                 [lines_of(first)], "a torn message is never listed")
                self.assertEqual(read_bytes(path), whole, "and is cut off under the lock")


class Clients(Smtp):
    def setUp(self):
        super().setUp()
        self.msgfile = os.path.join(self.root, "message.eml")
        with open(self.msgfile, "wb") as f:
            f.write(MESSAGE)

    def run_client(self, argv):
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=3 * WAIT)
        self.assertEqual(p.returncode, 0, "%s failed: %s%s" % (argv[0], p.stdout[-2000:], p.stderr[-2000:]))
        return p

    def tool(self, name, package):
        path = shutil.which(name)
        self.assertTrue(path, "%s is not installed (Debian package %s; make check installs it)"
                        % (name, package))
        return path

    def test_curl(self):
        """curl smtp://, the file's LF line ends sent as CRLF (--crlf)."""
        curl = self.tool("curl", "curl")
        d = self.mkdir()
        port = self.listener(d)
        self.run_client([curl, "--silent", "--show-error", "--max-time", str(WAIT), "--crlf",
                         "--url", "smtp://127.0.0.1:%d/client.example" % port,
                         "--mail-from", "john@test.com", "--mail-rcpt", "david@test.com",
                         "--mail-rcpt", "eve@test.com", "--upload-file", self.msgfile])
        for addr in ("david@test.com", "eve@test.com"):
            self.check_stored(d, addr, [("john@test.com", MESSAGE)])

    def test_curl_without_crlf(self):
        """curl -T of a file with LF line ends, without --crlf: the bare LFs
        are taken as CRLF (-B normalize, the default). curl dot-stuffs only
        after CRLF, so a line of the file that starts with a dot loses it, as
        it would in Postfix: the message here has none (mysmtpd(8) says so)."""
        curl = self.tool("curl", "curl")
        d = self.mkdir()
        port = self.listener(d)
        plain = b"".join(l + b"\n" for l in MESSAGE.split(b"\n")[:-1] if not l.startswith(b"."))
        with open(self.msgfile, "wb") as f:
            f.write(plain)
        self.run_client([curl, "--silent", "--show-error", "--max-time", str(WAIT),
                         "--url", "smtp://127.0.0.1:%d/client.example" % port,
                         "--mail-from", "john@test.com", "--mail-rcpt", "david@test.com",
                         "--upload-file", self.msgfile])
        # curl ends the data with CRLF . CRLF: after a last bare LF, an empty line more
        self.check_stored(d, "david@test.com", [("john@test.com", plain + b"\n")])

    def test_swaks(self):
        """swaks, plain and with --pipeline. swaks ends the data with a line
        end of its own, so the file holds the message but its last LF."""
        swaks = self.tool("swaks", "swaks")
        d = self.mkdir()
        port = self.listener(d)
        with open(self.msgfile, "wb") as f:
            f.write(MESSAGE[:-1])
        for extra in ([], ["--pipeline"]):
            self.run_client([swaks, "--silent", "2", "--server", "127.0.0.1", "--port", str(port),
                             "--ehlo", "client.example", "--from", "john@test.com",
                             "--to", "david@test.com", "--timeout", str(WAIT),
                             "--data", "@" + self.msgfile] + extra)
        self.check_stored(d, "david@test.com", [("john@test.com", MESSAGE)] * 2)

    def test_smtplib(self):
        """Python's smtplib: send_message (CRLF by its generator), sendmail of
        CRLF bytes with SIZE= (sent when offered), a recipient refused among
        accepted ones, the null sender, BODY=8BITMIME; and sendmail of bytes
        with LF line ends, which smtplib sends as they are: bare LFs, taken
        by default and refused under -B reject."""
        d = self.mkdir()
        port = self.listener(d, ["-D", "test.com"])
        note = email.message.EmailMessage()
        note["From"], note["To"], note["Subject"] = "john@test.com", "david@test.com", "caf\u00e9"
        note.set_content("Grüße,\n.\nFrom me\n", cte="8bit")
        buf = io.BytesIO()      # what send_message sends: its generator mangles From lines
        email.generator.BytesGenerator(buf).flatten(note, linesep="\r\n")
        sent = buf.getvalue().replace(b"\r\n", b"\n")
        crlf = MESSAGE.replace(b"\n", b"\r\n")
        bounce = b"Subject: bounce\n\nreturned\n"
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=WAIT) as s:
            self.assertEqual(s.ehlo()[0], 250)
            self.assertTrue(s.has_extn("size") and s.has_extn("pipelining") and
                            s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes"))
            self.assertEqual(s.send_message(note), {})
            refused = s.sendmail("john@test.com", ["david@test.com", "x@other.org"], crlf)
            self.assertEqual(refused, {"x@other.org": (550, b"5.1.2 Error: domain not served here")})
            s.sendmail("", ["david@test.com"], bounce.replace(b"\n", b"\r\n"),
                       mail_options=["BODY=8BITMIME"])
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("john@test.com", ["david@test.com"], b"x\r\n" * 10,
                           mail_options=["SIZE=20000000"])
            self.assertEqual(e.exception.smtp_code, 552)
            # LF line ends, sent as they are: taken (smtplib ends them with CRLF . CRLF,
            # so the message gains the empty line that its CRLF makes)
            self.assertEqual(s.sendmail("john@test.com", ["david@test.com"], MESSAGE), {})
        self.check_stored(d, "david@test.com", [("john@test.com", sent), ("john@test.com", MESSAGE),
                                                ("", bounce), ("john@test.com", MESSAGE + b"\n")])
        strict = self.listener(self.mkdir("strict"), ["-B", "reject"])
        with smtplib.SMTP("127.0.0.1", strict, local_hostname="client.example", timeout=WAIT) as s:
            with self.assertRaises(smtplib.SMTPDataError) as e:
                s.sendmail("john@test.com", ["david@test.com"], MESSAGE)
            self.assertEqual((e.exception.smtp_code, e.exception.smtp_error),
                             (550, b"5.5.2 test.host Error: bare <LF> received"))


class Submission(Smtp):
    """--submission (port 587, RFC 6409): standard SMTP with no MAIL before AUTH."""

    def test_mail_waits_for_a_login(self):
        """MAIL before AUTH gets 530 5.7.0, RCPT and DATA then find no
        transaction; after AUTH PLAIN the account sends as itself. LOGIN is
        neither offered nor taken on a connection without TLS, local or not."""
        d = self.mkdir()
        c = self.smtp(d, ["--submission", "--accounts", two_accounts(self.root)])
        c.send(b"EHLO client.example\r\n")
        ehlo = self.replies(c)[0]
        self.assertIn("250-AUTH PLAIN", ehlo, "PLAIN for a local peer")
        self.assertNotIn("LOGIN", " ".join(ehlo), "LOGIN only over TLS")
        self.say(c, "MAIL FROM:<david@test.com>", "530 5.7.0 Authentication required")
        self.say(c, "MAIL FROM:<>", "530 5.7.0 Authentication required")
        self.say(c, "RCPT TO:<john@test.com>", "503 5.5.1 Error: need MAIL command")
        self.say(c, "AUTH LOGIN",
                 "538 5.7.11 Encryption required for requested authentication mechanism")
        plain = base64.b64encode(b"\0david@test.com\0secret1").decode()
        self.say(c, "AUTH PLAIN " + plain, "235 2.7.0 Authentication successful")
        self.send_mail(c, "david@test.com", ["john@test.com"], b"Subject: sent\n\nhi\n")
        self.smtp_quit(c)
        self.check_stored(d, "john@test.com", [("david@test.com", b"Subject: sent\n\nhi\n")])
        log = c.server.log().decode()
        self.assertIn("Refused MAIL from local: 530 5.7.0 Authentication required", log)

    def test_plain_smtp_still_takes_mail_without_a_login(self):
        """Without --submission nothing changes: any MX takes mail to an account."""
        d = self.mkdir()
        c = self.smtp(d, ["--accounts", two_accounts(self.root)])
        self.ehlo_any(c)
        self.send_mail(c, "someone@example.org", ["john@test.com"], b"Subject: in\n\nhi\n")
        self.smtp_quit(c)

    def ehlo_any(self, c):
        c.send(b"EHLO client.example\r\n")
        self.assertEqual(self.replies(c)[0][-1], "250 ENHANCEDSTATUSCODES")

    def test_usage(self):
        """--submission needs --accounts, and is no dialect beside --pop3 (exit 64)."""
        for args in (["--submission"], ["--submission", "--pop3", "--accounts", "a"],
                     ["-M", "--pop3", "--accounts", "a"]):
            with self.subTest(args=args):
                r = subprocess.run([SERVER] + args, stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=WAIT)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn(b"--submission", r.stderr)
