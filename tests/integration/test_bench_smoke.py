"""A tiny run of the benchmark's parts, so they cannot rot: the load generator
in each mode against a real listener, and the floor handler under
systemd-socket-activate. The figures themselves come from `make bench`."""
import os
import re
import subprocess

from support import ServerTest, free_port, mailbox_file, parse_mbox, read_bytes

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOADGEN = os.environ.get("LOADGEN", os.path.join(TOP, "build", "bench", "loadgen"))
FLOOR = os.environ.get("FLOOR", os.path.join(TOP, "build", "bench", "floor"))
APPENDS = os.environ.get("APPENDS", os.path.join(TOP, "build", "bench", "appends"))
STATIC = os.path.join(TOP, "build", "static", "mysmtpd")


def figures(out):
    return dict(kv.split("=", 1) for kv in out.split())


class BenchSmoke(ServerTest):
    def loadgen(self, port, *args):
        r = subprocess.run([LOADGEN, "-T", "30"] + list(args) + ["127.0.0.1", str(port)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "loadgen failed: %s %s" % (r.stdout, r.stderr))
        return figures(r.stdout)

    def test_loadgen_modes_against_the_listener(self):
        d = self.mkdir()
        server, port = self.start_listener(d)
        f = self.loadgen(port, "-c", "2", "-n", "12")
        self.assertEqual((f["ok"], f["failed"]), ("12", "0"))
        stored = parse_mbox(read_bytes(mailbox_file(d, "bench@test.com")))
        self.assertEqual(len(stored), 12, "every 200 is a stored message")
        f = self.loadgen(port, "-m", "get", "-c", "1", "-n", "2", "-r", "5", "-x", "12")
        self.assertEqual((f["ok"], f["requests"]), ("2", "10"))
        self.assertEqual(int(f["lines"]), 10 * 18, "From, Date and 16 text lines each")
        f = self.loadgen(port, "-m", "list", "-c", "1", "-n", "1", "-r", "3")
        self.assertEqual(f["lines"], "36")
        bad = subprocess.run([LOADGEN, "-m", "get", "-n", "1", "-x", "13", "127.0.0.1", str(port)],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 1, "a 401 counts as a failed session")
        self.assertIn("failed=1", bad.stdout)

    def test_disk_limit_appends(self):
        """bench/appends: C writers, each its own file, N locked 1 KiB appends in all."""
        d = self.mkdir()
        r = subprocess.run([APPENDS, d, "3", "10"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        f = figures(r.stdout)
        self.assertEqual(f["appends"], "10")
        self.assertGreater(float(f["rate"]), 0)
        sizes = sorted(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
        self.assertEqual(sizes, [3 * 1024, 3 * 1024, 4 * 1024])
        bad = subprocess.run([APPENDS, d, "0", "10"], capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2, "a usage error")

    def test_static_build_under_socket_activation(self):
        """The statically linked server that make bench measures, per connection
        and with listening sockets from systemd (where it dlopens libsystemd)."""
        for mode in (["--inetd", "-a"], []):
            with self.subTest(mode=mode):
                d = self.mkdir("static%d" % len(mode))
                port = free_port()
                act = self.spawn([], argv=["systemd-socket-activate"] + mode +
                                 ["-l", "127.0.0.1:%d" % port, STATIC, "-d", d], new_session=True)
                self.wait_connectable(port)
                f = self.loadgen(port, "-c", "2", "-n", "6")
                self.assertEqual((f["ok"], f["failed"]), ("6", "0"))
                stored = parse_mbox(read_bytes(mailbox_file(d, "bench@test.com")))
                self.assertEqual(len(stored), 6)
                act.kill()

    def test_floor_under_socket_activation(self):
        d = self.mkdir()
        port = free_port()
        act = self.spawn([], argv=["systemd-socket-activate", "--inetd", "-a",
                                   "-l", "127.0.0.1:%d" % port, FLOOR, d], new_session=True)
        self.wait_connectable(port)
        f = self.loadgen(port, "-c", "2", "-n", "6")
        self.assertEqual((f["ok"], f["failed"]), ("6", "0"))
        f = self.loadgen(port, "-c", "2", "-n", "4", "-M")     # a mailbox per connection
        self.assertEqual((f["ok"], f["failed"]), ("4", "0"))
        counts = {}
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as fl:
                counts[name] = len(re.findall(rb"^aaaa", fl.read(), re.M))
        self.assertEqual(sorted(counts), ["bench1@test.com.txt", "bench2@test.com.txt",
                                          "bench@test.com.txt"])
        self.assertEqual((counts["bench@test.com.txt"], counts["bench1@test.com.txt"] +
                          counts["bench2@test.com.txt"]), (6, 4))
        act.kill()
