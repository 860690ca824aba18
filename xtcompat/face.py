"""The state of the XTension face, and the steps its functions share.

- :class:`Face`: the listeners (one :class:`~xtcompat.registry.Registry`
  of IDs for TCP, UDP and HTML listeners), the open connections by ID,
  where the script's event functions are looked up, and the executors
  that run them.  :data:`face` is the one instance every module uses.
- The steps written once for every ``XT...`` function: the XTension error
  number and text for why a connection ended (:func:`error_for`,
  :func:`error_info`), the port and data checks, and starting and stopping
  a listener of any kind with its ID (:func:`start_listener`,
  :func:`stop_listener`).

The ``XT...`` functions live in :mod:`xtcompat.tcp`, :mod:`xtcompat.udp`,
:mod:`xtcompat.html`, :mod:`xtcompat.script` and :mod:`xtcompat.console`;
:mod:`xtcompat.api` gathers them.  There is no socket code here.
"""
from __future__ import absolute_import

import logging
import sys
import threading

from tcpcom._compat import binary_type, integer_types, text_type
from tcpcom.diagnostics import excerpt
from tcpcom.dispatch import SerialExecutor
from tcpcom.engine import (DROPPED, NETWORK_ERRORS, TIMEOUT, TOO_LARGE, PeerInfo, PortInUseError, check_port,
                           end_kind, error_number, error_text)

from .constants import (xtErrDisconnected, xtErrInvalidPort, xtErrInvalidState, xtErrNameResolution,
                        xtErrOutOfMemory, xtErrorDescription, xtErrorNumber, xtKeyErrorMessage, xtKeyErrorNumber)
from .registry import Registry

log = logging.getLogger("tcpcom.xtcompat")

#: XTension plugins cannot listen below this port
MIN_LISTEN_PORT = 1024

#: the kinds of listener in the registry
TCP, UDP, HTML = "tcp", "udp", "html"

#: the descriptions of XTension's error numbers
MESSAGES = {
    xtErrDisconnected: "disconnected",
    xtErrNameResolution: "the name could not be resolved",
    xtErrInvalidState: "invalid state: the connection is not open",
    xtErrInvalidPort: "invalid port: listening ports must be from 1024 to 65535",
    xtErrOutOfMemory: "out of memory",
}


class Face(object):
    """The state of the API: listeners, connections, the script's namespace."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listeners = Registry()
        self.connections = {}  # connection ID -> xtcompat.tcp.XTConnection
        self.namespace = None
        self.warned = set()
        self.stop_requested = threading.Event()
        self.peers = PeerInfo()
        self.executor = None  # face-level events (a failed XTOpenTCPConnection), made on first use
        self.serial = None  # one executor for every event, after XTSerializeEvents(True)

    def event_executor(self):
        if self.serial is not None:
            return self.serial
        with self.lock:
            if self.executor is None:  # the default dispatcher of that moment (maybe an EventPump)
                self.executor = SerialExecutor()
            return self.executor

    # -- the script's event functions --------------------------------------------

    def find(self, name):
        ns = self.namespace
        if ns is None:
            ns = sys.modules.get("__main__")
        if isinstance(ns, dict):
            fn = ns.get(name)
        else:
            fn = getattr(ns, name, None)
        return fn if callable(fn) else None

    def warn_once(self, key, msg, *args):
        with self.lock:
            if key in self.warned:
                return
            self.warned.add(key)
        log.warning(msg + " (said once)", *args)

    def call(self, name, args, missing):
        """Call the script's ``name(*args)``; log once if it has none.  Returns (found, result)."""
        fn = self.find(name)
        if fn is None:
            self.warn_once(name, "the script defines no %s function: %s", name, missing)
            return False, None
        try:
            return True, fn(*args)
        except Exception:
            log.exception("%s raised; the plugin goes on", name)
            return True, None

    # -- connections ---------------------------------------------------------------

    def add_connection(self, xc):
        with self.lock:
            self.connections[xc.id] = xc

    def drop_connection(self, xc):
        with self.lock:
            if self.connections.get(xc.id) is xc:
                del self.connections[xc.id]

    def connection(self, cid):
        with self.lock:
            try:
                return self.connections.get(cid)
            except TypeError:
                return None


#: the one state of the face
face = Face()


# -- errors ---------------------------------------------------------------------------


def error_for(reason):
    """(XTension error number, description) for why a connection ended."""
    kind = end_kind(reason)
    if reason is None:
        return xtErrDisconnected, MESSAGES[xtErrDisconnected]
    if kind == TOO_LARGE:
        return xtErrOutOfMemory, "%s: %s" % (MESSAGES[xtErrOutOfMemory], reason)
    if kind == TIMEOUT:
        return xtErrDisconnected, "disconnected: %s" % reason
    code = error_number(reason)
    if kind == DROPPED:
        return xtErrDisconnected, "the connection was dropped: %s" % error_text(reason)
    if code is not None:
        return code, error_text(reason)
    return xtErrDisconnected, "disconnected: %s" % (reason,)


def error_info(info, number, message):
    """A copy of an info dictionary with the error number and description under both names."""
    info = dict(info)
    info[xtKeyErrorNumber] = info[xtErrorNumber] = number
    info[xtKeyErrorMessage] = info[xtErrorDescription] = message
    return info


# -- argument checks -------------------------------------------------------------------


def is_port(port):
    """True for a port to connect or send to (1 to 65535)."""
    try:
        check_port(port, allow_zero=False)
    except (TypeError, ValueError):
        return False
    return True


def listen_port(where, port):
    """The port to bind (0: any free port), or None after logging error 107."""
    ok = isinstance(port, integer_types) and not isinstance(port, bool) and \
        (port == 0 or MIN_LISTEN_PORT <= port <= 65535)
    if not ok:
        log.error("%s(%s) failed with error %d: %s (or 0 to let the system choose one)",
                  where, excerpt(port), xtErrInvalidPort, MESSAGES[xtErrInvalidPort])
        return None
    return port


def check_data(where, data):
    """``data`` must be text or bytes: else a TypeError that says so."""
    if not isinstance(data, (text_type, binary_type, bytearray)):
        raise TypeError("%s: the data must be text or bytes, not %s %s; convert it with str()"
                        % (where, type(data).__name__, excerpt(data)))


# -- listeners of every kind -------------------------------------------------------------


def start_listener(where, kind, thePort, host, make, holder=None):
    """Create a listener of ``kind`` with ``make(port)``, register it and start it.

    ``make`` creates it without starting it where it has a ``start()``:
    ``holder.listener_id`` is set first, so that its events can name their
    listener.  Returns the listener ID, or 0 after logging why (an invalid
    port is error 107; a port in use, or any other error, is logged).
    """
    port = listen_port(where, thePort)
    if port is None:
        return 0
    try:
        obj = make(port)
    except PortInUseError as e:
        log.error("%s(%d) failed: %s", where, thePort, e.strerror or e)
        return 0
    except NETWORK_ERRORS + (ValueError, TypeError) as e:
        log.error("%s(%s, host=%s) failed: %s", where, excerpt(thePort), excerpt(host), e)
        return 0
    lid = face.listeners.add(kind, obj)
    if holder is not None:
        holder.listener_id = lid
    start = getattr(obj, "start", None)
    if start is not None:
        start()
    log.debug("%s listener %d on port %d", kind.upper(), lid, obj.port)
    return lid


def stop_listener(where, kind, theListenerID):
    """Stop the listener of ``kind`` with that ID; False (logged) if there is none."""
    obj = face.listeners.remove(theListenerID, kind)
    if obj is None:
        other = face.listeners.kind(theListenerID)
        if other is not None:
            log.error("%s(%s): that ID is a %s listener, not a %s one", where, excerpt(theListenerID),
                      other.upper(), kind.upper())
        else:
            log.warning("%s(%s): no such listener (already stopped?)", where, excerpt(theListenerID))
        return False
    obj.close()
    return True
