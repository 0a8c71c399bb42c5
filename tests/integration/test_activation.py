"""test_activation.py: mysmtpd started by systemd-style socket activation
(PROTOCOL.md section 5): inetd style on an accepted socket, and LISTEN_FDS."""

import os
import shutil
import signal
import socket
import subprocess
import time

from support import (SEED_BODY, SERVER, SLOW, ServerTest, child_states, free_port,
                     listener_extra, seed_session)

ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"


def pass_env():
    """systemd-socket-activate passes only a few variables on: name the sanitizers' ones."""
    out = []
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if name in os.environ:
            out += ["-E", name]
    return out


class Activation(ServerTest):
    def activator(self, d, accept):
        self.assertTrue(os.access(ACTIVATE, os.X_OK), "systemd-socket-activate is not installed "
                        "(Debian package systemd)")
        last = None
        for _ in range(3):
            port = free_port()
            opts = ["--inetd", "-a"] if accept else []
            argv = [ACTIVATE] + opts + ["-l", "127.0.0.1:%d" % port] + pass_env() + \
                   [SERVER, "-d", d] + ([] if accept else listener_extra(self))
            s = self.spawn([], argv=argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           new_session=True)
            try:
                s.wait_log(r"Listening on 127\.0\.0\.1:%d" % port)
                return s, port
            except AssertionError as e:
                last = e
                s.kill()
        raise last

    def test_inetd_accept_mode(self):
        """systemd-socket-activate --inetd -a: one mysmtpd per connection on stdin/stdout."""
        d = self.mkdir()
        act, port = self.activator(d, accept=True)
        c = self.tcp_session(port)
        seed_session(self, c, n_expected=1)
        c = self.tcp_session(port)
        seed_session(self, c, n_expected=2, my_id=1)
        self.check_mbox(d, "david@test.com", [SEED_BODY, SEED_BODY], sender="john@test.com",
                        helo="test.com", peer="127.0.0.1")

    def test_listen_fds(self):
        """systemd-socket-activate without -a: mysmtpd gets the listening socket (LISTEN_FDS)."""
        d = self.mkdir()
        act, port = self.activator(d, accept=False)
        a = self.tcp_session(port)      # this connection makes the activator exec mysmtpd
        b = self.tcp_session(port)      # and mysmtpd serves this one at the same time
        self.ok(b, "HELO test.com")
        seed_session(self, a, n_expected=1)
        self.ok(b, "NOOP")
        seed_session(self, b, n_expected=2, my_id=2)
        self.check_mbox(d, "david@test.com", [SEED_BODY, SEED_BODY], sender="john@test.com",
                        peer="127.0.0.1")
        # It is mysmtpd now (exec), listening: SIGTERM ends it cleanly.
        act.proc.send_signal(signal.SIGTERM)
        self.assertEqual(act.wait(), 0, "exit status after SIGTERM")

    def test_listen_fds_direct_with_l_and_notify(self):
        """LISTEN_FDS=1 with -l given too: the passed socket is used, nothing is bound,
        and READY=1 goes to $NOTIFY_SOCKET."""
        d = self.mkdir()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]
        other = free_port()
        npath = os.path.join(self.root, "notify")
        nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(nsock.close)
        nsock.bind(npath)
        fd = lsock.fileno()
        script = ('exec 3<&%d %d<&-; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"' % (fd, fd)
                  if fd != 3 else 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"')
        env = dict(os.environ, NOTIFY_SOCKET=npath)
        s = self.spawn([], argv=["/bin/sh", "-c", script, SERVER, "-d", d,
                                 "-l", "127.0.0.1:%d" % other] + listener_extra(self),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       pass_fds=(fd,), env=env)
        lsock.close()
        nsock.settimeout(10 * SLOW)
        got = b""
        deadline = time.monotonic() + 10 * SLOW
        while b"READY=1" not in got.split(b"\n") and time.monotonic() < deadline:
            try:
                got += b"\n" + nsock.recv(4096)
            except socket.timeout:
                break
        self.assertIn(b"READY=1", got.split(b"\n"), "no READY=1 on NOTIFY_SOCKET; got %r" % got)
        idle = [p for p, state in child_states(s.pid) if state != "Z"]
        self.assertGreaterEqual(len(idle), 1, "READY=1 before a worker was up")
        for w in idle:      # each is waiting on the listening socket already
            self.assertIn("anon_inode:[eventpoll]",
                          [os.readlink("/proc/%d/fd/%s" % (w, fd)) for fd in os.listdir("/proc/%d/fd" % w)])
        c = self.tcp_session(port)
        seed_session(self, c)
        with self.assertRaises(ConnectionRefusedError, msg="-l port bound although LISTEN_FDS was given"):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.wait(), 0, "exit status after SIGTERM")
