# -*- coding: utf-8 -*-
"""Helpers shared by both test suites: the pytest suite (through
``tests/helpers.py``) and the standard-library suite that also runs on
Jython 2.7 (through ``tests/jython/jyutil.py``).

So this module uses the standard library only, in Python 2.7 syntax, and
never imports pytest.  ``tcpcom`` must already be importable (jyutil puts the
repository on ``sys.path`` first).

Everything waits on a condition with a deadline; nothing sleeps to
synchronise.  The one pause here, :data:`HOLD`, is not a synchronisation: it
keeps a recorded call inside its counted section long enough that a second
call running at the same time is seen (see :class:`OverlapMeter`).
"""
from __future__ import absolute_import

import os
import socket
import threading
import time

from tcpcom._compat import JYTHON, monotonic

#: seconds any single wait may take before the test fails (Jython is slow to
#: warm up; the CI machine is small and shared; waits end as soon as satisfied)
DEADLINE = 15.0 if JYTHON else 10.0

#: seconds each recorded call stays inside its counted section (see OverlapMeter)
HOLD = 0.0005


def wait_until(predicate, timeout=DEADLINE, what="condition"):
    """Poll ``predicate`` (every 5 ms) until true; fail after ``timeout`` s."""
    deadline = monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if monotonic() > deadline:
            raise AssertionError("%s not met within %.1f s" % (what, timeout))
        pause.wait(0.005)


def raw_client(port, host="127.0.0.1"):
    """A plain socket connected to ``port`` (timeouts: DEADLINE)."""
    s = socket.create_connection((host, port), DEADLINE)
    s.settimeout(DEADLINE)
    return s


def raw_listener():
    """A plain listening socket on 127.0.0.1, port 0 (an 'original tcpcom' stand-in)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
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


def engine_threads():
    """Names of the live threads of one object (not the shared dispatch pool, watchdog or spares)."""
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith("tcpcom-")
                  and not t.name.startswith(("tcpcom-dispatch", "tcpcom-watchdog", "tcpcom-spare")))


class OverlapMeter(object):
    """Counts the threads inside a section at once: ``with meter: ...``.

    Entering counts up under a lock; the section itself runs outside the
    lock; leaving counts down under the lock.  Only so can two calls that
    really run at the same time be seen: a count that goes up and down
    inside one locked block is never above one, whatever the callers do.
    ``overlap`` is True once two threads were inside together.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self.most = 0

    def __enter__(self):
        with self._lock:
            self.active += 1
            if self.active > self.most:
                self.most = self.active
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self.active -= 1
        return False

    @property
    def overlap(self):
        return self.most > 1


class CallLog(object):
    """Remembers calls as ``(kind, value)`` pairs, waits for them with a
    deadline, and sees whether two calls ever ran at the same time.

    Not callable itself (the engine takes a callable handler for a Q-SYS
    style function): handler classes derive from it and :meth:`record` what
    they get; :class:`Recorder` is the ``stateChanged(state, msg)`` callback.
    """

    def __init__(self, name="log", hold=HOLD):
        self.name = name
        self.hold = hold
        self.events = []
        self.cond = threading.Condition()
        self.threads = set()
        self.meter = OverlapMeter()

    @property
    def overlap(self):
        """True once two recorded calls ran at the same time."""
        return self.meter.overlap

    def record(self, kind, value, then=None):
        """Remember ``(kind, value)`` inside the counted section, then call ``then(kind, value)`` there."""
        with self.meter:
            with self.cond:
                self.events.append((kind, value))
                self.threads.add(threading.current_thread().name)
                self.cond.notify_all()
            if self.hold:
                time.sleep(self.hold)  # the window in which an overlapping call is seen
            if then is not None:
                then(kind, value)

    def states(self):
        with self.cond:
            return [s for s, _ in self.events]

    def messages(self, state="MESSAGE"):
        with self.cond:
            return [m for s, m in self.events if s == state]

    def wait_for(self, predicate, timeout=DEADLINE):
        """Wait until ``predicate(events)`` holds; fails after ``timeout`` s."""
        deadline = monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                left = deadline - monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out; events so far: %r" % (self.name, self.events))
                self.cond.wait(min(left, 0.5))
            return list(self.events)

    def wait_state(self, state, count=1, timeout=DEADLINE):
        return self.wait_for(lambda ev: sum(1 for s, _ in ev if s == state) >= count, timeout)

    def wait_messages(self, n, timeout=DEADLINE, state="MESSAGE"):
        self.wait_state(state, n, timeout)
        return self.messages(state)


class Recorder(CallLog):
    """A ``stateChanged(state, msg)`` callback that remembers every call.

    ``on_event(state, msg)``, when set, runs inside the counted section after
    the call was recorded (a test's own reaction, e.g. an echo).
    """

    def __init__(self, name="rec", on_event=None, hold=HOLD):
        CallLog.__init__(self, name, hold)
        self.on_event = on_event

    def __call__(self, state, msg):
        self.record(state, msg, self.on_event)


def other_interpreter():
    """The interpreter at the other end of a cross-interpreter test: $TCPCOM_OTHER_PYTHON, else
    python3 under Jython and jython elsewhere (None when it is not installed)."""
    chosen = os.environ.get("TCPCOM_OTHER_PYTHON")
    if chosen:
        return chosen
    try:
        from shutil import which
    except ImportError:  # Python 2.7 / Jython
        from distutils.spawn import find_executable as which
    return which("python3" if JYTHON else "jython")
