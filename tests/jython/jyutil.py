# -*- coding: utf-8 -*-
"""Helpers of the standard-library test suite (runs under Jython 2.7 and CPython 3).

Importing it puts this tree's ``tcpcom`` and the shared ``tests/testkit.py``
on ``sys.path``; the helpers both suites use live in testkit and are
imported from here under their usual names.  What is left here is the
Jython suite's own.
"""
from __future__ import absolute_import, print_function

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
for _path in (TESTS, ROOT):  # ROOT first: the tcpcom of this tree; TESTS: the shared testkit
    if _path not in sys.path:
        sys.path.insert(0, _path)

from tcpcom._compat import JYTHON, PY2, monotonic, queue, text_type  # noqa: E402,F401
from testkit import (DEADLINE, Recorder, engine_threads, other_interpreter, raw_client, raw_listener,  # noqa: E402,F401
                     recv_until, wait_until)

IMPL = "Jython" if JYTHON else "CPython"


def utf8(text):
    """The UTF-8 bytes of ``text`` (a byte string on Jython, bytes on CPython 3)."""
    return text.encode("utf-8")
