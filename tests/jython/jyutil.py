# -*- coding: utf-8 -*-
"""Helpers of the standard-library test suite (runs under Jython 2.7 and CPython 3).

Everything waits on a condition with a deadline; nothing sleeps to
synchronise.  Deadlines are generous: Jython is slow to warm up and the CI
machine is shared.
"""
from __future__ import absolute_import, print_function

import os
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
for _path in (TESTS, ROOT):  # ROOT first: the tcpcom of this tree; TESTS: the shared testkit
    if _path not in sys.path:
        sys.path.insert(0, _path)

from tcpcom._compat import JYTHON, PY2, monotonic, queue, text_type  # noqa: E402,F401
from testkit import Recorder  # noqa: E402,F401

#: seconds any single wait may take before the test fails
DEADLINE = 15.0
IMPL = "Jython" if JYTHON else "CPython"


def wait_until(predicate, timeout=DEADLINE, what="condition"):
    """Poll ``predicate`` (every 5 ms) until true; fail after ``timeout`` s."""
    deadline = monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if monotonic() > deadline:
            raise AssertionError("%s not met within %.0f s" % (what, timeout))
        pause.wait(0.005)


def raw_client(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), DEADLINE)
    s.settimeout(DEADLINE)
    return s


def recv_until(sock, n_delims, delim=b"\0"):
    """Read until ``n_delims`` delimiters arrived (or the peer closed)."""
    data = b""
    while data.count(delim) < n_delims:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def raw_listener():
    """A plain listening socket on 127.0.0.1, port 0 (an 'original tcpcom' stand-in)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.settimeout(DEADLINE)
    return s


def engine_threads():
    """Live threads of one object (not the shared dispatch pool or watchdog)."""
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith("tcpcom-")
                  and not t.name.startswith(("tcpcom-dispatch", "tcpcom-watchdog", "tcpcom-spare")))


def utf8(text):
    """The UTF-8 bytes of ``text`` (a byte string on Jython, bytes on CPython 3)."""
    return text.encode("utf-8")
