"""test_deploy.py: what `make install` ships, run as it would be deployed.

- `make install DESTDIR=... PREFIX=/usr` lays out binaries, units, the
  sysusers.d file, the xinetd entry, man pages and the store; `make
  uninstall` takes them away again.
- The installed units pass `systemd-analyze verify`, and each service is
  rated at most 1.5 by `systemd-analyze security --offline=true`.
- The installed units' own ExecStart command lines (their binary replaced
  by $MYSMTPD, the store by a temporary one) serve whole sessions over TCP:
  the per-connection services (My_SMTP, standard SMTP and submission with
  smtplib) under `systemd-socket-activate --inetd -a`, the listener under
  `systemd-socket-activate` (LISTEN_FDS); as root, each runs as an
  unprivileged user in a network namespace of its own, as User= and
  PrivateNetwork=yes would have it.
- A real xinetd, run in the foreground with each installed entry (port,
  user and paths rewritten), serves a session whose log goes to syslog,
  never to the client.
- The man pages render without warnings and name every option and exit
  status the programs have; their STARTTLS drop-ins keep each unit's own
  options, and their tcpserver line, run by sh under a real tcpserver,
  serves sessions as the unprivileged user, not root.

Self-contained: only the standard library and the tools named above.
"""

import grp
import os
import poplib
import pwd
import re
import select
import shlex
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from support import alone, listener_extra
from test_tls import make_certificate

# run.py runs the xinetd tests alone: they bind /dev/log where there is none
# (one path for the whole machine), and any other session's syslog line
# would land in their count.
SYSLOG = "xinetd's syslog is the machine's /dev/log"

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def _binary(var, default):
    path = os.environ.get(var) or os.path.join(TOP, default)
    return path if os.path.isabs(path) else os.path.join(TOP, path)


SERVER = _binary("MYSMTPD", "mysmtpd")
CLIENT = _binary("MYSMTP", "mysmtp")
SLOW = 3.0 if ("asan" in SERVER or os.environ.get("TEST_FLAVOUR") == "asan") else 1.0
WAIT = 10.0 * SLOW
SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer",
                   b"UndefinedBehaviorSanitizer", b"runtime error:")

PREFIX = "/usr"
UNITDIR = PREFIX + "/lib/systemd/system"
STATEDIR = "/var/lib/mysmtp"
ACCOUNTS = "/etc/mysmtp/accounts"
PASSWORDS = {"john@test.com": "john's secret", "david@test.com": "david's secret"}
SERVICES = ("mysmtp@.service", "mysmtp-listener.service", "mysmtp-smtp@.service",
            "mysmtp-smtps@.service", "mysmtp-pop3@.service", "mysmtp-pop3s@.service",
            "mysmtp-submission@.service")
UNITS = ("mysmtp.socket", "mysmtp@.service", "mysmtp-listener.socket",
         "mysmtp-listener.service", "mysmtp-smtp.socket", "mysmtp-smtp@.service",
         "mysmtp-smtps.socket", "mysmtp-smtps@.service", "mysmtp-pop3.socket",
         "mysmtp-pop3@.service", "mysmtp-pop3s.socket", "mysmtp-pop3s@.service",
         "mysmtp-submission.socket", "mysmtp-submission@.service")
INSTALLED = [PREFIX + "/sbin/mysmtpd", PREFIX + "/bin/mysmtp",
             PREFIX + "/share/man/man8/mysmtpd.8", PREFIX + "/share/man/man1/mysmtp.1",
             PREFIX + "/lib/sysusers.d/mysmtp.conf", "/etc/xinetd.d/mysmtp",
             "/etc/xinetd.d/mysmtp-smtp", "/etc/xinetd.d/mysmtp-pop3",
             "/etc/xinetd.d/mysmtp-pop3s"] + \
            [UNITDIR + "/" + u for u in UNITS]
MAX_EXPOSURE = 1.5

TCPSERVER = shutil.which("tcpserver") or "/usr/bin/tcpserver"
ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
XINETD = shutil.which("xinetd") or "/usr/sbin/xinetd"
REPLY_RE = re.compile(r"^(200|400|401|403|500)( |$)")
BODY = [b"Hello David,", b"Hope you are doing well."]


# ---------------------------------------------------------------------------
# Helpers

def run(argv, timeout=60, input=None, **kw):
    """Run a command to its end, input (text) its stdin; (status, stdout, stderr) as text."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL if input is None else None,
                       input=None if input is None else input.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, **kw)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def make(*args):
    """make -s ARGS at the top of the tree, outside any make that runs us."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return run(["make", "-s", "-C", TOP] + list(args), timeout=300, env=env)


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def parse_unit(path):
    """{section: {key: [values]}} of a unit file (comments and continuations handled)."""
    out, section, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                out.setdefault(section, {})
                continue
            key, _, value = s.partition("=")
            out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def exec_start(unit):
    """The argv of a unit's one ExecStart=, its prefixes (-@:+!) dropped."""
    values = [v for v in unit["Service"]["ExecStart"] if v]
    assert len(values) == 1, "one ExecStart= expected, got %r" % values
    return shlex.split(values[0].lstrip("-@:+!"))


def xinetd_attrs(text):
    """The attributes of the service block of an xinetd entry: {name: value}."""
    body = text[text.index("{") + 1:text.rindex("}")]
    attrs = {}
    for line in body.splitlines():
        m = re.match(r"^\s*([a-z_]+)\s*[-+]?=\s*(.*?)\s*$", line)
        if m:
            attrs[m.group(1)] = m.group(2)
    return attrs


def set_xinetd_attr(text, name, value):
    """Set (or uncomment and set) one attribute of an xinetd entry."""
    pat = re.compile(r"(?m)^(\s*)#?\s*%s\s*=.*$" % re.escape(name))
    if pat.search(text):
        return pat.sub(lambda m: "%s%s = %s" % (m.group(1), name, value), text, count=1)
    i = text.rindex("}")
    return text[:i] + "\t%s = %s\n" % (name, value) + text[i:]


def man_examples(section):
    """The .EX blocks of a section of mysmtpd(8), as a shell or an editor gets
    them: roff escapes undone, continued lines (a backslash at the end) kept."""
    with open(os.path.join(TOP, "man", "mysmtpd.8")) as f:
        text = f.read()
    body = text.split("\n.SH %s\n" % section, 1)[1].split("\n.SH ", 1)[0]
    blocks = re.findall(r"(?ms)^\.EX\n(.*?)^\.EE$", body)
    return [b.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'") for b in blocks]


def sanitizer_env_names():
    return [n for n in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS") if n in os.environ]


def unprivileged():
    """(uid, gid, user, group) of nobody when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid, pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name


def sandbox_prefix():
    """As root: run the server in a network namespace of its own (PrivateNetwork=yes),
    as nobody (User=), with no capabilities and no_new_privs (CapabilityBoundingSet=,
    NoNewPrivileges=yes). Else nothing."""
    who = unprivileged()
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if who is None or not unshare or not setpriv:
        return []
    if run([unshare, "--net", "true"], timeout=10)[0] != 0:
        return []
    return [unshare, "--net", setpriv, "--reuid=%d" % who[0], "--regid=%d" % who[1],
            "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]


class Process:
    """A process in its own process group, stderr to a file; killed at cleanup."""

    def __init__(self, argv, logpath, **kw):
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, start_new_session=True, **kw)
        self.pid = self.proc.pid

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read()

    def wait_log(self, pattern, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            text = self.log().decode("latin-1")
            if re.search(pattern, text, re.M):
                return text
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("no %r in the log of %s (exit %s): %r"
                                     % (pattern, self.proc.args[0], self.proc.poll(), text[-1500:]))
            time.sleep(0.02)

    def wait(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)
        self.logf.close()


class Session:
    """A TCP connection to the server: CRLF lines with deadlines."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buf = b""
        self.received = []

    def line(self):
        deadline = time.monotonic() + WAIT
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no reply within %.0fs; got %r" % (WAIT, self.received[-5:]))
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                data = self.sock.recv(65536)
                if not data:
                    raise AssertionError("server closed; got %r (then %r)"
                                         % (self.received[-5:], self.buf))
                self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        self.received.append(line + b"\n")
        assert line.endswith(b"\r"), "line not ending in CRLF: %r" % line
        return line[:-1].decode("latin-1")

    def send(self, text):
        self.sock.sendall(text.encode("latin-1") + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()

    def rest(self):
        """Everything until the server closes."""
        deadline = time.monotonic() + WAIT
        data = self.buf
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], deadline - time.monotonic())
            if not r:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        raise AssertionError("server did not close; got %r" % data)

    def close(self):
        self.sock.close()


def read_multiline(s):
    lines = []
    while True:
        line = s.line()
        if line == ".":
            return lines
        lines.append(line)


def check_received(test, s):
    """Every line the client got is a reply, or a line of LIST or GET_MAIL."""
    for line in s.received:
        text = line.decode("latin-1")
        test.assertTrue(REPLY_RE.match(text) or text in (".\r\n",) or
                        re.match(r"^(\d+: Email from |From: |Date: |Hello David,|Hope you)", text),
                        "the client got a line that is no reply: %r" % text)


def open_session(test, port, login=None):
    """Connect, HELO test.com, and AUTH as login (an address of PASSWORDS) if given."""
    s = Session(port)
    test.addCleanup(s.close)
    test.assertRegex(s.line(), r"^200 \S+ My_SMTP ready$", "greeting")
    test.assertEqual(s.cmd("HELO test.com"), "200 OK")
    if login:
        test.assertEqual(s.cmd("AUTH %s %s" % (login, PASSWORDS[login])), "200 OK")
    return s


def close_session(test, s):
    test.assertEqual(s.cmd("QUIT"), "200 Goodbye")
    test.assertEqual(s.rest(), b"", "nothing after 200 Goodbye")
    check_received(test, s)


def seed_session(test, port, n_expected=1):
    """The seed's session over TCP, as the installed units run it, with
    accounts: John logs in and sends, then David logs in and reads (two
    connections: each reads only his own mailbox). Checks every reply."""
    s = open_session(test, port, "john@test.com")
    test.assertEqual(s.cmd("MAIL FROM: john@test.com"), "200 OK")
    test.assertEqual(s.cmd("RCPT TO: david@test.com"), "200 OK")
    test.assertEqual(s.cmd("DATA"), "200 Enter your message (end with a single dot '.'):")
    for line in BODY:
        s.send(line.decode())
    test.assertEqual(s.cmd("."), "200 Message stored successfully")
    test.assertEqual(s.cmd("LIST david@test.com"), "403 FORBIDDEN not your mailbox")
    close_session(test, s)
    s = open_session(test, port, "david@test.com")
    test.assertEqual(s.cmd("LIST david@test.com"), "200 OK")
    entries = read_multiline(s)
    test.assertEqual(len(entries), n_expected, "LIST: %r" % entries)
    for i, e in enumerate(entries):
        test.assertRegex(e, r"^%d: Email from john@test\.com \(\d\d-\d\d-\d{4}\)$" % (i + 1))
    test.assertEqual(s.cmd("GET_MAIL david@test.com %d" % n_expected), "200 OK")
    got = read_multiline(s)
    test.assertEqual(got[0], "From: john@test.com")
    test.assertRegex(got[1], r"^Date: \d\d-\d\d-\d{4}$")
    test.assertEqual(got[2:], [b.decode() for b in BODY])
    close_session(test, s)


def closed_session(test, port):
    """What an installed server with an empty accounts file does: no login,
    no mail taken."""
    s = open_session(test, port)
    test.assertEqual(s.cmd("AUTH john@test.com x"), "403 FORBIDDEN wrong address or password")
    test.assertEqual(s.cmd("MAIL FROM: john@test.com"), "403 FORBIDDEN log in first (AUTH)")
    close_session(test, s)


SMTP_MESSAGE = (b"From: john@test.com\r\nTo: david@test.com\r\nSubject: hello\r\n\r\n"
                b"Hello David,\r\nHope you are doing well.\r\n")


def smtp_session(test, port):
    """A standard SMTP delivery with Python's smtplib (EHLO test.com)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="test.com", timeout=WAIT) as s:
        test.assertEqual(s.ehlo()[0], 250)
        test.assertTrue(s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("auth"))
        s.login("john@test.com", PASSWORDS["john@test.com"])
        test.assertEqual(s.sendmail("john@test.com", ["david@test.com"], SMTP_MESSAGE), {})


# ---------------------------------------------------------------------------

class Deploy(unittest.TestCase):
    """One `make install` into a staging DESTDIR for the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mysmtp-deploy-")
        os.chmod(cls.tmp, 0o755)        # the unprivileged server reaches its store
        # A copy of the server the unprivileged user can run wherever the
        # checkout is (a clone under /root is out of its reach).
        cls.server = os.path.join(cls.tmp, "mysmtpd")
        if os.path.isfile(SERVER):
            shutil.copy(SERVER, cls.server)
            os.chmod(cls.server, 0o755)
        cls.dest = os.path.join(cls.tmp, "dest")
        cls.install = make("install", "DESTDIR=" + cls.dest, "PREFIX=" + PREFIX)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        rc, out, err = self.install
        self.assertEqual(rc, 0, "make install failed:\n%s%s" % (out, err))
        self.assertTrue(os.access(SERVER, os.X_OK), "no server binary %s" % SERVER)
        self.root = tempfile.mkdtemp(prefix="case-", dir=self.tmp)
        os.chmod(self.root, 0o755)
        self.procs = []
        self.addCleanup(self._cleanup)
        # The accounts file the units' --accounts names, made as doc/DEPLOYING.md says;
        # 0644 here so that the unprivileged user the tests run as reads it.
        self.accounts = os.path.join(self.root, "accounts")
        for address, password in PASSWORDS.items():
            rc, out, err = run([SERVER, "--accounts", self.accounts, "--set-password", address],
                               timeout=WAIT, input=password + "\n")
            self.assertEqual(rc, 0, err)
        os.chmod(self.accounts, 0o644)
        # What LoadCredential= would hand the TLS service (%d/tls-cert, %d/tls-key).
        self.tls_cert, self.tls_key = make_certificate(self.root)
        os.chmod(self.tls_key, 0o644)

    def _cleanup(self):
        reports = []
        for p in self.procs:
            p.kill()
            log = p.log()
            if any(m in log for m in SANITIZER_MARKS):
                reports.append(log[-3000:].decode("latin-1"))
        shutil.rmtree(self.root, ignore_errors=True)
        if reports:
            self.fail("sanitizer report:\n" + "\n---\n".join(reports))

    def staged(self, path):
        return self.dest + path

    def unit(self, name):
        return parse_unit(self.staged(UNITDIR + "/" + name))

    def store(self, owner=None):
        """A fresh store directory (mode 0700), owned by owner=(uid, gid) if given."""
        d = tempfile.mkdtemp(prefix="store-", dir=self.root)
        if owner:
            os.chown(d, owner[0], owner[1])
        return d

    def spawn(self, argv, **kw):
        p = Process(argv, os.path.join(self.root, "log-%d" % len(self.procs)), **kw)
        self.procs.append(p)
        return p

    def command_line(self, unit_name, store, accounts=None):
        """The unit's ExecStart with the binary replaced by $MYSMTPD and the
        store by ours; it must name the installed binary and the state directory."""
        unit = self.unit(unit_name)
        argv = exec_start(unit)
        self.assertEqual(argv[0], PREFIX + "/sbin/mysmtpd", "%s runs the installed server" % unit_name)
        state = "/var/lib/" + unit["Service"]["StateDirectory"][0]
        self.assertEqual(state, STATEDIR)
        self.assertIn(state, argv, "%s passes its StateDirectory as the store" % unit_name)
        self.assertIn("--accounts " + ACCOUNTS, " ".join(argv), "%s has accounts" % unit_name)
        swap = {state: store, ACCOUNTS: accounts or self.accounts,
                "%d/tls-cert": self.tls_cert, "%d/tls-key": self.tls_key}
        return [self.server] + [swap.get(a, a) for a in argv[1:]]

    def check_store(self, store, n, owner=None):
        path = os.path.join(store, "david@test.com.txt")
        st = os.stat(path)
        self.assertEqual(st.st_mode & 0o777, 0o600, "mailbox file mode")
        if owner:
            self.assertEqual((st.st_uid, st.st_gid), owner[:2], "mailbox file owner")
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data.count(b"\nFrom: john@test.com\n"), n, data[:600])
        self.assertIn(b"Received: from test.com (127.0.0.1)", data, "the peer in Received")

    # -- the layout --------------------------------------------------------

    def test_install_layout(self):
        """make install puts every file in place, paths substituted."""
        for path in INSTALLED:
            self.assertTrue(os.path.isfile(self.staged(path)), "%s not installed" % path)
        for path in (PREFIX + "/sbin/mysmtpd", PREFIX + "/bin/mysmtp"):
            self.assertTrue(os.access(self.staged(path), os.X_OK), path)
        for path in INSTALLED:
            with open(self.staged(path), "rb") as f:
                self.assertNotIn(b"@SBINDIR@", f.read(), path)
        st = os.stat(self.staged(STATEDIR))
        self.assertEqual(st.st_mode & 0o7777, 0o700, "store mode")
        st = os.stat(self.staged(ACCOUNTS))
        self.assertEqual((st.st_mode & 0o7777, st.st_size), (0o640, 0), "accounts: empty, 0640")
        self.assertEqual(os.stat(self.staged(os.path.dirname(ACCOUNTS))).st_mode & 0o7777, 0o750)
        with open(self.staged(PREFIX + "/lib/sysusers.d/mysmtp.conf")) as f:
            users = [l.split() for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual(users[0][:3], ["u", "mysmtp", "-"])
        self.assertEqual(users[0][-1], STATEDIR, "the user's home is the store")

    def test_unit_settings(self):
        """The two pairs are what doc/DEPLOYING.md promises."""
        sock = self.unit("mysmtp.socket")["Socket"]
        self.assertEqual(sock["ListenStream"], ["2525"])
        self.assertEqual(sock["Accept"], ["yes"])
        self.assertIn("MaxConnections", sock)
        self.assertIn("MaxConnectionsPerSource", sock)
        svc = self.unit("mysmtp@.service")
        self.assertEqual(svc["Service"]["StandardInput"], ["socket"])
        self.assertEqual(svc["Service"]["StandardError"], ["journal"])
        self.assertEqual(svc["Unit"]["CollectMode"], ["inactive-or-failed"])
        lsock = self.unit("mysmtp-listener.socket")["Socket"]
        self.assertEqual(lsock["ListenStream"], ["2525"])
        self.assertEqual(lsock["Accept"], ["no"])
        lsvc = self.unit("mysmtp-listener.service")["Service"]
        self.assertEqual(lsvc["Type"], ["notify"])
        self.assertEqual(lsvc["NotifyAccess"], ["main"])
        self.assertEqual(lsvc["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        ssock = self.unit("mysmtp-smtp.socket")["Socket"]
        self.assertEqual(ssock["ListenStream"], ["2526"], "standard SMTP beside 2525, not on 25")
        self.assertEqual(ssock["Accept"], ["yes"])
        self.assertIn("MaxConnections", ssock)
        self.assertIn("MaxConnectionsPerSource", ssock)
        ssvc = self.unit("mysmtp-smtp@.service")
        self.assertEqual(ssvc["Service"]["StandardInput"], ["socket"])
        self.assertEqual(ssvc["Unit"]["CollectMode"], ["inactive-or-failed"])
        self.assertIn("-S", exec_start(ssvc), "the SMTP service runs mysmtpd -S")
        for u in (u for u in UNITS if u.endswith(".socket") and "listener" not in u):
            with self.subTest(unit=u):
                s = self.unit(u)["Socket"]
                self.assertEqual(2 * int(s["MaxConnectionsPerSource"][0]),
                                 int(s["MaxConnections"][0]), "per source: half, as -p")
        for name, s in (("mysmtp@.service", svc["Service"]), ("mysmtp-listener.service", lsvc),
                        ("mysmtp-smtp@.service", ssvc["Service"])):
            with self.subTest(unit=name):
                self.assertEqual(s["User"], ["mysmtp"])
                self.assertEqual(s["StateDirectory"], ["mysmtp"])
                self.assertEqual(s["PrivateNetwork"], ["yes"])
                self.assertEqual(s["ProtectSystem"], ["strict"])

    # -- systemd-analyze ----------------------------------------------------

    def test_systemd_analyze_verify(self):
        """systemd-analyze verify passes on every installed unit (the ExecStart binary
        pointed at the staged copy, man pages looked up in the staged tree)."""
        self.assertTrue(os.access(ANALYZE, os.X_OK), "systemd-analyze is not installed")
        vdir = os.path.join(self.root, "verify")
        os.mkdir(vdir)
        binary = PREFIX + "/sbin/mysmtpd"
        for u in UNITS:
            with open(self.staged(UNITDIR + "/" + u)) as f:
                text = f.read()
            with open(os.path.join(vdir, u), "w") as f:
                f.write(text.replace("ExecStart=" + binary, "ExecStart=" + self.staged(binary)))
        env = dict(os.environ, MANPATH=self.staged(PREFIX + "/share/man"), SYSTEMD_PAGER="cat")
        for u in UNITS:
            with self.subTest(unit=u):
                rc, out, err = run([ANALYZE, "verify", "--man=yes", os.path.join(vdir, u)],
                                   env=env)
                ours = [l for l in (out + err).splitlines()
                        if "mysmtp" in l or vdir in l]
                self.assertEqual(ours, [], "systemd-analyze verify %s" % u)
                self.assertEqual(rc, 0, "systemd-analyze verify %s: %s%s" % (u, out, err))

    def test_systemd_analyze_security(self):
        """Each installed service's offline exposure rating is at most 1.5."""
        self.assertTrue(os.access(ANALYZE, os.X_OK), "systemd-analyze is not installed")
        for u in SERVICES:
            with self.subTest(unit=u):
                rc, out, err = run([ANALYZE, "security", "--offline=true", "--no-pager",
                                    self.staged(UNITDIR + "/" + u)],
                                   env=dict(os.environ, SYSTEMD_COLORS="0"))
                m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
                self.assertTrue(m, "no rating from systemd-analyze security %s:\n%s%s" % (u, out, err))
                level = float(m.group(1))
                print("[%s: %.1f]" % (u, level), end=" ", flush=True)
                self.assertLessEqual(level, MAX_EXPOSURE, "%s is rated %.1f:\n%s" % (u, level, out))

    # -- the services' command lines ---------------------------------------

    def activator(self, argv, accept):
        """systemd-socket-activate on a free port of 127.0.0.1, ready to connect."""
        self.assertTrue(os.access(ACTIVATE, os.X_OK), "systemd-socket-activate is not installed")
        env_opts = []
        for n in sanitizer_env_names():
            env_opts += ["-E", n]
        last = None
        for _ in range(3):
            port = free_port()
            opts = ["--inetd", "-a"] if accept else []
            p = self.spawn([ACTIVATE] + opts + ["-l", "127.0.0.1:%d" % port] + env_opts + argv)
            try:
                p.wait_log(r"Listening on 127\.0\.0\.1:%d" % port)
                return p, port
            except AssertionError as e:      # the port was taken meanwhile
                last = e
                p.kill()
        raise last

    def test_per_connection_service(self):
        """mysmtp@.service's ExecStart, one per connection on stdin/stdout
        (systemd-socket-activate --inetd -a): two sessions; the peer comes from
        getpeername (no REMOTE_ADDR here)."""
        owner = unprivileged()
        store = self.store(owner)
        argv = sandbox_prefix() + self.command_line("mysmtp@.service", store)
        act, port = self.activator(argv, accept=True)
        seed_session(self, port, 1)
        seed_session(self, port, 2)
        deadline = time.monotonic() + WAIT
        while act.log().count(b"Client disconnected.") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        log = act.log().decode("latin-1")
        self.assertEqual(log.count("Client connected: 127.0.0.1\n"), 4, log)
        self.assertEqual(log.count("Client disconnected.\n"), 4, log)
        self.check_store(store, 2, owner)

    def test_installed_server_is_closed(self):
        """With the accounts file make install made (empty), the per-connection
        service takes no login and no mail, in either dialect."""
        owner = unprivileged()
        store = self.store(owner)
        empty = os.path.join(self.root, "empty-accounts")
        shutil.copy(self.staged(ACCOUNTS), empty)
        os.chmod(empty, 0o644)
        argv = sandbox_prefix() + self.command_line("mysmtp@.service", store, empty)
        act, port = self.activator(argv, accept=True)
        closed_session(self, port)
        argv = sandbox_prefix() + self.command_line("mysmtp-smtp@.service", store, empty)
        act, port = self.activator(argv, accept=True)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="test.com", timeout=WAIT) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused):
                s.sendmail("someone@example.org", ["david@test.com"], SMTP_MESSAGE)
        self.assertEqual(os.listdir(store), [], "nothing stored")

    def test_reinstall_keeps_the_accounts_file(self):
        dest = os.path.join(self.root, "again")
        os.makedirs(dest + os.path.dirname(ACCOUNTS))
        with open(dest + ACCOUNTS, "w") as f:
            f.write("david@test.com:$y$j9T$x$y\n")
        os.chmod(dest + ACCOUNTS, 0o600)
        rc, out, err = make("install", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
        self.assertEqual(rc, 0, out + err)
        with open(dest + ACCOUNTS) as f:
            self.assertEqual(f.read(), "david@test.com:$y$j9T$x$y\n")
        self.assertEqual(os.stat(dest + ACCOUNTS).st_mode & 0o7777, 0o600)

    def test_smtps_per_connection_service(self):
        """mysmtp-smtps@.service (port 465): the key and certificate from
        LoadCredential=, implicit TLS, a login and a delivery with
        smtplib.SMTP_SSL."""
        unit = self.unit("mysmtp-smtps@.service")["Service"]
        self.assertEqual(unit["LoadCredential"], ["tls-cert:/etc/mysmtp/tls/cert.pem",
                                                  "tls-key:/etc/mysmtp/tls/key.pem"])
        self.assertEqual(self.unit("mysmtp-smtps.socket")["Socket"]["ListenStream"], ["465"])
        owner = unprivileged()
        store = self.store(owner)
        argv = sandbox_prefix() + self.command_line("mysmtp-smtps@.service", store)
        self.assertIn("--tls-implicit", argv)
        act, port = self.activator(argv, accept=True)
        ctx = ssl.create_default_context(cafile=self.tls_cert)
        with smtplib.SMTP_SSL("localhost", port, local_hostname="test.com", timeout=WAIT,
                              context=ctx) as s:
            s.login("john@test.com", PASSWORDS["john@test.com"])
            self.assertEqual(s.sendmail("john@test.com", ["david@test.com"], SMTP_MESSAGE), {})
        act.wait_log(r"TLS started: TLSv1\.[23]")
        self.check_store(store, 1, owner)

    def test_submission_per_connection_service(self):
        """mysmtp-submission@.service (port 587): the key and certificate from
        LoadCredential=; MAIL before a login gets 530; after STARTTLS smtplib
        logs in with AUTH LOGIN (the user name on the AUTH line) and sends."""
        unit = self.unit("mysmtp-submission@.service")["Service"]
        self.assertEqual(unit["LoadCredential"], ["tls-cert:/etc/mysmtp/tls/cert.pem",
                                                  "tls-key:/etc/mysmtp/tls/key.pem"])
        self.assertEqual(self.unit("mysmtp-submission.socket")["Socket"]["ListenStream"], ["587"])
        owner = unprivileged()
        store = self.store(owner)
        argv = sandbox_prefix() + self.command_line("mysmtp-submission@.service", store)
        self.assertIn("--submission", argv)
        self.assertNotIn("--tls-implicit", argv)
        act, port = self.activator(argv, accept=True)
        ctx = ssl.create_default_context(cafile=self.tls_cert)
        with smtplib.SMTP("localhost", port, local_hostname="test.com", timeout=WAIT) as s:
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.sendmail("john@test.com", ["david@test.com"], SMTP_MESSAGE)
            self.assertEqual((e.exception.smtp_code, e.exception.smtp_error),
                             (530, b"5.7.0 Authentication required"))
            s.starttls(context=ctx)
            s.ehlo("test.com")
            self.assertEqual(s.esmtp_features["auth"].split(), ["PLAIN", "LOGIN"])
            s.user, s.password = "john@test.com", PASSWORDS["john@test.com"]
            self.assertEqual(s.auth("LOGIN", s.auth_login)[0], 235)
            self.assertEqual(s.sendmail("john@test.com", ["david@test.com"], SMTP_MESSAGE), {})
        act.wait_log(r"Authenticated john@test\.com from 127\.0\.0\.1")
        self.check_store(store, 1, owner)

    def test_tls_drop_ins_keep_each_units_options(self):
        """The STARTTLS drop-ins of mysmtpd(8), section TLS, each on the unit it
        names: its ExecStart= is the unit's own, options and all (-S,
        --pop3), with the credentials' files added; every per-connection unit
        without TLS of its own has one."""
        seen = []
        for block in man_examples("TLS"):
            m = re.match(r"# systemctl edit (\S+)", block)
            if not m or "ExecStart=" not in block:
                continue
            name = m.group(1)
            seen.append(name)
            with self.subTest(unit=name):
                path = os.path.join(self.root, "drop-in.conf")
                with open(path, "w") as f:
                    f.write(block)
                drop = parse_unit(path)["Service"]
                self.assertEqual(drop["ExecStart"][0], "", "ExecStart= is reset first")
                self.assertEqual(drop["LoadCredential"], ["tls-cert:/etc/mysmtp/tls/cert.pem",
                                                          "tls-key:/etc/mysmtp/tls/key.pem"])
                own = exec_start(self.unit(name))
                new = exec_start(parse_unit(path))
                self.assertEqual(os.path.basename(new[0]), "mysmtpd")
                tls = ["--tls-cert", "%d/tls-cert", "--tls-key", "%d/tls-key"]
                i = new.index("--tls-cert")
                self.assertEqual(new[i:i + 4], tls)
                self.assertEqual(new[1:i] + new[i + 4:], own[1:],
                                 "the drop-in keeps the unit's own options")
        self.assertEqual(sorted(seen), ["mysmtp-pop3@.service", "mysmtp-smtp@.service",
                                        "mysmtp@.service"])

    def test_tcpserver_example(self):
        """The tcpserver(1) line of mysmtpd(8), EXAMPLES, run by sh as it is,
        with nobody for the user mysmtp, a free port for 2525 and a
        temporary store and accounts file: it binds 127.0.0.1 alone, serves
        the seed's session with accounts, and the session's process runs as
        that user, not root."""
        self.assertTrue(os.access(TCPSERVER, os.X_OK),
                        "tcpserver is not installed (Debian package ucspi-tcp)")
        who = unprivileged()
        self.assertIsNotNone(who, "run as root, with a user nobody")
        lines = [b for b in man_examples("EXAMPLES") if b.startswith("tcpserver ")]
        self.assertEqual(len(lines), 1, "one tcpserver example")
        line = lines[0]
        store = self.store(who)
        port = free_port()
        for old, new in (("id -u mysmtp)", "id -u nobody)"), ("id -g mysmtp)", "id -g nobody)"),
                         (" 2525 ", " %d " % port), ("/etc/mysmtp/accounts", self.accounts),
                         ("/var/lib/mysmtp", store)):
            self.assertEqual(line.count(old), 1, "%r in %r" % (old, line))
            line = line.replace(old, new)
        self.assertIn(" 127.0.0.1 %d " % port, line, "bound to one address")
        env = dict(os.environ, PATH=os.path.dirname(self.server) + ":" + os.environ["PATH"])
        p = self.spawn(["sh", "-c", "exec " + line], env=env)
        self.wait_listening(p, port)
        s = open_session(self, port, "john@test.com")
        served = self.children(p.pid)
        self.assertEqual(len(served), 1, "one session process under tcpserver")
        with open("/proc/%d/status" % served[0]) as f:
            uids = re.search(r"(?m)^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", f.read()).groups()
        self.assertEqual(set(int(u) for u in uids), {who[0]}, "the session runs as nobody")
        close_session(self, s)
        seed_session(self, port, 1)
        self.check_store(store, 1, who)
        with socket.socket() as other:          # 127.0.0.1 only: not the host's other addresses
            other.settimeout(WAIT)
            self.assertNotEqual(other.connect_ex(("127.0.0.2", port)), 0)

    def children(self, pid):
        """The pids of pid's children."""
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]

    def wait_listening(self, p, port):
        deadline = time.monotonic() + WAIT
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            self.assertIsNone(p.proc.poll(), "tcpserver exited: %r" % p.log()[-800:])
            self.assertLess(time.monotonic(), deadline, "tcpserver does not listen")
            time.sleep(0.05)

    def pop3_round(self, port, ctx=None):
        """Fetch every message of david@test.com, delete the first, quit."""
        if ctx is None:
            p = poplib.POP3("127.0.0.1", port, timeout=WAIT)
        else:
            p = poplib.POP3_SSL("localhost", port, timeout=WAIT, context=ctx)
        self.addCleanup(p.close)
        p.user("david@test.com")
        p.pass_(PASSWORDS["david@test.com"])
        count = p.stat()[0]
        for n in range(1, count + 1):
            self.assertIn(b"Hope you are doing well.", p.retr(n)[1])
        p.dele(1)
        self.assertTrue(p.quit().startswith(b"+OK"))
        return count

    def test_pop3_per_connection_services(self):
        """mysmtp-pop3@.service (port 110) and mysmtp-pop3s@.service (995,
        implicit TLS, the key and certificate by LoadCredential=), run as
        the service user in their sandbox: poplib fetches what the My_SMTP
        unit delivered, and a DELE at QUIT (O_TMPFILE, linkat through
        /proc/self/fd, rename) leaves a whole mailbox of the right owner."""
        self.assertEqual(self.unit("mysmtp-pop3.socket")["Socket"]["ListenStream"], ["110"])
        self.assertEqual(self.unit("mysmtp-pop3s.socket")["Socket"]["ListenStream"], ["995"])
        owner = unprivileged()
        store = self.store(owner)
        argv = sandbox_prefix() + self.command_line("mysmtp@.service", store)
        act, port = self.activator(argv, accept=True)
        for i in range(3):
            seed_session(self, port, i + 1)
        argv = sandbox_prefix() + self.command_line("mysmtp-pop3@.service", store)
        act, port = self.activator(argv, accept=True)
        self.assertEqual(self.pop3_round(port), 3)
        argv = sandbox_prefix() + self.command_line("mysmtp-pop3s@.service", store)
        self.assertIn("--tls-implicit", argv)
        act, port = self.activator(argv, accept=True)
        ctx = ssl.create_default_context(cafile=self.tls_cert)
        self.assertEqual(self.pop3_round(port, ctx), 2)
        self.check_store(store, 1, owner)
        self.assertEqual(sorted(n for n in os.listdir(store) if n.startswith("david")),
                         ["david@test.com.idx", "david@test.com.pop", "david@test.com.txt"])

    def test_smtp_per_connection_service(self):
        """mysmtp-smtp@.service's ExecStart (mysmtpd -S), one per connection: two
        deliveries with Python's smtplib into the same store as My_SMTP's."""
        owner = unprivileged()
        store = self.store(owner)
        argv = sandbox_prefix() + self.command_line("mysmtp-smtp@.service", store)
        act, port = self.activator(argv, accept=True)
        smtp_session(self, port)
        smtp_session(self, port)
        deadline = time.monotonic() + WAIT
        while act.log().count(b"Client disconnected.") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        log = act.log().decode("latin-1")
        self.assertEqual(log.count("EHLO received from test.com\n"), 2, log)
        self.assertEqual(log.count("Client disconnected.\n"), 2, log)
        self.check_store(store, 2, owner)

    def test_listener_service(self):
        """mysmtp-listener.service's ExecStart given the listening socket (LISTEN_FDS):
        it reports READY=1, serves sessions at once, and on SIGTERM (systemctl stop,
        KillMode=mixed) lets the open session finish, then exits 0."""
        owner = unprivileged()
        store = self.store(owner)
        notify_path = os.path.join(self.root, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        notify.bind(notify_path)
        os.chmod(notify_path, 0o666)
        argv = sandbox_prefix() + self.command_line("mysmtp-listener.service", store) + \
            listener_extra(self)
        act, port = self.activator(["-E", "NOTIFY_SOCKET=" + notify_path] + argv, accept=False)
        first = Session(port)            # makes the activator exec the server
        self.addCleanup(first.close)
        self.assertRegex(first.line(), r"^200 \S+ My_SMTP ready$")
        notify.settimeout(WAIT)
        self.assertIn(b"READY=1", notify.recv(4096).split(b"\n"), "sd_notify READY=1")
        self.assertEqual(first.cmd("HELO test.com"), "200 OK")
        seed_session(self, port, 1)       # while the first session is open
        self.assertEqual(first.cmd("NOOP"), "200 OK")
        seed_session(self, port, 2)
        act.proc.send_signal(signal.SIGTERM)
        # The first session is open; the second may not be reaped yet if its
        # exit and the SIGTERM cross.
        act.wait_log(r"Stopping: waiting for [12] session")
        self.assertEqual(first.cmd("NOOP"), "200 OK", "the open session goes on after SIGTERM")
        self.assertEqual(first.cmd("QUIT"), "200 Goodbye")
        self.assertEqual(act.wait(), 0, "exit status after SIGTERM")
        log = act.log().decode("latin-1")
        self.assertRegex(log, r"(?m)^\[\d+\] Client connected: 127\.0\.0\.1$")
        self.assertEqual(len(re.findall(r"(?m)^\[\d+\] Client connected: 127\.0\.0\.1$", log)), 5, log)
        self.check_store(store, 2, owner)

    # -- xinetd ---------------------------------------------------------------

    @alone(SYSLOG)
    def test_xinetd_entry(self):
        """The installed xinetd entry, under a real xinetd in the foreground: a whole
        session, the log in syslog (facility mail, ident mysmtpd), none of it to the client."""
        self.run_xinetd("mysmtp", "2525", "", lambda port: seed_session(self, port, 1),
                        ("Client connected: 127.0.0.1", "HELO received from test.com",
                         "MAIL FROM: john@test.com", "RCPT TO: david@test.com",
                         "DATA received, message stored.", "LIST david@test.com",
                         "GET_MAIL david@test.com 1", "Client disconnected.",
                         "Authenticated john@test.com from 127.0.0.1",
                         "Authenticated david@test.com from 127.0.0.1"), 2)

    @alone(SYSLOG)
    def test_smtp_xinetd_entry(self):
        """The installed standard SMTP entry (mysmtpd -S, port 2526) the same way,
        with a delivery by Python's smtplib."""
        self.run_xinetd("mysmtp-smtp", "2526", "-S ", lambda port: smtp_session(self, port),
                        ("Client connected: 127.0.0.1", "EHLO received from test.com",
                         "MAIL FROM: <john@test.com>", "RCPT TO: david@test.com",
                         "DATA received, message stored.", "Client disconnected.",
                         "Authenticated john@test.com from 127.0.0.1"), 1)

    @alone(SYSLOG)
    def test_pop3_xinetd_entry(self):
        """The installed POP3 entry (mysmtpd --pop3, port 110) the same way:
        poplib logs in to an empty mailbox and quits."""
        def session(port):
            p = poplib.POP3("127.0.0.1", port, timeout=WAIT)
            self.addCleanup(p.close)
            p.user("david@test.com")
            p.pass_(PASSWORDS["david@test.com"])
            self.assertEqual(p.stat(), (0, 0))
            p.quit()
        self.run_xinetd("mysmtp-pop3", "110", "--pop3 ", session,
                        ("Client connected: 127.0.0.1", "Authenticated david@test.com from 127.0.0.1",
                         "0 messages deleted from david@test.com.", "Client disconnected."), 1,
                        stored=0)

    def run_xinetd(self, service, port_number, options, session, wants, connections, stored=1):
        """Check the installed entry for service, run it under xinetd (port, user,
        store rewritten), run session(port), find wants in its syslog lines, and
        the stored messages in the store."""
        self.assertTrue(os.access(XINETD, os.X_OK), "xinetd is not installed (Debian package xinetd)")
        with open(self.staged("/etc/xinetd.d/" + service)) as f:
            entry = f.read()
        attrs = xinetd_attrs(entry)
        for name, value in (("socket_type", "stream"), ("wait", "no"), ("user", "mysmtp"),
                            ("port", port_number), ("server", PREFIX + "/sbin/mysmtpd"),
                            ("server_args", options + "--accounts " + ACCOUNTS + " -d " + STATEDIR)):
            self.assertEqual(attrs.get(name), value, "xinetd attribute %s" % name)
        for name in ("instances", "per_source", "cps", "log_on_success", "log_on_failure"):
            self.assertIn(name, attrs, "xinetd attribute %s" % name)
        self.assertEqual(2 * int(attrs["per_source"]), int(attrs["instances"]), "half, as -p")
        self.assertRegex(entry, r"(?m)^\s*#\s*bind\s*=", "a commented bind example")
        self.assertRegex(entry, r"(?m)^\s*#\s*only_from\s*=", "a commented only_from example")
        self.assertEqual(os.geteuid(), 0, "xinetd needs root to start servers as another user")

        who = unprivileged()
        store = self.store(who)
        port = free_port()
        for name, value in (("disable", "no"), ("port", str(port)), ("bind", "127.0.0.1"),
                            ("user", who[2]), ("group", who[3]), ("server", self.server),
                            ("server_args", options + "--accounts " + self.accounts + " -d " + store)):
            entry = set_xinetd_attr(entry, name, value)
        env = " ".join("%s=%s" % (n, os.environ[n]) for n in sanitizer_env_names())
        if env:
            entry = set_xinetd_attr(entry, "env", env)
        conf = os.path.join(self.root, "xinetd.conf")
        with open(conf, "w") as f:
            f.write("defaults\n{\n}\n\n" + entry)

        syslog, wrap = self.fake_syslog()
        pidfile = os.path.join(self.root, "xinetd.pid")
        xi = self.spawn(wrap + [XINETD, "-dontfork", "-f", conf, "-pidfile", pidfile])
        # Read syslog all the time, as a syslog daemon does: its queue holds
        # only net.unix.max_dgram_qlen (often 10) lines, and a sender blocks
        # when it is full.
        lines = []
        stop = threading.Event()

        def drain():
            while not stop.is_set():
                r, _, _ = select.select([syslog], [], [], 0.1)
                if r:
                    lines.append(syslog.recv(65536).decode("latin-1"))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        self.addCleanup(reader.join, 5)
        self.addCleanup(stop.set)

        def wait_syslog(pattern):
            deadline = time.monotonic() + WAIT
            while True:
                for l in list(lines):
                    if re.search(pattern, l):
                        return l
                if time.monotonic() > deadline or xi.proc.poll() is not None:
                    raise AssertionError("no syslog line %r (xinetd exit %s; log %r); got %r"
                                         % (pattern, xi.proc.poll(), xi.log()[-800:], lines[-20:]))
                time.sleep(0.05)

        wait_syslog(r"xinetd\[\d+\]: Started working")
        session(port)
        deadline = time.monotonic() + WAIT
        while True:
            ends = [l for l in list(lines) if re.search(r"mysmtpd\[\d+\]: Client disconnected\.$", l)]
            if len(ends) >= connections or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pids = [re.search(r"mysmtpd\[(\d+)\]: ", l).group(1) for l in ends]
        self.assertEqual(len(pids), connections, "sessions that ended: %r" % lines[-20:])
        for pid in pids:
            wait_syslog(r"xinetd\[\d+\]: EXIT: %s status=0 pid=%s" % (re.escape(service), pid))
        ours = [l for l in lines if re.search(r"mysmtpd\[(%s)\]: " % "|".join(pids), l)]
        texts = [re.split(r"mysmtpd\[\d+\]: ", l, 1)[1] for l in ours]
        for want in wants:
            self.assertIn(want, texts, "syslog lines of mysmtpd: %r" % texts)
        for l in ours:
            self.assertTrue(l.startswith("<22>"), "facility mail, level info: %r" % l)
        if stored:
            self.check_store(store, stored, who)

    def fake_syslog(self):
        """A datagram socket that receives what is sent to /dev/log: bound at /dev/log
        when there is none (removed at cleanup), else bind-mounted over it in a private
        mount namespace for xinetd and its children. Returns (socket, argv prefix)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if not os.path.lexists("/dev/log"):
            sock.bind("/dev/log")
            self.addCleanup(lambda: os.path.exists("/dev/log") and os.unlink("/dev/log"))
            os.chmod("/dev/log", 0o666)
            return sock, []
        self.assertTrue(os.path.exists("/dev/log"), "/dev/log is a dangling symbolic link")
        path = os.path.join(self.root, "log.sock")
        sock.bind(path)
        os.chmod(path, 0o666)
        unshare = shutil.which("unshare")
        self.assertTrue(unshare, "/dev/log exists and unshare(1) is missing: cannot catch syslog")
        return sock, [unshare, "--mount", "--propagation", "private", "sh", "-c",
                      'mount --bind "$0" /dev/log && exec "$@"', path]

    # -- man pages ------------------------------------------------------------

    def test_man_pages(self):
        """The installed pages render without a warning (groff -ww, mandoc -T lint)
        and name every option of -h and every exit status."""
        pages = [self.staged(PREFIX + "/share/man/man8/mysmtpd.8"),
                 self.staged(PREFIX + "/share/man/man1/mysmtp.1")]
        groff = shutil.which("groff")
        mandoc = shutil.which("mandoc")
        self.assertTrue(groff or mandoc, "neither groff nor mandoc is installed")
        for page in pages:
            with self.subTest(page=os.path.basename(page)):
                if groff:
                    rc, out, err = run([groff, "-ww", "-man", "-Tutf8", page])
                    self.assertEqual((rc, err), (0, ""), "groff -ww on %s" % page)
                if mandoc:
                    rc, out, err = run([mandoc, "-T", "lint", page])
                    self.assertEqual((rc, out + err), (0, ""), "mandoc -T lint on %s" % page)
        for binary, page, codes in ((SERVER, pages[0], (0, 64, 69, 71, 74, 75)),
                                    (CLIENT, pages[1], None)):
            with self.subTest(help=os.path.basename(binary)):
                rc, out, err = run([binary, "-h"], timeout=WAIT)
                self.assertEqual(rc, 0, err)
                with open(page) as f:
                    text = f.read()
                for opt in sorted(set(re.findall(r"(?<![\w-])(-[A-Za-z])\b", out))):
                    self.assertIn("\\" + opt, text, "option %s of %s -h" % (opt, binary))
                if codes is None:
                    codes = [int(c) for c in re.findall(r"(?m)^\s+(\d+)\s+\S", out.split("Exit status")[1])]
                    self.assertIn(64, codes)
                status = text.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
                for c in codes:
                    self.assertRegex(status, r"(?m)^\.B %d$" % c, "exit status %d in %s" % (c, page))


class Uninstall(unittest.TestCase):
    def test_install_then_uninstall(self):
        """make uninstall removes every file install put in DESTDIR, and the store,
        but keeps a store that holds mail."""
        tmp = tempfile.mkdtemp(prefix="mysmtp-uninstall-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for keep_mail in (False, True):
            with self.subTest(keep_mail=keep_mail):
                dest = os.path.join(tmp, "dest%d" % keep_mail)
                args = ("DESTDIR=" + dest, "PREFIX=" + PREFIX)
                rc, out, err = make("install", *args)
                self.assertEqual(rc, 0, out + err)
                for path in INSTALLED + [STATEDIR]:
                    self.assertTrue(os.path.lexists(dest + path), path)
                if keep_mail:
                    with open(dest + STATEDIR + "/david@test.com.txt", "w") as f:
                        f.write("From john@test.com Thu Jan  1 00:00:00 2025\n\nhi\n\n")
                rc, out, err = make("uninstall", *args)
                self.assertEqual(rc, 0, out + err)
                left = [os.path.join(d, n) for d, _, names in os.walk(dest) for n in names]
                if keep_mail:
                    self.assertEqual(left, [dest + STATEDIR + "/david@test.com.txt"])
                    self.assertIn("kept", out + err)
                else:
                    self.assertEqual(left, [], "files left after make uninstall")
                    self.assertFalse(os.path.exists(dest + STATEDIR), "the empty store stays")


if __name__ == "__main__":
    unittest.main()
