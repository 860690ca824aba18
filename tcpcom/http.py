"""The TigerJython face for HTTP: ``HTTPServer`` and ``HTTPClient``.

``HTTPServer(requestHandler, serverName="PYSERVER", port=80, isVerbose=False)``
serves at once; ``requestHandler(clientIP, filename, params)`` returns the
page (``text``, or ``(text, stateHandler)``).  The server is the engine's
:class:`tcpcom.httpserver.HTTPListener`; this module only translates.
``HTTPClient`` has static helpers on top of the standard library's urllib.
"""
from __future__ import absolute_import, print_function

import json
import logging
import threading

from ._compat import PY2, binary_type, integer_types, string_types, text_type
from ._version import __version__
from .engine import _check_callable, check_port
from .httpserver import (DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT,
                         HTTPListener, make_response)
from .tcp import _Face, _live, getIPAddress

try:  # Python 3
    from urllib.parse import quote as _quote, quote_plus as _quote_plus
except ImportError:  # pragma: no cover - Python 2.7 / Jython
    from urllib import quote as _quote, quote_plus as _quote_plus


def _urllib():
    """``(Request, urlopen, HTTPError, URLError)``, imported on first use: urllib's
    request module pulls in ssl and email, megabytes that a script with only a
    TCPServer should not pay for."""
    try:  # Python 3
        from urllib.error import HTTPError, URLError
        from urllib.request import Request, urlopen
    except ImportError:  # pragma: no cover - Python 2.7 / Jython
        from urllib2 import HTTPError, Request, URLError, urlopen
    return Request, urlopen, HTTPError, URLError

__all__ = ["HTTPServer", "HTTPClient", "HTTPClientError"]

#: the methods HTTPServer passes to the request handler; others get 405 (or 501)
SERVED_METHODS = ("GET", "HEAD", "POST")


def _plain_ip(address):
    """'::ffff:192.168.1.20' (an IPv4 client of an IPv6 socket) -> '192.168.1.20'."""
    if address.lower().startswith("::ffff:") and "." in address:
        return address[7:]
    return address


class HTTPServer(_Face):
    """A web server for classroom pages (TigerJython tcpcom).

    ``HTTPServer(requestHandler, serverName="PYSERVER", port=80, isVerbose=False)``
    starts serving at once.  For each GET, HEAD or POST request it calls
    ``requestHandler(clientIP, filename, params)``: ``filename`` is the path
    with its leading ``/`` and without the query (percent-decoded),
    ``params`` a tuple of ``(key, value)`` string pairs from the query
    string followed by the fields of a form-encoded POST body.  The handler
    returns the page as text, or ``(text, stateHandler)`` where
    ``stateHandler`` (None or a function without arguments) is called right
    after the response was sent.  It may also return a dict or list (sent as
    JSON), ``(code, text)`` or ``(code, text, contentType)``.

    Several clients are served at once; handler calls run one at a time
    (``serialize=False`` lets them run concurrently).  Other methods get 405
    with ``Allow: GET, HEAD, POST``.  Extensions: ``host`` (e.g.
    '127.0.0.1'), port 0 (see ``getPort()``), ``serialize``,
    ``requestTimeout`` (10 s), ``keepAliveTimeout`` (5 s), ``maxBody``
    (1 MiB), ``maxRequestLine`` (8 KiB), ``maxHeaderBytes`` (64 KiB),
    ``maxConnections`` (256), ``dispatcher``.

    A port that is taken raises :class:`tcpcom.engine.PortInUseError`; a port
    below 1024 without administrator rights raises ``socket.error`` saying so.
    """

    _log = logging.getLogger("tcpcom.http")

    def __init__(self, requestHandler, serverName="PYSERVER", port=80, isVerbose=False, host="",
                 serialize=True, requestTimeout=DEFAULT_REQUEST_TIMEOUT,
                 keepAliveTimeout=DEFAULT_KEEP_ALIVE_TIMEOUT, maxBody=1048576, maxRequestLine=8192,
                 maxHeaderBytes=65536, maxConnections=DEFAULT_MAX_CONNECTIONS, dispatcher=None):
        if requestHandler is None:
            raise TypeError("HTTPServer needs a requestHandler(clientIP, filename, params) function")
        _check_callable(requestHandler, "requestHandler")
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
            max_connections=maxConnections, methods=SERVED_METHODS, daemon=False)
        _live.add(self)
        self.port = self._listener.port
        self._debug("serving HTTP on port %d", self.port)

    def __repr__(self):
        return "<HTTPServer port %d%s>" % (self.port, " terminated" if self._terminated else "")

    def _app(self, request, conn):
        ip = _plain_ip(conn.remote_address)
        self._clientIP = ip
        self._local.ip = ip
        params = list(request.query)
        if request.method == "POST":
            params.extend(request.form())
        self._debug("%s %s from %s", request.method, request.target, ip)
        self._local.in_request = True
        try:
            result = self.requestHandler(ip, request.path, tuple(params))
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
            finally:
                if self._terminate_after_response:  # terminate() came from the handler
                    self._listener.close()
        return on_sent

    # the TigerJython API

    def getClientIP(self):
        """The IP address of the client whose request is handled (or was handled last)."""
        return getattr(self._local, "ip", None) or self._clientIP

    def getPort(self):
        """The port the server listens on (the real one when created with port 0)."""
        return self.port

    def terminate(self):
        """Stop serving; the port is free when this returns.  Safe twice.

        From inside the request handler the server stops right after that
        request's response has been sent.
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
        return __version__


class HTTPClientError(IOError):
    """The server could not be reached (no answer, name not found, refused, timeout)."""


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

    ``data`` is a dict (sent form-encoded, UTF-8) or a string (sent as it
    is).  Each returns the response body as text, also for an error status
    (the error page's body, as the original does).  A server that cannot be
    reached raises :class:`HTTPClientError`.  ``HTTPClient.timeout`` (10 s)
    bounds each request.
    """

    timeout = 10.0

    @staticmethod
    def getRequest(url, data=None):
        """GET ``url``; ``data`` is appended as the query string (before a ``#fragment``)."""
        query = _form_encode(data)
        url = _fix_url(url)
        if query:
            if isinstance(query, binary_type) and not PY2:
                query = query.decode("utf-8")
            url += ("&" if "?" in url else "?") + query
        return HTTPClient._send("GET", url, None)

    @staticmethod
    def postRequest(url, data=None):
        """POST ``data`` (form-encoded if a dict) to ``url``."""
        body = _form_encode(data)
        return HTTPClient._send("POST", _fix_url(url), _utf8(body) if body is not None else b"")

    @staticmethod
    def deleteRequest(url, data=""):
        """DELETE ``url``, with ``data`` as the body if not empty."""
        body = _form_encode(data)
        return HTTPClient._send("DELETE", _fix_url(url), _utf8(body) if body else None)

    @staticmethod
    def extractJSON(response):
        """The first ``{...}`` object in ``response`` (text) parsed, or None."""
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
        _URLRequest, _urlopen, _URLHTTPError, _URLError = _urllib()
        req = _URLRequest(url, body)
        req.get_method = lambda: method
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            response = _urlopen(req, timeout=HTTPClient.timeout)
        except _URLHTTPError as e:  # an error status: its page is the answer
            try:
                return _decode_body(e.read(), e.headers)
            finally:
                e.close()
        except _URLError as e:
            raise HTTPClientError("cannot reach %s: %s" % (url, getattr(e, "reason", e)))
        except (IOError, OSError) as e:  # e.g. a timeout while connecting or reading
            raise HTTPClientError("request to %s failed: %s" % (url, e))
        try:
            return _decode_body(response.read(), response.headers if not PY2 else response.info())
        except (IOError, OSError) as e:
            raise HTTPClientError("reading the answer of %s failed: %s" % (url, e))
        finally:
            response.close()
