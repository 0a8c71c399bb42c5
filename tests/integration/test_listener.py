"""test_listener.py: mysmtpd -l [ADDR:]PORT (PROTOCOL.md section 5, listening)."""

import re
import signal
import socket
import time

from support import (DATA_PROMPT, SEED_BODY, SEED_LOG, SERVER, SLOW, STORED, TcpSession,
                     env_under_strace, listener_extra, reset,
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
