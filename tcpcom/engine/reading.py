"""Reading: the threads that run read loops, and the waiters behind ``request()``.

- :class:`Waiter` is a one-shot slot: one thread fills it, any number wait; it can
  wake its waiter without filling it.
- :class:`Spares` keeps reader threads of finished connections for the next
  accepted connection instead of letting them end (starting a thread costs
  about 100 us of CPU, the largest cost per connection at a connection per
  request).  Its trap: a spare thread waits ``idle_timeout`` s for work, so
  the shared pool is of daemon threads; a non-daemon listener keeps a pool
  of its own and ends its waiting spares when it closes (else they would
  hold the program's end for that long).
- :func:`current_reader` says which object's read loop runs on this thread:
  a blocking call made from a callback on a reader thread must not wait for
  that very thread.
"""
from __future__ import absolute_import

import itertools
import logging
import threading

from .._compat import LOCK_TIMEOUT, get_ident, make_thread

log = logging.getLogger("tcpcom.engine")

RECV_SIZE = 65536

#: thread ident -> the object whose read loop runs on that thread (a per-request path reads
#: it with ``readers.get(get_ident())``, without the call below).  A dict, not a
#: threading.local: that cost every reader thread 500 bytes more (tracemalloc), this 70.  A
#: read loop removes its entry when it ends (a thread's ident may be used again).
readers = {}


def current_reader():
    """The object (connection, UDP endpoint) whose read loop runs on this thread, or None."""
    return readers.get(get_ident())


def set_current_reader(obj):
    """Mark this thread as ``obj``'s reader (None: no longer)."""
    if obj is None:
        readers.pop(get_ident(), None)
    else:
        readers[get_ident()] = obj


class Waiter(object):
    """A one-shot slot: ``set()`` fills it once, ``wait()`` returns when filled.

    A bare lock is the cheapest cross-thread wake-up CPython has (an Event
    costs a Condition and two more locks); interpreters whose locks take no
    timeout (Python 2.7, Jython) use an Event.
    """
    __slots__ = ("value", "done", "_lock", "_event")

    def __init__(self):
        self.value = None
        self.done = False
        if LOCK_TIMEOUT:
            self._lock = threading.Lock()
            self._lock.acquire()
            self._event = None
        else:
            self._event = threading.Event()

    def set(self, value=None):
        """Fill the slot (the first call wins; callers serialise it with a lock of their own)."""
        if self.done:
            return
        self.value = value
        self.done = True
        if self._event is None:
            try:
                self._lock.release()
            except RuntimeError:  # a wake released it, and its waiter has not taken it again
                pass
        else:
            self._event.set()

    def wait(self, timeout=None):
        """Wait until set (``timeout`` None: for ever) or woken; any number of threads may
        wait.  Returns whether it is filled."""
        if self.done:
            return True
        if self._event is not None:
            if self._event.wait(timeout) and not self.done:
                self._event.clear()  # woken, not filled: the next wait waits again
        elif self._lock.acquire(True, -1 if timeout is None else timeout) and self.done:
            try:
                self._lock.release()  # for the next one who waits (woken, not filled: keep it)
            except RuntimeError:  # set() released it too, after a wake (see wake())
                pass
        return self.done

    def wake(self):
        """Make a wait() return without filling the slot: its thread looks again whether
        it can read its reply itself (see ``Connection._park``).  For a slot one thread
        waits on; callers serialise it with set() by a lock of their own."""
        if self.done:
            return
        if self._event is None:
            # (a woken waiter takes the lock again and keeps it; set() releases it once
            # more, and so may the waiter when it sees it filled: whichever of them comes
            # second finds it released, which is what it wanted)
            try:
                self._lock.release()
            except RuntimeError:  # woken already
                pass
        else:
            self._event.set()


class ReaderThread(object):
    """A read loop ``run()`` on a thread of its own: ``start()``, ``join()``, ``done``.

    ``spares`` (a :class:`Spares` whose threads are daemons or not as
    ``daemon`` says): run it on a waiting spare thread if there is one.
    Without: a new thread, daemon or not.
    """

    __slots__ = ("name", "_run", "_ended", "_thread")

    def __init__(self, run):
        self.name = None
        self._run = run
        self._ended = Waiter()
        self._thread = None

    def start(self, name, daemon=True, spares=None):
        self.name = name
        if spares is not None and spares.daemon == daemon:
            spares.start(self, name)
        else:
            self._thread = make_thread(self._own_thread, name, daemon=daemon)
            self._thread.start()

    def _own_thread(self):
        try:
            self.run()
        finally:
            self.ended()

    def run(self):
        self._run()

    def ended(self):
        """The read loop has ended and its thread no longer belongs to it."""
        self._run = None
        self._ended.set()

    @property
    def done(self):
        return self._ended.done

    def is_alive(self):
        """True until the read loop has ended (and its own thread, if it had one)."""
        t = self._thread
        return t.is_alive() if t is not None else not self._ended.done

    def join(self, timeout=None):
        """Wait until the read loop has ended (and its own thread), at most ``timeout`` s; True if so."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return self._ended.wait(timeout)


class Spares(object):
    """Reader threads kept for the next accepted connection instead of ending.

    A daemon reader whose connection has finished waits up to
    ``idle_timeout`` s, named ``tcpcom-spare``, for the next connection's
    read loop; at most ``max_spare`` wait.  ``daemon=False``: the pool of
    one non-daemon listener, which calls :meth:`close` when it closes.
    """

    def __init__(self, max_spare=16, idle_timeout=2.0, daemon=True):
        self.max_spare = max_spare
        self.idle_timeout = idle_timeout
        self.daemon = daemon
        self._closed = False
        self._lock = threading.Lock()
        self._idle = []  # one Waiter per waiting spare thread, the last one waited least
        self._seq = itertools.count(1)

    def start(self, reader, name):
        """Run ``reader.run()`` on a spare thread, or on a new daemon thread if none waits."""
        with self._lock:
            if self._idle:
                self._idle.pop().set((reader, name))
                return
        make_thread(self._run, name, ((reader, name),), daemon=self.daemon).start()

    def close(self):
        """The waiting spare threads end now, and busy ones when their connection has."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.set(None)

    def _run(self, job):
        me = threading.current_thread()
        while True:
            reader, name = job
            if me.name != name:
                me.name = name
            try:
                reader.run()
            except Exception:  # the read loop logs its own; never let a spare die silently
                log.exception("reader thread failed")
            except BaseException:
                reader.ended()
                raise
            me.name = "tcpcom-spare-%d" % next(self._seq)
            w = Waiter()
            with self._lock:
                keep = not self._closed and len(self._idle) < self.max_spare
                if keep:
                    self._idle.append(w)
            reader.ended()  # join() returns: this thread no longer belongs to the connection
            if not keep:
                return
            job = reader = None
            w.wait(self.idle_timeout)
            with self._lock:
                if not w.done:  # nobody came: leave (set() happens under this lock)
                    self._idle.remove(w)
                    return
            job = w.value
            if job is None:  # closed
                return


#: the engine's spare reader threads
spares = Spares()
