# -*- coding: utf-8 -*-
"""Run the standard-library test suite: ``jython tests/jython/run.py`` (or ``python3 ...``).

pytest does not run on Jython, so these tests use only ``unittest``.  They
run under both interpreters (pytest also collects them on CPython 3).
Arguments are test name patterns (``-k`` style substrings); ``-v`` is verbose.

Every test is bounded: besides the deadline of each wait, a guard thread
ends the whole run (exit status 3, with every thread's stack) when one test
takes longer than its ``timeout`` attribute (default 90 s).
Exit status: 0 when everything passed, 1 on a failure or error.
"""
from __future__ import absolute_import, print_function

import os
import sys
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import jyutil  # noqa: E402  (puts the repository on sys.path)

DEFAULT_TIMEOUT = 90.0


def _dump_threads_and_exit(test, limit):
    out = sys.stderr
    out.write("\n*** %s took longer than %.0f s: aborting the run ***\n" % (test.id(), limit))
    frames = getattr(sys, "_current_frames", lambda: {})()
    names = dict((t.ident, t.name) for t in threading.enumerate())
    for ident, frame in frames.items():
        out.write("\n--- thread %s (%s)\n" % (names.get(ident, "?"), ident))
        out.write("".join(traceback.format_stack(frame)))
    out.flush()
    os._exit(3)


class GuardedResult(unittest.TextTestResult):
    """Starts a timer per test that aborts the run if the test hangs."""

    def startTest(self, test):
        method = getattr(test, getattr(test, "_testMethodName", ""), None)
        limit = getattr(method, "timeout", None) or getattr(test, "timeout", None) or DEFAULT_TIMEOUT
        self._guard = threading.Timer(limit, _dump_threads_and_exit, (test, limit))
        self._guard.daemon = True
        self._guard.start()
        self._started = time.time()
        unittest.TextTestResult.startTest(self, test)

    def stopTest(self, test):
        self._guard.cancel()
        unittest.TextTestResult.stopTest(self, test)


def _matching(suite, patterns):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            for t in _matching(item, patterns):
                yield t
        elif not patterns or any(p in item.id() for p in patterns):
            yield item


def main(argv):
    verbose = "-v" in argv
    patterns = [a for a in argv if not a.startswith("-")]
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    suite = unittest.TestSuite(list(_matching(suite, patterns)))
    print("tcpcom standard-library suite on %s %s" % (jyutil.IMPL, sys.version.split()[0]))
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if verbose else 1,
                                     resultclass=GuardedResult)
    result = runner.run(suite)
    sys.stdout.flush()
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: leftover daemon threads (and Jython's Netty pools) must not
    # delay or clutter the exit of the test process.
    os._exit(code)
