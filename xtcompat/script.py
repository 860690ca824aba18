"""The script's life in the XTension face: where its event functions are,
how they are run, and how it ends (``XTRunForever``, ``XTStopAll``)."""
from __future__ import absolute_import

import logging

from tcpcom._compat import monotonic
from tcpcom.diagnostics import excerpt
from tcpcom.dispatch import SerialExecutor
from tcpcom.lifetime import interrupted

from .face import face

log = logging.getLogger("tcpcom.xtcompat")

def XTRegisterHandlers(namespace):
    """This library's addition: where the script's event functions are looked up.

    ``namespace``: a module (``sys.modules[__name__]`` for a plugin that is
    imported rather than run), a dict, or an object with the functions as
    attributes; None means the main module (``__main__``, the default).
    Functions are looked up by name each time an event fires, so one
    defined later is used from the next event on.  Anything else is a
    TypeError.  The "missing function" warnings are said once again after
    this call.
    """
    if namespace is not None and not isinstance(namespace, dict) and not hasattr(namespace, "__dict__") \
            and not hasattr(namespace, "__getattr__"):
        raise TypeError("XTRegisterHandlers needs a module, a dict or an object, not %s" % excerpt(namespace))
    face.namespace = namespace
    with face.lock:
        face.warned.clear()


def XTStopAll():
    """This library's addition: stop every listener and close every connection.

    Listeners of every kind (TCP, UDP, HTML) are stopped; every open
    connection, accepted or outgoing, is closed and gets ``XTSocketError``
    with 102.  Ends :func:`XTRunForever` (which then returns "stopped").
    Safe to call from an event function and from any thread.
    """
    for _, kind, obj in face.listeners.remove_all():
        try:
            obj.close()
        except Exception:
            log.exception("stopping a %s listener failed", kind)
    with face.lock:
        conns = list(face.connections.values())
    for xc in conns:
        xc.conn.close()
    face.stop_requested.set()


def XTRunForever(timeout=None):
    """This library's addition: block until Ctrl-C, :func:`XTStopAll` or ``timeout`` seconds, then stop everything.

    The last line of a ported script: inside XTension the plugin lives as
    long as XTension runs it; a Python program would run off its end while
    its listeners are still working.  Returns "interrupted" (Ctrl-C),
    "stopped" (:func:`XTStopAll` was called) or "timeout", after every
    listener and connection was stopped.  It can be called again.
    """
    deadline = None if timeout is None else monotonic() + timeout
    how = "stopped"
    try:
        while not face.stop_requested.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - monotonic())
            if left <= 0:
                how = "timeout"
                break
            face.stop_requested.wait(left)
    except BaseException as e:
        if not interrupted(e):
            raise
        how = "interrupted"
        log.info("Ctrl-C: stopping every listener and connection")
    XTStopAll()
    face.stop_requested.clear()
    return how


def XTSerializeEvents(on=True):
    """This library's addition: run every event function one at a time, as in XTension.

    By default events of one connection (one UDP listener) run in order, one
    at a time, but events of different connections may run at the same time
    on different threads.  After ``XTSerializeEvents(True)`` the listeners and
    connections started afterwards share one queue: no two event functions
    ever run at once (a slow one then delays all the others).
    """
    face.serial = SerialExecutor() if on else None


def XTSetNameLookupTimeout(seconds):
    """This library's addition: how long a peer's name (``xtKeyName``) is looked up, in seconds.

    The reverse lookup runs when a connection comes in, before
    ``XTNewConnection``, and waits at most this long (default 0.5 s); a
    name found is cached.  0 turns lookups off: ``xtKeyName`` is then "?"
    and no connection waits.
    """
    face.peers.name_timeout = seconds
