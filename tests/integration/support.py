"""support.py: helpers shared by the integration tests of mysmtpd.

Every test runs the real server binary ($MYSMTPD, default ./mysmtpd) in its
own temporary directory, talks to it over pipes (inetd style) or TCP on
127.0.0.1, bounds every wait with a deadline, and kills what it started.
The contract the tests check is doc/PROTOCOL.md.
"""

import email.utils
import fcntl
import hashlib
import mailbox
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
FLAVOUR = os.environ.get("TEST_FLAVOUR", "plain")


def server_path():
    """The server under test: $MYSMTPD, else ./mysmtpd at the top of the tree."""
    path = os.environ.get("MYSMTPD") or os.path.join(TOP, "mysmtpd")
    if not os.path.isabs(path):
        path = os.path.join(TOP, path)
    return path


SERVER = server_path()
# The sanitized build is about three times slower: stretch deadlines for it.
SLOW = 3.0 if ("asan" in SERVER or FLAVOUR == "asan") else 1.0
REPLY_TIMEOUT = 10.0 * SLOW

SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer",
                   b"UndefinedBehaviorSanitizer", b"runtime error:")

STORED = "200 Message stored successfully"
DATA_PROMPT = "200 Enter your message (end with a single dot '.'):"
GOODBYE = "200 Goodbye"
HELP_TEXT = "200 Commands: HELO MAIL RCPT DATA LIST GET_MAIL NOOP RSET HELP QUIT"
ASCTIME_RE = (r"^\S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
              r" [ \d]\d \d\d:\d\d:\d\d \d{4}$")
LIST_RE = re.compile(r"^(\d+): Email from (\S+) \((\d\d-\d\d-\d{4})\)$")
CODE_RE = re.compile(r"^(200|400|401|403|500)( |$)")
WORDS = {"200": None, "400": "ERR", "401": "NOT FOUND", "403": "FORBIDDEN",
         "500": "SERVER ERROR"}


class ProtocolError(AssertionError):
    """The server broke the wire protocol (or closed) where a test expected more."""


def today_dates():
    """The DD-MM-YYYY dates a reply may carry now (a test may straddle midnight)."""
    now = time.time()
    return {time.strftime("%d-%m-%Y", time.localtime(now + d)) for d in (-120, 0, 120)}


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def stuff(line):
    """Dot-stuff one message line for the wire."""
    return b"." + line if line.startswith(b".") else line


FROM_RE = re.compile(rb"^>*From ")


def mboxrd_quote(lines):
    """The stored (and Python mailbox-read) form of the message text `lines`."""
    return b"".join((b">" + l if FROM_RE.match(l) else l) + b"\n" for l in lines)


def mboxrd_unquote_line(line):
    return line[1:] if re.match(rb"^>+From ", line) else line


def mailbox_file(d, addr):
    return os.path.join(d, addr + ".txt")


def index_file(d, addr):
    return os.path.join(d, addr + ".idx")


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def tree(root):
    """Every path under root (and root itself) with its type, size and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            item = (st.st_mode, st.st_size, st.st_nlink)
            if os.path.islink(p):
                item += (os.readlink(p),)
            elif os.path.isfile(p):
                item += (read_bytes(p),)
            out[os.path.relpath(p, root)] = item
    return out


def wait_pid_exit(proc, timeout):
    """Wait for a Popen to exit; return its status, or None on timeout."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


# ---------------------------------------------------------------------------
# A line-oriented connection over a pair of file descriptors (pipe or socket).

class Conn:
    """Reads CRLF lines with deadlines; writes without ever deadlocking.

    Writes are non-blocking and interleaved with reads, so a server that
    answers (or closes) in the middle of a large send cannot wedge the test.
    """

    def __init__(self, rfd, wfd, name="server"):
        self.rfd, self.wfd, self.name = rfd, wfd, name
        self.buf = bytearray()
        self.eof = False
        self.write_closed = False
        fl = fcntl.fcntl(wfd, fcntl.F_GETFL)
        fcntl.fcntl(wfd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.transcript = []          # (">"/"<", bytes) for failure messages

    # -- reading
    def _fill(self, timeout):
        """Read what is there (waiting up to timeout). False on timeout."""
        if self.eof:
            return False
        r, _, _ = select.select([self.rfd], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            data = os.read(self.rfd, 1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except BlockingIOError:
            return True
        if not data:
            self.eof = True
        else:
            self.buf += data
        return True

    def readline(self, timeout=None):
        """One line from the server, without its CRLF (which is required)."""
        deadline = time.monotonic() + (REPLY_TIMEOUT if timeout is None else timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                self.transcript.append(("<", line))
                if not line.endswith(b"\r\n"):
                    raise ProtocolError("%s sent a line not ending in CRLF: %r"
                                        % (self.name, line))
                return line[:-2]
            if self.eof:
                raise ProtocolError("%s closed the connection%s; expected a line "
                                    "(unterminated rest %r; last lines %s)"
                                    % (self.name, self.exit_info(), bytes(self.buf[:200]), self.tail()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("%s: no line within %.1fs (have %r; last lines %s)"
                                    % (self.name, REPLY_TIMEOUT if timeout is None else timeout,
                                       bytes(self.buf[:200]), self.tail()))
            self._fill(left)

    def reply(self, timeout=None):
        """One reply line as text (latin-1, so every byte survives)."""
        return self.readline(timeout).decode("latin-1")

    def expect_eof(self, timeout=None):
        """Assert the server closes without sending anything more."""
        deadline = time.monotonic() + (REPLY_TIMEOUT if timeout is None else timeout)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("%s did not close within %.1fs" % (self.name, timeout or REPLY_TIMEOUT))
            self._fill(left)
        if self.buf:
            raise ProtocolError("%s sent %r before closing" % (self.name, bytes(self.buf[:300])))

    def tail(self):
        return [t[1][:120] for t in self.transcript[-6:]]

    def exit_info(self):
        return ""

    # -- writing
    def send(self, data, timeout=None):
        """Send all of data, reading replies meanwhile. Raises if the peer closes."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.transcript.append((">", data[:300]))
        view = memoryview(data)
        deadline = time.monotonic() + (REPLY_TIMEOUT * 3 if timeout is None else timeout)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("%s: could not send %d bytes within the deadline"
                                    % (self.name, len(view)))
            rl = [] if self.eof else [self.rfd]
            r, w, _ = select.select(rl, [self.wfd], [], left)
            if r:
                self._fill(0)
            if w:
                try:
                    n = os.write(self.wfd, view[:1 << 16])
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError) as e:
                    raise ProtocolError("%s closed while we were sending (%s); sent %d of %d bytes"
                                        % (self.name, e, len(data) - len(view), len(data)))
                view = view[n:]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added), return the one-line reply."""
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def multiline(self, timeout=None):
        """The lines of a multi-line reply after its first, up to '.', unstuffed."""
        out = []
        for _ in range(10_000_000):
            line = self.readline(timeout)
            if line == b".":
                return out
            if line.startswith(b"."):
                if not line.startswith(b".."):
                    raise ProtocolError("content line %r starts with a single dot "
                                        "(not dot-stuffed)" % line[:80])
                line = line[1:]
            out.append(line)
        raise ProtocolError("multi-line reply without end")

    # -- the protocol, one step each
    def data(self, lines, timeout=None):
        """DATA, the prompt, the stuffed text, the final dot; return the last reply."""
        r = self.cmd("DATA")
        if r != DATA_PROMPT:
            raise ProtocolError("DATA got %r, expected %r" % (r, DATA_PROMPT))
        payload = b"".join(stuff(l) + b"\r\n" for l in lines) + b".\r\n"
        self.send(payload)
        return self.reply(timeout)

    def list(self, addr, timeout=None):
        """LIST addr -> (first reply line, [(id, sender, date)])."""
        r = self.cmd("LIST " + addr, timeout)
        if not r.startswith("200"):
            return r, None
        entries = []
        for line in self.multiline(timeout):
            m = LIST_RE.match(line.decode("latin-1"))
            if not m:
                raise ProtocolError("bad LIST line %r" % line)
            entries.append((int(m.group(1)), m.group(2), m.group(3)))
        return r, entries

    def get_mail(self, addr, n, timeout=None):
        """GET_MAIL -> (first reply, sender, date, [text lines as bytes])."""
        r = self.cmd("GET_MAIL %s %s" % (addr, n), timeout)
        if not r.startswith("200"):
            return r, None, None, None
        lines = self.multiline(timeout)
        if len(lines) < 2 or not lines[0].startswith(b"From: ") or not lines[1].startswith(b"Date: "):
            raise ProtocolError("GET_MAIL reply lacks From:/Date: lines: %r" % lines[:3])
        return (r, lines[0][6:].decode("latin-1"), lines[1][6:].decode("latin-1"), lines[2:])


# ---------------------------------------------------------------------------
# Processes

class Server:
    """One mysmtpd process (any mode) with its stderr in a file."""

    def __init__(self, args, cwd, log_path, stdin=None, stdout=None, env=None,
                 preexec_fn=None, new_session=False, argv=None, pass_fds=(),
                 restore_signals=True, stderr_fd=None):
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.argv = argv if argv is not None else [SERVER] + list(args)
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, stdin=stdin, stdout=stdout,
            stderr=self.logf if stderr_fd is None else stderr_fd,
            env=env, preexec_fn=preexec_fn, start_new_session=new_session,
            pass_fds=pass_fds, restore_signals=restore_signals, close_fds=True)
        self.pid = self.proc.pid
        self.new_session = new_session

    def log(self):
        return read_bytes(self.log_path) or b""

    def log_lines(self):
        return self.log().decode("latin-1").splitlines()

    def wait(self, timeout=None):
        """Exit status, failing the test if it does not exit in time."""
        rc = wait_pid_exit(self.proc, REPLY_TIMEOUT if timeout is None else timeout)
        if rc is None:
            raise AssertionError("server pid %d did not exit in time" % self.pid)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                if self.new_session:
                    os.killpg(self.pid, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif self.new_session:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        wait_pid_exit(self.proc, 5)
        self.logf.close()

    def wait_log(self, pattern, timeout=None):
        """Wait until a stderr line matches the regex pattern; return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + (REPLY_TIMEOUT if timeout is None else timeout)
        while True:
            for line in self.log_lines():
                m = rx.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                raise AssertionError("server exited (%s) before logging %r; log: %r"
                                     % (self.proc.returncode, pattern, self.log()[-500:]))
            if time.monotonic() > deadline:
                raise AssertionError("server never logged %r; log: %r" % (pattern, self.log()[-500:]))
            time.sleep(0.01)


class PipeSession(Conn):
    """mysmtpd run inetd style: one session on its stdin/stdout pipes."""

    def __init__(self, server):
        self.server = server
        super().__init__(server.proc.stdout.fileno(), server.proc.stdin.fileno(),
                         "mysmtpd[%d]" % server.pid)

    def exit_info(self):
        rc = wait_pid_exit(self.server.proc, 2)
        log = self.server.log()[-600:].decode("latin-1")
        return " (exit status %s; stderr ends %r)" % (rc, log)

    def close(self):
        for f in (self.server.proc.stdin, self.server.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class TcpSession(Conn):
    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.sock = socket.create_connection((host, port), timeout=timeout or REPLY_TIMEOUT)
        super().__init__(self.sock.fileno(), self.sock.fileno(), "tcp:%d" % port)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


PR_SET_THP_DISABLE = 41


def reset(conn):
    """Drop a TCP session with a RST, as a client that vanishes does."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def env_under_strace():
    """The environment for a server run under strace: LeakSanitizer stops
    the process with ptrace at exit, which a traced process cannot allow,
    so the sanitized build runs there without its leak check."""
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    return env



def without_huge_pages(then=None):
    """A preexec_fn that turns transparent huge pages off for the server (the
    setting survives exec), then runs `then`. Where THP is "always", a first
    touch maps 2 MiB at once, so peak RSS would measure the kernel's setting
    (and the sanitizer runtime's own regions), not what the server keeps."""
    def preexec():
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
        if then:
            then()
    return preexec


def status_kib(pid, key):
    """A KiB figure (VmHWM, VmRSS) of a live process, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (key, pid))


def vm_hwm_kib(pid):
    """Peak resident set size of a live process, in KiB."""
    return status_kib(pid, "VmHWM")


def child_states(pid):
    """(pid, state letter) of each child of pid, from /proc."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out.append((int(p), fields[0]))
    return out


# ---------------------------------------------------------------------------
# Reading a mailbox file as an mboxrd reader would, strictly.

class StoredMessage:
    def __init__(self, from_line, headers, body, start, end):
        self.from_line = from_line      # bytes, without "From "
        self.headers = headers          # [(name lower, value)] as text
        self.body = body                # stored (quoted) body bytes, LF lines
        self.start, self.end = start, end

    def header(self, name):
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None

    def text_lines(self):
        """The message text as the client sent it (quoting undone)."""
        if not self.body:
            return []
        assert self.body.endswith(b"\n")
        return [mboxrd_unquote_line(l) for l in self.body[:-1].split(b"\n")]


def parse_mbox(data, what="mailbox"):
    """Split an mboxrd file into whole messages, failing on anything partial.

    Each message is 'From ' line, header lines, blank line, body lines, blank
    line; the messages together cover every byte of the file.
    """
    msgs = []
    if not data:
        return msgs
    if not data.startswith(b"From "):
        raise AssertionError("%s does not start with a From line: %r" % (what, data[:80]))
    if not data.endswith(b"\n"):
        raise AssertionError("%s does not end with LF: ...%r" % (what, data[-80:]))
    starts = [0] + [m.start() + 1 for m in re.finditer(rb"\nFrom ", data)]
    starts.append(len(data))
    for a, b in zip(starts, starts[1:]):
        chunk = data[a:b]
        lines = chunk.split(b"\n")[:-1]   # chunk ends with \n
        from_line = lines[0][5:]
        try:
            hend = lines.index(b"", 1)
        except ValueError:
            raise AssertionError("%s: message at offset %d has no end of headers: %r"
                                 % (what, a, chunk[:200]))
        headers = []
        for h in lines[1:hend]:
            if h[:1] in (b" ", b"\t") and headers:
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + h.strip().decode("latin-1"))
                continue
            m = re.match(rb"^([!-9;-~]+):[ \t]*(.*)$", h)
            if not m:
                raise AssertionError("%s: bad header line %r at offset %d" % (what, h, a))
            headers.append((m.group(1).decode().lower(), m.group(2).decode("latin-1")))
        rest = lines[hend + 1:]
        if not rest or rest[-1] != b"":
            raise AssertionError("%s: message at offset %d is not followed by a blank line "
                                 "(partial message?): ...%r" % (what, a, chunk[-120:]))
        body_lines = rest[:-1]
        body = b"".join(l + b"\n" for l in body_lines)
        msgs.append(StoredMessage(from_line, headers, body, a, b))
    return msgs


# ---------------------------------------------------------------------------
# Sweeps: a fault or a kill at every call of an operation. `make check` runs
# a seeded sample of each (one point in SWEEP_SHARE), `make sweep` every
# point (TEST_SWEEP=full). The seed is the UTC date unless TEST_SEED gives
# one, and is printed with the sweep's figures so that a failure can be
# replayed: TEST_SEED=N python3 tests/integration/run.py -k NAME.

SWEEP_FULL = os.environ.get("TEST_SWEEP") == "full"
SWEEP_SEED = int(os.environ.get("TEST_SEED") or time.strftime("%Y%m%d", time.gmtime()))
SWEEP_SHARE = 4


class Sweep:
    """Which points of the sweep `name` to run: take(point...) is true for
    every point under TEST_SWEEP=full, else for a seeded one in SWEEP_SHARE
    (the same points for the same seed)."""

    def __init__(self, name):
        self.name, self.taken, self.skipped = name, 0, 0

    def take(self, *point):
        digest = hashlib.sha256(("%d %s %r" % (SWEEP_SEED, self.name, point)).encode()).digest()
        yes = SWEEP_FULL or digest[0] % SWEEP_SHARE == 0
        self.taken += yes
        self.skipped += not yes
        return yes

    def note(self):
        if SWEEP_FULL:
            return "every point (TEST_SWEEP=full)"
        return ("a sample: %d of %d points, seed %d (TEST_SEED=%d replays it; TEST_SWEEP=full "
                "runs all)" % (self.taken, self.taken + self.skipped, SWEEP_SEED, SWEEP_SEED))


def alone(reason):
    """Marks a test method that cannot share the machine with other tests:
    run.py runs it alone, after the rest (as a module's or a class's
    SERIAL = "reason" does for all of its tests)."""
    def mark(method):
        method.SERIAL = reason
        return method
    return mark


def sweep_test(method):
    """Marks a test method as a sweep: `make sweep` (run.py --sweeps) runs it
    with every point."""
    method.sweep = True
    return method


# ---------------------------------------------------------------------------

# The tests that started a listening mysmtpd (run.py runs them again with
# --again-with-max-use), and the options each such server gets.
LISTENER_TESTS = set()


def listener_extra(test, args=()):
    """--max-use $TEST_MAX_USE for a listening mysmtpd, when that is set; the
    test is noted as one that runs a listener, unless its own args set
    --max-use (then running it again would test nothing new)."""
    if "-U" in args or "--max-use" in args:
        return []
    LISTENER_TESTS.add(test.id())
    n = os.environ.get("TEST_MAX_USE")
    return ["--max-use", n] if n else []


# The failure delay (--auth-failure-delay) of a server with accounts that a
# test starts: short, for the tests whose subject is not the delay's length;
# a test class about the delay itself sets failure_delay_ms = None (the
# server's own 2000 ms).
SHORT_FAILURE_DELAY_MS = 100


def failure_delay_args(args, ms=SHORT_FAILURE_DELAY_MS):
    """["--auth-failure-delay", ms] for a server given accounts in args (and no
    delay of its own), else []."""
    args = list(args)
    if ms is None or "--auth-failure-delay" in args:
        return []
    if not ("-u" in args or "--accounts" in args):
        return []
    if "--set-password" in args or "--remove-account" in args:
        return []
    return ["--auth-failure-delay", str(ms)]


class ServerTest(unittest.TestCase):
    """Base class: a temporary root per test, processes killed at the end,
    and sanitizer reports in any server log fail the test. A server with
    accounts gets a short failure delay unless the class says
    failure_delay_ms = None."""

    failure_delay_ms = SHORT_FAILURE_DELAY_MS

    def setUp(self):
        if not (os.path.isfile(SERVER) and os.access(SERVER, os.X_OK)):
            self.fail("server binary %s is missing or not executable "
                      "(build it: make mysmtpd)" % SERVER)
        self.root = tempfile.mkdtemp(prefix="mysmtpd-it-")
        self.servers = []
        self.closers = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for c in self.closers:
            try:
                c()
            except Exception:
                pass
        for s in self.servers:
            s.kill()
        reports = []
        for s in self.servers:
            log = s.log()
            if any(m in log for m in SANITIZER_MARKS):
                reports.append(log[:3000].decode("latin-1"))
        shutil.rmtree(self.root, ignore_errors=True)
        if reports:
            self.fail("sanitizer report in server stderr:\n" + "\n---\n".join(reports))

    # -- directories
    def mkdir(self, name="mailbox"):
        d = os.path.join(self.root, name)
        os.makedirs(d, exist_ok=True)
        return d

    # -- processes
    def spawn(self, args, cwd=None, **kw):
        n = len(self.servers)
        if kw.get("argv") is None:
            args = list(args) + failure_delay_args(args, self.failure_delay_ms)
        s = Server(args, cwd or self.root, os.path.join(self.root, "stderr-%d.log" % n), **kw)
        self.servers.append(s)
        return s

    def pipe_session(self, d, args=(), greet=True, **kw):
        """Start mysmtpd -d d on pipes; read and check the greeting."""
        s = self.spawn(["-d", d] + list(args), stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, **kw)
        c = PipeSession(s)
        self.closers.append(c.close)
        if greet:
            g = c.reply()
            self.assertRegex(g, r"^200 \S+ My_SMTP ready$", "greeting")
        return c

    def tcp_session(self, port, greet=True):
        c = TcpSession(port)
        self.closers.append(c.close)
        if greet:
            g = c.reply()
            self.assertRegex(g, r"^200 \S+ My_SMTP ready$", "greeting")
        return c

    def ok(self, conn, line, expect="200 OK"):
        r = conn.cmd(line)
        self.assertEqual(r, expect, "reply to %r" % line)
        return r

    def code(self, conn, line, code):
        r = conn.cmd(line)
        self.assertTrue(r.startswith(code + " ") or r == code,
                        "reply to %r: got %r, expected code %s" % (line[:100], r, code))
        self.check_reply_form(r)
        return r

    def check_reply_form(self, r):
        m = CODE_RE.match(r)
        self.assertTrue(m, "reply %r does not start with a seed code" % r)
        word = WORDS[m.group(1)]
        if word is not None:
            self.assertTrue(r[4:].startswith(word), "reply %r lacks the word %r" % (r, word))

    def begin_message(self, conn, rcpt, first_line):
        """HELO, MAIL FROM john@test.com, RCPT TO rcpt, DATA, and the message's
        first line: a session left in the middle of a message."""
        self.ok(conn, "HELO test.com")
        self.ok(conn, "MAIL FROM: john@test.com")
        self.ok(conn, "RCPT TO: " + rcpt)
        self.assertEqual(conn.cmd("DATA"), DATA_PROMPT)
        conn.send(first_line + b"\r\n")

    def quit(self, conn):
        """QUIT, 200 Goodbye, close, and (pipes) exit status 0."""
        self.assertEqual(conn.cmd("QUIT"), GOODBYE)
        conn.expect_eof()
        if isinstance(conn, PipeSession):
            rc = conn.server.wait()
            self.assertEqual(rc, 0, "server exit status after QUIT (99 = ASan, 98 = UBSan)")

    def deliver(self, d, sender, rcpts, lines, args=(), helo=None, expect=STORED, **kw):
        """One whole session that delivers one message; returns the final reply."""
        c = self.pipe_session(d, args, **kw)
        self.ok(c, "HELO " + (helo or sender.split("@")[1]))
        self.ok(c, "MAIL FROM: " + sender)
        for r in rcpts:
            self.ok(c, "RCPT TO: " + r)
        got = c.data(lines)
        if expect is not None:
            self.assertEqual(got, expect, "reply after the final dot")
        self.quit(c)
        return got

    def read_back(self, d, addr, args=("-A",)):
        """LIST and GET_MAIL every message of addr; [(sender, date, lines)]."""
        c = self.pipe_session(d, args)
        self.ok(c, "HELO " + addr.split("@")[1])
        r, entries = c.list(addr)
        if r.startswith("401"):
            self.quit(c)
            return []
        self.assertEqual(r, "200 OK", "LIST %s" % addr)
        self.assertEqual([e[0] for e in entries], list(range(1, len(entries) + 1)),
                         "LIST ids must be 1..N")
        out = []
        for n, sender, date in entries:
            r, s2, d2, lines = c.get_mail(addr, n)
            self.assertEqual(r, "200 OK", "GET_MAIL %s %d" % (addr, n))
            self.assertEqual((s2, d2), (sender, date), "GET_MAIL agrees with LIST for id %d" % n)
            out.append((sender, date, lines))
        self.quit(c)
        return out

    def check_mbox(self, d, addr, expected, sender=None, peer="local", helo=None):
        """The file of addr holds exactly the messages `expected` (lists of text
        lines), whole, in order, readable by Python's mailbox.mbox."""
        path = mailbox_file(d, addr)
        data = read_bytes(path)
        self.assertIsNotNone(data, "%s missing" % path)
        msgs = parse_mbox(data, path)
        self.assertEqual(len(msgs), len(expected), "number of messages in %s" % path)
        if msgs:
            self.assertEqual(msgs[-1].end, len(data), "file ends with the last whole message")
        ids = set()
        for i, (m, lines) in enumerate(zip(msgs, expected)):
            with self.subTest(mailbox=addr, message=i + 1):
                self.assertEqual(m.body, mboxrd_quote(lines), "stored body (mboxrd-quoted)")
                self.assertEqual(m.text_lines(), lines, "body with quoting undone")
                for h in ("return-path", "received", "from", "to", "date", "message-id"):
                    self.assertIsNotNone(m.header(h), "header %s missing" % h)
                self.assertRegex(m.from_line.decode("latin-1"), ASCTIME_RE, "From_ line")
                if sender:
                    self.assertTrue(m.from_line.startswith(sender.encode() + b" "), m.from_line)
                    self.assertIn(sender, m.header("return-path"))
                    self.assertIn(sender, m.header("from"))
                self.assertIn(addr, m.header("to").lower())
                self.assertIsNotNone(email.utils.parsedate_to_datetime(m.header("date")),
                                     "Date header is RFC 5322")
                rcv = m.header("received")
                if helo:
                    self.assertIn(helo, rcv, "Received names the HELO id")
                if peer:
                    self.assertIn(peer, rcv, "Received names the peer")
                cl = m.header("content-length")
                if cl is not None:
                    self.assertIn(int(cl), (len(m.body), len(m.body) + 1),
                                  "Content-Length matches the stored body")
                ids.add(m.header("message-id"))
        self.assertEqual(len(ids), len(msgs), "Message-IDs are distinct")
        # Python's mailbox module agrees.  It does not undo mboxrd quoting on
        # read: a body line '>From x' stays '>From x', so compare quoted text.
        mb = mailbox.mbox(path, create=False)
        try:
            keys = mb.keys()
            self.assertEqual(len(keys), len(expected), "mailbox.mbox message count")
            for k, lines in zip(keys, expected):
                raw = mb.get_bytes(k)
                head, sep, body = raw.partition(b"\n\n")
                self.assertEqual(sep, b"\n\n")
                self.assertEqual(body, mboxrd_quote(lines), "mailbox.mbox body of message %d" % (k + 1))
                msg = mb.get_message(k)
                if sender:
                    self.assertIn(sender, msg["From"])
                    self.assertTrue(msg.get_from().startswith(sender + " "))
                self.assertIn(addr, msg["To"].lower())
        finally:
            mb.close()
        return msgs

    # -- listen mode
    def start_listener(self, d, args=(), **kw):
        """mysmtpd -d d -l 127.0.0.1:PORT ARGS, ready (it logged 'Listening on port PORT...')."""
        last = None
        for _ in range(3):
            port = free_port()
            s = self.spawn(["-d", d, "-l", "127.0.0.1:%d" % port] + listener_extra(self, args) +
                           list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kw)
            try:
                s.wait_log(r"Listening on port %d \(127\.0\.0\.1\)\.\.\.$" % port)
                return s, port
            except AssertionError as e:   # the port was taken meanwhile: try another
                last = e
                s.kill()
        raise last

    def wait_connectable(self, port, timeout=None):
        deadline = time.monotonic() + (REPLY_TIMEOUT if timeout is None else timeout)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("nothing accepts on port %d" % port)
                time.sleep(0.02)


SEED_BODY = [b"Hello David,", b"Hope you are doing well."]


def seed_session(test, c, n_expected=1, my_id=None):
    """The seed's example session (PROTOCOL.md section 6) on connection c.
    Returns the id the message got."""
    test.ok(c, "HELO test.com")
    test.ok(c, "MAIL FROM: john@test.com")
    test.ok(c, "RCPT TO: david@test.com")
    test.assertEqual(c.data(SEED_BODY), STORED)
    r, entries = c.list("david@test.com")
    test.assertEqual(r, "200 OK")
    test.assertEqual(len(entries), n_expected, "LIST entries")
    dates = today_dates()
    for i, (n, sender, date) in enumerate(entries):
        test.assertEqual((n, sender), (i + 1, "john@test.com"))
        test.assertIn(date, dates)
    n = my_id or n_expected
    r, sender, date, text = c.get_mail("david@test.com", n)
    test.assertEqual(r, "200 OK")
    test.assertEqual(sender, "john@test.com")
    test.assertIn(date, dates)
    test.assertEqual(text, SEED_BODY)
    test.quit(c)
    return n


SEED_LOG = ["HELO received from test.com", "MAIL FROM: john@test.com",
            "RCPT TO: david@test.com", "DATA received, message stored.",
            "LIST david@test.com", "Emails retrieved; list sent.",
            "GET_MAIL david@test.com 1", "Email with id 1 sent.", "Client disconnected."]


def is_subsequence(want, have):
    it = iter(have)
    return all(any(w == h for h in it) for w in want)
