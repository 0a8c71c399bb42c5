"""Mailboxes the server did not write, or not wholly: foreign mboxes, junk,
wrong Content-Length headers and cut-short appends. Only what a cut-short
append of ours can leave may be removed; everything else is kept byte for byte."""
import os
import subprocess

from support import SERVER, ServerTest, mailbox_file, read_bytes

FOREIGN = (b"From alice@test.com Sat Aug 15 10:00:00 2025\n"
           b"From: alice@test.com\nSubject: one\n\nfirst body\n>From quoted\n\n"
           b"From bob@test.com Sun Aug 16 11:00:00 2025\n"
           b"From: bob@test.com\nContent-Length: 999999\n\nsecond body, wrong length\n\n"
           b"From carol@test.com Mon Aug 17 12:00:00 2025\n"
           b"From: carol@test.com\n\nthird body\n\n")


class Foreign(ServerTest):
    def plant(self, d, addr, data):
        with open(mailbox_file(d, addr), "wb") as f:
            f.write(data)

    def test_foreign_mbox_with_wrong_length_loses_nothing(self):
        d = self.mkdir()
        self.plant(d, "f@test.com", FOREIGN)
        got = self.read_back(d, "f@test.com")
        self.assertEqual([(s, dt) for s, dt, _ in got],
                         [("alice@test.com", "15-08-2025"), ("bob@test.com", "16-08-2025"),
                          ("carol@test.com", "17-08-2025")])
        self.assertEqual(got[0][2], [b"first body", b"From quoted"])
        self.assertEqual(got[1][2], [b"second body, wrong length"])
        self.deliver(d, "a@test.com", ["f@test.com"], [b"ours"])
        data = read_bytes(mailbox_file(d, "f@test.com"))
        self.assertTrue(data.startswith(FOREIGN), "the foreign messages are kept as they were")
        got = self.read_back(d, "f@test.com")
        self.assertEqual(len(got), 4)
        self.assertEqual(got[3][2], [b"ours"])

    def test_junk_without_from_line_is_kept(self):
        d = self.mkdir()
        junk = b"not a mailbox\nat all\n"
        self.plant(d, "j@test.com", junk)
        self.assertEqual(self.read_back(d, "j@test.com"), [])
        self.deliver(d, "a@test.com", ["j@test.com"], [b"hello"])
        data = read_bytes(mailbox_file(d, "j@test.com"))
        self.assertTrue(data.startswith(junk), "junk is kept, not cut")
        got = self.read_back(d, "j@test.com")
        self.assertEqual([lines for _, _, lines in got], [[b"hello"]])

    def test_cut_short_appends_are_removed(self):
        d = self.mkdir()
        self.deliver(d, "a@test.com", ["t@test.com"], [b"whole"])
        path = mailbox_file(d, "t@test.com")
        whole = read_bytes(path)
        # What a killed append of ours can leave: any prefix of a record.
        record = whole  # a record of ours, as written
        cuts = [3, 5, 40, record.index(b"\n\n") + 1, len(record) - 3]
        for cut in cuts:
            with self.subTest(cut=cut):
                with open(path, "wb") as f:
                    f.write(whole + record[:cut])
                os.unlink(path[:-4] + ".idx")
                got = self.read_back(d, "t@test.com")
                self.assertEqual([lines for _, _, lines in got], [[b"whole"]],
                                 "a torn message is never listed")
                self.assertEqual(read_bytes(path), whole, "and is cut off under the lock")


class MuttRewrite(ServerTest):
    """A real mutt (under tmux) reads a mailbox and saves it, which rewrites
    every message's header block: Status and Lines added, Content-Length
    moved to its end. Then one message is deleted. GET_MAIL still gives
    each message from its first line as sent, and nothing is lost."""

    SMTP_ONE = b"From: John <john@test.com>\r\nSubject: one\r\n\r\nbody one\r\n"
    SMTP_TWO = b"Subject: two\r\n\r\nbody two\r\n"

    def smtp_deliver(self, d, text):
        c = self.pipe_session(d, ["-S"], greet=False)
        c.send(b"EHLO client.example\r\nMAIL FROM:<john@test.com>\r\nRCPT TO:<david@test.com>\r\n"
               b"DATA\r\n" + text + b".\r\nQUIT\r\n")
        replies = []
        while not replies or not replies[-1].startswith("221"):
            replies.append(c.reply())
        self.assertTrue(any(r.startswith("250 2.0.0 Ok: stored ") for r in replies), replies)

    def mutt(self, box, keys):
        """Open box in mutt on a tmux terminal, type keys, wait for it to exit."""
        import shutil, subprocess, time
        for tool in ("mutt", "tmux"):
            self.assertTrue(shutil.which(tool), "%s is not installed (make check installs it)" % tool)
        sock, done = os.path.join(self.root, "tmux.sock"), os.path.join(self.root, "mutt.done")
        run = ["tmux", "-S", sock, "-f", "/dev/null"]
        os.makedirs(os.path.join(self.root, "Mail"), exist_ok=True)   # mutt's $folder in $HOME
        if os.path.exists(done):
            os.unlink(done)
        cmd = ("mutt -n -F /dev/null -e 'set move=no quit=yes mark_old=no delete=yes wait_key=no' "
               "-f %s; touch %s" % (box, done))
        subprocess.run(run + ["new-session", "-d", "-x", "120", "-y", "40", cmd], check=True,
                       env=dict(os.environ, TERM="xterm", HOME=self.root))
        self.addCleanup(subprocess.run, run + ["kill-server"], capture_output=True)

        def screen():
            return subprocess.run(run + ["capture-pane", "-p"], capture_output=True).stdout

        def wait_for(text):
            for _ in range(400):
                if os.path.exists(done) or text in screen():
                    return
                time.sleep(0.025)
            self.fail("mutt never showed %r: %r" % (text, screen()))
        for key, shows in keys:
            wait_for(shows)
            time.sleep(0.2)     # mutt drops typeahead while it redraws
            subprocess.run(run + ["send-keys", key], check=True)
        for _ in range(400):
            if os.path.exists(done):
                return
            time.sleep(0.025)
        self.fail("mutt did not exit: %r" % screen())

    def pop3_view(self, d):
        """What POP3 shows of david's mailbox: [(UIDL, LIST size, octets RETR sent)]."""
        from test_accounts import two_accounts
        accounts = os.path.join(self.root, "accounts")
        if not os.path.exists(accounts):
            two_accounts(self.root)

        def pop3(commands):
            talk = b"USER david@test.com\r\nPASS secret1\r\n" + commands + b"QUIT\r\n"
            p = subprocess.run([SERVER, "--pop3", "-d", d, "-u", accounts], input=talk,
                               capture_output=True, timeout=30)
            lines = p.stdout.split(b"\r\n")[3:]
            blocks, block = [], None
            for l in lines:
                if block is None and l.startswith(b"+OK"):
                    block = []
                elif l == b".":
                    blocks.append(block)
                    block = None
                elif block is not None:
                    block.append(l[1:] if l.startswith(b".") else l)
            return blocks

        uidl, listing = pop3(b"UIDL\r\nLIST\r\n")
        bodies = pop3(b"".join(b"RETR %d\r\n" % (n + 1) for n in range(len(listing))))
        for b in bodies:    # the store's bookkeeping lines are never shown, moved or not
            head = b[:b.index(b"")]
            self.assertEqual([l for l in head if l.startswith((b"X-MySMTP-", b"Content-Length:"))],
                             [], head)
        return [(u.split()[1], int(l.split()[1]), sum(len(x) + 2 for x in b))
                for u, l, b in zip(uidl, listing, bodies)]

    def test_mutt_reads_saves_and_deletes(self):
        d = self.mkdir()
        self.smtp_deliver(d, self.SMTP_ONE)
        self.deliver(d, "john@test.com", ["david@test.com"], [b"Hello David,", b"mine"])
        self.smtp_deliver(d, self.SMTP_TWO)
        self.deliver(d, "john@test.com", ["david@test.com"], [b"Subject: own", b"", b"text"])
        box = mailbox_file(d, "david@test.com")
        before = read_bytes(box)
        view = self.pop3_view(d)
        self.assertEqual([size for _, size, _ in view], [sent for _, _, sent in view])
        index, pager = b"q:Quit", b"i:Exit"
        self.mutt(box, [("Enter", index), ("i", pager), ("q", index)])   # read 1, index, quit
        after = read_bytes(box)
        self.assertNotEqual(after, before, "mutt rewrote the mailbox")
        self.assertIn(b"Status: RO\n", after)
        got = self.read_back(d, "david@test.com")
        self.assertEqual(len(got), 4)
        one, mine, two, own = (lines for _, _, lines in got)
        self.assertEqual((own[0], own[-2:]), (b"Subject: own", [b"", b"text"]))
        self.assertEqual(one[:2], [b"From: John <john@test.com>", b"Subject: one"],
                         "the message from its first header line")
        self.assertEqual(one[-2:], [b"", b"body one"])
        self.assertEqual(mine, [b"Hello David,", b"mine"])
        self.assertEqual(two[0], b"Subject: two")
        self.assertEqual(two[-2:], [b"", b"body two"])
        saved = self.pop3_view(d)
        self.assertEqual([u for u, _, _ in saved], [u for u, _, _ in view], "UIDLs kept")
        self.assertEqual([size for _, size, _ in saved], [sent for _, _, sent in saved],
                         "sizes exact after mutt's rewrite")
        self.mutt(box, [("2", index), ("Enter", b"Jump to message: 2"),   # to message 2,
                        ("d", index), ("q", b" ND ")])                    # delete, quit: expunged
        got = self.read_back(d, "david@test.com")
        self.assertEqual([lines[0] for _, _, lines in got],
                         [b"From: John <john@test.com>", b"Subject: two", b"Subject: own"])
        left = self.pop3_view(d)
        self.assertEqual([u for u, _, _ in left], [view[0][0], view[2][0], view[3][0]],
                         "after mutt deleted one, the others keep their UIDLs")
        self.assertEqual([size for _, size, _ in left], [sent for _, _, sent in left])


class TailsAndLines(ServerTest):
    def plant(self, d, addr, data):
        with open(mailbox_file(d, addr), "wb") as f:
            f.write(data)

    def test_delivery_onto_a_tail_without_a_final_lf(self):
        """Another program left the file without its last LF: the delivery
        ends that line first, in the same append, so the new message starts
        a line, stays a message of its own, and survives an index rebuild."""
        d = self.mkdir()
        foreign = b"From alice@test.com Sat Aug 15 10:00:00 2025\nFrom: alice@test.com\n\nno final LF"
        self.plant(d, "t@test.com", foreign)
        self.deliver(d, "a@test.com", ["t@test.com"], [b"ours"])
        data = read_bytes(mailbox_file(d, "t@test.com"))
        self.assertTrue(data.startswith(foreign + b"\nFrom a@test.com "), data[:200])
        for rebuilt in (False, True):
            if rebuilt:
                os.unlink(mailbox_file(d, "t@test.com")[:-4] + ".idx")
            got = self.read_back(d, "t@test.com")
            self.assertEqual([lines for _, _, lines in got], [[b"no final LF"], [b"ours"]])

    def test_a_long_foreign_from_line_is_listed(self):
        """An SRS or VERP sender makes a From line of 500 octets: LIST shows
        the message (the sender cut to '?'), and goes on working."""
        d = self.mkdir()
        sender = b"SRS0=" + b"x" * 480 + b"@test.com"
        self.plant(d, "l@test.com", b"From " + sender + b" Sat Aug 15 10:00:00 2025\n"
                   b"Subject: long\n\nbody\n\n")
        for _ in range(2):
            got = self.read_back(d, "l@test.com")
            self.assertEqual([(s, dt, lines) for s, dt, lines in got], [("?", "15-08-2025", [b"body"])])

    def test_an_empty_mailbox_file_is_no_mailbox(self):
        """What a delivery killed right after creating the file leaves: LIST
        and GET_MAIL say 401, as for a mailbox that does not exist."""
        d = self.mkdir()
        self.plant(d, "new@test.com", b"")
        c = self.pipe_session(d)
        self.ok(c, "HELO test.com")
        self.assertEqual(c.cmd("LIST new@test.com"), "401 NOT FOUND no such mailbox")
        self.assertEqual(c.cmd("GET_MAIL new@test.com 1"), "401 NOT FOUND no such mailbox")
        self.quit(c)
        self.deliver(d, "a@test.com", ["new@test.com"], [b"first"])
        self.assertEqual([l for _, _, l in self.read_back(d, "new@test.com")], [[b"first"]])


class OnlyOursIsCut(ServerTest):
    """Only records this server wrote have their length trusted or may be
    found torn; another program's message ends at the next "From " line at
    the start of a line, and is never cut."""

    def plant(self, d, addr, data):
        with open(mailbox_file(d, addr), "wb") as f:
            f.write(data)

    def listed(self, d, addr):
        return [(s, lines) for s, _, lines in self.read_back(d, addr)]

    def test_a_foreign_length_is_not_trusted(self):
        d = self.mkdir()
        for name, data, want in (
                ("long", b"From a@test.com Sat Aug 15 10:00:00 2025\nContent-Length: 999999\n\nshort\n",
                 [("a@test.com", [b"short"])]),
                ("headers-only", b"From b@test.com Sat Aug 15 10:00:00 2025\nSubject: no body\n",
                 [("b@test.com", [])]),
                ("inside-a-line", b"From c@test.com Sat Aug 15 10:00:00 2025\nContent-Length: 8\n\n"
                 b"forged: xFrom ceo@test.com Mon Jan  1 09:00:00 2024\nPay it.\n",
                 [("c@test.com", [b"forged: xFrom ceo@test.com Mon Jan  1 09:00:00 2024", b"Pay it."])])):
            with self.subTest(case=name):
                addr = name + "@test.com"
                self.plant(d, addr, data)
                self.assertEqual(self.listed(d, addr), want)
                self.assertEqual(read_bytes(mailbox_file(d, addr)), data, "not a byte cut")

    def test_our_torn_record_under_another_program_s_append_is_not_served(self):
        """Ours cut short mid-text, then another MDA appends: the half is
        kept in the file but never listed as a message; the other's is."""
        d = self.mkdir()
        self.deliver(d, "a@test.com", ["t@test.com"], [b"Pay invoice 1 of 2.", b"And the second."])
        ours = read_bytes(mailbox_file(d, "t@test.com"))
        half = ours[:ours.index(b"And the second.")]
        other = b"From mda@test.com Sat Aug 15 10:00:00 2025\nSubject: other\n\nfrom procmail\n\n"
        self.plant(d, "t@test.com", half + b"\n" + other)
        self.assertEqual(self.listed(d, "t@test.com"), [("mda@test.com", [b"from procmail"])])
        self.assertEqual(read_bytes(mailbox_file(d, "t@test.com")), half + b"\n" + other)

    def test_a_zero_filled_tail_is_torn(self):
        """A power loss can leave an append's length without its data: NUL
        octets at the end. They are never listed, and the next delivery
        cuts them off instead of gluing onto them."""
        d = self.mkdir()
        self.deliver(d, "a@test.com", ["z@test.com"], [b"before"])
        whole = read_bytes(mailbox_file(d, "z@test.com"))
        self.plant(d, "z@test.com", whole + b"\0" * 5000)
        self.assertEqual(self.listed(d, "z@test.com"), [("a@test.com", [b"before"])])
        self.deliver(d, "a@test.com", ["z@test.com"], [b"after"])
        data = read_bytes(mailbox_file(d, "z@test.com"))
        self.assertTrue(data.startswith(whole + b"From a@test.com "), data[len(whole):len(whole) + 40])
        self.assertNotIn(b"\0", data)
        self.assertEqual(self.listed(d, "z@test.com"), [("a@test.com", [b"before"]), ("a@test.com", [b"after"])])
