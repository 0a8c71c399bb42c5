#!/usr/bin/env python3
"""run.py: run the integration tests (tests/integration/test_*.py).

    python3 tests/integration/run.py [-k SUBSTRING]... [--again-with-max-use N]

Prints one line per test and, last, exactly "N passed, N failed" (errors,
skips and timeouts count as failed). Exit status 1 if any test failed.
With --again-with-max-use N, the tests that started a listening mysmtpd
are run once more, each listener given --max-use N, and counted too.
The server under test is $MYSMTPD (default ./mysmtpd at the top of the tree).
"""

import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PER_TEST_LIMIT = 120  # seconds; a test that runs longer is stopped and fails


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test ran longer than %d s" % PER_TEST_LIMIT)


class Result(unittest.TestResult):
    """Counts each test once: passed only if nothing in it failed or was skipped."""

    def __init__(self):
        super().__init__()
        self.passed = 0
        self.failed = 0
        self.current = None
        self.problems = []

    def _name(self, test):
        return test.id().replace("__main__.", "")

    def startTest(self, test):
        super().startTest(test)
        self.current = test
        self.problems = []
        self.t0 = time.monotonic()
        signal.alarm(PER_TEST_LIMIT)
        print("%s ..." % self._name(test), end=" ", flush=True)

    def stopTest(self, test):
        signal.alarm(0)
        dt = time.monotonic() - self.t0
        if self.problems:
            self.failed += 1
            print("FAIL (%.1fs)" % dt)
            for p in self.problems:
                print("    " + p.rstrip().replace("\n", "\n    "))
        else:
            self.passed += 1
            print("ok (%.1fs)" % dt)
        sys.stdout.flush()
        self.current = None
        super().stopTest(test)

    def _problem(self, test, kind, text):
        if self.current is None:
            # setUpModule/setUpClass failures and import errors: a test of their own.
            self.failed += 1
            print("%s ... %s" % (self._name(test), kind))
            print("    " + text.rstrip().replace("\n", "\n    "))
            return
        self.problems.append("%s: %s" % (kind, text))

    def _fmt(self, err):
        etype, value, tb = err
        # Keep the frames of the tests (where the assertion was made), not unittest's.
        frames = [f for f in traceback.extract_tb(tb)
                  if os.sep + "unittest" + os.sep not in f.filename]
        return "".join(traceback.format_list(frames[-4:]) +
                       traceback.format_exception_only(etype, value))

    def addError(self, test, err):
        self._problem(test, "ERROR", self._fmt(err))

    def addFailure(self, test, err):
        self._problem(test, "FAILED", self._fmt(err))

    def addSubTest(self, test, subtest, err):
        if err is not None:
            kind = "FAILED" if issubclass(err[0], test.failureException) else "ERROR"
            self._problem(test, kind, "%s\n%s" % (subtest._subDescription(), self._fmt(err)))

    def addSkip(self, test, reason):
        self._problem(test, "SKIPPED (counted as a failure)", reason)

    def addExpectedFailure(self, test, err):
        self._problem(test, "EXPECTED FAILURE (counted as a failure)", self._fmt(err))

    def addUnexpectedSuccess(self, test):
        self._problem(test, "UNEXPECTED SUCCESS", "")


def main(argv):
    filters = []
    again = None
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "-k" and args:
            filters.append(args.pop(0))
        elif a == "--again-with-max-use" and args and args[0].isdigit():
            again = args.pop(0)
        else:
            print("usage: run.py [-k SUBSTRING]... [--again-with-max-use N]", file=sys.stderr)
            return 2
    signal.signal(signal.SIGALRM, _alarm)
    # Tests expect the default SIGPIPE-free Python behaviour; children get SIG_DFL back.
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t
    tests = [t for t in flatten(suite) if not filters or any(f in t.id() for f in filters)]
    suite = unittest.TestSuite(tests)
    result = Result()
    t0 = time.monotonic()
    print("integration: server %s" % os.environ.get("MYSMTPD", "./mysmtpd"), flush=True)
    suite.run(result)
    if again:
        import support
        listeners = [t for t in tests if t.id() in support.LISTENER_TESTS]
        print("integration: %d listener tests again, with --max-use %s" % (len(listeners), again),
              flush=True)
        os.environ["TEST_MAX_USE"] = again
        unittest.TestSuite(listeners).run(result)
    print("integration: %.1fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (result.passed, result.failed), flush=True)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
