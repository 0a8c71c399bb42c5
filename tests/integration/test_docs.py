"""test_docs.py: what the docs say against what ships and runs.

doc/DEPLOYING.md's install table names every xinetd entry in xinetd/ (and no
other); mysmtpd(8)'s OPTIONS section has every option `mysmtpd -h` prints;
README's server log of the seed's session is the log the server writes for
that session; mysmtp(1) names every subcommand the client has.
"""

import os
import re
import subprocess

from support import REPLY_TIMEOUT, SERVER, ServerTest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.environ.get("MYSMTP") or os.path.join(os.path.dirname(SERVER), "mysmtp")

SEED_INPUT = (b"HELO test.com\nMAIL FROM: john@test.com\nRCPT TO: david@test.com\nDATA\n"
              b"Hello David,\nHope you are doing well.\n.\nLIST david@test.com\n"
              b"GET_MAIL david@test.com 1\nQUIT\n")


def read(*path):
    with open(os.path.join(TOP, *path)) as f:
        return f.read()


class Docs(ServerTest):
    def test_install_table_lists_the_xinetd_entries_that_ship(self):
        row = next(l for l in read("doc", "DEPLOYING.md").split("\n")
                   if l.startswith("| the xinetd entries"))
        listed = set(re.findall(r"`/etc/xinetd\.d/([^`]+)`", row))
        self.assertEqual(listed, set(os.listdir(os.path.join(TOP, "xinetd"))), row)

    def test_man_page_options_has_every_option_of_mysmtpd_h(self):
        page = read("man", "mysmtpd.8")
        section = page[page.index("\n.SH OPTIONS\n"):page.index("\n.SH PROTOCOL\n")]
        lines = section.replace("\\-", "-").split("\n")
        tags = "\n".join(l for prev, l in zip(lines, lines[1:]) if prev in (".TP", ".TQ"))
        r = subprocess.run([SERVER, "-h"], capture_output=True, timeout=REPLY_TIMEOUT)
        options = set(re.findall(r"--[a-z][a-z0-9-]*", (r.stdout + r.stderr).decode()))
        self.assertTrue(options)
        missing = sorted(o for o in options if not re.search(re.escape(o) + r"\b", tags))
        self.assertEqual(missing, [], "options of mysmtpd -h not in mysmtpd(8), OPTIONS")

    def test_log_example_is_what_the_server_logs(self):
        readme = read("README.md")
        start = readme.index("```\nListening on port 2525 (all addresses)...")
        want = readme[start + 4:readme.index("```", start + 4)].strip("\n").split("\n")[1:]
        d = self.mkdir()
        server, port = self.start_listener(d)
        r = subprocess.run([CLIENT, "-p", str(port), "-t", str(int(REPLY_TIMEOUT))],
                           input=SEED_INPUT, capture_output=True, timeout=3 * REPLY_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        server.wait_log(r"Client disconnected\.$")
        got = [re.sub(r"^\[\d+\]", "[4242]", l) for l in server.log_lines()
               if l.startswith("[")]
        self.assertEqual(got, want)

    def test_mysmtp_man_page_names_every_subcommand(self):
        page = read("man", "mysmtp.1")
        name = page[page.index(".SH NAME"):page.index(".SH SYNOPSIS")]
        for verb in ("send", "list", "fetch", "delete"):
            self.assertIn(verb, name)
        said = page[page.index("the subcommands"):page.index("do one job each")]
        for verb in ("send", "list", "get", "delete"):
            self.assertRegex(said, r"\.BR? %s\b" % verb)
        self.assertNotIn(".RB [ \\-f\n.IR from ]", page, "send's -f is not optional")
