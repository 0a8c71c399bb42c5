"""test_store_face.py: what the dialects and the engine see of the store.

They include store/store.h (and POP3 store/maildrop.h) and nothing else of
store/, and read no field of struct store; those two headers include none of the index's, the records', the
mailbox files' or the scanner's. Drawn from the built objects (nm -u): the
calls each dialect makes of the store are a handful, all of store.c,
maildrop.c or spool.c, and none takes a lock, holds a mailbox, reads the
index or deletes through the expunge's pick.
"""

import os
import re
import subprocess
import unittest

from support import SERVER

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIALECTS = ["protocol.c", "smtp.c", "pop3.c"]
PUBLIC = {"store/store.h", "store/maildrop.h"}
INTERNAL = {"store/mbindex.h", "store/record.h", "store/mboxfile.h", "store/mboxscan.h",
            "store/store_internal.h"}
# The store's face: the files whose calls a dialect or the engine may make.
FACE = {"store.o", "maildrop.o", "spool.o"}
# At most one call for each verb of POP3's that touches the maildrop (open
# at login, close, LIST/UIDL, STAT, RETR/TOP, DELE, RSET, QUIT): 8.
HANDFUL = 8
FORBIDDEN = re.compile(r"lock|hold|expunge|mbindex|record|entries|mboxfile|refresh")


def store_includes(path):
    with open(os.path.join(TOP, path)) as f:
        return set(re.findall(r'^#include "(store/[^"]+)"', f.read(), re.M))


def engine_files():
    return ["engine/" + f for f in sorted(os.listdir(os.path.join(TOP, "engine")))
            if f.endswith((".c", ".h"))]


def objects_dir():
    """The objects of the build under test: build/asan for the sanitized one."""
    return os.path.join(TOP, "build", "asan" if "/build/asan/" in SERVER else "")


def symbols(args):
    r = subprocess.run(["nm"] + args, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("nm %s: %s" % (" ".join(args), r.stderr))
    return r.stdout.split("\n")


def store_definitions(objs):
    """Each global the store's objects define -> the object's name."""
    store = os.path.join(objs, "store")
    defined = {}
    for name in sorted(os.listdir(store)):
        if name.endswith(".o"):
            for line in symbols(["--defined-only", "-g", os.path.join(store, name)]):
                fields = line.split()
                if len(fields) == 3:
                    defined[fields[2]] = name
    return defined


def store_calls(obj, defined):
    calls = {}
    for line in symbols(["-u", obj]):
        fields = line.split()
        if fields and fields[-1] in defined:
            calls[fields[-1]] = defined[fields[-1]]
    return calls


class Includes(unittest.TestCase):
    def test_dialects_and_engine_include_only_the_public_headers(self):
        for path in DIALECTS + engine_files():
            allowed = PUBLIC if path == "pop3.c" else {"store/store.h"}
            self.assertLessEqual(store_includes(path), allowed, path)

    def test_no_dialect_or_engine_file_reads_a_field_of_the_store(self):
        fields = re.compile(r"->\s*(dirfd|lock_timeout|max_mailbox|min_free)\b")
        for path in DIALECTS + engine_files():
            with open(os.path.join(TOP, path)) as f:
                self.assertIsNone(fields.search(f.read()), path)

    def test_public_headers_include_no_store_internals(self):
        for header in sorted(PUBLIC):
            self.assertEqual(store_includes(header) & INTERNAL, set(), header)


class Calls(unittest.TestCase):
    def setUp(self):
        self.objs = objects_dir()
        self.assertTrue(os.path.isdir(os.path.join(self.objs, "store")),
                        "no objects in %s: build first" % self.objs)
        self.defined = store_definitions(self.objs)

    def test_a_dialect_makes_a_handful_of_store_calls_and_no_lock_call(self):
        for src in DIALECTS:
            calls = store_calls(os.path.join(self.objs, src[:-2] + ".o"), self.defined)
            self.assertLessEqual(len(calls), HANDFUL, "%s: %s" % (src, sorted(calls)))
            self.assertEqual({f for f in calls.values()} - FACE, set(), src)
            self.assertEqual([c for c in calls if FORBIDDEN.search(c)], [], src)

    def test_the_engine_calls_only_the_store_s_face(self):
        for path in engine_files():
            if not path.endswith(".c"):
                continue
            obj = os.path.join(self.objs, path[:-2] + ".o")
            calls = store_calls(obj, self.defined)
            self.assertEqual({f for f in calls.values()} - FACE, set(), path)
            self.assertEqual([c for c in calls if FORBIDDEN.search(c)], [], path)


if __name__ == "__main__":
    unittest.main()
