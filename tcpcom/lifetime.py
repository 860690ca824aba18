"""The end of a program: its last events delivered, one Ctrl-C, leaving the REPL.

The faces' objects (``TCPServer``, ``TCPClient``, ``HTTPServer``) register
here.  What this module promises:

- **The last events reach the user before the program ends.**  Callbacks run
  on the dispatcher's daemon workers; at exit (``atexit``) the program waits,
  at most ``EXIT_WAIT`` s, until they have delivered everything posted --
  a ``PORT_IN_USE`` on a script's last line is printed whole, every time.
- **One Ctrl-C ends a script.**  A ``KeyboardInterrupt`` that ends the main
  thread (or the error Python's threading may turn it into, see
  :func:`interrupted`) terminates every registered object before the
  interpreter waits for the (non-daemon) server threads, so the process
  exits at once with the usual status and the port is free.  A Ctrl-C
  after the script's last line (the interpreter waits for the servers)
  does the same: every object is terminated, its last events delivered,
  and the process ends by SIGINT as an interrupted Python does.
- **A server keeps a script alive after its last line** (the original's
  rule: its threads are non-daemon) -- except in an interactive session,
  where the threads are daemons and leaving the REPL (``exit()``, Ctrl-D)
  terminates every object.
"""
from __future__ import absolute_import

import atexit
import os
import signal
import sys
import threading
import weakref

from .dispatch import default_dispatcher

#: seconds the program waits at exit for pending callbacks
EXIT_WAIT = 5.0

_live = weakref.WeakSet()
_installed = []
_lock = threading.Lock()


def interactive():
    """True in an interactive session: a REPL, or ``python -i``."""
    flags = getattr(sys, "flags", None)
    return hasattr(sys, "ps1") or bool(getattr(flags, "interactive", 0))


def keeps_alive():
    """Whether a face object's threads keep the program alive (non-daemon): not in a REPL."""
    return not interactive()


def register(obj):
    """Track a face object (it has ``_close()``) until it is garbage; installs the exit hooks once."""
    _live.add(obj)
    if not _installed:
        with _lock:
            if not _installed:
                _install()
                _installed.append(True)


def close_all():
    """Terminate every TCPServer/HTTPServer and disconnect every TCPClient of this program.

    Each is closed as by its own ``terminate()`` or ``disconnect()`` (so its
    last event is delivered); one that fails does not keep the others open.
    The program does this by itself on Ctrl-C and when it ends.  Available
    as ``tcpcom.tcp.close_all()``.
    """
    for obj in list(_live):
        try:
            obj._close()
        except Exception:  # one that fails must not keep the others open
            pass


def interrupted(exc):
    """True if ``exc`` is Ctrl-C's ``KeyboardInterrupt``, or was raised while one was being handled.

    Python's threading is not safe from Ctrl-C at every instruction: landing
    between a ``Condition``'s release and its re-acquire (inside
    ``queue.Queue.get()``, ``Event.wait()``, ``Thread.start()``), the
    ``KeyboardInterrupt`` comes out as ``RuntimeError: release unlocked
    lock``, raised while handling it (CPython issues 78667 and 118433).
    Where Ctrl-C means "stop", that error means it too.  (Python 2 chains no
    exceptions: there only the KeyboardInterrupt itself is recognised.)
    """
    for _ in range(8):  # a chain is short; a cycle must not loop
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = getattr(exc, "__context__", None)
    return False


def _at_exit():
    for closer in _closers:  # a Ctrl-C after the script's last line is still closing
        closer.join(EXIT_WAIT)
    close_all()  # normally nothing is left: a REPL, or an interrupted wait for server threads
    wait = getattr(default_dispatcher(), "wait_idle", None)  # an EventPump is the program's to pump
    if wait is not None:
        wait(EXIT_WAIT)
    if _interrupted:  # that Ctrl-C: end as an interrupted Python does (SIGINT is SIG_DFL by now)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken stream: nothing more to save
                pass
        os.kill(os.getpid(), signal.SIGINT)


def _install():
    atexit.register(_at_exit)
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt) or interrupted(value):
            close_all()  # before the interpreter waits for the servers' threads
        previous(kind, value, tb)

    sys.excepthook = excepthook
    _take_sigint()


def _take_sigint():
    # Only where Ctrl-C still raises KeyboardInterrupt (the program set no handler
    # of its own) and only from the main thread (signal handlers are set there).
    if threading.current_thread() is not _main_thread():
        return
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        signal.signal(signal.SIGINT, _on_sigint)
    except (ValueError, AttributeError):  # not the main thread, or no signals here (Jython)
        pass


def _main_thread():
    main = getattr(threading, "main_thread", None)  # Python 2.7 / Jython have none
    if main is not None:
        return main()
    for t in threading.enumerate():
        if isinstance(t, getattr(threading, "_MainThread", ())):
            return t
    return None


def _main_has_ended():
    main = _main_thread()
    return main is not None and not main.is_alive()


def _shutdown_code():
    wait = getattr(threading, "_shutdown", None)  # a bound method on Python 2.7
    return getattr(getattr(wait, "__func__", wait), "__code__", None)


def _waits_for_threads(frame):
    """True when ``frame`` runs inside the interpreter's wait for non-daemon threads."""
    code = _shutdown_code()
    while frame is not None and code is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


#: a Ctrl-C came after the script's last line; the daemon threads that close every object then
_interrupted = []
_closers = []


def _on_sigint(signum, frame):
    if not (_main_has_ended() or _waits_for_threads(frame)):
        raise KeyboardInterrupt  # as always; excepthook above terminates everything
    # The script has reached its last line and the interpreter waits for the
    # servers' threads (threading._shutdown): a KeyboardInterrupt there would be
    # ignored (exit status 0) and the servers would go on.  This handler may run
    # while the main thread holds threading's own lock, the one every join
    # takes: closing here could wait for it forever.  So a daemon thread ends
    # every object, the interpreter's wait then ends, and _at_exit delivers the
    # last events and ends the program as an interrupted Python does.
    closer = threading.Thread(target=close_all, name="tcpcom-ctrl-c")
    closer.daemon = True
    try:
        closer.start()
    except RuntimeError:
        # CPython 3.12.0-3.12.2 start no thread once the main thread has ended
        # (gh-113964): close here, unless threading's lock is taken -- then
        # the next Ctrl-C tries again.
        held = getattr(threading, "_shutdown_locks_lock", None)
        if held is not None and held.locked():
            return
        close_all()
    else:
        _closers.append(closer)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends it at once
    _interrupted.append(True)
