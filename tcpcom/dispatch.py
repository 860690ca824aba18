"""Event delivery: one object's callbacks run one at a time, in order.

Every object that has callbacks (a connection, a listener, a tcpcom
``TCPServer``) owns a :class:`SerialExecutor`.  Threads *post* callbacks to
it; it guarantees

- callbacks of one executor run one at a time, in the order posted;
- a thread that posts never waits for another object's callback (so a slow
  or blocking callback cannot deadlock the engine), except for bounded
  back-pressure, see below;
- a callback that raises is logged with its traceback and delivery goes on.

How a posted callback gets a thread, the design that keeps the engine near
the raw-socket floor:

- **Inline fast path.**  A connection's reader thread posts with
  ``inline=True``.  If the executor is idle it runs the callback right there,
  on the reader thread: no queue hop, no thread switch.  A slow callback then
  holds up only its own connection's reading, which TCP flow control turns
  into back-pressure on that peer -- nothing else stalls.
- **Queued.**  If another thread is already delivering for this executor, the
  callback is appended and that thread runs it when it gets there (order
  kept).  If more than ``max_pending`` batches wait, an inline poster (a
  reader) waits for room, so memory stays bounded.
- **Scheduled.**  Posts from threads that must not run user code (listener
  threads, timers) or when the dispatcher forbids inline delivery are handed
  to the :class:`Dispatcher`: a small shared pool of worker threads (idle
  workers exit; more start only while blocking callbacks hold every worker),
  or an :class:`EventPump` that the program drains from its own main loop
  (GUI programs).
- **Deferred.**  A ``request()`` caller that reads its reply on its own thread
  must not run the connection's callbacks there (the program may hold a lock
  its callback wants): it posts with ``defer=True``, which only queues, and
  the connection's reader thread delivers the queue when it next wakes
  (:meth:`SerialExecutor.run_deferred`) -- no thread is woken per message.

A callback may post to its own executor (delivered after it returns) and may
call blocking engine methods: none of them waits for a callback to finish.
"""
from __future__ import absolute_import

import collections
import logging
import threading
import types

from ._compat import get_ident, make_thread, monotonic, queue
from .diagnostics import excerpt

log = logging.getLogger("tcpcom.dispatch")

DEFAULT_MAX_PENDING = 256
_SCHEDULED = object()
_DEFERRED = object()  # the owner of a queue that waits for run_deferred()


def call_logged(fn, args, what=None, logger=None):
    """Call ``fn(*args)``; an exception is logged with its traceback.

    The log line blames ``what`` (default: the name of ``fn``, see
    :func:`callable_name`) and shows the arguments (excerpts).  Where the engine calls user code through a
    wrapper of its own, the wrapper catches and names the user's function
    itself (the faces know its name and arguments); this is the last net.

    Written out per number of arguments: on CPython 3.11+ a call with fixed
    arguments runs in the same C-level interpreter loop, while ``fn(*args)``
    enters another one -- about 0.5 KiB more C stack per level, and a
    connection's first callbacks nest several levels (a reader thread touched
    12 KiB of stack instead of 8: 4 KiB more memory per connection).
    """
    try:
        n = len(args)
        if n == 1:
            fn(args[0])
        elif n == 0:
            fn()
        elif n == 2:
            fn(args[0], args[1])
        else:
            fn(*args)
    except Exception:
        _log_failed_call(fn, args, what, logger)


def _log_failed_call(fn, args, what=None, logger=None):
    """Log the exception being handled, raised by ``fn(*args)``: its traceback, and the call
    (``what``, default :func:`callable_name`, and argument excerpts) -- the engine's last net,
    for call_logged() and post_here(); the faces name the user's callback themselves
    (tcpcom.tcp.log_raised)."""
    (logger or log).exception("%s raised%s; the engine goes on", what or callable_name(fn),
                              " (%s)" % ", ".join(excerpt(a) for a in args) if args else "")


def callable_name(fn):
    """What the user wrote: ``Echo.connection_made`` for a bound method, ``on_event`` for a function."""
    name = getattr(fn, "__name__", None)
    if name is None:  # an object with __call__
        return type(fn).__name__
    owner = getattr(fn, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):  # a function, a builtin
        return name
    cls = owner if isinstance(owner, type) else getattr(owner, "__class__", type(owner))
    return "%s.%s" % (cls.__name__, name)


def call_text(name, args):
    """``stateChanged('CONNECTED', '127.0.0.1')``: a call as the user would write it, arguments excerpted."""
    return "%s(%s)" % (name, ", ".join(excerpt(a) for a in args))


class Dispatcher(object):
    """The default: a pool of shared worker threads.

    Workers start on demand, up to ``max_workers``, and end after
    ``idle_timeout`` seconds without work.  When every worker is busy and no
    waiting task was picked up for ``stall_timeout`` seconds (callbacks that
    block), one more worker starts, and so on while the stall lasts: a
    blocking callback never starves the callbacks of other objects.  Reader
    threads deliver inline.
    """

    inline = True

    def __init__(self, max_workers=16, idle_timeout=2.0, name="tcpcom-dispatch", stall_timeout=0.25):
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self.stall_timeout = stall_timeout
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._tasks = collections.deque()
        self._workers = 0
        self._idle = 0
        self._seq = 0
        self._taken = 0  # tasks picked up so far (progress, for the stall monitor)
        self._running = 0  # tasks being run now
        self._idle_waiters = 0  # threads in wait_idle()
        self._monitoring = False

    def schedule(self, fn):
        with self._cond:
            self._tasks.append(fn)
            if self._idle:
                self._cond.notify()
                return
            if self._workers >= self.max_workers:
                # Every worker is busy: if their callbacks block, work would
                # wait for them.  A monitor adds a worker whenever no task was
                # picked up for stall_timeout seconds (callbacks of other
                # objects must not starve behind blocking ones).
                if self._monitoring:
                    return
                self._monitoring = True
                target, name = self._monitor, self.name + "-monitor"
            else:
                self._workers += 1
                self._seq += 1
                target, name = self._work, "%s-%d" % (self.name, self._seq)
        make_thread(target, name).start()

    def _monitor(self):
        while True:
            with self._cond:
                seen = self._taken
            threading.Event().wait(self.stall_timeout)
            with self._cond:
                if not self._tasks:
                    self._monitoring = False
                    return
                if self._taken != seen or self._idle:
                    continue
                self._workers += 1
                self._seq += 1
                name = "%s-%d" % (self.name, self._seq)
            log.debug("all %d dispatch workers are busy: starting one more", self._workers - 1)
            make_thread(self._work, name).start()

    def _work(self):
        cond = self._cond
        tasks = self._tasks
        ran = False
        while True:
            with cond:
                if ran:  # counted here, under the lock taken anyway: no extra lock per task
                    self._running -= 1
                    if self._idle_waiters and not self._running and not tasks:
                        cond.notify_all()
                deadline = None
                while not tasks:
                    if self._workers > self.max_workers:  # an extra from a stall: leave now
                        self._workers -= 1
                        return
                    now = monotonic()
                    if deadline is None:
                        deadline = now + self.idle_timeout
                    elif now >= deadline:
                        self._workers -= 1
                        return
                    self._idle += 1
                    cond.wait(deadline - now)
                    self._idle -= 1
                fn = tasks.popleft()
                self._taken += 1
                self._running += 1
            try:
                call_logged(fn, ())
            except BaseException:
                with cond:
                    self._running -= 1
                raise
            ran = True

    @property
    def worker_count(self):
        return self._workers

    def wait_idle(self, timeout):
        """Wait up to ``timeout`` s until no task waits and none runs; True if so.

        (At a program's end: its last events are delivered before it exits.)
        """
        deadline = monotonic() + timeout
        with self._cond:
            self._idle_waiters += 1
            try:
                while self._tasks or self._running:
                    left = deadline - monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._idle_waiters -= 1
        return True


class EventPump(object):
    """A dispatcher the program drains itself, e.g. from a GUI main loop.

    Nothing is delivered until the program calls :meth:`pump`; every
    callback of every object using this pump then runs on that thread.
    Reader threads never deliver inline, and stop reading once
    ``max_pending`` batches wait for a pump (TCP back-pressure).
    """

    inline = False

    def __init__(self):
        self._tasks = queue.Queue()

    def schedule(self, fn):
        self._tasks.put(fn)

    def pump(self, timeout=0):
        """Deliver what is pending; wait up to ``timeout`` s for the first.

        Returns the number of executor batches run.
        """
        n = 0
        try:
            fn = self._tasks.get(timeout > 0, timeout if timeout > 0 else None)
        except queue.Empty:
            return 0
        while True:
            call_logged(fn, ())
            n += 1
            try:
                fn = self._tasks.get_nowait()
            except queue.Empty:
                return n

    def pump_until(self, predicate, timeout):
        """Pump until ``predicate()`` is true or ``timeout`` s passed; returns it."""
        deadline = monotonic() + timeout
        while not predicate():
            left = deadline - monotonic()
            if left <= 0:
                return predicate()
            self.pump(min(left, 0.05))
        return True


_default = [None]
_default_lock = threading.Lock()


def default_dispatcher():
    """The dispatcher objects use when none is given (created on first use)."""
    d = _default[0]
    if d is None:
        with _default_lock:
            if _default[0] is None:
                _default[0] = Dispatcher()
            d = _default[0]
    return d


def set_default_dispatcher(dispatcher):
    """Make ``dispatcher`` (e.g. an :class:`EventPump`) the default for objects created later."""
    _default[0] = dispatcher


class SerialExecutor(object):
    """Runs one object's callbacks one at a time, in the order posted."""

    def __init__(self, dispatcher=None, max_pending=DEFAULT_MAX_PENDING):
        self.dispatcher = dispatcher or default_dispatcher()
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._room = None  # a Condition on _lock, made when someone first waits (memory per connection)
        self._queue = []  # short (max_pending bounds it); a deque costs ~700 bytes per connection
        self._owner = None  # None: idle; a thread id: delivering; _SCHEDULED; _DEFERRED
        self._waiting = 0

    def in_callback(self):
        """True when the calling thread is delivering this executor's callbacks."""
        return self._owner == get_ident()

    def post(self, fn, args=(), inline=False, abort=None, defer=False):
        """Deliver ``fn(*args)`` after everything posted before it.

        ``inline=True`` lets the calling thread run it (and what follows)
        itself when the executor is idle; it is also what makes the poster
        wait for room when too much is pending (``abort()`` ends that wait).
        ``defer=True`` only queues it (when the executor is idle and the
        dispatcher delivers inline): :meth:`run_deferred` delivers it later.
        """
        me = get_ident()
        first = (fn, args)
        lock = self._lock
        lock.acquire()  # (not "with": a reader thread posts per message, and "with" costs more)
        try:
            owner = self._owner
            if owner is None or owner is _DEFERRED:
                if owner is _DEFERRED:  # what waits goes first
                    self._queue.append(first)
                    first = None
                if defer and self.dispatcher.inline and len(self._queue) < self.max_pending:
                    if first is not None:
                        self._queue.append(first)
                    self._owner = _DEFERRED
                    return
                if inline and self.dispatcher.inline:
                    self._owner = owner = me
                else:
                    if first is not None:
                        self._queue.append(first)
                    self._owner = owner = _SCHEDULED
            else:
                self._queue.append(first)
                if not inline or owner == me or len(self._queue) <= self.max_pending:
                    return
                self._wait_room(abort)
                return
        finally:
            lock.release()
        if owner is _SCHEDULED:
            self.dispatcher.schedule(self._drain_scheduled)
        elif first is None:  # queued behind what waited for run_deferred()
            self._drain()
        else:  # idle: this thread delivers it at once (fixed arguments: no C-level call, see call_logged)
            self._drain(fn, args)

    def post_here(self, fn, arg, abort=None):
        """``post(fn, (arg,), inline=True, abort=abort)``, for a reader thread's messages: when
        the executor is idle, this thread calls ``fn(arg)`` at once, then delivers what was
        posted meanwhile; else it is queued as ``post()`` queues it.

        The per-message path: two Python calls (this, ``fn``) instead of four (``post``,
        ``_drain``, ``call_logged``, ``fn``) -- with thousands of reader threads each call
        is paid again with cold caches after every thread switch.
        """
        lock = self._lock
        lock.acquire()
        if self._owner is not None or not self.dispatcher.inline:
            lock.release()
            self.post(fn, (arg,), True, abort)
            return
        self._owner = get_ident()
        lock.release()
        try:
            fn(arg)
        except Exception:  # (fn logs its callbacks' own): the last net, as call_logged()
            _log_failed_call(fn, (arg,))
        except BaseException:  # a KeyboardInterrupt in a pumped main thread, as _drain()
            self._release_after_error()
            raise
        lock.acquire()
        if self._queue or self._waiting:  # posted meanwhile, or somebody waits for idle
            lock.release()
            self._drain()
            return
        self._owner = None
        lock.release()

    def run_deferred(self):
        """Deliver, on this thread, what ``post(defer=True)`` queued (if nobody else delivers)."""
        with self._lock:
            if self._owner is not _DEFERRED:
                return
            self._owner = get_ident()
        self._drain()

    def wait_idle(self, timeout):
        """Wait up to ``timeout`` s until everything posted so far was delivered.

        Returns at once (False) where waiting could never end: when called
        from inside one of this executor's callbacks, or when an
        :class:`EventPump` delivers (the caller may be the pumping thread).
        """
        if not self.dispatcher.inline or self.in_callback():
            return False
        deadline = monotonic() + timeout
        with self._lock:
            self._make_room()
            self._waiting += 1
            try:
                while self._owner is not None:
                    left = deadline - monotonic()
                    if left <= 0:
                        return False
                    self._room.wait(min(left, 0.05))
            finally:
                self._waiting -= 1
        return True

    def _make_room(self):
        # called with the lock held; notify sites check _waiting, which only
        # becomes non-zero after this
        if self._room is None:
            self._room = threading.Condition(self._lock)

    def _wait_room(self, abort):
        # called with the lock held
        self._make_room()
        self._waiting += 1
        try:
            while len(self._queue) > self.max_pending and self._owner is not None:
                if abort is not None and abort():
                    return
                self._room.wait(0.05)
        finally:
            self._waiting -= 1

    def _drain_scheduled(self):
        """A dispatcher thread delivers the queue."""
        with self._lock:
            self._owner = get_ident()
        self._drain()

    def _drain(self, fn=None, args=()):
        """Deliver ``fn(*args)`` (if given), then until the queue is empty; this thread owns the executor."""
        q = self._queue
        lock = self._lock
        try:
            while True:
                if fn is not None:
                    call_logged(fn, args)
                lock.acquire()
                if not q:
                    self._owner = None
                    if self._waiting:
                        self._room.notify_all()
                    lock.release()
                    return
                fn, args = q.pop(0)
                if self._waiting and len(q) <= self.max_pending:
                    self._room.notify_all()
                lock.release()
        except BaseException:
            self._release_after_error()
            raise

    def _release_after_error(self):
        # A BaseException (KeyboardInterrupt in a pumped main thread) escaped
        # a callback: hand what is left to the dispatcher, then let it fly.
        with self._lock:
            if self._queue:
                self._owner = _SCHEDULED
            else:
                self._owner = None
                return
        self.dispatcher.schedule(self._drain_scheduled)
