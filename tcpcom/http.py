"""The TigerJython face for HTTP: ``HTTPServer`` and ``HTTPClient``.

``HTTPServer(requestHandler, serverName="PYSERVER", port=80, isVerbose=False)``
serves at once; ``requestHandler(clientIP, filename, params)`` returns the
page (``text``, or ``(text, stateHandler)``).  The server is the engine's
``tcpcom.httpserver.HTTPListener``; this module only translates.
``HTTPClient`` has static helpers on top of the standard library's urllib;
they raise ``HTTPClientError`` when a server cannot be reached.
"""
from __future__ import absolute_import, print_function

import json
import logging
import socket
import threading

from ._compat import PY2, binary_type, integer_types, make_thread, string_types, text_type
from ._version import __version__
from .diagnostics import excerpt
from .engine import check_callable, check_port
from .httpserver import (DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT,
                         HTTPListener, internal_error, make_response)
from .lifetime import keeps_alive, register
from .tcp import Face, getIPAddress, log_raised

try:  # Python 3
    from urllib.parse import quote as _quote, quote_plus as _quote_plus
except ImportError:  # pragma: no cover - Python 2.7 / Jython
    from urllib import quote as _quote, quote_plus as _quote_plus


def _urllib():
    """urllib's request module (urllib2 on Python 2), and ``HTTPException`` beside it,
    imported on first use: it pulls in ssl and email, megabytes that a script
    with only a TCPServer should not pay for."""
    try:  # Python 3
        from urllib import request as module
        from http.client import HTTPException
    except ImportError:  # pragma: no cover - Python 2.7 / Jython
        import urllib2 as module
        from httplib import HTTPException
    return module, HTTPException

__all__ = ["HTTPServer", "HTTPClient", "HTTPClientError"]

#: the methods HTTPServer passes to the request handler; others get 405 (or 501)
SERVED_METHODS = ("GET", "HEAD", "POST")


class HTTPServer(Face):
    """A web server for classroom pages (TigerJython tcpcom).

    ``HTTPServer(requestHandler, serverName="PYSERVER", port=80,
    isVerbose=False)`` starts serving at once; the constructor returns
    immediately.  Ports below 1024 need administrator rights on most
    systems: use e.g. ``port=8080`` (0 lets the system choose, see
    ``getPort()``).  ``serverName`` is sent as the ``Server`` header.

    For each GET, HEAD or POST request it calls
    ``requestHandler(clientIP, filename, params)``:

    - ``clientIP``: the client's IP address (``"192.168.1.20"``);
    - ``filename``: the path with its leading ``/``, without the query,
      percent-decoded (``/my%20page`` gives ``/my page``).  It is only
      text: nothing serves files;
    - ``params``: a tuple of ``(key, value)`` strings: the query string's
      fields (percent-decoded, ``+`` is a space), followed by the fields of
      a form-encoded POST body.

    What the handler returns is the response:

    =============================  ==================================
    return                         response
    =============================  ==================================
    text                           200, ``text/html``, UTF-8
    ``(text, stateHandler)``       the same; ``stateHandler()`` (or
                                   None) is called right after the
                                   page was sent, e.g. to switch a pin
    a dict or list                 200, JSON
    ``(code, text)``               that status
    ``(code, text, contentType)``  that status and type
    =============================  ==================================

    For HEAD the body is left out.  Other methods get 405 (501 for a method
    nobody knows) with ``Allow: GET, HEAD, POST``.  A handler that raises
    gets 500 and is logged with its traceback (logger ``tcpcom.http``);
    one that returns None sends an empty page (with a warning); the server
    goes on.

    Callbacks
        Many clients are served at once, each connection by its own
        thread, and the handler runs on that thread -- but its calls run
        one at a time, so a handler may keep global state without locks
        (``serialize=False`` lets them run concurrently).  ``stateHandler``
        runs the same way.

    Program lifetime
        The server keeps the program running, also after the script's last
        line, until ``terminate()``; one Ctrl-C ends the script and frees
        the port.

    Errors
        A port that is taken raises ``tcpcom.engine.PortInUseError`` (a
        ``socket.error``, ``OSError``): "port 8080 is already in use: stop
        the other program or choose another port"; a port below 1024
        without administrator rights raises ``socket.error`` saying so.  A
        wrong argument raises ``TypeError`` or ``ValueError``.

    Limits (more keyword arguments)
        ``requestTimeout`` (10 s: a request not complete by then gets 408),
        ``keepAliveTimeout`` (5 s: an idle connection between requests is
        closed), ``maxBody`` (1 MiB: 413), ``maxRequestLine`` (8 KiB: 414),
        ``maxHeaderBytes`` (64 KiB: 431), ``maxConnections`` (256: more are
        accepted and closed at once).  A limit that is hit answers with its
        status and closes that connection; everyone else is still served.

    More keyword arguments
        ``host=""``: all interfaces, IPv4 and IPv6 (``"127.0.0.1"``: this
        machine only); ``serialize`` (True); ``dispatcher``.
        ``isVerbose=True`` also prints the server's log lines.
    """

    _log = logging.getLogger("tcpcom.http")

    def __init__(self, requestHandler, serverName="PYSERVER", port=80, isVerbose=False, host="",
                 serialize=True, requestTimeout=DEFAULT_REQUEST_TIMEOUT,
                 keepAliveTimeout=DEFAULT_KEEP_ALIVE_TIMEOUT, maxBody=1048576, maxRequestLine=8192,
                 maxHeaderBytes=65536, maxConnections=DEFAULT_MAX_CONNECTIONS, dispatcher=None):
        if requestHandler is None:
            raise TypeError("HTTPServer needs a requestHandler(clientIP, filename, params) function")
        check_callable(requestHandler, "requestHandler")
        check_port(port)
        self.requestHandler = requestHandler
        self.serverName = serverName
        self.isVerbose = bool(isVerbose)
        self._clientIP = None
        self._local = threading.local()
        self._terminated = False
        self._terminate_after_response = False
        self._listener = HTTPListener(
            port, self._app, host=host, serialize=serialize, dispatcher=dispatcher,
            server_name=serverName, max_request_line=maxRequestLine, max_header_bytes=maxHeaderBytes,
            max_body=maxBody, request_timeout=requestTimeout, keep_alive_timeout=keepAliveTimeout,
            max_connections=maxConnections, methods=SERVED_METHODS, daemon=not keeps_alive())
        register(self)
        self.port = self._listener.port
        self._debug("serving HTTP on port %d", self.port)

    def __repr__(self):
        return "<HTTPServer port %d%s>" % (self.port, " terminated" if self._terminated else "")

    def _app(self, request, conn):
        ip = conn.remote_address  # an IPv4 client as a dotted quad, also on a dual-stack socket
        self._clientIP = ip
        self._local.ip = ip
        params = list(request.query)
        if request.method == "POST":
            params.extend(request.form())
        if self._debugging():  # (the excerpt's cost per request only when it is shown)
            self._debug("%s %s from %s", request.method, excerpt(request.target, quote=False), ip)
        self._local.in_request = True
        try:
            result = self.requestHandler(ip, request.path, tuple(params))
        except Exception:
            log_raised(self._log, "requestHandler", self.requestHandler, (ip, request.path, tuple(params)),
                    "answering 500")
            result = internal_error()
        finally:
            self._local.in_request = False
        stateHandler = None
        if isinstance(result, tuple) and len(result) == 2 \
                and not isinstance(result[0], integer_types) \
                and (result[1] is None or callable(result[1])):
            result, stateHandler = result
        if stateHandler is None and not self._terminate_after_response:
            return result
        response = make_response(result)
        response.on_sent = self._after_response(stateHandler)
        return response

    def _after_response(self, stateHandler):
        def on_sent():
            try:
                if stateHandler is not None:
                    stateHandler()
            except Exception:
                log_raised(self._log, "stateHandler", stateHandler, ())
            finally:
                if self._terminate_after_response:  # terminate() came from the handler
                    self._listener.close()
        return on_sent

    # the TigerJython API

    def getClientIP(self):
        """The IP address of the client whose request is being handled (or was handled last).

        Inside ``requestHandler`` it is that request's client, also when
        several are served at once; None before the first request.
        """
        return getattr(self._local, "ip", None) or self._clientIP

    def getPort(self):
        """The port the server listens on (the real one when created with port 0)."""
        return self.port

    def terminate(self):
        """Stop serving; the port is free when this returns.  Safe to call twice.

        From inside the request handler (or ``stateHandler``) it returns at
        once, and the server stops right after that request's response has
        been sent.
        """
        if not self._terminated:
            self._debug("terminating")
        self._terminated = True
        if getattr(self._local, "in_request", False):
            self._terminate_after_response = True
            return
        self._listener.close()

    _close = terminate

    def isTerminated(self):
        """True after ``terminate()``."""
        return self._terminated

    @staticmethod
    def getServerIP():
        """This machine's IPv4 address on the local network ('127.0.0.1' if none is found)."""
        return getIPAddress()

    @staticmethod
    def getVersion():
        """This library's version, ``tcpcom.__version__`` (TigerJython's own tcpcom says another)."""
        return __version__


class HTTPClientError(IOError):
    """The server could not be reached (no answer, name not found, refused, timeout).

    Raised by ``HTTPClient``'s requests; an ``IOError`` (``OSError`` on
    Python 3), whose text says which URL and why.  An error status (404,
    500) is not an error here: its page is returned.
    """


def _utf8(value):
    if isinstance(value, text_type):
        return value.encode("utf-8")
    if isinstance(value, binary_type):
        return value
    return text_type(value).encode("utf-8")


def _form_encode(data):
    """dict / list of pairs -> 'a=1&b=x+y' (UTF-8, form encoding); text passes as it is."""
    if data is None:
        return None
    if isinstance(data, (text_type, binary_type)):
        return data
    items = data.items() if hasattr(data, "items") else data
    try:
        items = [(k, v) for k, v in items]
    except (TypeError, ValueError):
        raise TypeError("data must be a dict such as {'name': 'Anna'}, a list of (name, value) pairs "
                        "or a string such as 'name=Anna', not %s %s" % (type(data).__name__, excerpt(data)))
    return "&".join("%s=%s" % (_quote_plus(_utf8(k)), _quote_plus(_utf8(v))) for k, v in items)


def _fix_url(url):
    if not isinstance(url, string_types):
        raise TypeError("url must be a string such as 'http://localhost:8080/', not %r" % (url,))
    if "://" not in url:
        url = "http://" + url
    # the fragment (#top) names a place in the page: it is never sent, and a
    # query appended after it would not be sent either
    url = url.split("#", 1)[0]
    # non-ASCII characters and spaces are escaped; existing %XX escapes stay
    return _quote(_utf8(url), safe=b"%:/?#[]@!$&'()*+,;=~" if PY2 else "%:/?#[]@!$&'()*+,;=~")


def _decode_body(data, headers):
    charset = "utf-8"
    ctype = headers.get("Content-Type") or "" if headers is not None else ""
    for part in ctype.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


class HTTPClient(object):
    """Static helpers for HTTP requests (TigerJython tcpcom).

    ``HTTPClient.getRequest(url, data=None)``, ``postRequest``,
    ``deleteRequest`` and ``extractJSON``; no object is made.

    ``url``: ``http://`` may be left out; non-ASCII characters and spaces
    are escaped; a ``#fragment`` is never sent.  ``data``: a dict or a list
    of ``(name, value)`` pairs (sent form-encoded, UTF-8), or a string
    (sent as it is).

    Each request returns the response body as text, decoded with the
    charset the server declares (else UTF-8) -- also for an error status
    (404, 500: the error page's body, as the original does).  A server that
    cannot be reached (refused, unknown name, hung up before the whole
    answer, too slow) raises ``HTTPClientError`` with the reason.  Each
    call blocks until the answer is complete or the timeout has passed.

    ``HTTPClient.timeout`` (10 s) bounds each request as a whole, from the
    name lookup to the last byte of the answer: a request that has not
    finished by then raises ``HTTPClientError``.  ``None`` (or ``<= 0``)
    waits as long as the server takes.
    """

    #: seconds a whole request may take (None or ``<= 0``: no limit), e.g. ``HTTPClient.timeout = 30``
    timeout = 10.0

    @staticmethod
    def getRequest(url, data=None):
        """GET ``url``; ``data`` (a dict, pairs or a string) is appended as the query string.

        Returns the response body as text; raises ``HTTPClientError`` when
        the server cannot be reached.
        """
        query = _form_encode(data)
        url = _fix_url(url)
        if query:
            if isinstance(query, binary_type) and not PY2:
                query = query.decode("utf-8")
            url += ("&" if "?" in url else "?") + query
        return HTTPClient._send("GET", url, None)

    @staticmethod
    def postRequest(url, data=None):
        """POST ``data`` to ``url`` as the body (``application/x-www-form-urlencoded``).

        ``data``: a dict or pairs (form-encoded, UTF-8) or a string (as it
        is).  Returns the response body as text; raises ``HTTPClientError``
        when the server cannot be reached.
        """
        body = _form_encode(data)
        return HTTPClient._send("POST", _fix_url(url), _utf8(body) if body is not None else b"")

    @staticmethod
    def deleteRequest(url, data=""):
        """DELETE ``url``, with ``data`` as the body if not empty.

        Returns the response body as text; raises ``HTTPClientError`` when
        the server cannot be reached.
        """
        body = _form_encode(data)
        return HTTPClient._send("DELETE", _fix_url(url), _utf8(body) if body else None)

    @staticmethod
    def extractJSON(response):
        """The first ``{...}`` JSON object in ``response`` (text), parsed; None if there is none.

        Text around the object is skipped (``'x {"a": 1} y'`` gives
        ``{"a": 1}``).
        """
        if response is None:
            return None
        if isinstance(response, binary_type) and not isinstance(response, text_type):
            response = response.decode("utf-8", "replace")
        decoder = json.JSONDecoder()
        start = response.find("{")
        while start >= 0:
            try:
                obj, _ = decoder.raw_decode(response, start)
                return obj
            except ValueError:
                start = response.find("{", start + 1)
        return None

    @staticmethod
    def _send(method, url, body):
        """The request, bounded as a whole by ``HTTPClient.timeout``.

        urllib's own timeout bounds each socket operation: a server that
        sends a byte every second keeps it waiting for ever.  So the request
        runs in a worker thread and the caller waits for it until the
        deadline; then the worker's socket is shut down (which ends it at
        once on CPython, within one socket timeout elsewhere) and the caller
        gets an :class:`HTTPClientError`.  The wait also covers the name
        lookup, which no socket timeout bounds.
        """
        timeout = HTTPClient.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, integer_types + (float, type(None))):
            raise TypeError("HTTPClient.timeout must be a number of seconds (or None: no limit), not %s %r"
                            % (type(timeout).__name__, timeout))
        if timeout is None or timeout <= 0:
            return _Exchange(method, url, body, None).run()
        exchange = _Exchange(method, url, body, timeout)
        worker = make_thread(exchange.run_in_worker, "tcpcom-HTTPClient")
        worker.start()
        finished = False
        try:
            exchange.done.wait(timeout)
            finished = exchange.done.is_set()
        finally:
            if not finished:  # the deadline passed (or Ctrl-C): the worker's result no longer counts
                exchange.abandon()
        if not finished:
            raise HTTPClientError("no complete answer from %s within %s s (HTTPClient.timeout)"
                                  % (url, _seconds(timeout)))
        if exchange.error is not None:
            raise exchange.error
        return exchange.result


def _seconds(value):
    """10.0 -> '10', 0.5 -> '0.5'."""
    return ("%.3f" % value).rstrip("0").rstrip(".")


class _Exchange(object):
    """One request of HTTPClient: urllib, with every socket it opens remembered so that
    a caller that gives up (the deadline passed) can shut it down."""

    def __init__(self, method, url, body, timeout):
        self.method = method
        self.url = url
        self.body = body
        self.timeout = timeout
        self.done = threading.Event()
        self.result = self.error = None
        self._lock = threading.Lock()
        self._sockets = []
        self._abandoned = False

    def run_in_worker(self):
        try:
            self.result = self.run()
        except Exception as e:  # handed to the caller, who raises it
            self.error = e
        finally:
            self.done.set()

    def abandon(self):
        with self._lock:
            self._abandoned = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def _connected(self, conn):
        """Called by the connection right after it connected."""
        sock = conn.sock
        # Python 2: HTTPConnection.close() replaces the wrapper's socket by a
        # dummy while the response still reads from the real one underneath
        sock = getattr(sock, "_sock", sock) if PY2 else sock
        with self._lock:
            if not self._abandoned:
                self._sockets.append(sock)
                return
        _shut(sock)
        raise HTTPClientError("gave up on %s (HTTPClient.timeout)" % self.url)

    def _opener(self):
        urllib = _urllib()[0]
        exchange = self

        def do_open(handler_class):
            def opener(self, http_class, req, **kwargs):
                def connection(host, **options):
                    conn = http_class(host, **options)
                    plain_connect = conn.connect

                    def connect():
                        plain_connect()
                        exchange._connected(conn)
                    conn.connect = connect
                    return conn
                return handler_class.do_open(self, connection, req, **kwargs)
            return opener

        handlers = [type("HTTPHandler", (urllib.HTTPHandler, object), {"do_open": do_open(urllib.HTTPHandler)})]
        if hasattr(urllib, "HTTPSHandler"):  # not where Python has no ssl
            handlers.append(type("HTTPSHandler", (urllib.HTTPSHandler, object),
                                 {"do_open": do_open(urllib.HTTPSHandler)}))
        return urllib.build_opener(*handlers)

    def run(self):
        urllib, HTTPException = _urllib()
        method, url, body = self.method, self.url, self.body
        req = urllib.Request(url, body)
        req.get_method = lambda: method
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            if self.timeout is None:
                response = self._opener().open(req)
            else:
                response = self._opener().open(req, timeout=self.timeout)
        except urllib.HTTPError as e:  # an error status: its page is the answer
            try:
                return _decode_body(e.read(), e.headers)
            finally:
                e.close()
        except urllib.URLError as e:
            raise HTTPClientError("cannot reach %s: %s" % (url, getattr(e, "reason", e)))
        except HTTPClientError:
            raise
        except (IOError, OSError, HTTPException) as e:  # e.g. a timeout, a hang-up before the answer
            raise HTTPClientError("request to %s failed: %s" % (url, _reason(e)))
        try:
            return _decode_body(response.read(), response.headers if not PY2 else response.info())
        except (IOError, OSError, HTTPException) as e:  # e.g. a hang-up in the middle of the body
            raise HTTPClientError("reading the answer of %s failed: %s" % (url, _reason(e)))
        finally:
            response.close()


def _reason(error):
    """The text of an error, or its class name when it has none (IncompleteRead, RemoteDisconnected)."""
    return str(error) or type(error).__name__


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (socket.error, OSError, AttributeError):
        pass
    try:
        sock.close()
    except (socket.error, OSError, AttributeError):
        pass
