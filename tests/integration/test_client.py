"""test_client.py: mysmtp, the client, end to end (PROTOCOL.md sections 2 and 6).

The seed's session typed on a terminal (tmux) and compared line for line with
section 6; the same session as a piped command file; send, list and get with
each exit code against a real mysmtpd on 127.0.0.1; connection refused, and
Python stand-ins for servers that stay silent, close, or send garbage.

Binaries: $MYSMTP (default ./mysmtp) and $MYSMTPD (default ./mysmtpd) at the
top of the tree. Self-contained: Python 3 standard library only.
"""

import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary(var, name):
    path = os.environ.get(var) or os.path.join(TOP, name)
    return path if os.path.isabs(path) else os.path.join(TOP, path)


CLIENT = binary("MYSMTP", "mysmtp")
SERVER = binary("MYSMTPD", "mysmtpd")
SLOW = 3.0 if ("asan" in CLIENT or "asan" in SERVER
               or os.environ.get("TEST_FLAVOUR") == "asan") else 1.0
WAIT = 10.0 * SLOW          # the bound on any single wait in these tests
SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:")

# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER = 0, 64, 65, 66, 67
EX_UNAVAILABLE, EX_IOERR, EX_TEMPFAIL, EX_NOPERM = 69, 74, 75, 77

DATE_RE = re.compile(r"\b\d\d-\d\d-\d{4}\b")

# PROTOCOL.md section 6, the client side, exactly.
SEED_SCREEN = """\
> HELO test.com
200 OK
> MAIL FROM: john@test.com
200 OK
> RCPT TO: david@test.com
200 OK
> DATA
Enter your message (end with a single dot '.'):
Hello David,
Hope you are doing well.
.
200 Message stored successfully
> LIST david@test.com
200 OK
1: Email from john@test.com (15-08-2025)
> GET_MAIL david@test.com 1
200 OK
From: john@test.com
Date: 15-08-2025
Hello David,
Hope you are doing well.
> QUIT
200 Goodbye""".split("\n")

SEED_INPUT = """\
HELO test.com
MAIL FROM: john@test.com
RCPT TO: david@test.com
DATA
Hello David,
Hope you are doing well.
.
LIST david@test.com
GET_MAIL david@test.com 1
QUIT
"""

# The same session piped: every reply, without prompts and the DATA prompt.
SEED_PIPED = """\
200 OK
200 OK
200 OK
200 Message stored successfully
200 OK
1: Email from john@test.com (15-08-2025)
200 OK
From: john@test.com
Date: 15-08-2025
Hello David,
Hope you are doing well.
200 Goodbye""".split("\n")

# A message text that trips up careless code: blank first and last lines,
# From lines, dots, a header look-alike, 8-bit bytes, CRs inside and at the end.
AWKWARD = (b"\n"
           b"From the start of a line\n"
           b">From already quoted\n"
           b".\n"
           b"..two dots\n"
           b".leading dot\n"
           b" .\n"
           b"Subject: not a header\n"
           b"\xe9t\xe9 \xff\xfe\x80 8-bit\n"
           b"tab\there, a\rbare CR\n"
           b"ends with CR\r\n"
           b"\n")


DATA_PROMPT_TEXT = "Enter your message (end with a single dot '.'):"


def masked(lines):
    return [DATE_RE.sub("DD-MM-YYYY", l) for l in lines]


def today_dates():
    now = time.time()
    return {time.strftime("%d-%m-%Y", time.localtime(now + d)) for d in (-120, 0, 120)}


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class MailServer:
    """mysmtpd -l 127.0.0.1:PORT -d DIR, stderr in a file, killed by PID."""

    def __init__(self, root, args=()):
        self.dir = os.path.join(root, "mailbox")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(root, "mysmtpd.log")
        for _ in range(3):
            self.port = free_port()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [SERVER, "-l", "127.0.0.1:%d" % self.port, "-d", self.dir] + list(args),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            if self._ready():
                return
            self.stop()
        raise AssertionError("mysmtpd did not start; log: %r" % self.log()[-500:])

    def _ready(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if b"Listening on port %d" % self.port in self.log():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT / 2)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=WAIT)


class FakeServer:
    """A Python listening socket playing the server: script(fake, conn) runs
    in a thread for the first connection."""

    def __init__(self, script, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(4)
        self.sock.settimeout(WAIT)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.buf = b""
        self.received = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(WAIT)
            try:
                self.script(self, conn)
            except OSError:
                pass

    def line(self, conn):
        """One line from the client, without CRLF; None when it closed."""
        while b"\n" not in self.buf:
            data = conn.recv(4096)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        self.received.append(line.rstrip(b"\r"))
        return self.received[-1]

    def drain(self, conn):
        """Read until the client closes."""
        while self.line(conn) is not None:
            pass

    def close(self):
        self.sock.close()
        self.thread.join(WAIT)


class ClientTest(unittest.TestCase):
    """Base: a temporary directory; run mysmtp with bounded waits."""

    def setUp(self):
        for path in (CLIENT, SERVER):
            if not os.access(path, os.X_OK):
                self.fail("%s is missing (make mysmtp mysmtpd)" % path)
        self.root = tempfile.mkdtemp(prefix="mysmtp-it-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def mysmtp(self, *args, input=b"", timeout=None):
        """Run the client with stdin a pipe; fail on any sanitizer report."""
        r = subprocess.run([CLIENT] + [str(a) for a in args], input=input,
                           capture_output=True, timeout=timeout or WAIT)
        if any(m in r.stderr for m in SANITIZER_MARKS):
            self.fail("sanitizer report from mysmtp %s:\n%s" % (args, r.stderr.decode("latin-1")))
        return r

    def fake(self, script, **kw):
        f = FakeServer(script, **kw)
        self.addCleanup(f.close)
        return f

    def assertExit(self, r, code, msg=""):
        self.assertEqual(r.returncode, code, "%s exit status (stdout %r, stderr %r)"
                         % (msg, r.stdout[-300:], r.stderr[-300:]))


class WithServer(ClientTest):
    """Tests against a real mysmtpd started for each test."""

    server_args = ()

    def setUp(self):
        super().setUp()
        self.server = MailServer(self.root, self.server_args)
        self.addCleanup(self.check_server_log)
        self.addCleanup(lambda: self.server.stop())
        self.opts = ["-p", self.server.port, "-t", int(WAIT)]

    def check_server_log(self):
        log = self.server.log()
        if any(m in log for m in SANITIZER_MARKS):
            self.fail("sanitizer report in mysmtpd's log:\n%s" % log.decode("latin-1")[:3000])

    def run_ok(self, *args, input=b""):
        r = self.mysmtp(*self.opts, *args, input=input)
        self.assertExit(r, EX_OK, "mysmtp %s" % (args,))
        return r

    def send(self, sender, rcpts, text, *extra):
        return self.run_ok("send", "-f", sender, *extra, *rcpts, input=text)

    def get(self, addr, n):
        return self.run_ok("get", addr, n).stdout


class TerminalTest(WithServer):

    def tmux(self, *args):
        r = subprocess.run(["tmux", "-u", "-S", self.tmux_sock, "-f", self.tmux_conf] + list(args),
                           capture_output=True, timeout=WAIT)
        self.assertEqual(r.returncode, 0, "tmux %s: %r" % (args, r.stderr))
        return r.stdout.decode("utf-8", "replace")

    def screen(self):
        """The pane's lines (history too), right-trimmed, to the last non-blank."""
        text = self.tmux("capture-pane", "-p", "-S", "-", "-E", "-", "-t", "seed")
        lines = [l.rstrip() for l in text.split("\n")]
        for i, l in enumerate(lines):
            if l.startswith("Pane is dead"):
                del lines[i:]
                break
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def editing(self):
        """Whether the client is inside libedit (the terminal is not canonical)."""
        fd = os.open(self.tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            return not termios.tcgetattr(fd)[3] & termios.ICANON
        finally:
            os.close(fd)

    def wait_screen(self, want, editing=True):
        deadline = time.monotonic() + WAIT
        while True:
            got = masked(self.screen())
            if got == want and (not editing or self.editing()):
                return
            if time.monotonic() > deadline:
                self.assertEqual(got, want, "screen (editing=%s)" % editing)
                self.fail("the client never waited for input on the terminal")
            time.sleep(0.02)

    def type(self, text):
        """Type text in one burst (a single write to the terminal)."""
        self.tmux("send-keys", "-t", "seed", "-l", text.replace("\n", "\r"))

    def start_terminal(self, args, history="", lang=None):
        """Run mysmtp ARGS on a new tmux terminal, its history in history
        ("": none), with LANG=lang when given (and no LC_ALL, LC_CTYPE);
        returns the file its exit status goes to."""
        self.assertTrue(shutil.which("tmux"), "tmux is needed (make test-deps)")
        # A socket of its own for each terminal: a server just told to
        # kill-server may still be there to take a new session, and exit.
        self.terminals = getattr(self, "terminals", 0) + 1
        self.tmux_sock = os.path.join(self.root, "tmux-%d.sock" % self.terminals)
        self.tmux_conf = os.path.join(self.root, "tmux.conf")
        with open(self.tmux_conf, "w") as f:
            f.write("set -g remain-on-exit on\nset -g status off\n")
        self.addCleanup(subprocess.run, ["tmux", "-S", self.tmux_sock, "kill-server"],
                        capture_output=True, timeout=WAIT)
        env = " ".join("%s=%s" % (k, shlex.quote(os.environ[k]))
                       for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS") if k in os.environ)
        if lang is not None:
            env = "-u LC_ALL -u LC_CTYPE LANG=%s %s" % (shlex.quote(lang), env)
        status_file = os.path.join(self.root, "status")
        cmd = "env %s MYSMTP_HISTORY=%s %s %s; echo $? >%s" % (
            env, shlex.quote(history), shlex.quote(CLIENT), args, shlex.quote(status_file))
        self.tmux("new-session", "-d", "-x", "100", "-y", "40", "-s", "seed", cmd)
        self.tty = self.tmux("display-message", "-p", "-t", "seed", "#{pane_tty}").strip()
        return status_file

    def test_seed_session_on_a_terminal(self):
        """The seed's example typed into mysmtp on a terminal gives section 6's screen."""
        status_file = self.start_terminal("127.0.0.1 %d" % self.server.port)
        want = masked(SEED_SCREEN)
        i = 0
        while i < len(want):
            line = want[i]
            if line.startswith("> "):          # a command, typed at the prompt
                self.wait_screen(want[:i] + [">"])
                self.type(line[2:] + "\n")
                i += 1
            elif want[i - 1].startswith("Enter your message"):
                self.wait_screen(want[:i])     # the message, typed in one go
                end = want.index(".", i)
                self.type("".join(l + "\n" for l in want[i:end + 1]))
                i = end + 1
            else:
                i += 1
        deadline = time.monotonic() + WAIT
        while not os.path.exists(status_file) or os.path.getsize(status_file) == 0:
            self.assertLess(time.monotonic(), deadline,
                            "mysmtp did not exit after QUIT: %r" % self.screen())
            time.sleep(0.02)
        self.wait_screen(want, editing=False)
        screen = self.screen()
        self.assertLessEqual(set(DATE_RE.findall("\n".join(screen))), today_dates())
        with open(status_file) as f:
            self.assertEqual(f.read().strip(), "0", "exit status on the terminal")


class ShellOnATerminal(TerminalTest):
    """The interactive shell as a person uses it, on a tmux terminal: ^D and
    ^C inside a message, the keep-alive while a message is typed slowly,
    Tab completion and the history file."""

    server_args = ("-t", "2")       # the server gives up on a client silent for 2 s

    def start(self, *args, lang=None):
        self.history = os.path.join(self.root, "history")
        self.status_file = self.start_terminal(
            "%s 127.0.0.1:%d" % (" ".join(args), self.server.port), self.history, lang)
        self.want = []

    def at_prompt(self, line, replies):
        """Type line at the "> " prompt; the screen then shows replies."""
        self.wait_screen(self.want + [">"])
        self.type(line + "\n")
        self.want += ["> " + line] + replies

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "seed", *keys)

    def quit(self):
        self.at_prompt("QUIT", ["200 Goodbye"])
        deadline = time.monotonic() + WAIT
        while not os.path.exists(self.status_file) or os.path.getsize(self.status_file) == 0:
            self.assertLess(time.monotonic(), deadline, "mysmtp did not exit: %r" % self.screen())
            time.sleep(0.02)
        self.wait_screen(self.want, editing=False)

    def open_transaction(self):
        for line in ("HELO test.com", "MAIL FROM: john@test.com", "RCPT TO: david@test.com"):
            self.at_prompt(line, ["200 OK"])

    def stored(self):
        path = os.path.join(self.server.dir, "david@test.com.txt")
        return open(path, "rb").read() if os.path.exists(path) else b""

    def begin_message(self, text):
        """DATA at the prompt, then text typed: the screen shows it."""
        self.at_prompt("DATA", [DATA_PROMPT_TEXT])
        self.wait_screen(self.want)
        self.type(text)
        self.want.append(text.rstrip("\n"))
        self.wait_screen(self.want)

    def test_ctrl_d_and_ctrl_c_drop_the_message_and_keep_the_session(self):
        self.start("-k", "1")
        self.open_transaction()
        dropped = "mysmtp: message dropped; the transaction is still open"
        self.begin_message("half a message\n")
        self.keys("C-d")
        self.want += ["^D", dropped]             # the terminal echoes ^D
        self.begin_message("another half")
        self.keys("C-c")
        self.want.append(dropped)
        self.wait_screen(self.want + [">"])
        self.assertEqual(self.stored(), b"", "a dropped message is never sent")
        self.at_prompt("DATA", [DATA_PROMPT_TEXT])
        self.wait_screen(self.want)
        self.type("whole\n.\n")
        self.want += ["whole", ".", "200 Message stored successfully"]
        self.quit()
        self.assertIn(b"\nwhole\n", self.stored())
        with open(self.status_file) as f:
            self.assertEqual(f.read().strip(), "0")

    def test_a_message_typed_slowly_is_kept_alive(self):
        """The server closes a client silent for 2 s; typing a message over
        5 s with -k 1 keeps the session, and the message is stored."""
        self.start("-k", "1")
        self.open_transaction()
        self.at_prompt("DATA", [DATA_PROMPT_TEXT])
        self.wait_screen(self.want)
        for word in ("slowly", "typed", "lines"):
            self.type(word + "\n")
            self.want.append(word)
            time.sleep(1.7)
        self.type(".\n")
        self.want += [".", "200 Message stored successfully"]
        self.quit()
        self.assertIn(b"\nslowly\ntyped\nlines\n", self.stored())

    def test_utf8_typed_on_a_terminal_is_stored_as_typed(self):
        """On a UTF-8 terminal (LANG=C.UTF-8, and LANG=C, which the shell
        takes as UTF-8 too), a message of accented, CJK and symbol
        characters, one of them corrected with Backspace, is stored octet
        for octet; commands typed in lower case, the LIST date and the
        exit status are as in any locale."""
        text = "Straße, naïve café — 日本語 ✓"
        for lang in ("C.UTF-8", "C"):
            with self.subTest(lang=lang):
                if lang != "C.UTF-8":       # the terminal of the subtest before
                    subprocess.run(["tmux", "-S", self.tmux_sock, "kill-server"],
                                   capture_output=True, timeout=WAIT)
                self.start(lang=lang)
                self.open_transaction()
                self.at_prompt("DATA", [DATA_PROMPT_TEXT])
                self.wait_screen(self.want)
                self.type(text[:-1] + "é")
                self.keys("BSpace")
                self.type(text[-1] + "\n.\n")
                self.want += [text, ".", "200 Message stored successfully"]
                self.wait_screen(self.want + [">"])
                self.assertIn(("\n%s\n" % text).encode(), self.stored())
                n = self.stored().count(b"\nFrom john@test.com ") + self.stored().startswith(b"From ")
                self.at_prompt("list david@test.com", ["200 OK"] + [
                    "%d: Email from john@test.com (DD-MM-YYYY)" % i for i in range(1, n + 1)])
                self.wait_screen(self.want + [">"])
                self.assertLessEqual(set(DATE_RE.findall("\n".join(self.screen()))),
                                     today_dates())
                self.want[-1 - n:] = masked(self.want[-1 - n:])
                self.at_prompt("quit", ["200 Goodbye"])
                deadline = time.monotonic() + WAIT
                while not os.path.exists(self.status_file) or not os.path.getsize(self.status_file):
                    self.assertLess(time.monotonic(), deadline, "no exit: %r" % self.screen())
                    time.sleep(0.02)
                with open(self.status_file) as f:
                    self.assertEqual(f.read().strip(), "0")

    def test_tab_completes_and_history_keeps_commands_only(self):
        self.start()
        self.at_prompt("HELO test.com", ["200 OK"])
        self.wait_screen(self.want + [">"])
        self.type("mai")
        self.keys("Tab")
        self.type("john@test.com\n")
        self.want += ["> MAIL FROM: john@test.com", "200 OK"]
        self.at_prompt("RCPT TO: david@test.com", ["200 OK"])
        self.at_prompt("DATA", [DATA_PROMPT_TEXT])
        self.wait_screen(self.want)
        self.type("secret text\n.\n")
        self.want += ["secret text", ".", "200 Message stored successfully"]
        self.quit()
        with open(self.history, "rb") as f:
            history = f.read()
        for line in (b"HELO test.com", b"MAIL FROM: john@test.com", b"QUIT"):
            self.assertIn(line.replace(b" ", b"\\040"), history)
        self.assertNotIn(b"secret", history, "message text is not kept in the history")
        self.assertEqual(os.stat(self.history).st_mode & 0o777, 0o600)


class PipedTest(WithServer):

    def test_seed_session_piped(self):
        """A piped command file: every reply printed, no prompts, no DATA prompt."""
        r = self.mysmtp(*self.opts, input=SEED_INPUT.encode())
        self.assertExit(r, EX_OK)
        out = r.stdout.decode().split("\n")
        self.assertEqual(out[-1], "", "output ends with a newline")
        self.assertEqual(masked(out[:-1]), masked(SEED_PIPED))
        self.assertEqual(r.stderr, b"")

    def test_host_name_and_positional_port(self):
        """mysmtp localhost PORT finds the server through getaddrinfo; CRLF input works."""
        r = self.mysmtp("-t", int(WAIT), "localhost", self.server.port,
                        input=b"HELP\r\nNOOP\r\n\r\nQUIT\r\nNOOP\r\n")
        self.assertExit(r, EX_OK)
        self.assertEqual(r.stdout.decode().split("\n"), [
            "200 Commands: HELO MAIL RCPT DATA LIST GET_MAIL NOOP RSET HELP QUIT",
            "200 OK", "200 Goodbye", ""], "blank line skipped, nothing after QUIT")

    def test_first_failure_sets_the_status(self):
        """Every command runs and prints its reply; the status is the first failure's."""
        r = self.mysmtp(*self.opts, input=b"MAIL FROM: john@test.com\n"  # 403: no HELO
                                          b"HELO test.com\n"
                                          b"BOGUS\n"                     # 400
                                          b"LIST nobody@test.com\n"      # 401
                                          b"QUIT\n")
        self.assertExit(r, EX_NOPERM)
        codes = [l[:3] for l in r.stdout.decode().split("\n") if l]
        self.assertEqual(codes, ["403", "200", "400", "401", "200"])
        for first, status in ((b"BOGUS\n", EX_DATAERR), (b"HELO test.com\nLIST x@test.com\n", EX_NOUSER)):
            with self.subTest(first=first):
                self.assertExit(self.mysmtp(*self.opts, input=first + b"NOOP\n"), status)

    def test_refused_data_skips_the_message(self):
        """After a refused DATA the message lines are not sent as commands."""
        r = self.mysmtp(*self.opts, input=b"HELO test.com\nDATA\nQUIT\nRSET\n.\nNOOP\nQUIT\n")
        self.assertExit(r, EX_NOPERM)
        self.assertEqual([l[:3] for l in r.stdout.decode().split("\n") if l],
                         ["200", "403", "200", "200"])
        self.assertTrue(r.stdout.decode().endswith("200 OK\n200 Goodbye\n"), r.stdout)

    def test_typed_dots_are_stuffed(self):
        """Lines typed after DATA that start with a dot keep it; only a lone dot ends."""
        session = (b"HELO test.com\nMAIL FROM: a@test.com\nRCPT TO: b@test.com\nDATA\n"
                   b"..\n.hidden\n .\nx.\n\n.\nQUIT\n")
        r = self.mysmtp(*self.opts, input=session)
        self.assertExit(r, EX_OK)
        self.assertEqual(self.get("b@test.com", 1), b"..\n.hidden\n .\nx.\n\n")

    def test_end_of_input_quits_quietly(self):
        """Without QUIT in the file the client says QUIT itself and prints nothing for it."""
        r = self.mysmtp(*self.opts, input=b"NOOP")       # no newline either
        self.assertExit(r, EX_OK)
        self.assertEqual(r.stdout, b"200 OK\n")

    def test_input_ending_inside_a_message_drops_it(self):
        """A command file that ends inside DATA: nothing is stored, status 65."""
        r = self.mysmtp(*self.opts, input=b"HELO test.com\nMAIL FROM: a@test.com\n"
                                          b"RCPT TO: b@test.com\nDATA\nunfinished\n")
        self.assertExit(r, EX_DATAERR)
        self.assertIn(b"message not sent", r.stderr)
        self.assertExit(self.mysmtp(*self.opts, "list", "b@test.com"), EX_NOUSER)


class ScriptedTest(WithServer):

    def test_send_then_get_gives_back_the_exact_bytes(self):
        self.send("john@test.com", ["david@test.com"], AWKWARD)
        self.assertEqual(self.get("david@test.com", 1), AWKWARD)
        out = self.run_ok("list", "david@test.com").stdout.decode()
        self.assertRegex(out, r"^1: Email from john@test.com \(\d\d-\d\d-\d{4}\)\n$")
        self.assertIn(DATE_RE.search(out).group(0), today_dates())

    def test_send_several_recipients_and_helo(self):
        """One message for three mailboxes; HELO from the sender, or -H."""
        self.send("john@test.com", ["a@test.com", "b@other.org", "c@test.com"], b"hi\n")
        self.send("john@test.com", ["a@test.com"], b"second\n", "-H", "TEST.com")
        self.assertEqual(self.get("b@other.org", 1), b"hi\n")
        self.assertEqual(self.get("c@test.com", 1), b"hi\n")
        self.assertEqual(self.get("a@test.com", 2), b"second\n")
        lines = self.run_ok("list", "a@test.com").stdout.decode().splitlines()
        self.assertEqual(masked(lines), ["1: Email from john@test.com (DD-MM-YYYY)",
                                         "2: Email from john@test.com (DD-MM-YYYY)"])

    def test_send_with_a_subject(self):
        """send -S: a Subject line and an empty line before the text, RFC
        2047 encoded where it is not ASCII (folded, no UTF-8 sequence cut);
        a mail reader (Python's mailbox and email) sees the Subject, and get
        gives back the text as sent, Subject line first."""
        import email.header
        import mailbox
        long_one = "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 " * 4 + "\u20ac"
        self.run_ok("send", "-f", "john@test.com", "-S", "Quarterly numbers", "david@test.com",
                    input=b"Hello David,\n")
        self.run_ok("send", "-f", "john@test.com", "-S", long_one, "david@test.com",
                    input=b"Subject: mine\n\nbody\n")
        self.assertEqual(self.get("david@test.com", 1),
                         b"Subject: Quarterly numbers\n\nHello David,\n")
        two = self.get("david@test.com", 2)
        self.assertTrue(two.startswith(b"Subject: =?UTF-8?B?"), two)
        self.assertTrue(two.endswith(b"\n\nSubject: mine\n\nbody\n"), two)
        self.assertTrue(all(len(l) <= 78 for l in two.split(b"\n")), two)
        box = mailbox.mbox(os.path.join(self.server.dir, "david@test.com.txt"), create=False)
        try:
            one, two = [box.get_message(k) for k in box.keys()]
        finally:
            box.close()
        self.assertEqual(one["Subject"], "Quarterly numbers")
        self.assertEqual(one.get_payload(), "Hello David,\n")
        self.assertEqual(str(email.header.make_header(email.header.decode_header(two["Subject"]))),
                         long_one)

    def test_send_from_a_file(self):
        """-i file; a missing last newline is added; an empty text is a message too."""
        path = os.path.join(self.root, "text")
        with open(path, "wb") as f:
            f.write(b"line one\nno newline at the end")
        self.run_ok("send", "-f", "a@test.com", "-i", path, "b@test.com")
        self.send("a@test.com", ["b@test.com"], b"")
        self.assertEqual(self.get("b@test.com", 1), b"line one\nno newline at the end\n")
        self.assertEqual(self.get("b@test.com", 2), b"")
        r = self.mysmtp(*self.opts, "send", "-f", "a@test.com", "-i", path + ".missing", "b@test.com")
        self.assertExit(r, EX_NOINPUT)

    def test_long_line_round_trip(self):
        """A 200 000-octet line goes out and comes back whole (streamed, not capped)."""
        text = b"." + b"x" * 200000 + b"\nshort\n"
        self.send("a@test.com", ["b@test.com"], text)
        self.assertEqual(self.get("b@test.com", 1), text)

    def test_exit_400(self):
        r = self.mysmtp(*self.opts, "get", "b@test.com", "0")
        self.assertExit(r, EX_DATAERR, "GET_MAIL id 0")
        self.assertRegex(r.stderr.decode(), r"GET_MAIL b@test.com 0: 400")
        r = self.mysmtp(*self.opts, "send", "-f", "a@test.com", "bad/name@test.com", input=b"x\n")
        self.assertExit(r, EX_DATAERR, "RCPT TO a bad address")
        self.assertEqual(r.stdout, b"")

    def test_exit_401(self):
        self.assertExit(self.mysmtp(*self.opts, "list", "nobody@test.com"), EX_NOUSER)
        self.send("a@test.com", ["b@test.com"], b"x\n")
        r = self.mysmtp(*self.opts, "get", "b@test.com", "2")
        self.assertExit(r, EX_NOUSER, "GET_MAIL of an id past the end")
        self.assertEqual(r.stdout, b"")

    def test_exit_403(self):
        self.send("a@test.com", ["b@test.com"], b"x\n")
        r = self.mysmtp(*self.opts, "list", "-H", "other.com", "b@test.com")
        self.assertExit(r, EX_NOPERM, "LIST outside the HELO domain")
        self.assertIn(b"403", r.stderr)
        r = self.mysmtp(*self.opts, "send", "-f", "a@test.com", "-H", "other.com", "b@test.com",
                        input=b"x\n")
        self.assertExit(r, EX_NOPERM, "MAIL FROM outside the HELO domain")

    def test_exit_500(self):
        """A directory where the mailbox file should be: the server fails, 500."""
        os.mkdir(os.path.join(self.server.dir, "x@d.com.txt"))
        r = self.mysmtp(*self.opts, "send", "-f", "a@d.com", "x@d.com", input=b"x\n")
        self.assertExit(r, EX_TEMPFAIL, "delivery to a directory")
        self.assertIn(b"500", r.stderr)
        self.assertExit(self.mysmtp(*self.opts, "list", "x@d.com"), EX_TEMPFAIL, "LIST of it")

    def test_long_options_version_and_options_after_the_subcommand(self):
        for args in (["--help"], ["-h"]):
            r = self.mysmtp(*args)
            self.assertExit(r, EX_OK)
            self.assertIn(b"usage: mysmtp", r.stdout)
        for args in (["-V"], ["--version"]):
            r = self.mysmtp(*args)
            self.assertExit(r, EX_OK)
            self.assertRegex(r.stdout, rb"^mysmtp \d+\.\d+\n$")
        self.run_ok("send", "-f", "john@test.com", "david@test.com", input=b"hi\n")
        port = str(self.server.port)
        for args in (["list", "-p", port, "david@test.com"],
                     ["list", "--port", port, "--timeout", "5", "david@test.com"],
                     ["-s", "127.0.0.1", "get", "-p", port, "david@test.com", "1"]):
            with self.subTest(args=args):
                self.assertExit(self.mysmtp(*args), EX_OK)
        r = self.mysmtp("127.0.0.1:" + port, input=b"HELO test.com\nLIST david@test.com\n")
        self.assertExit(r, EX_OK, "host:port as one operand")
        self.assertIn(b"1: Email from john@test.com", r.stdout)

    def test_usage(self):
        r = self.mysmtp("-h")
        self.assertExit(r, EX_OK)
        for word in (b"usage: mysmtp", b"send -f from", b"list", b"get", b"delete", b"64",
                     b"74", b"77", b"--tls-name"):
            self.assertIn(word, r.stdout)
        self.assertNotIn(b"[-f from]", r.stdout, "send without -f or -u is a usage error")
        r = self.mysmtp("-u", "a@b.c", "-p", free_port(), "send", "x@b.c")
        self.assertExit(r, EX_UNAVAILABLE, "with -u, send needs no -f: it goes on to connect")
        for args in (["-x"], ["send", "a@b.c"], ["send", "-f", "a@b.c"], ["get", "a@b.c"],
                     ["list"], ["list", "a@b.c", "extra"], ["-p", "0"], ["-p", "http"],
                     ["-t", "0"], ["h", "1", "extra"], ["list", "nodomain"],
                     ["list", "a@b.c\r\nQUIT"]):
            with self.subTest(args=args):
                r = self.mysmtp(*args)
                self.assertExit(r, EX_USAGE)
                self.assertIn(b"usage:", r.stderr)


class SendAllOrNone(ClientTest):
    """send to one account and one address without an account: the refused
    RCPT TO ends it before DATA, exit 67, and neither gets the message."""

    def test_one_unknown_recipient_delivers_to_neither(self):
        accounts = os.path.join(self.root, "accounts")
        for address in ("john@test.com", "david@test.com"):
            r = subprocess.run([SERVER, "--accounts", accounts, "--set-password", address],
                               input=b"secret1\n", capture_output=True, timeout=WAIT)
            self.assertEqual(r.returncode, 0, r.stderr)
        server = MailServer(self.root, ["--accounts", accounts])
        self.addCleanup(server.stop)
        env = dict(os.environ, MYSMTP_PASSWORD="secret1")
        r = subprocess.run([CLIENT, "-p", str(server.port), "-t", str(int(WAIT)), "-u",
                            "john@test.com", "send", "david@test.com", "nobody@test.com"],
                           input=b"to both\n", capture_output=True, timeout=WAIT, env=env)
        self.assertExit(r, EX_NOUSER)
        self.assertIn(b"RCPT TO: nobody@test.com: 401", r.stderr)
        self.assertEqual(sorted(os.listdir(server.dir)), [], "nothing delivered, no mailbox made")
        self.assertNotIn(b"DATA", server.log())


class IdleServerTest(WithServer):

    server_args = ("-t", "1")   # the server closes a session idle for 1 s

    def test_server_closing_an_idle_session(self):
        """The server's idle timeout: its last words are shown, then status 74."""
        p = subprocess.Popen([CLIENT, "-p", str(self.server.port), "-t", str(int(WAIT))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(b"HELO test.com\n")
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], WAIT)
            self.assertTrue(ready, "no reply to HELO")
            self.assertEqual(p.stdout.readline(), b"200 OK\n")
            time.sleep(1.0 + 0.5 * SLOW)
            out, err = p.communicate(b"NOOP\n", timeout=WAIT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, EX_IOERR, err)
        self.assertTrue(out.startswith(b"500"), out)
        self.assertIn(b"connection closed by server", err)


class BrokenServerTest(ClientTest):
    """Servers that misbehave, played by Python; the client must never hang."""

    def test_connection_refused(self):
        port = free_port()
        for args in (["list", "a@b.c"], []):
            with self.subTest(args=args):
                r = self.mysmtp("-p", port, *args)
                self.assertExit(r, EX_UNAVAILABLE)
                self.assertIn(b"127.0.0.1:%d" % port, r.stderr)
                self.assertIn(b"connection refused", r.stderr.lower())

    def test_unknown_host(self):
        r = self.mysmtp("-s", "no-such-host.invalid", "list", "a@b.c")
        self.assertExit(r, EX_UNAVAILABLE)
        self.assertIn(b"no-such-host.invalid:2525", r.stderr)

    def test_silent_server_times_out(self):
        """A server that accepts and never answers: -t 1, status 74, quickly."""
        for args in (["list", "a@b.c"], []):
            with self.subTest(args=args):
                f = self.fake(lambda fake, conn: fake.drain(conn))
                t0 = time.monotonic()
                r = self.mysmtp("-t", "1", "-p", f.port, *args, input=b"NOOP\n")
                elapsed = time.monotonic() - t0
                self.assertExit(r, EX_IOERR)
                self.assertIn(b"no reply within 1 s", r.stderr)
                self.assertGreaterEqual(elapsed, 0.9)
                self.assertLess(elapsed, 1 + 2 * SLOW)

    def test_silent_after_a_command(self):
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.drain(conn)
        f = self.fake(script)
        r = self.mysmtp("-t", "1", "-p", f.port, "get", "a@b.c", "1")
        self.assertExit(r, EX_IOERR)
        self.assertIn(b"no reply within 1 s", r.stderr)
        self.assertEqual(f.received[:1], [b"HELO b.c"])

    def test_server_closes_mid_session(self):
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.line(conn)
        for args in (["send", "-f", "a@b.c", "d@e.f"], []):
            with self.subTest(args=args):
                f = self.fake(script)
                r = self.mysmtp("-p", f.port, *args, input=b"HELO b.c\n")
                self.assertExit(r, EX_IOERR)
                self.assertIn(b"connection closed by server", r.stderr)

    def test_server_closes_inside_a_listing(self):
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\n1: Email from x@b.c (01-01-2025)\r\n")
        f = self.fake(script)
        r = self.mysmtp("-p", f.port, "list", "a@b.c")
        self.assertExit(r, EX_IOERR)
        self.assertIn(b"connection closed by server", r.stderr)

    def test_malformed_and_overlong_replies(self):
        cases = [(b"hello\r\n", b"malformed reply: hello"),
                 (b"250 OK\r\n", b"malformed reply: 250 OK"),
                 (b"2000 OK\r\n", b"malformed reply"),
                 (b"200 " + b"x" * 2000 + b"\r\n", b"longer than 1000 octets")]
        for greeting, message in cases:
            with self.subTest(greeting=greeting[:20]):
                f = self.fake(lambda fake, conn: (conn.sendall(greeting), fake.drain(conn)))
                r = self.mysmtp("-p", f.port, "list", "a@b.c")
                self.assertExit(r, EX_IOERR)
                self.assertIn(message, r.stderr)

    def test_get_without_from_and_date_is_malformed(self):
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\nSubject: x\r\n.\r\n")
            fake.drain(conn)
        f = self.fake(script)
        r = self.mysmtp("-p", f.port, "get", "a@b.c", "1")
        self.assertExit(r, EX_IOERR)
        self.assertIn(b"malformed reply: Subject: x", r.stderr)

    def test_get_streams_long_stuffed_lines(self):
        """GET_MAIL lines far longer than any buffer, dot-stuffed, CR kept."""
        text = [b"." + b"y" * 100000, b"..", b"", b"a\r", b"z" * 70000 + b"\r"]
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\n")
            fake.line(conn)
            conn.sendall(b"200 OK\r\nFrom: a@b.c\r\nDate: 01-01-2025\r\n"
                         + b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in text)
                         + b".\r\n")
            fake.line(conn)
            conn.sendall(b"200 Goodbye\r\n")
        f = self.fake(script)
        r = self.mysmtp("-p", f.port, "get", "a@b.c", "7")
        self.assertExit(r, EX_OK)
        self.assertEqual(r.stdout, b"".join(l + b"\n" for l in text))
        self.assertEqual(f.received, [b"HELO b.c", b"GET_MAIL a@b.c 7", b"QUIT"])

    def test_a_standard_smtp_server_is_named_as_such(self):
        f = self.fake(lambda fake, conn: conn.sendall(b"220 mx.example ESMTP Postfix\r\n"))
        r = self.mysmtp("-p", f.port, input=b"NOOP\n")
        self.assertExit(r, EX_IOERR)
        self.assertIn(b"malformed reply: 220 mx.example ESMTP Postfix", r.stderr)
        self.assertIn(b"that is a standard SMTP server", r.stderr)

    def test_greeting_error(self):
        f = self.fake(lambda fake, conn: conn.sendall(b"500 SERVER ERROR too many connections\r\n"))
        r = self.mysmtp("-p", f.port, input=b"NOOP\n")
        self.assertExit(r, EX_TEMPFAIL)
        self.assertIn(b"500 SERVER ERROR too many connections", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_ipv6(self):
        """[::1] and ::1 both reach a server on the IPv6 loopback."""
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            return  # no IPv6 loopback here; nothing to check
        def script(fake, conn):
            conn.sendall(b"200 fake My_SMTP ready\r\n")
            fake.line(conn)
            conn.sendall(b"200 Goodbye\r\n")
        for host in ("[::1]", "::1"):
            with self.subTest(host=host):
                f = self.fake(script, family=socket.AF_INET6, host="::1")
                r = self.mysmtp(host, f.port, input=b"QUIT\n")
                self.assertExit(r, EX_OK)
                self.assertEqual(r.stdout, b"200 Goodbye\n")


if __name__ == "__main__":
    unittest.main()
