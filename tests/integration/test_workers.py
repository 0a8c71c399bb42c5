"""test_workers.py: the listener's pool of workers (mysmtpd(8), LISTENING):
a worker serves sessions one after another and nothing of one reaches the
next; one killed loses only its session and is replaced; --max-use bounds
its sessions; its memory does not grow from session to session."""

import os
import signal
import socket
import struct
import time

from support import (DATA_PROMPT, FLAVOUR, SLOW, STORED, ServerTest, child_states, mailbox_file,
                     read_bytes, reset, seed_session, status_kib)
from test_accounts import make_accounts, two_accounts

LOGIN_FIRST = "403 FORBIDDEN log in first (AUTH)"


def workers_of(pid):
    """The live children of pid."""
    return [p for p, state in child_states(pid) if state != "Z"]


def descriptors(pid):
    """What each open descriptor of pid names, by number."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            pass
    return out


class Workers(ServerTest):
    def one_worker(self, server):
        """With -c 1: the one worker, once it is up (it made its epoll set,
        the last descriptor it opens before it waits for connections)."""
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            w = workers_of(server.pid)
            if len(w) == 1 and "anon_inode:[eventpoll]" in descriptors(w[0]).values():
                return w[0]
            time.sleep(0.02)
        self.fail("no single worker: %s" % workers_of(server.pid))

    def at_rest(self, pid, rest):
        """Wait until pid holds exactly the descriptors rest (its session is over)."""
        deadline = time.monotonic() + 10 * SLOW
        while descriptors(pid) != rest and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(descriptors(pid), rest, "descriptors of the worker between sessions")

    def session_pids(self, server):
        """The [pid] of each 'Client connected' line, in order."""
        return [int(l.split("]")[0][1:]) for l in server.log_lines()
                if l.startswith("[") and l.endswith("Client connected: 127.0.0.1")]

    def test_two_sessions_through_one_worker_share_nothing(self):
        """-c 1: one worker serves both. The first logs in, sends HELO, MAIL,
        RCPT, DATA and half a message, and vanishes. The second, in the same
        process, finds no HELO, no login, no transaction, no spool file and
        no descriptor of the first; what it sends is stored with its own HELO
        and sender, and nothing of the first is."""
        d = self.mkdir()
        accounts = two_accounts(self.root)
        server, port = self.start_listener(d, ["-c", "1", "-U", "100", "-A", "-u", accounts])
        w = self.one_worker(server)
        rest = descriptors(w)
        a = self.tcp_session(port)
        self.ok(a, "HELO one.example")
        self.ok(a, "AUTH david@test.com secret1")
        self.ok(a, "MAIL FROM: david@test.com")
        self.ok(a, "RCPT TO: john@test.com")
        self.assertEqual(a.cmd("DATA"), DATA_PROMPT)
        a.send(b"%0126d\r\n" % 0 * 1024)      # 128 KiB: past the spool's memory
        deadline = time.monotonic() + 10 * SLOW
        while not any("(deleted)" in what for what in descriptors(w).values()):
            self.assertLess(time.monotonic(), deadline, "no spool file: %s" % descriptors(w))
            time.sleep(0.02)
        reset(a)
        self.at_rest(w, rest)   # -c 1: until the worker has seen the RST, b would be refused
        b = self.tcp_session(port)
        self.assertEqual(b.cmd("MAIL FROM: john@test.com"), "403 FORBIDDEN send HELO first")
        self.ok(b, "HELO two.example")
        self.assertEqual(b.cmd("LIST david@test.com"), LOGIN_FIRST)
        self.assertEqual(b.cmd("RCPT TO: david@test.com"), "403 FORBIDDEN send MAIL FROM first")
        self.assertEqual(b.cmd("DATA"), "403 FORBIDDEN send MAIL FROM first")
        new = {fd: what for fd, what in descriptors(w).items() if rest.get(fd) != what}
        self.assertEqual([what[:8] for what in new.values()], ["socket:["],
                         "only the new connection beside what the worker holds at rest: %s" % new)
        self.ok(b, "AUTH john@test.com hunter2")
        self.assertEqual(b.cmd("LIST david@test.com"), "403 FORBIDDEN not your mailbox")
        self.ok(b, "MAIL FROM: john@test.com")
        self.ok(b, "RCPT TO: david@test.com")
        self.assertEqual(b.data([b"from the second session"]), STORED)
        self.quit(b)
        self.at_rest(w, rest)
        self.assertEqual(self.session_pids(server), [w, w], "both sessions in the one worker")
        self.assertFalse(read_bytes(mailbox_file(d, "john@test.com")), "the first session stored")
        self.check_mbox(d, "david@test.com", [[b"from the second session"]],
                        sender="john@test.com", helo="two.example", peer="127.0.0.1")
        self.assertEqual(sorted(os.listdir(d)), ["david@test.com.idx", "david@test.com.txt"])

    def test_a_pop3_lock_is_let_go_between_sessions(self):
        """-c 1 --pop3: a session that logs in holds the maildrop's lock (a
        second server's login is told [IN-USE]); once it vanishes, the same
        worker's next session, and any other, logs in as the same user."""
        d = self.mkdir()
        accounts = two_accounts(self.root)
        self.deliver(d, "john@test.com", ["david@test.com"], [b"one"], args=("-A",))
        server, port = self.start_listener(d, ["-c", "1", "-U", "100", "--pop3", "-u", accounts])
        w = self.one_worker(server)
        rest = descriptors(w)

        def login(s, f):
            self.assertTrue(f.readline().startswith(b"+OK"))
            s.sendall(b"USER david@test.com\r\nPASS secret1\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
            return f.readline()

        def other_server():
            c = self.pipe_session(d, ["--pop3", "-u", accounts], greet=False)
            c.reply()
            c.cmd("USER david@test.com")
            r = c.cmd("PASS secret1")
            c.close()
            c.server.wait()
            return r
        a = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
        self.closers.append(a.close)
        self.assertTrue(login(a, a.makefile("rb")).startswith(b"+OK"), "first login")
        self.assertTrue(other_server().startswith("-ERR [IN-USE]"), "the lock is held")
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        a.close()
        self.at_rest(w, rest)
        self.assertTrue(other_server().startswith("+OK"), "the lock went with the session")
        b = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
        self.closers.append(b.close)
        f = b.makefile("rb")
        self.assertTrue(login(b, f).startswith(b"+OK"), "the same worker's next login")
        b.sendall(b"STAT\r\nQUIT\r\n")
        self.assertRegex(f.readline(), rb"^\+OK 1 \d+\r\n$")
        self.assertTrue(f.readline().startswith(b"+OK"))
        self.assertEqual(self.session_pids(server), [w, w])

    def test_a_worker_killed_mid_data_loses_only_its_session(self):
        """kill -9 of the worker serving a DATA: that client sees the end, the
        master logs the loss and forks another, the next client is served,
        and nothing of the lost message is stored."""
        d = self.mkdir()
        server, port = self.start_listener(d, ["-c", "2"])
        a = self.tcp_session(port)
        self.begin_message(a, "v@test.com", b"half of it")
        m = server.wait_log(r"^\[(\d+)\] RCPT TO: v@test\.com$")
        victim = int(m.group(1))
        os.kill(victim, signal.SIGKILL)
        a.expect_eof()
        server.wait_log(r"^Worker %d was killed by signal 9; its session is lost$" % victim)
        b = self.tcp_session(port)
        seed_session(self, b)
        self.assertNotIn(victim, workers_of(server.pid))
        self.assertIsNone(server.proc.poll(), "the master lives on")
        self.assertFalse(read_bytes(mailbox_file(d, "v@test.com")), "half a message stored")
        self.assertEqual([f for f in os.listdir(d) if not f.endswith((".txt", ".idx"))], [])

    def test_max_use_replaces_a_worker_after_so_many_sessions(self):
        """-c 1 --max-use 3: three sessions in one worker, the fourth in a new
        one; the worker that left is no failure (nothing logged of it)."""
        d = self.mkdir()
        server, port = self.start_listener(d, ["-c", "1", "--max-use", "3"])
        for _ in range(4):
            c = self.tcp_session(port)
            self.quit(c)
            server.wait_log(r"Client disconnected\.$")
        deadline = time.monotonic() + 10 * SLOW
        while len(self.session_pids(server)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = self.session_pids(server)
        self.assertEqual(len(set(pids[:3])), 1, pids)
        self.assertNotEqual(pids[3], pids[0], pids)
        self.assertFalse([l for l in server.log_lines() if l.startswith("Worker ")],
                         server.log_lines())

    def test_sighup_replaces_the_workers_and_the_listener_serves_on(self):
        """SIGHUP is logged; the master lives on; the idle workers leave at
        once and new ones serve new sessions; a session open across it goes
        on to its end in its own worker, which then leaves; SIGTERM still
        stops it all with status 0."""
        d = self.mkdir()
        server, port = self.start_listener(d)
        a = self.tcp_session(port)
        self.ok(a, "HELO test.com")
        busy = self.session_pids(server)[0]
        old = set(workers_of(server.pid))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_log(r"^Reloading: new workers replace the old, each once its session "
                        r"is over\.$")
        deadline = time.monotonic() + 10 * SLOW
        while set(workers_of(server.pid)) & old != {busy}:
            self.assertLess(time.monotonic(), deadline, "old workers stay: %s of %s"
                            % (workers_of(server.pid), old))
            time.sleep(0.02)
        b = self.tcp_session(port)
        seed_session(self, b)
        self.assertNotIn(self.session_pids(server)[1], old, "a new worker serves")
        self.ok(a, "MAIL FROM: john@test.com")
        self.ok(a, "RCPT TO: david@test.com")
        self.assertEqual(a.data([b"across the reload"]), STORED)
        self.quit(a)
        deadline = time.monotonic() + 10 * SLOW
        while busy in workers_of(server.pid):
            self.assertLess(time.monotonic(), deadline, "the old busy worker stays")
            time.sleep(0.02)
        self.assertIsNone(server.proc.poll(), "the master lives on")
        self.assertFalse([l for l in server.log_lines() if l.startswith("Worker ")])
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.wait(), 0)

    def test_memory_does_not_grow_from_session_to_session(self):
        """-c 1: one worker's peak RSS (VmHWM) after 100 more sessions, each a
        login, a delivery, LIST and GET_MAIL, is within 10 % of its peak after
        the first; so is its RSS at rest. One login in ten is david's, with
        yescrypt's 16 MiB; the others are john's, a cheap SHA-512 crypt, so
        that the test takes a second, not ten."""
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
            cheap = crypt.crypt("hunter2", crypt.mksalt(crypt.METHOD_SHA512, rounds=1000))
        d = self.mkdir()
        accounts = make_accounts(os.path.join(self.root, "accounts"),
                                 [("david@test.com", "secret1")])
        with open(accounts, "a") as f:
            f.write("john@test.com:{SHA512-CRYPT}%s\n" % cheap)
        env = dict(os.environ)
        if FLAVOUR == "asan":   # ASan keeps freed memory in quarantine: not ours
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
        server, port = self.start_listener(d, ["-c", "1", "--max-use", "1000", "-A",
                                               "-u", accounts], env=env)
        w = self.one_worker(server)
        rest = descriptors(w)

        def session(k):
            who, password = ("david@test.com", "secret1") if k % 10 == 1 else \
                ("john@test.com", "hunter2")
            c = self.tcp_session(port)
            self.ok(c, "HELO test.com")
            self.ok(c, "AUTH %s %s" % (who, password))
            self.ok(c, "MAIL FROM: " + who)
            self.ok(c, "RCPT TO: " + who)
            self.assertEqual(c.data([b"%062d" % i for i in range(16)]), STORED)
            n = (k + 9) // 10 if who.startswith("david") else k - (k + 9) // 10
            self.assertEqual(c.list(who)[1][-1][0], n)
            self.assertEqual(c.get_mail(who, n)[0], "200 OK")
            self.quit(c)
            self.closers.remove(c.close)
        session(1)
        self.at_rest(w, rest)
        first = (status_kib(w, "VmHWM"), status_kib(w, "VmRSS"))
        for k in range(2, 102):
            session(k)
        self.at_rest(w, rest)
        last = (status_kib(w, "VmHWM"), status_kib(w, "VmRSS"))
        print("[peak RSS %d -> %d KiB, RSS at rest %d -> %d KiB]"
              % (first[0], last[0], first[1], last[1]), end=" ", flush=True)
        self.assertEqual(self.session_pids(server), [w] * 101)
        self.assertLessEqual(last[0], first[0] * 1.10, "peak RSS grew")
        if FLAVOUR != "asan":   # its allocator keeps size classes of its own
            self.assertLessEqual(last[1], first[1] * 1.10, "RSS at rest grew")


BUSY = "500 SERVER ERROR too many connections"
LONG_T = 120       # -t: a stuck writer would hold its worker this long


def tcp_queues(sock, port):
    """What the kernel holds of a loopback connection to port: the client's
    unread octets (FIONREAD) and the server's unacknowledged ones (its
    tx_queue in /proc/net/tcp)."""
    import array
    import fcntl
    import termios
    unread = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, unread)
    me = "%04X" % sock.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":%04X" % port) and fields[2].endswith(":" + me):
                return unread[0], int(fields[4].split(":")[0], 16)
    raise AssertionError("no server side of the connection in /proc/net/tcp")


class StuckReaders(ServerTest):
    """A client that pipelines GET_MAIL and QUIT and never reads leaves its
    worker blocked in writing the last reply: that worker is still busy, and
    its peer still counted, until the reply is out or -t passes."""

    BIG = ["-s", str(1 << 30)]

    def reply_to_get_mail(self, port, n, read=True):
        """A client (SO_RCVBUF 4096) that sends HELO, then GET_MAIL
        david@test.com n and QUIT in one write: with read, the octets after
        HELO's reply up to the end; else the socket, never read again."""
        s = socket.socket()
        self.closers.append(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10 * SLOW)
        s.connect(("127.0.0.1", port))
        f = s.makefile("rb", buffering=0)
        self.assertTrue(f.readline().startswith(b"200 "))
        s.sendall(b"HELO test.com\r\n")
        self.assertEqual(f.readline(), b"200 OK\r\n")
        s.sendall(b"GET_MAIL david@test.com %d\r\nQUIT\r\n" % n)
        if not read:
            return s
        got = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return bytes(got)
            got += chunk

    def message_ending_in_the_last_write(self, d):
        """Mailbox david@test.com with a message 2 whose reply (with QUIT's)
        is a little longer than what the kernel takes of a connection whose
        client never reads: its last octets are in the server's last buffer
        (IO_BUFSIZE, 4096). Message 1, longer than any kernel buffer
        (tcp_wmem), measures that. The reply's length."""
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem = int(f.read().split()[2])
        body = [b"%0900d" % i for i in range(wmem // 900 + 2048)]
        self.deliver(d, "john@test.com", ["david@test.com"], body, args=self.BIG)
        server, port = self.start_listener(d, self.BIG)
        whole = len(self.reply_to_get_mail(port, 1))
        probe = self.reply_to_get_mail(port, 1, read=False)
        taken = sum(self.settled(probe, port))
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        probe.close()       # with a RST: its session ends at once
        ahead = min(2048, (4096 - taken % 4096) // 2)
        self.assertGreaterEqual(ahead, 64, "the kernel took almost all of a 4096-octet write")
        want = taken + ahead         # the last buffer then holds ahead + taken % 4096
        size = want - (whole - sum(len(l) + 2 for l in body))
        n, rest = divmod(size, 902)
        if rest < 3:
            n, rest = n - 1, rest + 902
        self.deliver(d, "john@test.com", ["david@test.com"],
                     body[:n] + [b"x" * (rest - 2)], args=self.BIG)
        self.assertEqual(len(self.reply_to_get_mail(port, 2)), want)
        server.proc.send_signal(signal.SIGTERM)
        server.wait()
        return want

    def stuck(self, port, total):
        """A client from 127.0.0.1 whose session is blocked in writing its
        last reply (the kernel took all before the last buffer)."""
        s = self.reply_to_get_mail(port, 2, read=False)
        held = total - sum(self.settled(s, port))
        self.assertTrue(0 < held <= total % 4096, "not blocked in the last write: %d" % held)
        return s

    def settled(self, s, port):
        """tcp_queues once they have not changed for a while."""
        was, since = None, time.monotonic()
        deadline = since + 30 * SLOW
        while time.monotonic() < deadline:
            now = tcp_queues(s, port)
            if now != was:
                was, since = now, time.monotonic()
            elif time.monotonic() - since >= 1.0 * SLOW:
                return now
            time.sleep(0.02)
        self.fail("the connection's queues never settled")

    def greeted_within(self, port, seconds, source="127.0.0.2"):
        """A new client from source: its first line, read within seconds."""
        c = socket.create_connection(("127.0.0.1", port), timeout=seconds,
                                     source_address=(source, 0))
        self.closers.append(c.close)
        try:
            return c.makefile("rb").readline().decode("latin-1").rstrip("\r\n")
        except socket.timeout:
            self.fail("no greeting within %d s" % seconds)

    def test_two_stuck_writers_neither_stall_the_listener_nor_escape_the_cap(self):
        """-p 2 -t 120: two clients from 127.0.0.1 stuck in their last reply;
        a third from there is refused (they still count), one from 127.0.0.2
        is greeted well inside a quarter of -t, and the two are still stuck."""
        d = self.mkdir()
        total = self.message_ending_in_the_last_write(d)
        server, port = self.start_listener(d, ["-p", "2", "-t", str(LONG_T)])
        stuck = [self.stuck(port, total) for _ in range(2)]
        self.assertRegex(self.greeted_within(port, LONG_T / 4), r"^200 \S+ My_SMTP ready$")
        self.assertEqual(self.greeted_within(port, LONG_T / 4, "127.0.0.1"), BUSY)
        for s in stuck:
            self.assertGreater(total - sum(tcp_queues(s, port)), 0, "no longer stuck")
        self.assertFalse([l for l in server.log_lines() if "disconnected" in l])

    def test_max_per_peer_1_refuses_the_stuck_peers_second_connection(self):
        """-p 1 -t 120: one client stuck in its last reply; the next from its
        address gets the busy reply, one from 127.0.0.2 is greeted."""
        d = self.mkdir()
        total = self.message_ending_in_the_last_write(d)
        server, port = self.start_listener(d, ["-p", "1", "-t", str(LONG_T)])
        self.stuck(port, total)
        self.assertEqual(self.greeted_within(port, LONG_T / 4, "127.0.0.1"), BUSY)
        server.wait_log(r"Too many connections from one address; refused 127\.0\.0\.1$")
        self.assertRegex(self.greeted_within(port, LONG_T / 4), r"^200 \S+ My_SMTP ready$")
