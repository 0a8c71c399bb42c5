"""test_tls.py: TLS (PROTOCOL.md section 8) and its known traps.

A certificate for localhost and 127.0.0.1 is made at test time with
openssl(1). The traps: plaintext pipelined after STARTTLS is never run
(CVE-2011-0411 and the 2021 "NO STARTTLS" findings), the session starts
afresh after the handshake, a second STARTTLS is refused, what the TLS
library holds is read before the server waits on the socket, the handshake
has a deadline, garbage in it costs bounded time, and SIGPIPE cannot kill a
session. Then real clients: openssl s_client (STARTTLS and implicit), Python's
smtplib and ssl, swaks, curl and mysmtp.
"""

import base64
import os
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from support import (REPLY_TIMEOUT, SERVER, SLOW, ServerTest, mailbox_file, vm_hwm_kib,
                     without_huge_pages)
from test_accounts import two_accounts

CLIENT = os.environ.get("MYSMTP") or os.path.join(os.path.dirname(SERVER), "mysmtp")
WAIT = REPLY_TIMEOUT


def make_certificate(root):
    """A self-signed EC certificate for localhost and 127.0.0.1: (cert, key)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise AssertionError("openssl is needed (Debian package openssl)")
    cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class PipeEnd:
    """A pipe read as Lines reads a socket: recv with a timeout."""

    def __init__(self, fd):
        self.fd = fd
        self.timeout = WAIT

    def settimeout(self, t):
        self.timeout = t

    def recv(self, n):
        r, _, _ = select.select([self.fd], [], [], self.timeout)
        if not r:
            raise AssertionError("nothing read in %.0f s" % self.timeout)
        return os.read(self.fd, n)


class Lines:
    """CRLF lines over a socket (plain or TLS), every wait bounded."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(WAIT)
        self.buf = b""

    def upto(self, end):
        """The next line ending in end, without it."""
        while end not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("closed; unread %r" % self.buf)
            self.buf += data
        line, _, self.buf = self.buf.partition(end)
        return line.decode("latin-1")

    def line(self):
        return self.upto(b"\r\n")

    def line_lf(self):
        """A line ending in LF (CRLF or not), skipping lines that are not
        replies (what a tool prints of its own)."""
        while True:
            text = self.upto(b"\n").rstrip("\r")
            if text[:3].isdigit():
                return text

    def reply(self):
        """A whole reply (SMTP's multi-line ones too): its last line."""
        line = self.line()
        while len(line) > 3 and line[3] == "-":
            line = self.line()
        return line

    def cmd(self, text):
        self.sock.sendall(text.encode("latin-1") + b"\r\n")
        return self.reply()

    def rest(self):
        """Everything until the server closes."""
        data = self.buf
        deadline = time.monotonic() + 2 * WAIT
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError("the server did not close; got %r" % data[-300:])
        return data.decode("latin-1")


class TlsTest(ServerTest):
    def setUp(self):
        super().setUp()
        self.d = self.mkdir()
        self.cert, self.key = make_certificate(self.root)
        self.accounts = two_accounts(self.root)
        self.tls_args = ["-C", self.cert, "-K", self.key, "--accounts", self.accounts]

    def context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def listen(self, extra=()):
        server, port = self.start_listener(self.d, self.tls_args + list(extra))
        return server, port

    def connect(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.closers.append(s.close)
        return Lines(s)

    def starttls(self, conn, ready):
        """STARTTLS, its reply, the handshake: a Lines over TLS."""
        self.assertEqual(conn.cmd("STARTTLS"), ready)
        tls = self.context().wrap_socket(conn.sock, server_hostname="localhost")
        self.closers.append(tls.close)
        return Lines(tls)


class Traps(TlsTest):
    def test_plaintext_pipelined_after_starttls_is_never_run(self):
        for smtp, first in ((False, "HELO test.com"), (True, "EHLO client.example")):
            with self.subTest(smtp=smtp):
                server, port = self.listen(["-S"] if smtp else [])
                c = self.connect(port)
                c.line()
                c.cmd(first)
                c.sock.sendall(b"STARTTLS\r\nQUIT\r\n")
                rest = c.rest()
                want = ("421 4.7.0 " if smtp else
                        "400 ERR no commands may follow STARTTLS before the handshake")
                self.assertTrue(rest.startswith(want), rest)
                self.assertNotIn("Goodbye", rest)
                self.assertNotIn("221", rest)
                self.assertNotIn("220 2.0.0", rest)
                server.wait_log(r"Commands pipelined after STARTTLS; closing\.")

    def test_plaintext_sent_after_the_ready_reply_is_not_a_command(self):
        """The client sends QUIT in the clear where the handshake should be:
        the handshake fails and QUIT is never answered."""
        server, port = self.listen(["-S"])
        c = self.connect(port)
        c.line()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS")
        c.sock.sendall(b"QUIT\r\n")
        rest = c.rest()
        self.assertNotIn("221", rest)
        server.wait_log(r"TLS handshake failed")

    def test_the_session_starts_afresh_after_the_handshake(self):
        server, port = self.listen()
        c = self.connect(port)
        c.line()
        self.assertEqual(c.cmd("HELO test.com"), "200 OK")
        self.assertEqual(c.cmd("AUTH david@test.com secret1"), "200 OK")    # local: allowed
        t = self.starttls(c, "200 OK ready to start TLS")
        self.assertEqual(t.cmd("LIST david@test.com"), "403 FORBIDDEN send HELO first")
        self.assertEqual(t.cmd("HELO test.com"), "200 OK")
        self.assertEqual(t.cmd("LIST david@test.com"), "403 FORBIDDEN log in first (AUTH)")
        self.assertEqual(t.cmd("STARTTLS"), "403 FORBIDDEN TLS already started")
        self.assertEqual(t.cmd("AUTH david@test.com secret1"), "200 OK")
        self.assertEqual(t.cmd("QUIT"), "200 Goodbye")

    def test_smtp_starts_afresh_and_refuses_a_second_starttls(self):
        server, port = self.listen(["-S"])
        c = self.connect(port)
        c.line()
        c.sock.sendall(b"EHLO client.example\r\n")
        ehlo = [c.line() for _ in range(7)]
        self.assertIn("250-STARTTLS", ehlo)
        plain = base64.b64encode(b"\0david@test.com\0secret1").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain), "235 2.7.0 Authentication successful")
        t = self.starttls(c, "220 2.0.0 Ready to start TLS")
        self.assertEqual(t.cmd("MAIL FROM:<david@test.com>"),
                         "503 5.5.1 Error: send HELO/EHLO first")
        t.sock.sendall(b"EHLO client.example\r\n")
        lines = []
        while not lines or lines[-1][3] == "-":
            lines.append(t.line())
        self.assertNotIn("250-STARTTLS", lines, "STARTTLS is not offered twice")
        self.assertIn("250-AUTH PLAIN LOGIN", lines, "LOGIN too, over TLS")
        self.assertEqual(t.cmd("STARTTLS"), "554 5.5.1 Error: TLS already active")
        self.assertEqual(t.cmd("MAIL FROM:<david@test.com>"),
                         "550 5.7.1 Error: sender is a local account; log in as it first")
        self.assertEqual(t.cmd("QUIT"), "221 2.0.0 Bye")

    def test_what_the_tls_library_holds_is_read_before_any_wait(self):
        """One 16 KiB TLS record holding 2,000 commands (the server reads 4 KiB
        at a time) and a whole message in another: under -t 2, every reply
        comes; a server that polled the socket first would time out."""
        server, port = self.listen(["-t", "2", "-j", "100000"])
        c = self.connect(port)
        c.line()
        t = self.starttls(c, "200 OK ready to start TLS")
        t.sock.sendall(b"NOOP\r\n" * 2000)
        for i in range(2000):
            self.assertEqual(t.line(), "200 OK", "reply %d" % i)
        self.assertEqual(t.cmd("HELO test.com"), "200 OK")
        self.assertEqual(t.cmd("AUTH john@test.com hunter2"), "200 OK")
        self.assertEqual(t.cmd("MAIL FROM: john@test.com"), "200 OK")
        self.assertEqual(t.cmd("RCPT TO: david@test.com"), "200 OK")
        self.assertEqual(t.cmd("DATA"), "200 Enter your message (end with a single dot '.'):")
        text = b"".join(b"%078d\r\n" % i for i in range(200)) + b".\r\n"     # 16,003 octets
        t.sock.sendall(text)
        self.assertEqual(t.line(), "200 Message stored successfully")
        self.assertEqual(t.cmd("QUIT"), "200 Goodbye")

    def test_the_handshake_has_a_deadline(self):
        """Silence after STARTTLS, or on an implicit-TLS port: closed after -t 2."""
        for implicit in (False, True):
            with self.subTest(implicit=implicit):
                server, port = self.listen(["-t", "2"] + (["-i"] if implicit else []))
                c = self.connect(port)
                if not implicit:
                    c.line()
                    self.assertEqual(c.cmd("STARTTLS"), "200 OK ready to start TLS")
                started = time.monotonic()
                c.rest()
                took = time.monotonic() - started
                self.assertGreaterEqual(took, 1.5)
                self.assertLess(took, 2 + WAIT)
                server.wait_log(r"TLS handshake failed: the handshake timed out")

    def test_garbage_in_the_handshake(self):
        """A megabyte of noise where the ClientHello should be: the server gives
        up at once, and the next client is served."""
        server, port = self.listen(["-i"])
        c = self.connect(port)
        try:
            c.sock.sendall(os.urandom(1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        started = time.monotonic()
        c.rest()
        self.assertLess(time.monotonic() - started, WAIT)
        server.wait_log(r"TLS handshake failed")
        t = self.context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT),
                                       server_hostname="localhost")
        self.closers.append(t.close)
        self.assertRegex(Lines(t).line(), r"^200 \S+ My_SMTP ready$")

    def test_a_stalled_handshake_costs_bounded_memory(self):
        """On a socket pair (one process to watch), a TLS record header that
        promises 16 KiB, 8 KiB of it, then silence: the session waits with
        its peak RSS near that of one that has sent nothing, and is closed
        by -t 2."""
        peaks = []
        for data in (b"", b"\x16\x03\x01\x40\x00" + os.urandom(8192)):
            mine, theirs = socket.socketpair()
            self.closers.append(mine.close)
            s = self.spawn(["-d", self.d, "-t", "2", "-i"] + self.tls_args,
                           stdin=theirs.fileno(), stdout=theirs.fileno(),
                           preexec_fn=without_huge_pages())
            theirs.close()
            mine.sendall(data)
            time.sleep(0.5 * SLOW)
            peaks.append(vm_hwm_kib(s.pid))
            self.assertGreaterEqual(s.wait(2 + WAIT), 0)
        print("[waiting in the handshake: VmHWM %d KiB, %+d over an idle one]"
              % (peaks[1], peaks[1] - peaks[0]), end=" ", flush=True)
        self.assertLess(peaks[1] - peaks[0], 1024)

    def test_sigpipe_cannot_kill_a_session(self):
        """Over a socket pair (inetd style), a GET_MAIL of 5 MiB over TLS, and
        the client gone at once: the server ends with an exit status."""
        mine, theirs = socket.socketpair()
        self.closers.append(mine.close)
        big = [b"x" * 1000] * 5000
        self.deliver(self.d, "john@test.com", ["david@test.com"], big, args=["-A"])
        s = self.spawn(["-d", self.d] + self.tls_args, stdin=theirs.fileno(),
                       stdout=theirs.fileno())
        theirs.close()
        c = Lines(mine)
        c.line()
        t = self.starttls(c, "200 OK ready to start TLS")
        t.cmd("HELO test.com")
        t.cmd("AUTH david@test.com secret1")
        t.sock.sendall(b"GET_MAIL david@test.com 1\r\n")
        t.line()
        t.sock.close()
        mine.close()
        rc = s.wait()
        self.assertGreaterEqual(rc, 0, "killed by signal %d" % -rc)

    def test_a_password_over_tls_from_a_network_peer(self):
        """AUTH from a non-local peer: refused in the clear, taken over TLS."""
        mine, theirs = socket.socketpair()
        self.closers.append(mine.close)
        s = self.spawn(["-d", self.d] + self.tls_args, stdin=theirs.fileno(),
                       stdout=theirs.fileno(), env=dict(os.environ, REMOTE_ADDR="192.0.2.7"))
        theirs.close()
        c = Lines(mine)
        c.line()
        self.assertEqual(c.cmd("HELO test.com"), "200 OK")
        self.assertEqual(c.cmd("AUTH david@test.com secret1"), "403 FORBIDDEN TLS required")
        t = self.starttls(c, "200 OK ready to start TLS")
        self.assertEqual(t.cmd("HELO test.com"), "200 OK")
        self.assertEqual(t.cmd("AUTH david@test.com secret1"), "200 OK")
        self.assertEqual(t.cmd("QUIT"), "200 Goodbye")
        self.assertEqual(s.wait(), 0)

    def test_tls_1_2_and_1_3_only(self):
        server, port = self.listen(["-i"])
        for version, ok in ((ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_3, True),
                            (ssl.TLSVersion.TLSv1_1, False)):
            with self.subTest(version=version):
                ctx = self.context()
                ctx.minimum_version = ctx.maximum_version = version
                if not ok:
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                try:
                    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT),
                                        server_hostname="localhost")
                    self.closers.append(t.close)
                    got = Lines(t).line()
                except (ssl.SSLError, ConnectionResetError) as e:
                    got = "refused: %s" % e
                self.assertEqual(got.startswith("200 "), ok, got)

    def test_the_tls_library_is_loaded_only_for_tls(self):
        """A session without -C maps no TLS library; one with -C does."""
        for args, loaded in (([], False), (["-C", self.cert, "-K", self.key], True)):
            with self.subTest(tls=loaded):
                c = self.pipe_session(self.d, args)
                self.assertEqual(c.cmd("NOOP"), "200 OK")
                with open("/proc/%d/maps" % c.server.pid) as f:
                    maps = f.read()
                self.assertEqual("libtls" in maps, loaded)
                self.assertEqual("libssl" in maps, loaded)
                self.quit(c)

    def test_no_tls_options_no_tls(self):
        """Without --tls-cert: no STARTTLS in EHLO, and the command is not there."""
        server, port = self.start_listener(self.d, ["-S"])
        c = self.connect(port)
        c.line()
        c.sock.sendall(b"EHLO client.example\r\n")
        lines = [c.line()]
        while lines[-1][3] == "-":
            lines.append(c.line())
        self.assertNotIn("250-STARTTLS", lines)
        self.assertEqual(c.cmd("STARTTLS"), "502 5.5.1 Error: command not implemented")
        server, port = self.start_listener(self.d)
        c = self.connect(port)
        c.line()
        self.assertEqual(c.cmd("STARTTLS"), "403 FORBIDDEN TLS not available")


class RealClients(TlsTest):
    def tool(self, name, package):
        path = shutil.which(name)
        self.assertTrue(path, "%s is not installed (Debian package %s)" % (name, package))
        return path

    def run_tool(self, argv, input=b""):
        p = subprocess.run(argv, input=input, capture_output=True, timeout=3 * WAIT)
        return p

    def stored(self, address):
        path = mailbox_file(self.d, address)
        return open(path, "rb").read() if os.path.exists(path) else b""

    def test_openssl_s_client_starttls_smtp(self):
        openssl = self.tool("openssl", "openssl")
        server, port = self.listen(["-S"])
        p = self.run_tool([openssl, "s_client", "-starttls", "smtp", "-connect",
                           "127.0.0.1:%d" % port, "-CAfile", self.cert, "-verify_return_error",
                           "-servername", "localhost", "-quiet"],
                          input=b"EHLO client.example\r\nQUIT\r\n")
        out = p.stdout.decode("latin-1")
        self.assertIn("250-AUTH PLAIN", out, out + p.stderr.decode())
        self.assertIn("221 2.0.0 Bye", out)
        server.wait_log(r"TLS started: TLSv1\.3")

    def test_openssl_s_client_implicit(self):
        openssl = self.tool("openssl", "openssl")
        server, port = self.listen(["-S", "-i"])
        p = self.run_tool([openssl, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                           self.cert, "-verify_return_error", "-quiet"],
                          input=b"EHLO client.example\r\nQUIT\r\n")
        out = p.stdout.decode("latin-1")
        self.assertRegex(out, r"^220 \S+ ESMTP My_SMTP", out + p.stderr.decode())
        self.assertNotIn("250-STARTTLS", out)
        self.assertIn("221 2.0.0 Bye", out)

    def test_smtplib_starttls_login_and_implicit(self):
        server, port = self.listen(["-S"])
        msg = b"Subject: over TLS\r\n\r\nHello John.\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as s:
            s.starttls(context=self.context())
            s.login("david@test.com", "secret1")
            s.sendmail("david@test.com", ["john@test.com"], msg)
        server, port = self.listen(["-S", "-i"])
        ctx = self.context()
        ctx.check_hostname = False          # connected by address; the name is checked above
        with smtplib.SMTP_SSL("127.0.0.1", port, timeout=WAIT, context=ctx) as s:
            s.login("john@test.com", "hunter2")
            s.sendmail("john@test.com", ["david@test.com"], msg)
        self.assertIn(b"\nHello John.\n", self.stored("john@test.com"))
        self.assertIn(b"\nHello John.\n", self.stored("david@test.com"))

    def test_swaks_tls_auth(self):
        swaks = self.tool("swaks", "swaks")
        server, port = self.listen(["-S"])
        p = self.run_tool([swaks, "--server", "127.0.0.1", "--port", str(port), "--tls",
                           "--tls-verify", "--tls-ca-path", self.cert, "--tls-sni", "localhost",
                           "--auth", "PLAIN", "--auth-user", "david@test.com",
                           "--auth-password", "secret1", "--from", "david@test.com",
                           "--to", "john@test.com", "--body", "swaks over TLS",
                           "--timeout", str(int(WAIT))])
        self.assertEqual(p.returncode, 0, p.stdout[-1500:] + p.stderr[-500:])
        self.assertIn(b"swaks over TLS", self.stored("john@test.com"))

    def test_curl_ssl_reqd(self):
        curl = self.tool("curl", "curl")
        server, port = self.listen(["-S"])
        msg = os.path.join(self.root, "m.txt")
        with open(msg, "wb") as f:
            f.write(b"Subject: curl\r\n\r\ncurl over TLS\r\n")
        p = self.run_tool([curl, "--silent", "--show-error", "--max-time", str(int(WAIT)),
                           "--ssl-reqd", "--cacert", self.cert, "--resolve",
                           "localhost:%d:127.0.0.1" % port,
                           "--url", "smtp://localhost:%d/client.example" % port,
                           "--user", "david@test.com:secret1", "--mail-from", "david@test.com",
                           "--mail-rcpt", "john@test.com", "--upload-file", msg])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"curl over TLS", self.stored("john@test.com"))

    def test_gnutls_cli_starttls_in_the_my_smtp_dialect(self):
        """gnutls-cli --starttls: a plain session, STARTTLS typed, SIGALRM to
        start the handshake (as its manual says), then the session over TLS."""
        gnutls = self.tool("gnutls-cli", "gnutls-bin")
        server, port = self.listen()
        p = subprocess.Popen([gnutls, "--starttls", "--x509cafile", self.cert, "-p", str(port),
                              "localhost"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        out = Lines(PipeEnd(p.stdout.fileno()))
        self.assertRegex(out.line_lf(), r"^200 \S+ My_SMTP ready")
        p.stdin.write(b"STARTTLS\r\n")
        p.stdin.flush()
        self.assertEqual(out.line_lf(), "200 OK ready to start TLS")
        p.send_signal(signal.SIGALRM)
        server.wait_log(r"TLS started: TLSv1\.3")
        p.stdin.write(b"HELO test.com\r\nAUTH david@test.com secret1\r\nQUIT\r\n")
        p.stdin.flush()
        got = [out.line_lf() for _ in range(3)]
        self.assertEqual(got, ["200 OK", "200 OK", "200 Goodbye"])
        server.wait_log(r"Authenticated david@test\.com from 127\.0\.0\.1")
        p.stdin.close()
        p.wait(WAIT)

    def test_mysmtp_starttls_and_tls(self):
        server, port = self.listen()
        env = dict(os.environ, MYSMTP_PASSWORD="secret1")
        base = [CLIENT, "-s", "localhost", "-p", str(port), "-t", str(int(WAIT)),
                "--ca-file", self.cert, "-u", "david@test.com"]
        p = subprocess.run(base + ["--starttls", "send", "john@test.com"], input=b"mysmtp TLS\n",
                           capture_output=True, timeout=3 * WAIT, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"mysmtp TLS", self.stored("john@test.com"))
        server, port = self.listen(["-i"])
        base[4] = str(port)
        p = subprocess.run(base + ["--tls", "list", "david@test.com"], capture_output=True,
                           timeout=3 * WAIT, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([CLIENT, "-s", "localhost", "-p", str(port), "--tls", "list",
                            "david@test.com"], capture_output=True, timeout=3 * WAIT, env=env)
        self.assertEqual(p.returncode, 76, "an untrusted certificate: %r" % p.stderr)
        self.assertIn(b"certificate", p.stderr)


if __name__ == "__main__":
    unittest.main()
