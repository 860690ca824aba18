"""The engine's UDP endpoint: datagrams, broadcast and multicast.

A :class:`UDPEndpoint` owns one UDP socket and one receive thread.  Every
datagram that arrives is posted to the endpoint's
:class:`~tcpcom.dispatch.SerialExecutor` exactly like a connection's
messages (inline from the receive thread when the executor is idle, see
:mod:`tcpcom.dispatch`), so the handler's calls run one at a time, in the
order the datagrams arrived, and a slow handler holds up only this endpoint.

A handler is either an object with any of these methods::

    class Responder(object):
        def datagram_received(self, endpoint, data, address):   # address: (ip, port)
            endpoint.send("pong " + data, *address)
        def endpoint_closed(self, endpoint, reason):            # reason None: close() was called
            pass

or a function ``handler(endpoint, data, address)`` (datagrams only).

Usage::

    from tcpcom.udp import UDPEndpoint

    ep = UDPEndpoint(5005, Responder())        # bound at once; ep.port is known
    ep.send("hello", "127.0.0.1", 5006)        # text is sent as UTF-8, bytes as they are
    ep.send_broadcast("who is there?", 5006)   # to ep.broadcast_address (255.255.255.255)
    ep.join_group("239.255.0.1", "127.0.0.1")  # receive a multicast group (on one interface)
    ep.close()                                 # the thread has ended and the port is free

Binding: the port is bound in the constructor; :class:`PortInUseError` if
another socket holds it.  ``SO_REUSEADDR`` is *not* set by default (on Linux
it would let a second UDP socket bind the same port and silently share its
datagrams); pass ``reuse_address=True`` where several programs must receive
the same multicast group on one port.

Data: with ``encoding="utf-8"`` (the default) each datagram is delivered as
text, decoded with the lossless policy of :data:`tcpcom._compat.LOSSLESS_ERRORS`
(``surrogateescape`` on CPython 3, so ``send()`` of the text gives the same
bytes back); ``encoding=None`` delivers bytes.  A datagram longer than
``max_datagram`` bytes is not delivered cut short: it is logged as dropped
and counted in ``endpoint.dropped``.

Broadcast: :meth:`send_broadcast` enables ``SO_BROADCAST`` on first use and
sends to ``broadcast_address`` (255.255.255.255 unless given; a directed
broadcast such as 192.168.1.255 works too).  A socket bound to 127.0.0.1
sends broadcasts and multicasts on the loopback device only.

Multicast (IPv4): :meth:`join_group` / :meth:`leave_group` take the group as
an address or a name that resolves to one, and optionally the address of
the local interface to join on (None: the system chooses by its routes).
:meth:`set_multicast_interface` chooses the interface outgoing multicast
datagrams leave by.  Memberships end with the socket.

Closing: :meth:`close` wakes the receive thread, waits for it to end (except
when called from inside a callback running on a receive or reader thread)
and closes the socket, so the port is free when it returns; the handler's
``endpoint_closed(endpoint, None)`` follows.  If the socket fails for good,
``endpoint_closed(endpoint, error)`` is called with the exception.
"""
from __future__ import absolute_import

import errno
import logging
import socket
import threading

from ._compat import JYTHON, LOSSLESS_ERRORS, integer_types, make_thread, string_types, to_bytes
from .dispatch import SerialExecutor, call_logged, call_text, callable_name
from .engine import ConnectionClosedError, check_port, current_reader
from .engine.connection import handler_property
from .engine.checks import is_ipv4_literal
from .engine.reading import set_current_reader
from .engine.sockets import bind_socket, family_of, plain_address

log = logging.getLogger("tcpcom.udp")

MAX_DATAGRAM = 65535
DEFAULT_BROADCAST_ADDRESS = "255.255.255.255"
#: seconds close() waits for the receive thread before it wakes it with a datagram of its own
#: (where shutdown() does not wake a blocked recvfrom), and how often it tries
WAKE_INTERVAL = 0.25
WAKE_TRIES = 20
#: Jython: how often a blocked receive looks at the close flag (nothing else wakes it)
POLL_INTERVAL = 0.1

# errors a receive can report for an earlier send (ICMP port unreachable on
# some systems); the socket is still good
_TRANSIENT = set(getattr(errno, name) for name in ("ECONNREFUSED", "ECONNRESET", "EINTR", "EAGAIN",
                                                   "EWOULDBLOCK", "EHOSTUNREACH", "ENETUNREACH", "EMSGSIZE")
                 if hasattr(errno, name))
_MAX_TRANSIENT = 1000  # in a row, without one good datagram between: give up


def _enlarge_jython_receive(sock, size):  # pragma: no cover - Jython only
    """Jython's Netty channel cuts every datagram to 2048 bytes unless told otherwise."""
    try:
        from io.netty.channel import FixedRecvByteBufAllocator
        sock._sock.channel.config().setRecvByteBufAllocator(FixedRecvByteBufAllocator(size))
    except Exception as e:
        log.warning("cannot raise Jython's datagram size limit (2048 bytes): %s", e)


class EndpointClosedError(ConnectionClosedError):
    """Sending on (or joining a group with) a UDP endpoint that is closed."""


class _FunctionHandler(object):
    def __init__(self, fn):
        self.fn = fn

    def datagram_received(self, endpoint, data, address):
        try:
            self.fn(endpoint, data, address)
        except Exception:  # named as the program wrote it: on_datagram(endpoint, 'ping', (...))
            log.exception("%s raised; the engine goes on", call_text(callable_name(self.fn), (endpoint, data, address)))


def _as_handler(handler):
    if handler is None or hasattr(handler, "datagram_received") or hasattr(handler, "endpoint_closed"):
        return handler
    if callable(handler):
        return _FunctionHandler(handler)
    raise TypeError("a UDP handler must be a function fn(endpoint, data, address) or an object with "
                    "datagram_received/endpoint_closed, not %r" % (handler,))


def resolve_group(group):
    """The IPv4 address of a multicast group given as an address or a name.

    Raises ``socket.gaierror`` if the name does not resolve and ValueError if
    the address is not a multicast address (224.0.0.0 to 239.255.255.255).
    """
    if not isinstance(group, string_types) or not group:
        raise TypeError("the multicast group must be an address such as '239.255.0.1' or a name, not %r"
                        % (group,))
    address = socket.gethostbyname(group)
    try:
        first = int(address.split(".")[0])
    except ValueError:
        first = -1
    if not 224 <= first <= 239:
        shown = group if address == group else "%s (%s)" % (group, address)
        raise ValueError("%s is not an IPv4 multicast address (224.0.0.0 to 239.255.255.255)" % shown)
    return address


class UDPEndpoint(object):
    """One UDP socket with its own receive thread (see the module docstring).

    Attributes: ``port`` (the real port, also after binding port 0), ``host``,
    ``broadcast_address``, ``handler`` (settable), ``groups`` (joined, as
    ``(group, interface)`` pairs), ``dropped`` (datagrams too long),
    ``is_closed``, ``close_reason``.
    """

    def __init__(self, port=0, handler=None, host="", dispatcher=None, encoding="utf-8", errors=None,
                 max_datagram=MAX_DATAGRAM, broadcast_address=None, reuse_address=False,
                 executor=None, start=True):
        check_port(port)
        if not isinstance(max_datagram, integer_types) or isinstance(max_datagram, bool) \
                or not 1 <= max_datagram <= MAX_DATAGRAM:
            raise ValueError("max_datagram must be an int from 1 to %d, not %r" % (MAX_DATAGRAM, max_datagram))
        if not isinstance(host, string_types):
            raise TypeError("host must be a string such as '' or '127.0.0.1', not %r" % (host,))
        self._handler = _as_handler(handler)
        self.host = host
        self.encoding = encoding
        self.errors = errors or LOSSLESS_ERRORS
        self.max_datagram = max_datagram
        self.broadcast_address = broadcast_address or DEFAULT_BROADCAST_ADDRESS
        self.executor = executor or SerialExecutor(dispatcher)
        self.groups = []
        self.dropped = 0
        self.close_reason = None
        self._lock = threading.Lock()
        self._closing = False
        self._broadcast_on = False
        self._thread = None
        self._done = threading.Event()
        self.family = family_of(host)
        sock = bind_socket(host, port, socket.SOCK_DGRAM, "UDP port", reuse_address)
        self.sock = sock
        self.port = sock.getsockname()[1]
        if JYTHON:  # pragma: no cover - Jython only
            _enlarge_jython_receive(sock, max_datagram + 1)
        if start:
            self.start()

    def __repr__(self):
        return "<UDPEndpoint %s:%d%s>" % (self.host or "*", self.port, " closed" if self._closing else "")

    handler = handler_property(_as_handler)

    @property
    def is_closed(self):
        return self._closing

    def start(self):
        """Start the receive thread (the constructor does, unless ``start=False``)."""
        with self._lock:
            if self._thread is not None or self._closing:
                return self
            self._thread = make_thread(self._receive_loop, "tcpcom-udp-%d" % self.port)
        self._thread.start()
        return self

    # -- receiving -------------------------------------------------------------

    def _receive_loop(self):
        set_current_reader(self)  # close() from our callbacks must not join us
        sock = self.sock
        limit = self.max_datagram
        post = self.executor.post
        abort = self._is_closing
        reason = None
        transient = 0
        try:
            # Where shutdown() wakes a blocked recvfrom (CPython on Linux) the
            # socket blocks; Jython's never wakes, so it polls the close flag.
            sock.settimeout(POLL_INTERVAL if JYTHON else None)
            while not self._closing:
                try:
                    data, address = sock.recvfrom(limit + 1)
                except socket.timeout:
                    continue
                except (socket.error, OSError) as e:
                    if self._closing:
                        break
                    if getattr(e, "errno", None) in _TRANSIENT and transient < _MAX_TRANSIENT:
                        transient += 1
                        log.debug("%r: receive reported %s; going on", self, e)
                        continue
                    log.error("%r: receiving failed: %s; the endpoint is closed", self, e)
                    reason = e
                    break
                if self._closing or address is None:
                    break  # woken by close()
                transient = 0
                if len(data) > limit:
                    self.dropped += 1
                    log.warning("%r: dropped a datagram from %s:%d longer than max_datagram=%d bytes "
                                "(raise max_datagram to receive it)", self, address[0], address[1], limit)
                    continue
                if self.encoding:
                    data = data.decode(self.encoding, self.errors)
                post(self._deliver, (data, (plain_address(address[0]), int(address[1]))), True, abort)
        except Exception as e:  # a bug in the engine: never die silently
            log.exception("receive thread of %r failed", self)
            reason = e
        finally:
            try:
                self._finish(reason)
            finally:
                set_current_reader(None)

    def _is_closing(self):
        return self._closing

    def _deliver(self, data, address):
        if self._closing:  # closed meanwhile: nothing after the close (the closing event comes last)
            return
        cb = getattr(self._handler, "datagram_received", None)
        if cb is not None:
            call_logged(cb, (self, data, address), None, log)

    def _closed_event(self, reason):
        cb = getattr(self._handler, "endpoint_closed", None)
        if cb is not None:
            call_logged(cb, (self, reason), None, log)

    def _finish(self, reason):
        with self._lock:
            self._closing = True
        try:
            self.sock.close()
        except (socket.error, OSError):
            pass
        self.close_reason = reason
        self.executor.post(self._closed_event, (reason,), True)
        self._done.set()

    # -- closing ---------------------------------------------------------------

    def close(self):
        """Stop receiving and close the socket; safe twice and from a callback.

        Returns when the receive thread has ended and the port is free (from
        inside a callback on a receive or reader thread: without waiting for
        the thread, but the socket is closed before it returns).
        """
        with self._lock:
            first = not self._closing
            self._closing = True
            thread = self._thread
        if first:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes recvfrom on Linux (ENOTCONN is fine)
            except (socket.error, OSError):
                pass
        if thread is None:
            if first:
                self._finish(None)
            return
        if current_reader() is None and thread is not threading.current_thread():
            for _ in range(WAKE_TRIES):
                thread.join(WAKE_INTERVAL)
                if not thread.is_alive():
                    break
                self._poke()
            else:
                log.warning("%r: the receive thread did not end; closing the socket anyway", self)
        elif thread is not threading.current_thread():
            self._poke()
        try:
            self.sock.close()
        except (socket.error, OSError):
            pass

    def _poke(self):
        # Wake a recvfrom that shutdown() did not end: an empty datagram to
        # ourselves (the receive loop sees _closing and drops it).
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        try:
            s = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                s.sendto(b"", (host, self.port))
            finally:
                s.close()
        except (socket.error, OSError):
            pass

    def wait_closed(self, timeout=None):
        """Block until the receive thread has ended and ``endpoint_closed`` was posted."""
        return self._done.wait(timeout)

    # -- sending ---------------------------------------------------------------

    def _check_open(self):
        if self._closing:
            raise EndpointClosedError("UDP endpoint on port %d is closed" % self.port)

    def send(self, data, address, port):
        """Send one datagram: text (encoded, UTF-8 by default) or bytes exactly as given.

        ``address`` is an IP address or a name.  Returns the number of bytes
        sent; raises ``socket.error`` (e.g. ``socket.gaierror``) on failure.
        """
        check_port(port, allow_zero=False)
        if not isinstance(address, string_types) or not address:
            raise TypeError("address must be an IP address or name such as '127.0.0.1', not %r" % (address,))
        payload = to_bytes(data, self.encoding or "utf-8")
        self._check_open()
        return self.sock.sendto(payload, self._resolve(address, port))

    def _resolve(self, address, port):
        # names are resolved here (socket.gaierror if they do not), numeric
        # addresses pass as they are
        if is_ipv4_literal(address):  # on an IPv6 endpoint ('::'): as an IPv4-mapped address
            return ("::ffff:" + address if self.family == socket.AF_INET6 else address, port)
        if ":" in address or address == "<broadcast>":
            return (address, port)
        return socket.getaddrinfo(address, port, self.family, socket.SOCK_DGRAM)[0][4]

    def send_broadcast(self, data, port, address=None):
        """Send one datagram to ``address`` (default ``broadcast_address``) with SO_BROADCAST on."""
        self._check_open()
        with self._lock:
            if not self._broadcast_on:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                self._broadcast_on = True
        return self.send(data, address or self.broadcast_address, port)

    # -- multicast ---------------------------------------------------------------

    def _mreq(self, group, interface):
        if self.family != socket.AF_INET:
            raise ValueError("multicast groups are supported on IPv4 endpoints only")
        if not hasattr(socket, "IP_ADD_MEMBERSHIP"):  # Jython 2.7's socket module
            raise socket.error(errno.ENOPROTOOPT, "this Python's socket module cannot join multicast "
                               "groups (no IP_ADD_MEMBERSHIP)")
        group_ip = resolve_group(group)
        iface = socket.gethostbyname(interface) if interface else "0.0.0.0"
        return group_ip, iface, socket.inet_aton(group_ip) + socket.inet_aton(iface)

    def join_group(self, group, interface=None):
        """Receive the multicast ``group`` (address or name) on ``interface`` (a local address).

        Raises ``socket.gaierror`` for a name that does not resolve, ValueError
        for an address that is not multicast, ``socket.error`` when the system
        refuses (e.g. already joined, no such interface).
        """
        self._check_open()
        group_ip, iface, mreq = self._mreq(group, interface)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        with self._lock:
            self.groups.append((group_ip, iface))
        return group_ip

    def leave_group(self, group, interface=None):
        """Stop receiving ``group``; ``socket.error`` if it was not joined (on that interface)."""
        self._check_open()
        group_ip, iface, mreq = self._mreq(group, interface)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
        with self._lock:
            if (group_ip, iface) in self.groups:
                self.groups.remove((group_ip, iface))
        return group_ip

    def set_multicast_interface(self, interface):
        """Send multicast datagrams out of the interface with this local address."""
        self._check_open()
        if not hasattr(socket, "IP_MULTICAST_IF"):
            raise socket.error(errno.ENOPROTOOPT, "this Python's socket module has no IP_MULTICAST_IF")
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                             socket.inet_aton(socket.gethostbyname(interface)))

    def set_multicast_ttl(self, ttl):
        """How many routers outgoing multicast datagrams may cross (default 1: this network only)."""
        self._check_open()
        if not hasattr(socket, "IP_MULTICAST_TTL"):
            raise socket.error(errno.ENOPROTOOPT, "this Python's socket module has no IP_MULTICAST_TTL")
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, int(ttl))
