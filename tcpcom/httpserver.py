"""The engine's HTTP/1.1 server: a :class:`~tcpcom.engine.Listener` whose
connections speak HTTP, parsed by the sans-IO codec :mod:`tcpcom.httpcodec`.

Usage::

    from tcpcom.httpserver import HTTPListener

    def app(request, conn):                 # request: httpcodec.Request
        return "<h1>Hello %s</h1>" % conn.remote_address

    server = HTTPListener(8080, app)        # serves at once; server.close() stops

``app(request, conn)`` returns the response: a body (text or bytes: 200,
HTML), a dict or list (200, JSON), ``(code, body)``, ``(code, body,
content_type)`` or a :class:`Response` for full control.  Every connection
is read and written by its own thread; the calls of ``app`` run one at a
time (``serialize=True``, the default) or concurrently.
"""
from __future__ import absolute_import

import errno
import json
import logging
import socket
import threading

from ._compat import binary_type, integer_types, text_type
from .diagnostics import excerpt
from .dispatch import call_logged, callable_name
from .engine import ConnectionClosedError, DeadlineExceeded, Listener, check_callable
from .httpcodec import CONTINUE_RESPONSE, REASONS, HTTPError, RequestParser, build_response

log = logging.getLogger("tcpcom.httpserver")

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 256
#: methods every server knows; one of these that is not allowed gets 405, others 501
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")


class Response(object):
    """A response with full control: ``Response(status, body, content_type, headers)``.

    ``body``: text (sent as UTF-8), bytes, or a dict/list (sent as JSON).
    ``content_type``: None chooses HTML (JSON for a dict or list); text/*
    and JSON types get ``; charset=utf-8``.  ``headers``: a dict or a list
    of pairs, added last (they replace generated headers of the same name).
    ``on_sent``: a function called (serialized like the handler) right after
    the response was sent.
    """

    def __init__(self, status=200, body=b"", content_type=None, headers=None, on_sent=None):
        if isinstance(status, bool) or not isinstance(status, integer_types) or not 100 <= status <= 999:
            raise ValueError("an HTTP status must be an int from 100 to 999, not %r" % (status,))
        if body is None:
            body = b""
        elif isinstance(body, (text_type, binary_type, bytearray)):  # (the common case first)
            pass
        elif isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False)
            if content_type is None:
                content_type = "application/json"
        elif isinstance(body, bool) or isinstance(body, integer_types + (float,)):
            body = text_type(body)
        else:
            raise TypeError("a response body must be text, bytes, a dict or a list, not %s %s"
                            % (type(body).__name__, excerpt(body)))
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers
        self.on_sent = on_sent

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.content_type or "")

    def wants_close(self):
        items = self.headers.items() if hasattr(self.headers, "items") else (self.headers or ())
        for name, value in items:
            if str(name).lower() == "connection" and "close" in str(value).lower():
                return True
        return False


def make_response(result):
    """Turn what a handler returned into a :class:`Response` (TypeError if it cannot)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        if 2 <= len(result) <= 3 and isinstance(result[0], integer_types) \
                and not isinstance(result[0], bool):
            return Response(result[0], result[1], result[2] if len(result) == 3 else None)
        raise TypeError("a handler may return a body, (code, body) or (code, body, content_type), "
                        "not the tuple %s" % excerpt(result))
    return Response(200, result)


def _plain(status, detail=None):
    text = "%d %s\n" % (status, REASONS.get(status, ""))
    if detail:
        text += detail + "\n"
    return text


def internal_error():
    """The response to a request whose handler raised: 500, plain text."""
    return Response(500, _plain(500), "text/plain")


class HTTPListener(object):
    """An HTTP/1.1 server on the engine: ``HTTPListener(port=0, app=None, host="")``.

    ``app(request, conn)`` is called for each request; ``request`` is a
    :class:`tcpcom.httpcodec.Request`, ``conn`` the engine
    :class:`~tcpcom.engine.Connection` (``remote_address``, ``remote_port``,
    ``id``).  What it returns is the response (see :func:`make_response`);
    HEAD requests get the headers without the body.  A handler that raises
    gets 500 (traceback logged).  Keep-alive and pipelining work.

    Options (every limit answers with its status and closes that connection):

    - ``serialize`` (True): calls of ``app`` (and ``on_sent``) run one at a
      time while connections are still read and written in parallel; False
      lets them run concurrently.
    - ``methods``: None passes every method to ``app``; a tuple such as
      ``("GET", "HEAD", "POST")`` answers others with 405 (a method we know)
      or 501 (one we do not), both with an ``Allow`` header.
    - ``max_request_line`` (8192 bytes, 414), ``max_header_bytes`` (65536,
      431), ``max_headers`` (100 lines, 431), ``max_body`` (1 MiB, 413).
    - ``request_timeout`` (10 s): a request must be complete this long after
      the connection opened or its first byte came (a client that sends too
      slowly, even a byte a second, or nothing): 408, then closed.
    - ``keep_alive_timeout`` (5 s): an idle connection between requests is
      closed quietly.
    - ``max_connections`` (256): more are accepted and closed at once.
    - ``send_timeout`` (30 s), ``server_name`` (the ``Server`` header, None
      for none), ``dispatcher``, ``on_closed``, ``daemon`` (False: its
      threads keep the program alive until :meth:`close`, as tcpcom's
      ``HTTPServer`` does).

    ``port`` is the real port (also after port 0); :meth:`close` stops it.
    """

    def __init__(self, port=0, app=None, host="", serialize=True, dispatcher=None, server_name="tcpcom",
                 max_request_line=8192, max_header_bytes=65536, max_body=1048576, max_headers=100,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT, keep_alive_timeout=DEFAULT_KEEP_ALIVE_TIMEOUT,
                 max_connections=DEFAULT_MAX_CONNECTIONS, send_timeout=30.0, methods=None,
                 on_closed=None, daemon=True):
        check_callable(app, "app")
        self.app = app
        self.server_name = server_name
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body
        self.max_headers = max_headers
        self.request_timeout = request_timeout if request_timeout and request_timeout > 0 else None
        self.keep_alive_timeout = keep_alive_timeout if keep_alive_timeout and keep_alive_timeout > 0 else None
        self.methods = tuple(m.upper() for m in methods) if methods is not None else None
        self.serialize = bool(serialize)
        self._lock = threading.Lock() if serialize else None
        self._warned = set()
        self._farewell = build_response(
            408, _plain(408, "no complete request within %g s" % (self.request_timeout or 0)),
            "text/plain", keep_alive=False, server_name=server_name, date=False)
        try:
            self.listener = _Listener(self, port, None, host=host, framing=None, encoding=None,
                                      max_connections=max_connections, send_timeout=send_timeout,
                                      dispatcher=dispatcher, on_closed=on_closed, daemon=daemon)
        except socket.error as e:
            if getattr(e, "errno", None) == errno.EACCES:
                raise socket.error(errno.EACCES, "no permission to listen on port %d: ports below 1024 "
                                   "need administrator rights; choose e.g. port 8080" % port)
            raise
        self.host = host
        self.port = self.listener.port
        log.debug("HTTP server listening on %s:%d", host or "*", self.port)

    def __repr__(self):
        return "<HTTPListener %s:%d%s>" % (self.host or "*", self.port, " closed" if self.is_closed else "")

    @property
    def connections(self):
        """A snapshot list of the open connections."""
        return self.listener.connections

    @property
    def is_closed(self):
        return self.listener.is_closed

    def close(self):
        """Stop accepting and close every connection; safe to call twice."""
        self.listener.close()

    # -- internals -----------------------------------------------------------

    def _warn_once(self, key, msg, *args):
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def _handle(self, request, conn):
        """Call the app and make its answer a Response (never raises)."""
        if self.app is None:
            self._warn_once("no app", "HTTP server on port %d has no handler: answering 501", self.port)
            return Response(501, _plain(501, "this server has no request handler"), "text/plain")
        try:
            result = self.app(request, conn)
        except Exception:
            log.exception("the handler %s raised for %s %s from %s; answering 500", callable_name(self.app),
                          request.method, excerpt(request.path, quote=False), conn.remote_address)
            return internal_error()
        if result is None:
            self._warn_once("none", "the handler returned None for %s %s: an empty page was sent "
                            "(did it forget to return the page?)", request.method, excerpt(request.path, quote=False))
        try:
            return make_response(result)
        except (TypeError, ValueError) as e:
            log.error("the handler's answer to %s %s is not a response: %s; answering 500",
                      request.method, excerpt(request.path, quote=False), e)
            return Response(500, _plain(500), "text/plain")

    def respond(self, request, conn):
        """The response to one request, as the connection sends it: ``(bytes, on_sent, keep_alive)``."""
        methods = self.methods
        if methods is not None and request.method not in methods:
            status = 405 if request.method in KNOWN_METHODS else 501
            resp = Response(status, _plain(status), "text/plain", [("Allow", ", ".join(methods))])
        elif self._lock is not None:
            with self._lock:
                resp = self._handle(request, conn)
        else:
            resp = self._handle(request, conn)
        keep = request.keep_alive and not self.is_closed and not resp.wants_close()
        try:
            data = build_response(resp.status, resp.body, resp.content_type, resp.headers,
                                  head=request.method == "HEAD", keep_alive=keep,
                                  server_name=self.server_name)
        except (TypeError, ValueError) as e:
            log.error("cannot send the handler's response to %s %s: %s; answering 500",
                      request.method, excerpt(request.path, quote=False), e)
            data = build_response(500, _plain(500), "text/plain", head=request.method == "HEAD",
                                  keep_alive=keep, server_name=self.server_name)
            return data, None, keep
        if log.isEnabledFor(logging.DEBUG):  # (not the excerpt's cost per request when it is not logged)
            log.debug("%s %s %s -> %d", conn.remote_address, request.method, excerpt(request.target, quote=False),
                      resp.status)
        return data, resp.on_sent, keep

    def _after_sent(self, fn):
        if self._lock is not None:
            with self._lock:
                call_logged(fn, ())
        else:
            call_logged(fn, ())


class _Listener(Listener):
    """The engine listener of an :class:`HTTPListener`.

    Every connection's handler is known at once (an :class:`_HTTPConnection`:
    cheap to make, no user code), so the accept thread sets it before the
    connection starts instead of having ``on_connection`` choose it on the
    listener's executor (an event and, when another connection holds that
    executor, a thread hand-off per connection).
    """

    def __init__(self, server, *args, **options):
        self.http_server = server
        Listener.__init__(self, *args, **options)

    def _first_handler(self, conn):
        return _HTTPConnection(self.http_server, conn)


class _HTTPConnection(object):
    """The engine handler of one HTTP connection: parser, deadlines, responses."""

    def __init__(self, server, conn):
        self.server = server
        self.conn = conn
        self.parser = RequestParser(server.max_request_line, server.max_header_bytes,
                                    server.max_body, server.max_headers)
        self.pending = False   # a request deadline is armed (a request is due)
        self.closing = False   # the last response was sent: discard what comes
        # the first request is due from now on: armed before the connection starts (on the
        # accept thread), so that its start asks the watchdog once, for the earliest check
        self._arm_request()

    def _arm_request(self):
        self.pending = True
        t = self.server.request_timeout
        self.conn.set_deadline(t, self.server._farewell, "no complete request within %g s" % t if t else None)

    def _arm_idle(self):
        self.pending = False
        t = self.server.keep_alive_timeout
        self.conn.set_deadline(t, None, "keep-alive connection idle for %g s" % t if t else None)

    def message_received(self, conn, data):
        if self.closing:
            return
        if not self.pending:
            self._arm_request()  # the first byte of a new request: its clock starts now
        error = None
        try:
            requests = self.parser.feed(data)
        except HTTPError as e:
            requests, error = e.requests, e
        if requests:
            conn.set_deadline(None)
            for request in requests:
                if not self._serve(request, request is requests[-1]):
                    return
            self.pending = False
        if error is not None:
            self._fail(error.status, error.reason)
            return
        if self.parser.has_partial:
            if not self.pending:
                self._arm_request()
            if self.parser.want_continue():
                self._send(CONTINUE_RESPONSE)
        else:
            self._arm_idle()

    def _send(self, data):
        try:
            self.conn.send(data)
            return True
        except ConnectionClosedError as e:
            log.debug("%r: response not sent: %s", self.conn, e)
            return False

    def _serve(self, request, last=True):
        data, on_sent, keep = self.server.respond(request, self.conn)
        if not self._send(data):
            return False
        if on_sent is not None:
            self.server._after_sent(on_sent)
        if not keep:
            # the client said it sends nothing more (Connection: close, and nothing after this
            # request): no linger, as nginx does; else what it still sends is read and discarded
            self._close(request.keep_alive or not last or self.parser.has_partial)
            return False
        return True

    def _fail(self, status, reason):
        conn = self.conn
        log.info("bad request from %s:%d: %d %s", conn.remote_address, conn.remote_port, status, reason)
        data = build_response(status, _plain(status, reason), "text/plain", keep_alive=False,
                              server_name=self.server.server_name)
        self._send(data)
        self._close()

    def _close(self, linger=True):
        # The engine's close is graceful: the response goes out, then the end of
        # the stream; what the client still sends is read and discarded (bounded)
        # so that no reset destroys the response before the client read it.
        self.closing = True
        self.conn.close(None, linger)

    def connection_lost(self, conn, reason):
        if isinstance(reason, DeadlineExceeded) and self.pending and not self.closing:
            if self.parser.has_partial:
                log.info("%s:%d sent no complete request within %g s: answered 408, closed",
                         conn.remote_address, conn.remote_port, self.server.request_timeout)
            else:
                log.debug("%r sent nothing within %g s: answered 408, closed", conn,
                          self.server.request_timeout)
        elif reason is not None and not isinstance(reason, DeadlineExceeded):
            log.debug("%r closed: %s", conn, reason)
