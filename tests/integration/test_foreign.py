"""Mailboxes the server did not write, or not wholly: foreign mboxes, junk,
wrong Content-Length headers and cut-short appends. Only what a cut-short
append of ours can leave may be removed; everything else is kept byte for byte."""
import os

from support import ServerTest, mailbox_file, read_bytes

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
