"""test_listener.py: mysmtpd -l [ADDR:]PORT (PROTOCOL.md section 5, listening)."""

import os
import re
import signal
import socket
import sys
import time

from support import (DATA_PROMPT, SANITIZER_MARKS, SEED_BODY, SEED_LOG, SERVER, SLOW, STORED,
                     TcpSession, env_under_strace, listener_extra, reset,
                     ServerTest, is_subsequence, mailbox_file, read_bytes, seed_session)

PREFIX_RE = re.compile(r"^\[(\d+)\] (.*)$")


class Listener(ServerTest):
    def stop(self, server):
        """SIGTERM with no session open: the server exits 0."""
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(), 0, "exit status after SIGTERM (99 = ASan, 98 = UBSan)")

    def test_two_concurrent_clients(self):
        d = self.mkdir()
        server, port = self.start_listener(d)
        a = self.tcp_session(port)
        b = self.tcp_session(port)
        for line in ("HELO test.com", "MAIL FROM: john@test.com", "RCPT TO: david@test.com"):
            self.ok(a, line)
            self.ok(b, line)
        self.assertEqual(a.cmd("DATA"), DATA_PROMPT)
        self.assertEqual(b.cmd("DATA"), DATA_PROMPT)
        a.send(b"Hello David,\r\n")
        b.send(b"Hello David,\r\n")
        a.send(b"Hope you are doing well.\r\n")
        b.send(b"Hope you are doing well.\r\n")
        self.assertEqual(a.cmd("."), STORED)
        self.assertEqual(b.cmd("."), STORED)
        for c, n in ((a, 1), (b, 2)):
            r, entries = c.list("david@test.com")
            self.assertEqual(r, "200 OK")
            self.assertEqual([(e[0], e[1]) for e in entries], [(1, "john@test.com"), (2, "john@test.com")])
            r, sender, date, text = c.get_mail("david@test.com", n)
            self.assertEqual((r, sender, text), ("200 OK", "john@test.com", SEED_BODY))
        self.quit(a)
        self.quit(b)
        self.check_mbox(d, "david@test.com", [SEED_BODY, SEED_BODY], sender="john@test.com",
                        helo="test.com", peer="127.0.0.1")
        self.stop(server)

    def test_seed_session_then_log_order(self):
        d = self.mkdir()
        server, port = self.start_listener(d)
        c = self.tcp_session(port)
        seed_session(self, c)
        server.wait_log(r"Client disconnected\.$")
        self.stop(server)
        lines = server.log_lines()
        self.assertTrue(lines, "no log lines")
        self.assertIn(lines[0], ("Listening on port %d (127.0.0.1)..." % port,
                                 "[%d] Listening on port %d (127.0.0.1)..." % (server.pid, port)),
                      "first log line")
        parsed = []
        for l in lines[1:]:
            m = PREFIX_RE.match(l)
            parsed.append((int(m.group(1)), m.group(2)) if m else (None, l))
        msgs = [m for _, m in parsed]
        self.assertTrue(is_subsequence(["Client connected: 127.0.0.1"] + SEED_LOG, msgs),
                        "log lines missing or out of order:\n%s" % "\n".join(lines))
        pids = {p for p, m in parsed if m in SEED_LOG or m.startswith("Client connected")}
        self.assertEqual(len(pids), 1, "one session's lines carry one [pid]: %s" % lines)
        self.assertNotIn(None, pids, "session lines carry a [pid] prefix: %s" % lines)

    def test_max_sessions(self):
        d = self.mkdir()
        server, port = self.start_listener(d, ["-c", "1"])
        a = self.tcp_session(port)
        self.ok(a, "HELO test.com")
        b = self.tcp_session(port, greet=False)
        self.assertEqual(b.reply(), "500 SERVER ERROR too many connections")
        b.expect_eof()
        self.ok(a, "NOOP")
        self.quit(a)
        # Once the first session is gone, a new one is served (the parent reaps
        # its child asynchronously: poll).
        deadline = time.monotonic() + 5 * SLOW
        while True:
            c = self.tcp_session(port, greet=False)
            g = c.reply()
            if g.startswith("200 "):
                break
            self.assertEqual(g, "500 SERVER ERROR too many connections")
            c.close()
            self.assertLess(time.monotonic(), deadline, "slot never freed after QUIT")
            time.sleep(0.05)
        seed_session(self, c)
        self.stop(server)

    def test_sigterm_lets_open_session_finish(self):
        d = self.mkdir()
        server, port = self.start_listener(d)
        a = self.tcp_session(port)
        self.begin_message(a, "david@test.com", b"Hello David,")
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5 * SLOW
        refused = False
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                s.close()
            except ConnectionRefusedError:
                refused = True
                break
            except OSError:
                pass
            time.sleep(0.02)
        self.assertTrue(refused, "connections still accepted after SIGTERM")
        self.assertIsNone(server.proc.poll(), "server exited with a session open")
        a.send(b"Hope you are doing well.\r\n")
        self.assertEqual(a.cmd("."), STORED)
        r, entries = a.list("david@test.com")
        self.assertEqual((r, len(entries)), ("200 OK", 1))
        self.quit(a)
        self.assertEqual(server.wait(5 * SLOW), 0, "exit status after SIGTERM and the last session")
        self.check_mbox(d, "david@test.com", [SEED_BODY], sender="john@test.com", peer="127.0.0.1")

    def test_client_vanishes_mid_message(self):
        d = self.mkdir()
        server, port = self.start_listener(d)
        a = self.tcp_session(port)
        self.begin_message(a, "v@test.com", b"half of it")
        reset(a)
        b = self.tcp_session(port)
        seed_session(self, b)
        server.wait_log(r"Client disconnected\.$")
        self.assertFalse(read_bytes(mailbox_file(d, "v@test.com")), "half a message stored")
        self.stop(server)

    def test_per_peer_default_is_half_the_session_cap(self):
        """Without -p a peer may hold half of -c: with the default -c 64,
        nine sessions from 127.0.0.1 are served (an office behind NAT, a
        load test); with -c 4 the third is refused while 127.0.0.2 is served."""
        d = self.mkdir()
        server, port = self.start_listener(d)
        for _ in range(9):
            self.tcp_session(port)
        self.assertFalse([l for l in server.log_lines() if "refused" in l])
        server, port = self.start_listener(d, ["-c", "4"])
        first, second = self.tcp_session(port), self.tcp_session(port)
        third = self.tcp_session(port, greet=False)
        self.assertEqual(third.reply(), "500 SERVER ERROR too many connections")
        server.wait_log(r"Too many connections from one address; refused 127\.0\.0\.1$")
        other = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW,
                                         source_address=("127.0.0.2", 0))
        self.closers.append(other.close)
        self.assertRegex(other.makefile("rb").readline().decode(), r"^200 \S+ My_SMTP ready\r\n$")


# Run by PeerKeys in a network namespace of its own (unshare --net), where
# it may add addresses to the loopback device: argv SERVER DIR LOG WAIT;
# prints what each client was told first, by case, and the server's log.
NAMESPACE_SCRIPT = r'''
import json, os, signal, socket, subprocess, sys, time
SERVER, D, LOG, WAIT = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
NET = "2001:db8::"
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for a in ("1", "2", "3", "4"):
    subprocess.run(["ip", "addr", "add", NET + a + "/64", "dev", "lo", "nodad"], check=True)
subprocess.run(["ip", "addr", "add", "2001:db8:0:1::2/64", "dev", "lo", "nodad"], check=True)
held, out = [], {}


def first_line(family, host, port, source):
    s = socket.socket(family, socket.SOCK_STREAM)
    held.append(s)
    s.settimeout(WAIT)
    s.bind((source, 0))
    s.connect((host, port))
    return s.makefile("rb").readline().decode("latin-1").rstrip("\r\n")


def serve(argv, port, **kw):
    log = open(LOG, "ab")
    before = open(LOG, "rb").read().count(b"Listening on port %d" % port)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, **kw)
    deadline = time.monotonic() + WAIT
    while open(LOG, "rb").read().count(b"Listening on port %d" % port) == before:
        if time.monotonic() > deadline or p.poll() is not None:
            raise SystemExit("no listener: %r" % open(LOG, "rb").read())
        time.sleep(0.02)
    return p


def stop(p):
    while held:
        held.pop().close()
    p.send_signal(signal.SIGTERM)
    p.wait(WAIT)


def six(args, sources):
    p = serve([SERVER, "-d", D, "-l", "[2001:db8::1]:2525"] + args, 2525)
    try:
        return [first_line(socket.AF_INET6, NET + "1", 2525, s) for s in sources]
    finally:
        stop(p)


out["/64"] = six(["-p", "2"], [NET + "2", NET + "3", NET + "4", "2001:db8:0:1::2"])
out["/128"] = six(["-p", "2", "--ipv6-peer-prefix", "128"], [NET + "2", NET + "3", NET + "4"])
lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
lsock.bind(("::", 2526))
lsock.listen(16)
os.dup2(lsock.fileno(), 3)
os.set_inheritable(3, True)
p = serve(["sh", "-c", 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', "sh",
           SERVER, "-d", D, "-p", "1"], 2526, pass_fds=(3,))
try:
    out["mapped"] = [first_line(socket.AF_INET, "127.0.0.1", 2526, s)
                     for s in ("127.0.0.1", "127.0.0.1", "127.0.0.2")]
finally:
    stop(p)
out["log"] = open(LOG, "rb").read().decode("latin-1")
print(json.dumps(out))
'''


class PeerKeys(ServerTest):
    def test_ipv6_peers_count_by_64_and_mapped_ipv4_by_its_address(self):
        """In a network namespace of its own, with 2001:db8::1 to ::4 and
        2001:db8:0:1::2 on its loopback device: under -p 2, ::2 and ::3 are
        served and ::4, from the same /64, is refused, while 2001:db8:0:1::2
        is served; with --ipv6-peer-prefix 128, ::4 is served. On a
        dual-stack socket from systemd (LISTEN_FDS) under -p 1, IPv4 peers
        arrive as ::ffff:a.b.c.d and count by their IPv4 address: a second
        session from 127.0.0.1 is refused, one from 127.0.0.2 served."""
        import json
        import shutil
        import subprocess
        unshare, ip = shutil.which("unshare"), shutil.which("ip")
        if not (unshare and ip):
            self.skipTest("unshare (util-linux) and ip (iproute2) are needed for a network namespace")
        probe = subprocess.run([unshare, "--net", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("cannot make a network namespace here: %s" % probe.stderr.decode().strip())
        path = os.path.join(self.root, "peers.py")
        with open(path, "w") as f:
            f.write(NAMESPACE_SCRIPT)
        d = self.mkdir()
        r = subprocess.run([unshare, "--net", sys.executable, path, SERVER, d,
                            os.path.join(self.root, "ns.log"), str(10 * SLOW)],
                           capture_output=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        out = json.loads(r.stdout)
        ready, busy = "200 ", "500 SERVER ERROR too many connections"
        self.assertEqual([l[:4] if l.startswith(ready) else l for l in out["/64"]],
                         [ready, ready, busy, ready], out["log"])
        self.assertEqual([l[:4] for l in out["/128"]], [ready] * 3, out["log"])
        self.assertEqual([l[:4] if l.startswith(ready) else l for l in out["mapped"]],
                         [ready, busy, ready], out["log"])
        refused = [l.split("] ", 1)[1] for l in out["log"].splitlines() if "refused" in l]
        self.assertEqual(refused, ["Too many connections from one address; refused " + a
                                   for a in ("2001:db8::4", "127.0.0.1")])
        self.assertFalse([m for m in SANITIZER_MARKS if m.decode() in out["log"]], out["log"])

class OutOfDescriptors(ServerTest):
    def test_accept_failing_does_not_spin_and_sigterm_still_stops_it(self):
        """Under RLIMIT_NOFILE 7 a worker (stdio, the store, one socket, the
        epoll set, the pipe it wakes the master on) cannot accept: each that
        tries logs that once, pauses between tries instead of spinning (the
        CPU time of master and workers well under the wall time), and
        SIGTERM still stops them all."""
        import resource

        def few_fds():
            resource.setrlimit(resource.RLIMIT_NOFILE, (7, 7))
        d = self.mkdir()
        server, port = self.start_listener(d, preexec_fn=few_fds)
        waiting = socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)
        self.addCleanup(waiting.close)
        server.wait_log(r"Cannot accept: Too many open files; pausing$")
        before = _tree_cpu_seconds(server.pid)
        time.sleep(1.0)
        used = _tree_cpu_seconds(server.pid) - before
        self.assertLess(used, 0.5, "the listener used %.2f s of CPU in 1 s" % used)
        said = [l.split("]")[0] for l in server.log_lines() if "Cannot accept" in l]
        self.assertEqual(len(said), len(set(said)), "logged once by each: %s" % said)
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(), 0)


def _tree_cpu_seconds(pid):
    """CPU time of pid and its children, live ones (the workers)."""
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(k) for k in f.read().split()]
    return _cpu_seconds(pid) + sum(_cpu_seconds(k) for k in kids)


def _cpu_seconds(pid):
    """User and system CPU time of a live process, from /proc."""
    import os
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


LONELY_UID = 64917     # a user id no account has: no other process counts against its NPROC


class ForkFails(ServerTest):
    def test_a_failed_fork_is_logged_and_the_connection_closed_once(self):
        """The listener as an unprivileged user under RLIMIT_NPROC 1: no
        worker can be forked, so the master itself answers the client with
        the busy line and the end of the connection, the log says why, and
        no descriptor is closed twice (strace)."""
        import os
        import resource
        import shutil
        setpriv, strace = shutil.which("setpriv"), shutil.which("strace")
        self.assertTrue(setpriv and strace, "setpriv (util-linux) and strace are needed")
        d = self.mkdir()
        os.chmod(self.root, 0o777)
        os.chmod(d, 0o777)
        trace = os.path.join(self.root, "close.trace")
        port = __import__("support").free_port()

        def one_process():
            resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
        server = self.spawn([], argv=[strace, "-o", trace, "-e", "trace=close", setpriv,
                                      "--reuid=%d" % LONELY_UID, "--regid=%d" % LONELY_UID, "--clear-groups",
                                      SERVER, "-d", d, "-l", "127.0.0.1:%d" % port]
                            + listener_extra(self),
                            stdin=__import__("subprocess").DEVNULL,
                            stdout=__import__("subprocess").DEVNULL,
                            preexec_fn=one_process, env=env_under_strace())
        server.wait_log(r"Listening on port %d " % port)
        with open("/proc/%d/task/%d/children" % (server.pid, server.pid)) as f:
            (listener,) = [int(p) for p in f.read().split()]     # strace's child
        self.addCleanup(_kill_quietly, listener)
        c = TcpSession(port)
        self.closers.append(c.close)
        self.assertEqual(c.reply(), "500 SERVER ERROR too many connections")
        c.expect_eof()
        server.wait_log(r"Cannot start a worker: Resource temporarily unavailable$")
        server.wait_log(r"No worker to serve it; refused 127\.0\.0\.1$")
        os.kill(listener, signal.SIGTERM)
        server.wait()
        with open(trace) as f:
            self.assertNotIn("EBADF", f.read(), "a descriptor closed twice")


def _kill_quietly(pid):
    import os
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
