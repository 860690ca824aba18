"""Deadlines: one shared thread that enforces every connection's timeouts.

The watchdog knows nothing of connections.  What it watches (a *target*)
offers two methods:

- ``check_deadlines(now)``: act on whatever is due (close, send a farewell)
  and return when to check again, or None;
- ``watch_ended()``: True once nothing is left to watch (the target closed).

:meth:`Watchdog.watch` asks for a check at a time; :meth:`Watchdog.forget`
says the target has ended, so the watchdog does not keep it alive until its
last deadline (with a 30 s send timeout, at a high connection rate, that was
a lot of memory).
"""
from __future__ import absolute_import

import heapq
import itertools
import logging
import threading

from .._compat import make_thread, monotonic

log = logging.getLogger("tcpcom.engine")

#: the longest the watchdog sleeps without looking (it ends when idle that long)
IDLE_WAKE = 5.0


class Watchdog(object):
    """One thread for the deadlines of every target; it starts on demand and ends when idle."""

    def __init__(self):
        # watch() and forget() run per connection: they take the lock itself ("with" a
        # Condition costs two Python calls more)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap = []          # [when, seq, target]; target None: stale (forgotten or superseded)
        self._due = {}           # target -> its one live entry in the heap
        self._seq = itertools.count()
        self._thread = None
        self._stale = 0          # stale entries in the heap
        self._wake_at = None     # when the waiting watchdog wakes by itself (None: not waiting)

    def watch(self, target, when):
        """Check ``target`` at ``when`` (a :func:`monotonic` time) or earlier."""
        with self._lock:
            if target.watch_ended():  # ended meanwhile (forget() may have run already)
                return
            entry = self._due.get(target)
            if entry is not None:
                if entry[0] <= when:
                    return  # an earlier check is pending; it schedules the next one
                self._drop(entry)
            entry = self._due[target] = [when, next(self._seq), target]
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = make_thread(self._run, "tcpcom-watchdog")
                self._thread.start()
            elif self._wake_at is not None and when < self._wake_at:
                # only when it would wake too late: with short-lived connections the
                # heap is often empty and a new entry is the first (30 s send timeout)
                # while the watchdog wakes within IDLE_WAKE anyway -- no wake-up per connection
                self._wake_at = None
                self._cond.notify()

    def forget(self, target):
        """``target`` has ended: its entry lets go of it at once (it may be a connection with
        its buffers: not kept until its last deadline, 30 s with the default send timeout)."""
        with self._lock:
            entry = self._due.pop(target, None)
            if entry is not None:
                self._drop(entry)

    def _drop(self, entry):
        # (lock held) the entry stays in the heap, without its target, until it comes first or
        # the stale entries could be half the heap: then they go, in one pass -- a constant
        # cost per entry however many targets there are
        entry[2] = None
        self._stale += 1
        if self._stale * 2 >= len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._stale = 0

    def _next_due(self):
        """Wait for the first due target and return it (None: idle long enough, the thread ends)."""
        cond = self._cond
        with cond:
            while True:
                now = monotonic()
                if not self._heap:
                    self._wake_at = now + IDLE_WAKE
                    cond.wait(IDLE_WAKE)
                    self._wake_at = None
                    if not self._heap:
                        self._thread = None
                        return None
                    continue
                when, _, target = self._heap[0]
                if target is None:  # stale
                    heapq.heappop(self._heap)
                    self._stale -= 1
                    continue
                if when <= now:
                    heapq.heappop(self._heap)
                    del self._due[target]
                    return target
                wait = min(when - now, IDLE_WAKE)
                self._wake_at = now + wait
                cond.wait(wait)  # holding no target meanwhile
                self._wake_at = None

    def _run(self):
        while True:
            target = self._next_due()
            if target is None:
                return
            try:
                nxt = target.check_deadlines(monotonic())
            except Exception:
                log.exception("watchdog check failed")
                nxt = None
            if nxt is not None:
                self.watch(target, nxt)
            target = None


#: the engine's one watchdog
watchdog = Watchdog()
