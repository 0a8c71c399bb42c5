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
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
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


# TLS 1.2 suites: CBC ones (what testssl.sh calls obsolete, LUCKY13's
# target) and AEAD ones, for an EC and an RSA key.
CBC_EC = ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
          "ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-CAMELLIA128-SHA256:ECDHE-ECDSA-CAMELLIA256-SHA384")
AEAD_EC = "ECDHE-ECDSA-AES128-GCM-SHA256"
CBC_RSA = "ECDHE-RSA-AES128-SHA"
AEAD_RSA = "ECDHE-RSA-AES256-GCM-SHA384"


class AeadOnly(TlsTest):
    """On TLS 1.2 only AEAD suites, in every dialect and in the client: a
    client that offers only CBC suites is refused; today's clients, held
    to TLS 1.2, still connect."""

    # (listener arguments, what s_client is told to do before TLS)
    DIALECTS = [(["-i"], []), (["-S", "-i"], []), (["--pop3", "-i"], []),
                (["-S"], ["-starttls", "smtp"]), (["--pop3"], ["-starttls", "pop3"])]

    def s_client(self, port, cipher, before, cafile=None):
        """openssl s_client -tls1_2 -cipher cipher: the suite agreed, or None."""
        openssl = shutil.which("openssl")
        self.assertTrue(openssl, "openssl is needed (Debian package openssl)")
        p = subprocess.run([openssl, "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_2",
                            "-cipher", cipher, "-CAfile", cafile or self.cert,
                            "-verify_return_error", "-servername", "localhost"] + before,
                           input=b"", capture_output=True, timeout=3 * WAIT)
        out = p.stdout.decode("latin-1")
        m = re.search(r"Cipher is (\S+)", out)
        agreed = m.group(1) if m and m.group(1) != "(NONE)" else None
        self.assertEqual(agreed is not None, p.returncode == 0, out + p.stderr.decode())
        return agreed

    def test_cbc_only_clients_are_refused_in_every_dialect(self):
        for args, before in self.DIALECTS:
            with self.subTest(args=args):
                server, port = self.listen(args)
                self.assertIsNone(self.s_client(port, CBC_EC, before))
                server.wait_log(r"TLS handshake failed: .*no shared cipher")
                self.assertEqual(self.s_client(port, AEAD_EC, before), AEAD_EC)
                server.wait_log(r"TLS started: TLSv1\.2 %s" % AEAD_EC)

    def test_cbc_only_is_refused_after_starttls_in_the_my_smtp_dialect(self):
        server, port = self.listen()
        for cipher, ok in ((CBC_EC, False), (AEAD_EC, True)):
            with self.subTest(cipher=cipher):
                conn = self.connect(port)
                self.assertRegex(conn.line(), r"^200 ")
                self.assertEqual(conn.cmd("STARTTLS"), "200 OK ready to start TLS")
                ctx = self.context()
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers(cipher)
                try:
                    t = ctx.wrap_socket(conn.sock, server_hostname="localhost")
                    self.closers.append(t.close)
                    got = t.cipher()[0]
                except (ssl.SSLError, ConnectionResetError) as e:
                    got = "refused: %s" % e
                self.assertEqual(got in cipher.split(":"), ok, got)

    def test_an_rsa_key_refuses_cbc_too(self):
        cert, key = os.path.join(self.root, "rsa.pem"), os.path.join(self.root, "rsakey.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
        server, port = self.start_listener(self.d, ["-S", "-i", "-C", cert, "-K", key])
        self.assertIsNone(self.s_client(port, CBC_RSA, [], cert))
        self.assertEqual(self.s_client(port, AEAD_RSA, [], cert), AEAD_RSA)

    def fake_tls_server(self, ctx):
        """A My_SMTP server in a thread, over TLS with ctx: 200 to every
        line (LIST with an empty body), 200 Goodbye to QUIT; its port."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        sock.settimeout(3 * WAIT)
        self.closers.append(sock.close)

        def serve():
            try:
                conn, _ = sock.accept()
                with ctx.wrap_socket(conn, server_side=True) as t:
                    lines = Lines(t)
                    t.sendall(b"200 fake My_SMTP ready\r\n")
                    while True:
                        line = lines.line()
                        t.sendall(b"200 Goodbye\r\n" if line == "QUIT" else
                                  b"200 OK\r\n.\r\n" if line.startswith("LIST") else
                                  b"200 OK\r\n")
                        if line == "QUIT":
                            return
            except (OSError, AssertionError):
                pass
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        self.closers.append(lambda: th.join(3 * WAIT))
        return sock.getsockname()[1]

    def test_the_client_offers_no_cbc_suite(self):
        for cipher, status in ((CBC_EC, 76), (AEAD_EC, 0)):
            with self.subTest(cipher=cipher):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers(cipher)
                ctx.load_cert_chain(self.cert, self.key)
                port = self.fake_tls_server(ctx)
                p = subprocess.run([CLIENT, "-s", "localhost", "-p", str(port), "-t",
                                    str(int(WAIT)), "--tls", "--ca-file", self.cert, "list",
                                    "david@test.com"], capture_output=True, timeout=3 * WAIT)
                self.assertEqual(p.returncode, status, p.stderr)
                if status:
                    self.assertIn(b"TLS", p.stderr)

    def test_todays_clients_connect_on_tls_1_2(self):
        """curl, swaks, gnutls-cli and fetchmail, each held to TLS 1.2."""
        server, port = self.listen(["-S", "-i"])
        msg = os.path.join(self.root, "m.txt")
        with open(msg, "wb") as f:
            f.write(b"Subject: curl\r\n\r\ncurl on TLS 1.2\r\n")
        p = subprocess.run(["curl", "--silent", "--show-error", "--max-time", str(int(WAIT)),
                            "--tls-max", "1.2", "--cacert", self.cert,
                            "--url", "smtps://127.0.0.1:%d/client.example" % port,
                            "--user", "david@test.com:secret1", "--mail-from", "david@test.com",
                            "--mail-rcpt", "john@test.com", "--upload-file", msg],
                           capture_output=True, timeout=3 * WAIT)
        self.assertEqual(p.returncode, 0, p.stderr)
        server.wait_log(r"TLS started: TLSv1\.2 ECDHE-ECDSA-AES\d+-GCM")
        server, port = self.listen(["-S"])
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls",
                            "--tls-protocol", "tlsv1_2", "--tls-verify", "--tls-ca-path",
                            self.cert, "--tls-sni", "localhost", "--auth", "PLAIN",
                            "--auth-user", "david@test.com", "--auth-password", "secret1",
                            "--from", "david@test.com", "--to", "john@test.com",
                            "--body", "swaks on TLS 1.2", "--timeout", str(int(WAIT))],
                           capture_output=True, timeout=3 * WAIT)
        self.assertEqual(p.returncode, 0, p.stdout[-1500:] + p.stderr[-500:])
        server.wait_log(r"TLS started: TLSv1\.2 ECDHE-ECDSA-")
        server, port = self.listen(["--pop3", "-i"])
        p = subprocess.run(["gnutls-cli", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2",
                            "--x509cafile", self.cert, "-p", str(port), "localhost"],
                           input=b"QUIT\r\n", capture_output=True, timeout=3 * WAIT)
        self.assertIn(b"+OK", p.stdout, p.stderr[-1500:])
        server.wait_log(r"TLS started: TLSv1\.2 ECDHE-ECDSA-")
        home = os.path.join(self.root, "fm")
        os.makedirs(home)
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll localhost service %d protocol pop3 auth password\n'
                    '  user "david@test.com" password "secret1" ssl sslproto "TLS1.2"\n'
                    '  sslcertck sslcertfile "%s"\n' % (port, self.cert))
        os.chmod(rc, 0o600)
        p = subprocess.run(["fetchmail", "-f", rc, "--check", "--nodetach", "--nosyslog",
                            "--pidfile", os.path.join(home, "pid")],   # not root's shared one
                           capture_output=True, timeout=3 * WAIT,
                           env=dict(os.environ, FETCHMAILHOME=home, HOME=home))
        self.assertIn(p.returncode, (0, 1), p.stdout + p.stderr)    # 1: no mail
        self.assertEqual(len(re.findall(r"TLS started: TLSv1\.2 ECDHE-ECDSA-",
                                        server.log().decode("latin-1"))), 2)


class KeyNotReadable(TlsTest):
    def test_a_key_the_session_may_not_read_is_said_with_what_to_do(self):
        """As xinetd starts it (as mysmtp; here nobody) with DEPLOYING.md's key,
        root's alone (0600): the session ends, and its log says which file,
        which user, and what each launcher needs."""
        os.chmod(self.root, 0o711)
        os.chmod(self.d, 0o777)
        os.chmod(self.key, 0o600)
        prefix = []
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            prefix = ["setpriv", "--reuid", str(nobody.pw_uid), "--regid", str(nobody.pw_gid),
                      "--clear-groups"]
        else:
            os.chmod(self.key, 0)
        p = subprocess.run(prefix + [SERVER, "--pop3", "-i", "-C", self.cert, "-K", self.key,
                                     "-u", self.accounts, "-d", self.d],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT)
        log = p.stderr.decode("latin-1")
        self.assertEqual(p.stdout, b"", "not a word to a client that expects TLS")
        self.assertNotEqual(p.returncode, 0, log)
        self.assertRegex(log, r"TLS unavailable: .*key.*Permission denied")
        self.assertRegex(log, r"TLS: %s is not readable by user \S+: give it group \S+ and "
                         r"mode 0640 \(xinetd, -l\), or pass it with LoadCredential= \(systemd\)"
                         % re.escape(self.key), log)


TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_recipe():
    """doc/DEPLOYING.md's openssl command for the self-signed certificate, as argv,
    without sudo, with the example address 192.0.2.10 made 127.0.0.1."""
    with open(os.path.join(TOP, "doc", "DEPLOYING.md")) as f:
        lines = f.read().split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("sudo openssl req -x509"))
    cmd = ""
    for line in lines[start:]:
        cmd += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            break
    with open(os.path.join(TOP, "doc", "TLS.md")) as f:
        doc = f.read()
    block = "\n".join(lines[start:start + cmd.count("-addext") + 2])
    assert block in doc, "doc/TLS.md gives DEPLOYING.md's recipe: %r" % block
    import shlex
    argv = shlex.split(cmd.replace("192.0.2.10", "127.0.0.1"))
    assert argv[0] == "sudo", argv
    return argv[1:]


class LanCertificate(TlsTest):
    """DEPLOYING.md's certificate for a LAN, made by its own command: its
    clients accept it by address; --tls-name for one that carries a name."""

    def lan_certificate(self):
        d = os.path.join(self.root, "lan")
        os.makedirs(d)
        subprocess.run(readme_recipe(), cwd=d, check=True, capture_output=True, timeout=60)
        return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")

    def named_certificate(self):
        """A certificate whose only name is mail.example.org."""
        cert, key = os.path.join(self.root, "named.pem"), os.path.join(self.root, "nkey.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=mail.example.org",
                        "-addext", "subjectAltName=DNS:mail.example.org"],
                       check=True, capture_output=True, timeout=60)
        return cert, key

    def listen_with(self, cert, key, extra):
        return self.start_listener(self.d, ["-C", cert, "-K", key, "--accounts", self.accounts]
                                   + extra)

    def mysmtp(self, port, cert, *opts):
        env = dict(os.environ, MYSMTP_PASSWORD="secret1")
        return subprocess.run([CLIENT, "-s", "127.0.0.1", "-p", str(port), "-t", str(int(WAIT)),
                               "--ca-file", cert, "-u", "david@test.com"] + list(opts)
                              + ["list", "david@test.com"],
                              capture_output=True, timeout=3 * WAIT, env=env)

    def test_readme_certificate_is_taken_by_address(self):
        cert, key = self.lan_certificate()
        text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"],
                              capture_output=True, check=True, timeout=WAIT).stdout
        self.assertIn(b"DNS:mail.example.org, IP Address:127.0.0.1", text)
        self.assertRegex(text, rb"Basic Constraints: critical\s+CA:FALSE")
        server, port = self.listen_with(cert, key, [])
        p = self.mysmtp(port, cert, "--starttls")
        self.assertIn(p.returncode, (0, 67), p.stderr)     # 67: no mail yet
        server, port = self.listen_with(cert, key, ["-i"])
        p = self.mysmtp(port, cert, "--tls")
        self.assertIn(p.returncode, (0, 67), p.stderr)
        server, port = self.listen_with(cert, key, ["-S", "-i"])
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                            cert, "-verify_ip", "127.0.0.1", "-verify_return_error"],
                           input=b"QUIT\r\n", capture_output=True, timeout=3 * WAIT)
        self.assertIn(b"Verify return code: 0 (ok)", p.stdout, p.stderr)
        msg = os.path.join(self.root, "m.txt")
        with open(msg, "wb") as f:
            f.write(b"Subject: by address\r\n\r\ncurl by address\r\n")
        p = subprocess.run(["curl", "--silent", "--show-error", "--max-time", str(int(WAIT)),
                            "--cacert", cert, "--url", "smtps://127.0.0.1:%d/client.example" % port,
                            "--user", "david@test.com:secret1", "--mail-from", "david@test.com",
                            "--mail-rcpt", "david@test.com", "--upload-file", msg],
                           capture_output=True, timeout=3 * WAIT)
        self.assertEqual(p.returncode, 0, p.stderr)
        server, port = self.listen_with(cert, key, ["--pop3", "-i"])
        self.assertEqual(self.fetchmail_check(port, cert), 0)
        self.assertIn("Msgs:1", self.mutt_status(port, cert))

    def fetchmail_check(self, port, cert):
        """fetchmail --check by address, as doc/TLS.md says: its status."""
        home = os.path.join(self.root, "fm")
        os.makedirs(home)
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 protocol pop3 service %d\n'
                    '    user "david@test.com" password "secret1" ssl sslproto "TLS1.2+"'
                    ' sslcertck sslcertfile "%s"\n'
                    '    sslcommonname "mail.example.org"\n' % (port, cert))
        os.chmod(rc, 0o600)
        p = subprocess.run(["fetchmail", "-f", rc, "--check", "--nodetach", "--nosyslog",
                            "--pidfile", os.path.join(home, "pid")],   # not root's shared one
                           capture_output=True, timeout=3 * WAIT,
                           env=dict(os.environ, FETCHMAILHOME=home, HOME=home))
        self.assertIn(b"1 message", p.stdout + p.stderr, p.stdout + p.stderr)
        return p.returncode

    def mutt_status(self, port, cert):
        """mutt on a tmux terminal with doc/TLS.md's setting, by address:
        its status line once it shows the mailbox (never a certificate
        question)."""
        home = os.path.join(self.root, "mutt")
        os.makedirs(os.path.join(home, "Mail"))
        with open(os.path.join(home, "muttrc"), "w") as f:
            f.write("set ssl_ca_certificates_file = %s\nset certificate_file = /dev/null\n"
                    "set pop_pass = secret1\n" % cert)
        sock = os.path.join(self.root, "tmux.sock")
        self.addCleanup(subprocess.run, ["tmux", "-S", sock, "kill-server"],
                        capture_output=True, timeout=WAIT)
        cmd = "env HOME=%s LANG=C.UTF-8 mutt -n -F %s/muttrc -f pops://david%%40test.com@127.0.0.1:%d/" % (
            home, home, port)
        subprocess.run(["tmux", "-u", "-S", sock, "new-session", "-d", "-x", "120", "-y", "20",
                        "-s", "m", cmd], check=True, timeout=WAIT)
        deadline = time.monotonic() + 3 * WAIT
        while True:
            screen = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", "m"],
                                    capture_output=True, timeout=WAIT).stdout.decode("utf-8", "replace")
            status = [l for l in screen.split("\n") if "Mutt: pops://" in l]
            if status:
                return status[0]
            self.assertNotRegex(screen, r"(?i)certificate|\(r\)eject")
            self.assertLess(time.monotonic(), deadline, screen)
            time.sleep(0.05)

    def test_tls_name_checks_a_name_while_connecting_by_address(self):
        cert, key = self.named_certificate()
        for how in (["--tls"], ["--starttls"]):
            with self.subTest(how=how):
                server, port = self.listen_with(cert, key, ["-i"] if how == ["--tls"] else [])
                p = self.mysmtp(port, cert, *how)
                self.assertEqual(p.returncode, 76, p.stderr)
                self.assertIn(b"name `127.0.0.1' not present", p.stderr)
                self.assertIn(b"--tls-name", p.stderr)
                p = self.mysmtp(port, cert, *how, "--tls-name", "mail.example.org")
                self.assertIn(p.returncode, (0, 67), p.stderr)
                p = self.mysmtp(port, cert, *how, "--tls-name", "other.example.org")
                self.assertEqual(p.returncode, 76, p.stderr)
                self.assertIn(b"name `other.example.org' not present", p.stderr)


if __name__ == "__main__":
    unittest.main()
