"""test_auth_clients.py: real clients log in (PROTOCOL.md section 7).

Standard SMTP mode with accounts, against Python's smtplib, swaks, curl and
msmtp, each logging in with AUTH PLAIN on a listener on 127.0.0.1 (a local
peer, so no TLS is needed); submission (--submission, port 587) with swaks'
AUTH LOGIN over STARTTLS, and the LOGIN exchange itself; and mysmtp --user,
scripted and on a terminal.
"""

import base64
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from support import failure_delay_args, mailbox_file
from test_accounts import two_accounts
from test_client import (CLIENT, EX_NOPERM, EX_OK, WAIT, TerminalTest, masked)
from test_smtp import HOST, MESSAGE, Smtp
from test_tls import Lines, make_certificate


class SmtpClients(Smtp):
    def setUp(self):
        super().setUp()
        self.d = self.mkdir()
        self.accounts = two_accounts(self.root)
        self.port = self.listener(self.d, ["--accounts", self.accounts])
        self.msgfile = os.path.join(self.root, "message.eml")
        with open(self.msgfile, "wb") as f:
            f.write(MESSAGE)

    def run_tool(self, argv, input=None):
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=3 * WAIT, stdin=None if input is not None else subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, "%s failed: %s%s" % (argv[0], p.stdout[-2000:],
                                                             p.stderr[-2000:]))
        return p

    def tool(self, name, package):
        path = shutil.which(name)
        self.assertTrue(path, "%s is not installed (Debian package %s)" % (name, package))
        return path

    def test_smtplib_logs_in_and_is_checked(self):
        crlf = MESSAGE.replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("auth"))
            self.assertIn("PLAIN", s.esmtp_features["auth"])
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("david@test.com", ["john@test.com"], crlf)
            self.assertEqual(e.exception.smtp_code, 550)
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
                s.sendmail("outsider@example.org", ["nobody@test.com"], crlf)
            self.assertEqual(e.exception.recipients["nobody@test.com"][0], 550)
            s.login("david@test.com", "secret1")
            s.sendmail("david@test.com", ["john@test.com"], crlf)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("david@test.com", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
            s.sendmail("outsider@example.org", ["david@test.com"], crlf)   # as any MX
        self.check_stored(self.d, "john@test.com", [("david@test.com", MESSAGE)])
        self.check_stored(self.d, "david@test.com", [("outsider@example.org", MESSAGE)])
        self.assertFalse(os.path.exists(mailbox_file(self.d, "nobody@test.com")))

    def test_swaks(self):
        """swaks ends the data with CRLF "." CRLF of its own: the file's
        last LF is left out, as in test_smtp."""
        swaks = self.tool("swaks", "swaks")
        with open(self.msgfile, "wb") as f:
            f.write(MESSAGE[:-1])
        self.run_tool([swaks, "--server", "127.0.0.1", "--port", str(self.port),
                       "--auth", "PLAIN", "--auth-user", "john@test.com",
                       "--auth-password", "hunter2", "--from", "john@test.com",
                       "--to", "david@test.com", "--data", "@" + self.msgfile,
                       "--timeout", str(int(WAIT))])
        self.check_stored(self.d, "david@test.com", [("john@test.com", MESSAGE)])

    def test_curl(self):
        curl = self.tool("curl", "curl")
        self.run_tool([curl, "--silent", "--show-error", "--max-time", str(WAIT), "--crlf",
                       "--url", "smtp://127.0.0.1:%d/client.example" % self.port,
                       "--user", "david@test.com:secret1", "--login-options", "AUTH=PLAIN",
                       "--mail-from", "david@test.com", "--mail-rcpt", "john@test.com",
                       "--upload-file", self.msgfile])
        self.check_stored(self.d, "john@test.com", [("david@test.com", MESSAGE)])

    def test_msmtp(self):
        """msmtp adds Date and Message-ID when a message has none: this one has."""
        msmtp = self.tool("msmtp", "msmtp")
        message = b"Date: Wed, 02 Dec 2026 05:00:00 +0000\nMessage-ID: <m1@client.example>\n" + MESSAGE
        self.run_tool([msmtp, "--host=127.0.0.1", "--port=%d" % self.port, "--tls=off",
                       "--auth=plain", "--user=david@test.com", "--passwordeval=echo secret1",
                       "--domain=client.example", "--from=david@test.com", "john@test.com"],
                      input=message)
        self.check_stored(self.d, "john@test.com", [("david@test.com", message)])


def b64(text):
    return base64.b64encode(text.encode()).decode()


class SubmissionClients(Smtp):
    """mysmtpd --submission with STARTTLS, as the submission unit runs it,
    on a listener on 127.0.0.1."""

    failure_delay_ms = None     # the login exchange checks the delay

    def setUp(self):
        super().setUp()
        self.d = self.mkdir()
        self.cert, self.key = make_certificate(self.root)
        self.server, self.port = self.start_listener(
            self.d, ["--submission", "-n", HOST, "--accounts", two_accounts(self.root),
                     "-C", self.cert, "-K", self.key])

    def swaks(self, *args):
        swaks = shutil.which("swaks")
        self.assertTrue(swaks, "swaks is not installed (Debian package swaks)")
        return subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(self.port),
                               "--from", "david@test.com", "--to", "john@test.com",
                               "--timeout", str(int(WAIT))] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=3 * WAIT)

    def stored(self):
        path = mailbox_file(self.d, "john@test.com")
        return open(path, "rb").read() if os.path.exists(path) else b""

    def test_swaks_auth_login_over_starttls(self):
        """swaks --auth LOGIN sends over STARTTLS; without TLS it finds no
        LOGIN offered and sends nothing; without a login, MAIL gets 530."""
        tls = ["--tls", "--tls-verify", "--tls-ca-path", self.cert, "--tls-sni", "localhost"]
        p = self.swaks(*(tls + ["--auth", "LOGIN", "--auth-user", "david@test.com",
                                "--auth-password", "secret1", "--body", "swaks LOGIN"]))
        out = p.stdout.decode("latin-1")
        self.assertEqual(p.returncode, 0, out[-2000:] + p.stderr.decode("latin-1")[-500:])
        self.assertIn("250-AUTH PLAIN LOGIN", out)
        self.assertIn("334 VXNlcm5hbWU6", out)
        self.assertIn("334 UGFzc3dvcmQ6", out)
        self.assertIn(b"swaks LOGIN", self.stored())
        p = self.swaks("--auth", "LOGIN", "--auth-user", "david@test.com",
                       "--auth-password", "secret1", "--body", "in the clear")
        out = p.stdout.decode("latin-1")
        self.assertNotEqual(p.returncode, 0, out[-2000:])
        self.assertNotIn("LOGIN", "".join(l for l in out.splitlines(True) if "250" in l))
        p = self.swaks(*(tls + ["--body", "no login"]))
        out = p.stdout.decode("latin-1")
        self.assertNotEqual(p.returncode, 0, out[-2000:])
        self.assertIn("530 5.7.0 Authentication required", out)
        self.assertNotIn(b"in the clear", self.stored())
        self.assertNotIn(b"no login", self.stored())
        self.server.wait_log(r"Authenticated david@test\.com from 127\.0\.0\.1")

    def tls_session(self):
        """Connected, EHLO, STARTTLS, EHLO again: Lines over TLS."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        self.closers.append(sock.close)
        c = Lines(sock)
        self.assertRegex(c.line(), r"^220 ")
        self.assertEqual(c.cmd("EHLO client.example"), "250 ENHANCEDSTATUSCODES")
        self.assertEqual(c.cmd("AUTH LOGIN"),
                         "538 5.7.11 Encryption required for requested authentication mechanism")
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        ctx = ssl.create_default_context(cafile=self.cert)
        tls = Lines(ctx.wrap_socket(sock, server_hostname="localhost"))
        self.closers.append(tls.sock.close)
        tls.sock.sendall(b"EHLO client.example\r\n")
        ehlo = [tls.line()]
        while ehlo[-1][3] == "-":
            ehlo.append(tls.line())
        self.assertIn("250-AUTH PLAIN LOGIN", ehlo)
        return tls

    def test_the_login_exchange(self):
        """AUTH LOGIN as RFC 4954 frames it: 334 VXNlcm5hbWU6 ("Username:"),
        334 UGFzc3dvcmQ6 ("Password:"); "*" aborts, bad base64 is 501, a
        wrong password 535 after the delay and logged as PLAIN's is; the user
        name may come on the AUTH line; the third failure ends the session."""
        c = self.tls_session()
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
        self.assertEqual(c.cmd(b64("david@test.com")), "334 UGFzc3dvcmQ6")
        start = time.monotonic()
        self.assertEqual(c.cmd(b64("wrong")), "535 5.7.8 Error: authentication failed")
        self.assertGreater(time.monotonic() - start, 1.5, "the failure delay")
        self.server.wait_log(r"Authentication failed for david@test\.com from 127\.0\.0\.1")
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
        self.assertEqual(c.cmd("*"), "501 5.7.0 Error: authentication aborted")
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
        self.assertEqual(c.cmd(b64("david@test.com")), "334 UGFzc3dvcmQ6")
        self.assertEqual(c.cmd("not base64!"), "501 5.5.2 Error: cannot decode response")
        self.assertEqual(c.cmd("MAIL FROM:<david@test.com>"), "530 5.7.0 Authentication required")
        self.assertEqual(c.cmd("AUTH LOGIN " + b64("david@test.com")), "334 UGFzc3dvcmQ6")
        self.assertEqual(c.cmd(b64("secret1")), "235 2.7.0 Authentication successful")
        self.assertEqual(c.cmd("AUTH LOGIN"), "503 5.5.1 Error: already authenticated")
        self.assertEqual(c.cmd("MAIL FROM:<david@test.com>"), "250 2.1.0 Ok")
        self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        c = self.tls_session()
        for _ in range(2):
            self.assertEqual(c.cmd("AUTH LOGIN " + b64("john@test.com")), "334 UGFzc3dvcmQ6")
            self.assertEqual(c.cmd(b64("wrong")), "535 5.7.8 Error: authentication failed")
        self.assertEqual(c.cmd("AUTH LOGIN " + b64("john@test.com")), "334 UGFzc3dvcmQ6")
        self.assertRegex(c.cmd(b64("wrong")), r"^421 4\.7\.0 ")
        log = self.server.log().decode()
        self.assertEqual(log.count("Authentication failed for john@test.com from 127.0.0.1"), 3)
        self.assertNotIn("wrong", log.replace("wrong address", ""))


class MysmtpUser(TerminalTest):
    """mysmtp --user against a listener with accounts."""

    test_seed_session_on_a_terminal = None      # the open demo's, in test_client

    def setUp(self):
        self.accounts_path = None
        super().setUp()

    @property
    def server_args(self):
        if self.accounts_path is None:
            self.accounts_path = two_accounts(self.root)
        args = ["--accounts", self.accounts_path]
        return tuple(args + failure_delay_args(args))

    def client(self, *args, password="secret1", input=b""):
        env = dict(os.environ, MYSMTP_PASSWORD=password)
        return subprocess.run([CLIENT] + [str(a) for a in self.opts + list(args)], input=input,
                      capture_output=True, timeout=WAIT, env=env)

    def test_scripted_send_list_and_get_log_in_first(self):
        r = self.client("--user", "john@test.com", "send", "david@test.com",
                        password="hunter2", input=b"Hello David\n")
        self.assertExit(r, EX_OK, "send")
        r = self.client("--user", "david@test.com", "list", "david@test.com")
        self.assertExit(r, EX_OK, "list")
        self.assertRegex(r.stdout.decode(), r"^1: Email from john@test\.com \(")
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write("secret1\n")
        r = self.client("--user", "david@test.com", "--password-file", pwfile,
                        "get", "david@test.com", "1", password="")
        self.assertExit(r, EX_OK, "get")
        self.assertTrue(r.stdout.endswith(b"Hello David\n"), r.stdout)

    def test_a_refused_login_exits_77(self):
        r = self.client("--user", "david@test.com", "list", "david@test.com", password="wrong")
        self.assertExit(r, EX_NOPERM, "wrong password")
        self.assertIn(b"AUTH david@test.com: 403 FORBIDDEN wrong address or password", r.stderr)
        self.assertNotIn(b"wrong", r.stderr.replace(b"wrong address", b""))
        r = self.client("--user", "david@test.com", "list", "john@test.com")
        self.assertExit(r, EX_NOPERM, "another's mailbox")

    def test_auth_typed_on_a_terminal_asks_for_the_password(self):
        history = os.path.join(self.root, "history")
        status = self.start_terminal("127.0.0.1:%d" % self.server.port, history)
        want = []

        def at_prompt(line, replies):
            self.wait_screen(want + [">"])
            self.type(line + "\n")
            want.extend(["> " + line] + replies)

        at_prompt("HELO test.com", ["200 OK"])
        at_prompt("AUTH david@test.com", ["Password for david@test.com:"])
        self.wait_screen(want, editing=False)
        self.type("secret1\n")
        want.append("200 OK")
        at_prompt("LIST david@test.com", ["200 OK"])
        at_prompt("QUIT", ["200 Goodbye"])
        self.wait_status(status)
        self.assertEqual([l.rstrip() for l in masked(self.screen())], [w.rstrip() for w in want])
        with open(history, "rb") as f:
            kept = f.read()
        self.assertIn(b"LIST", kept)
        self.assertNotIn(b"AUTH", kept, "an AUTH line is never kept in the history")
        self.assertNotIn(b"secret1", self.screen_text(), "the password was echoed")

    def test_user_logs_in_after_the_first_helo(self):
        status = self.start_terminal("--user david@test.com 127.0.0.1:%d" % self.server.port)
        want = []
        self.wait_screen([">"])
        self.type("HELO test.com\n")
        want += ["> HELO test.com", "200 OK", "Password for david@test.com:"]
        self.wait_screen(want, editing=False)
        self.type("secret1\n")
        want.append("200 OK")
        self.wait_screen(want + [">"])
        self.type("LIST david@test.com\n")
        want += ["> LIST david@test.com", "200 OK"]
        self.wait_screen(want + [">"])
        self.type("QUIT\n")
        want += ["> QUIT", "200 Goodbye"]
        self.wait_status(status)

    def screen_text(self):
        return "\n".join(self.screen()).encode()

    def wait_status(self, status_file):
        deadline = time.monotonic() + WAIT
        while not os.path.exists(status_file) or os.path.getsize(status_file) == 0:
            self.assertLess(time.monotonic(), deadline, "mysmtp did not exit: %r" % self.screen())
            time.sleep(0.02)
        with open(status_file) as f:
            self.assertEqual(f.read().strip(), "0", "exit status: %r" % self.screen())


if __name__ == "__main__":
    unittest.main()
