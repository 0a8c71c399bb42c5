#!/usr/bin/env python3
"""run.py: run the integration tests (tests/integration/test_*.py).

    python3 tests/integration/run.py [-k SUBSTRING]... [--again-with-max-use N] [--jobs N]
                                     [--part shared|alone] [--sweeps]

Prints one line per test and, last, exactly "N passed, N failed" (errors,
skips and timeouts count as failed). Exit status 1 if any test failed.
With --again-with-max-use N, the tests that started a listening mysmtpd
are run once more, each listener given --max-use N, and counted too.
The server under test is $MYSMTPD (default ./mysmtpd at the top of the tree).

--jobs N (default: $TEST_JOBS, else the number of CPUs) runs N test modules
at once, each in a process of its own; a module's lines are printed
together, in its order, when it is done. A module (or a test class) that
cannot share the machine says why in SERIAL = "reason": those run alone,
one after another, once the rest is done (--part shared runs only the rest,
--part alone only those: tests/run runs the first part of two builds at
once, then the second of each). --jobs 1 runs everything in this process,
in order.

--sweeps runs only the sweeps (tests marked @support.sweep_test: a fault or
a kill at every call); `make sweep` runs them so with TEST_SWEEP=full, every
point, where `make check` runs a seeded sample (support.Sweep).
"""

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

PER_TEST_LIMIT = 120  # seconds; a test that runs longer is stopped and fails
# A module's process that prints nothing for this long is stopped (its
# tests' own limit is PER_TEST_LIMIT; this catches a hang between tests).
SILENCE_LIMIT = PER_TEST_LIMIT + 60
# Where the time of each test class is kept between runs (a file for each
# $TEST_FLAVOUR), to start the longest modules first.
TIMES = os.path.join(TOP, "build", "integration-times-%s.json")
USAGE = ("usage: run.py [-k SUBSTRING]... [--again-with-max-use N] [--jobs N] "
         "[--part shared|alone] [--sweeps]")


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


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def run_here(tests, again, result, quiet=False):
    """Run tests in this process, then (again) its listener tests with --max-use."""
    signal.signal(signal.SIGALRM, _alarm)
    unittest.TestSuite(tests).run(result)
    if again:
        import support
        listeners = [t for t in tests if t.id() in support.LISTENER_TESTS]
        if not listeners and quiet:
            return
        print("integration: %d listener tests again, with --max-use %s" % (len(listeners), again),
              flush=True)
        os.environ["TEST_MAX_USE"] = again
        unittest.TestSuite(listeners).run(result)
        del os.environ["TEST_MAX_USE"]


# ---------------------------------------------------------------------------
# Running modules in processes of their own.

def is_sweep(test):
    return getattr(getattr(test, getattr(test, "_testMethodName", ""), None), "sweep", False)


def serial_reason(test):
    """Why test must run alone (its method's, class's or module's SERIAL), or None."""
    method = getattr(test, getattr(test, "_testMethodName", ""), None)
    for holder in (method, type(test), sys.modules.get(type(test).__module__)):
        reason = getattr(holder, "SERIAL", None)
        if reason:
            return reason if isinstance(reason, str) else "serial"
    return None


class Unit:
    """Tests run together by one process: a module, or some classes of one."""

    def __init__(self, name, serial=None):
        self.name, self.serial, self.tests = name, serial, []
        self.proc, self.out, self.shown, self.heard = None, bytearray(), 0, 0.0

    def cost(self, times):
        return sum(times.get(class_of(t), 1.0) for t in self.tests)


def class_of(test):
    return test.id().rsplit(".", 1)[0]


def times_file():
    return TIMES % os.environ.get("TEST_FLAVOUR", "plain")


def load_times():
    try:
        with open(times_file()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_times(times):
    try:
        with open(times_file() + ".tmp", "w") as f:
            json.dump(times, f, indent=0, sort_keys=True)
        os.replace(times_file() + ".tmp", times_file())
    except OSError:
        pass        # no build/ directory: the next run starts in module order


def make_units(tests, jobs, times):
    """Serial units (a module or class each), then the parallel ones: one per
    module, a module split by class when it alone would take more than its
    share, the longest first."""
    serial, modules = {}, {}
    for t in tests:
        reason = serial_reason(t)
        if reason:
            key = type(t).__module__ if getattr(sys.modules.get(type(t).__module__), "SERIAL",
                                                None) else class_of(t)
            serial.setdefault(key, Unit(key, reason)).tests.append(t)
        else:
            modules.setdefault(type(t).__module__, Unit(type(t).__module__)).tests.append(t)
    share = sum(u.cost(times) for u in modules.values()) / (2 * jobs)
    parallel = []
    for name, unit in modules.items():
        classes = {}
        for t in unit.tests:
            classes.setdefault(class_of(t), []).append(t)
        if unit.cost(times) <= share or len(classes) == 1:
            parallel.append(unit)
            continue
        for cls, members in classes.items():
            u = Unit(cls)
            u.tests = members
            parallel.append(u)
    parallel.sort(key=lambda u: -u.cost(times))
    return list(serial.values()), parallel


def start(unit, again):
    cmd = [sys.executable, os.path.abspath(__file__), "--child"]
    if again:
        cmd += ["--again-with-max-use", again]
    unit.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    unit.proc.stdin.write("".join(t.id() + "\n" for t in unit.tests).encode())
    unit.proc.stdin.close()
    unit.heard = time.monotonic()


LINE_RE = re.compile(r"^(\S+) \.\.\. .*\b(ok|FAIL) \(([0-9.]+)s\)$")
RESULT_RE = re.compile(r"^(\d+) passed, (\d+) failed$")


def show(lines):
    """Print a unit's lines but its own result line (the total comes last)."""
    for line in lines:
        if not RESULT_RE.match(line):
            print(line)
    sys.stdout.flush()


def finish(unit, counts, times):
    """Add up a finished unit's result line and the time of its classes."""
    lines = unit.out.decode("utf-8", "replace").splitlines()
    last = None
    seen = {"ok": 0, "FAIL": 0}
    for line in lines:
        m = RESULT_RE.match(line)
        if m:
            last = (int(m.group(1)), int(m.group(2)))
        m = LINE_RE.match(line)
        if m:
            seen[m.group(2)] += 1
            cls = m.group(1).rsplit(".", 1)[0]
            times[cls] = times.get(cls, 0.0) + float(m.group(3))
    if last is None:
        lost = max(1, len(unit.tests) - seen["ok"] - seen["FAIL"]) + seen["FAIL"]
        print("integration: %s ended without a result line (exit status %s); %d counted as failed"
              % (unit.name, unit.proc.returncode, lost), flush=True)
        last = (seen["ok"], lost)
    counts[0] += last[0]
    counts[1] += last[1]


def run_units(units, jobs, again, counts, times, alone=False):
    """Run units, jobs at a time; print each one's lines when it is done, or
    (alone) line by line as they come."""
    waiting, running = list(units), []
    sel = selectors.DefaultSelector()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                u = waiting.pop(0)
                start(u, again)
                if alone:
                    print("integration: %s, alone: %s" % (u.name, u.serial), flush=True)
                sel.register(u.proc.stdout, selectors.EVENT_READ, u)
                running.append(u)
            for key, _ in sel.select(timeout=5):
                u = key.data
                data = os.read(u.proc.stdout.fileno(), 1 << 16)
                u.heard = time.monotonic()
                if data:
                    u.out += data
                    if alone and b"\n" in data:
                        end = u.out.rfind(b"\n")
                        show(u.out[u.shown:end].decode("utf-8", "replace").splitlines())
                        u.shown = end + 1
                    continue
                sel.unregister(u.proc.stdout)
                u.proc.stdout.close()
                u.proc.wait()
                running.remove(u)
                show(u.out[u.shown:].decode("utf-8", "replace").splitlines())
                times.update({k: 0.0 for k in {class_of(t) for t in u.tests}})
                finish(u, counts, times)
            for u in running:
                if time.monotonic() - u.heard > SILENCE_LIMIT:
                    u.out += b"\nintegration: silent for %d s: stopped\n" % SILENCE_LIMIT
                    stop(u)
    finally:
        for u in running:
            stop(u)


def stop(unit):
    try:
        os.killpg(unit.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_parallel(tests, jobs, again, part):
    """The parallel units first, jobs at a time, then the serial ones alone
    (part: "shared" the first only, "alone" the second only)."""
    times = load_times()
    counts = [0, 0]
    here = [t for t in tests if type(t).__module__.startswith("unittest")]   # import errors
    if here:
        result = Result()
        run_here(here, None, result)
        counts = [result.passed, result.failed]
    tests = [t for t in tests if t not in here]
    serial, parallel = make_units(tests, jobs, times)
    if part == "alone":
        parallel = []
    if part == "shared":
        serial = []
    print("integration: %d tests in %d groups, %d at a time; then %d alone: %s"
          % (sum(len(u.tests) for u in parallel), len(parallel), jobs,
             sum(len(u.tests) for u in serial), ", ".join(u.name for u in serial) or "none"),
          flush=True)
    run_units(parallel, jobs, again, counts, times)
    run_units(serial, 1, again, counts, times, alone=True)
    save_times(times)
    return counts


# ---------------------------------------------------------------------------

def main(argv):
    filters = []
    again = None
    child = False
    sweeps = False
    part = None
    jobs = os.environ.get("TEST_JOBS") or str(os.cpu_count() or 1)
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "-k" and args:
            filters.append(args.pop(0))
        elif a == "--again-with-max-use" and args and args[0].isdigit():
            again = args.pop(0)
        elif a == "--jobs" and args and args[0].isdigit() and int(args[0]) > 0:
            jobs = args.pop(0)
        elif a == "--child":
            child = True
        elif a == "--sweeps":
            sweeps = True
        elif a == "--part" and args and args[0] in ("shared", "alone"):
            part = args.pop(0)
        else:
            print(USAGE, file=sys.stderr)
            return 2
    if not jobs.isdigit() or int(jobs) < 1:
        print("run.py: TEST_JOBS must be a number of at least 1", file=sys.stderr)
        return 2
    jobs = int(jobs)
    loader = unittest.TestLoader()
    if child:
        # The test ids on standard input, in their order (run_parallel's units).
        names = [l.strip() for l in sys.stdin if l.strip()]
        tests = list(flatten(loader.loadTestsFromNames(names)))
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
        tests = [t for t in flatten(suite) if not filters or any(f in t.id() for f in filters)]
        if sweeps:
            tests = [t for t in tests if is_sweep(t)]
    t0 = time.monotonic()
    if child or (jobs == 1 and part is None):
        if not child:
            print("integration: server %s" % os.environ.get("MYSMTPD", "./mysmtpd"), flush=True)
        result = Result()
        run_here(tests, again, result, quiet=child)
        counts = [result.passed, result.failed]
    else:
        print("integration: server %s" % os.environ.get("MYSMTPD", "./mysmtpd"), flush=True)
        counts = run_parallel(tests, jobs, again, part)
    if not child:
        print("integration: %.1fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % tuple(counts), flush=True)
    return 1 if counts[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
