"""Sans-IO HTTP/1.1 request codec.

Feed received bytes to a :class:`RequestParser`; it returns complete
:class:`Request` objects or raises :class:`HTTPError` carrying the status the
server should answer before closing.  :func:`build_response` makes the bytes of
a response.  Nothing here touches sockets, threads or clocks (except the
optional ``Date`` header), so the same code runs on CPython 3, CPython 2.7 and
Jython 2.7.

Chunked request bodies are not supported (answered with 501); pipelined
requests and requests split over any number of chunks are.
"""
from __future__ import absolute_import, division, print_function, unicode_literals

import re
import sys
import time

if sys.version_info[0] == 2:  # pragma: no cover - CPython 2.7 / Jython 2.7
    text_type = unicode  # noqa: F821
else:
    text_type = str

__all__ = [
    "HTTPError", "Request", "RequestParser", "build_response",
    "parse_query", "percent_decode", "REASONS", "CONTINUE_RESPONSE",
]

#: Interim response to send when :meth:`RequestParser.want_continue` says so.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: Reason phrases used by :func:`build_response`.
REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# tchar from RFC 7230 section 3.2.6, as byte values.
_TCHARS = frozenset(bytearray(
    b"!#$%&'*+-.^_`|~0123456789"
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_HEXDIGITS = frozenset(bytearray(b"0123456789abcdefABCDEF"))
_CR = 13
_LF = 10
_VERSION_RE = re.compile(br"HTTP/([0-9])\.([0-9])\Z")
_TOKEN = br"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+"  # (the pattern of _TCHARS)
_TOKEN_RE = re.compile(_TOKEN + br"\Z")
# Control characters and space are not allowed in a request-target; bytes
# >= 0x80 (raw UTF-8 sent by sloppy clients) are tolerated.
_BAD_TARGET_RE = re.compile(br"[\x00-\x20\x7f]")
_BAD_VALUE_RE = re.compile(br"[\x00\r]")
#: header lines (joined by CRLF) that each pass every check of _header_line: a token, a colon,
#: a value without NUL or CR (no line starts with a space or tab: that would be folding)
_HEADER_LINE = _TOKEN + br":[^\x00\r\n]*"
_HEADER_BLOCK_RE = re.compile(_HEADER_LINE + br"(?:\r\n" + _HEADER_LINE + br")*\Z")


def _header_pair(name, value):
    """A checked header line's name and (stripped) value as text: the value UTF-8 when valid,
    else ISO-8859-1 (lossless)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return name.decode("ascii"), text


class HTTPError(Exception):
    """A request the server must refuse: answer ``status`` and close.

    ``reason`` is short human text.  ``requests`` lists the requests that
    were completed in the same :meth:`RequestParser.feed` call before the
    error (pipelining): serve them first, then answer the error.
    """

    def __init__(self, status, reason, requests=None):
        Exception.__init__(self, status, reason)
        self.status = status
        self.reason = reason
        self.requests = list(requests or [])

    def __str__(self):
        return "%d %s" % (self.status, self.reason)


def _to_bytes(s):
    """Text -> UTF-8 bytes; bytes-like -> bytes."""
    if isinstance(s, text_type):
        return s.encode("utf-8")
    return bytes(s)


def percent_decode(s, plus_as_space=False):
    """Decode %XX escapes of text or bytes ``s`` and return text.

    The decoded bytes are read as UTF-8 (invalid sequences become U+FFFD);
    malformed escapes such as ``%zz`` or a trailing ``%4`` are kept
    literally.  With ``plus_as_space`` a ``+`` means a space (form encoding).
    Never raises for any input string.
    """
    data = _to_bytes(s)
    if plus_as_space:
        data = data.replace(b"+", b" ")
    if b"%" in data:
        parts = data.split(b"%")
        out = bytearray(parts[0])
        for part in parts[1:]:
            pb = bytearray(part[:2])
            if len(pb) == 2 and pb[0] in _HEXDIGITS and pb[1] in _HEXDIGITS:
                out.append(int(bytes(pb).decode("ascii"), 16))
                out.extend(part[2:])
            else:
                out.extend(b"%")
                out.extend(part)
        data = bytes(out)
    return data.decode("utf-8", "replace")


def parse_query(qs):
    """Parse an ``application/x-www-form-urlencoded`` string (text or bytes).

    Returns a list of ``(key, value)`` text pairs in order, repeated keys
    kept; ``+`` is a space; a field without ``=`` gives ``(key, "")``; empty
    fields (``a=1&&b=2``) are skipped.  Never raises.
    """
    data = _to_bytes(qs)
    pairs = []
    for field in data.split(b"&"):
        if not field:
            continue
        if b"=" in field:
            key, value = field.split(b"=", 1)
        else:
            key, value = field, b""
        pairs.append((percent_decode(key, True), percent_decode(value, True)))
    return pairs


def _split_target(target):
    """Request-target text -> (raw_path, query_string)."""
    if "#" in target:  # clients must not send fragments; ignore one anyway
        target = target.split("#", 1)[0]
    if "?" in target:
        raw_path, query_string = target.split("?", 1)
    else:
        raw_path, query_string = target, ""
    if not raw_path.startswith("/") and "://" in raw_path:
        # absolute-form (proxy style): drop scheme and authority
        rest = raw_path.split("://", 1)[1]
        slash = rest.find("/")
        raw_path = rest[slash:] if slash >= 0 else "/"
    return raw_path, query_string


class Request(object):
    """One parsed request; all text attributes are unicode text.

    Attributes: ``method``, ``target``, ``path`` (percent-decoded),
    ``raw_path``, ``query_string``, ``query`` (list of pairs), ``version``
    (``"HTTP/1.1"`` or ``"HTTP/1.0"``), ``headers`` (list of pairs as
    received), ``body`` (bytes), ``keep_alive`` (bool).
    """

    def __init__(self, method, target, version, headers, body=b""):
        self.method = method
        self.target = target
        self.version = version
        self.headers = list(headers)
        self.body = bytes(body)
        self.raw_path, self.query_string = _split_target(target)
        raw_path = self.raw_path  # (most paths are text without escapes: nothing to decode)
        plain = raw_path.__class__ is text_type and "%" not in raw_path
        self.path = raw_path if plain else percent_decode(raw_path)
        self.query = parse_query(self.query_string) if self.query_string else []
        tokens = set()
        for name, value in self.headers:
            if name.lower() == "connection":
                tokens.update([t.strip().lower() for t in value.split(",")])
        if "close" in tokens:
            self.keep_alive = False
        elif version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in tokens
        else:
            self.keep_alive = True

    def headers_dict(self):
        """Lowercased name -> value; repeated headers joined with ``", "``
        (``"; "`` for Cookie, RFC 6265)."""
        result = {}
        for name, value in self.headers:
            key = name.lower()
            if key in result:
                sep = "; " if key == "cookie" else ", "
                result[key] = result[key] + sep + value
            else:
                result[key] = value
        return result

    def header(self, name, default=None):
        """Case-insensitive header lookup, combined as in :meth:`headers_dict`."""
        return self.headers_dict().get(name.lower(), default)

    def form(self):
        """Pairs of an ``application/x-www-form-urlencoded`` body (UTF-8),
        else ``[]``."""
        ctype = self.header("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
            return []
        return parse_query(self.body)

    def text(self):
        """The body decoded as UTF-8 (invalid bytes become U+FFFD)."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Request %s %s %s>" % (self.method, self.target, self.version)


# parser states
_REQUEST_LINE = 0
_HEADERS = 1
_BODY = 2


class RequestParser(object):
    """Incremental parser for a stream of HTTP/1.x requests (one connection).

    ``feed(data)`` returns the requests completed by ``data``; it raises
    :class:`HTTPError` for bad input, after which the parser is dead and
    every further call raises the same status and reason.  Work is linear in
    the input: each byte is searched for line ends at most twice (a head that
    arrived whole is split at once; one that did not, line by line).

    Limits: ``max_request_line`` bytes for the request line (414),
    ``max_header_bytes`` for the header section including line ends and
    ``max_headers`` header lines (431), ``max_body`` bytes of body (413,
    ``None`` for no limit).  Limits are enforced as soon as they are
    exceeded, before a line end or the body has arrived.
    """

    #: empty lines tolerated before a request line (RFC 7230 section 3.5)
    MAX_EMPTY_LINES = 10

    def __init__(self, max_request_line=8192, max_header_bytes=65536,
                 max_body=1048576, max_headers=100):
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body
        self.max_headers = max_headers
        self._buf = bytearray()
        self._pos = 0        # start of unconsumed data in _buf
        self._scan = 0       # no b"\n" in _buf[_pos:_scan]
        self._error = None   # (status, reason) once dead
        self._reset_request()

    def _reset_request(self):
        self._state = _REQUEST_LINE
        self._empty_lines = 0
        self._method = self._target = self._version = None
        self._headers = []
        self._header_bytes = 0
        self._body_len = 0
        self._continue = False

    @property
    def has_partial(self):
        """True while bytes of an incomplete request are buffered (tolerated
        empty lines and a lone CR do not count)."""
        if self._state != _REQUEST_LINE:
            return True
        pending = len(self._buf) - self._pos
        return pending > 1 or (pending == 1 and self._buf[self._pos] != _CR)

    def want_continue(self):
        """True once per request that sent ``Expect: 100-continue`` and whose
        body has not arrived yet: the server should then send
        :data:`CONTINUE_RESPONSE` (clients such as curl otherwise wait ~1 s).
        """
        wanted = self._continue and self._state == _BODY
        self._continue = False
        return wanted

    def feed(self, data):
        """Add received bytes; return the list of requests now complete.

        ``b""`` means nothing new (not end of stream: see :meth:`feed_eof`).
        """
        if isinstance(data, text_type):
            raise TypeError("feed() takes bytes, not text")
        if self._error is not None:
            raise HTTPError(*self._error)
        if data:
            self._buf.extend(data)
        done = []
        try:
            while True:
                req = self._step()
                if req is None:
                    break
                done.append(req)
        except HTTPError as err:
            self._error = (err.status, err.reason)
            err.requests = done
            raise
        finally:
            if self._pos:
                # Only reached after consuming a line or a request whose last
                # byte came in this call, so the copy is bounded by len(data).
                del self._buf[:self._pos]
                self._scan -= self._pos
                self._pos = 0
        return done

    def feed_eof(self):
        """The peer closed: raise 400 if a request was cut short, else None."""
        if self._error is not None:
            raise HTTPError(*self._error)
        if self.has_partial:
            self._error = (400, "incomplete request")
            raise HTTPError(*self._error)
        return None

    # -- internals ---------------------------------------------------------

    def _next_line(self):
        """Return (content, end) of the next complete line, or None.

        ``content`` has the CRLF or bare LF removed; ``end`` is the index just
        past the LF.
        """
        buf = self._buf
        nl = buf.find(b"\n", self._scan)
        if nl < 0:
            self._scan = len(buf)
            return None
        end = nl + 1
        self._scan = end
        stop = nl - 1 if nl > self._pos and buf[nl - 1] == _CR else nl
        return bytes(buf[self._pos:stop]), end

    def _step(self):
        """Advance as far as possible; return a completed Request or None."""
        if self._state == _REQUEST_LINE and self._scan == self._pos:  # nothing of it searched yet
            head_end = self._buf.find(b"\r\n\r\n", self._pos)
            if head_end > self._pos:
                head = bytes(self._buf[self._pos:head_end])
                # CRLF line ends only, no empty line first (else: line by line, below)
                if head[:2] != b"\r\n" and head.count(b"\n") == head.count(b"\r\n"):
                    req = self._whole_head(head)
                    if req is not None:
                        return req  # (None: its body follows, read below)
        while True:
            if self._state == _BODY:
                if len(self._buf) - self._pos < self._body_len:
                    return None
                end = self._pos + self._body_len
                body = bytes(self._buf[self._pos:end])
                self._pos = self._scan = end
                return self._finish(body)
            line = self._next_line()
            if line is None:
                self._check_partial()
                return None
            content, end = line
            if self._state == _REQUEST_LINE:
                self._request_line(content, end)
            else:
                req = self._header_line(content, end)
                if req is not None:
                    return req

    def _whole_head(self, head):
        """``head``: a request head that is all here (without its final CRLF CRLF), with CRLF
        line ends (the common case).  Its lines are split at once, with no search per line;
        the header lines are checked all at once when they all pass (:meth:`_header_block`),
        else by the same line methods as one line at a time, in the same order -- the outcome
        is the same either way.  Returns the request, or None (a body follows)."""
        first, _, block = head.partition(b"\r\n")  # (the caller saw that it does not begin with one)
        pos = self._pos + len(first) + 2
        self._request_line(first, pos)
        if block:
            end = pos + len(block) + 2  # past the last header line's CRLF
            if not self._header_block(block, end):  # something to say about a line: one at a time
                for content in block.split(b"\r\n"):
                    pos += len(content) + 2
                    self._header_line(content, pos)
            pos = end
        self._scan = pos + 2
        return self._header_line(b"", pos + 2)

    def _header_block(self, block, end):
        """All of a head's header lines (``block``, CRLF between them, ``end`` just past the
        last one) at once, when every line passes _header_line's checks and their number is
        within the limit: one match for them all instead of several checks per line.  False
        (nothing done) when not: then _header_line, line by line, says which line fails and
        how.  (Their size needs no look here: the head's end is checked as always, and a head
        too large fails there with the same error as at the line where it grew too large.)"""
        if (len(self._headers) + block.count(b"\r\n") >= self.max_headers
                or _HEADER_BLOCK_RE.match(block) is None):
            return False
        append = self._headers.append
        for line in block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            append(_header_pair(name, value.strip(b" \t")))
        self._header_bytes += end - self._pos
        self._pos = end
        return True

    def _check_partial(self):
        """Enforce limits and obvious garbage before a line end has arrived.

        Every check here is one that the complete line would fail in the same
        way, so the outcome never depends on how the input was chunked.
        """
        buf = self._buf
        pending = len(buf) - self._pos
        if not pending:
            return
        if self._state == _REQUEST_LINE:
            first = buf[self._pos]
            if first not in _TCHARS and not (first == _CR and pending == 1):
                raise HTTPError(400, "malformed request line")
            # a final CR may still turn out to be part of the line end
            size = pending - 1 if buf[-1] == _CR else pending
            if size > self.max_request_line:
                raise HTTPError(414, "request line too long (limit %d bytes)"
                                % self.max_request_line)
        elif self._header_bytes + pending > self.max_header_bytes:
            raise HTTPError(431, "request header section too large (limit %d bytes)"
                            % self.max_header_bytes)

    def _request_line(self, content, end):
        self._pos = end
        if not content:
            self._empty_lines += 1
            if self._empty_lines > self.MAX_EMPTY_LINES:
                raise HTTPError(400, "too many empty lines before request line")
            return
        if bytearray(content[:1])[0] not in _TCHARS:
            raise HTTPError(400, "malformed request line")
        if len(content) > self.max_request_line:
            raise HTTPError(414, "request line too long (limit %d bytes)"
                            % self.max_request_line)
        parts = content.split(b" ")
        if len(parts) != 3 or not all(parts):
            raise HTTPError(400, "malformed request line")
        method, target, version = parts
        if not _TOKEN_RE.match(method):
            raise HTTPError(400, "invalid method")
        if _BAD_TARGET_RE.search(target):
            raise HTTPError(400, "invalid request target")
        m = _VERSION_RE.match(version)
        if m is None:
            raise HTTPError(400, "malformed HTTP version")
        if m.group(1) != b"1":
            raise HTTPError(505, "HTTP version %s not supported"
                            % version.decode("ascii"))
        self._method = method.decode("ascii")
        self._target = target.decode("utf-8", "replace")
        self._version = "HTTP/1.0" if m.group(2) == b"0" else "HTTP/1.1"
        self._state = _HEADERS

    def _header_line(self, content, end):
        self._header_bytes += end - self._pos
        self._pos = end
        if self._header_bytes > self.max_header_bytes:
            raise HTTPError(431, "request header section too large (limit %d bytes)"
                            % self.max_header_bytes)
        if not content:
            return self._end_of_headers()
        if len(self._headers) >= self.max_headers:
            raise HTTPError(431, "too many header lines (limit %d)" % self.max_headers)
        if content[:1] in (b" ", b"\t"):
            raise HTTPError(400, "obsolete header line folding not supported")
        colon = content.find(b":")
        if colon < 0:
            raise HTTPError(400, "header line without colon")
        name = content[:colon]
        if not name:
            raise HTTPError(400, "empty header name")
        if not _TOKEN_RE.match(name):
            raise HTTPError(400, "invalid header name")
        value = content[colon + 1:].strip(b" \t")
        if _BAD_VALUE_RE.search(value):
            raise HTTPError(400, "invalid character in header value")
        self._headers.append(_header_pair(name, value))
        return None

    def _end_of_headers(self):
        lengths = []
        has_te = False
        for name, value in self._headers:
            lname = name.lower()
            if lname == "transfer-encoding":
                has_te = True
            elif lname == "content-length":
                lengths.extend(v.strip() for v in value.split(","))
        if has_te:
            if lengths:
                raise HTTPError(400, "both Transfer-Encoding and Content-Length")
            raise HTTPError(501, "Transfer-Encoding (chunked bodies) not supported")
        length = 0
        if lengths:
            if len(set(lengths)) != 1:
                raise HTTPError(400, "conflicting Content-Length values")
            digits = lengths[0]
            if not digits or not all("0" <= c <= "9" for c in digits):
                raise HTTPError(400, "invalid Content-Length")
            digits = digits.lstrip("0") or "0"
            if len(digits) > 18:  # avoid huge int() conversions
                length = None
            else:
                length = int(digits)
            if self.max_body is not None and (length is None or length > self.max_body):
                raise HTTPError(413, "request body too large (limit %d bytes)"
                                % self.max_body)
            if length is None:
                raise HTTPError(413, "request body too large")
        if length:
            self._state = _BODY
            self._body_len = length
            self._continue = self._version == "HTTP/1.1" and any(
                n.lower() == "expect" and v.lower() == "100-continue"
                for n, v in self._headers)
            return None
        return self._finish(b"")

    def _finish(self, body):
        req = Request(self._method, self._target, self._version, self._headers, body)
        self._reset_request()
        return req


def _charset_needed(content_type):
    """True for text/*, JSON and JavaScript types that lack a charset."""
    lowered = content_type.lower()
    if "charset=" in lowered:
        return False
    media = lowered.split(";", 1)[0].strip()
    return (media.startswith("text/") or media.endswith("/json")
            or media.endswith("+json") or media.endswith("/javascript"))


def _header_bytes(value):
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        data = _to_bytes(value if isinstance(value, text_type) else text_type(value))
    if b"\r" in data or b"\n" in data:
        raise ValueError("CR or LF in response header: %r" % (data,))
    return data


_date = (None, b"")  # (a second, the Date header line for it)


def _date_line():
    """The ``Date`` header line for now, made once per second (formatdate() costs ~10 us)."""
    global _date
    now = int(time.time())
    second, line = _date
    if second != now:
        import email.utils
        line = b"Date: " + email.utils.formatdate(now, usegmt=True).encode("ascii")
        _date = (now, line)
    return line


_status_lines = {}  # status -> its status line, for 100-999 (at most 900 of them)


def _status_line(status):
    line = _status_lines.get(status)
    if line is None:
        line = ("HTTP/1.1 %d %s" % (status, REASONS.get(status, "Unknown"))).encode("ascii")
        if 100 <= status <= 999:
            _status_lines[status] = line
    return line


_HTML = "text/html; charset=utf-8"  # the default type; its line made once:
_HTML_LINE = b"Content-Type: " + _HTML.encode("ascii")
_server = (None, b"")  # (the last server name, its Server header line)


def _server_line(name):
    """The ``Server`` header line, made again only for another name object (a server passes
    the same one for every response it sends)."""
    global _server
    last, line = _server
    if name is not last:
        line = b"Server: " + _header_bytes(name)
        _server = (name, line)
    return line


def build_response(status, body=b"", content_type=None, headers=None, head=False,
                   keep_alive=True, server_name=None, date=True):
    """Return the bytes of a complete HTTP/1.1 response.

    ``body`` is bytes or text (text is sent as UTF-8).  A non-empty body
    without ``content_type`` is sent as ``text/html; charset=utf-8`` (also for
    bytes, so Python 2 ``str`` bodies behave as on Python 3); text/*, JSON
    and JavaScript types get ``; charset=utf-8`` if they lack a charset.
    ``Content-Length`` counts bytes.  ``headers`` (list of pairs or dict) are
    added last and replace generated headers of the same name.  ``head=True``
    sends the headers of the full response without its body.  ``date=False``
    leaves out the ``Date`` header.  204, 304 and 1xx responses never carry
    a body.  Raises ValueError if a header contains CR or LF.
    """
    status = int(status)
    if isinstance(body, text_type):
        body = body.encode("utf-8")
    else:
        body = bytes(body)
    if content_type is None and body:
        content_type = _HTML
    elif content_type is not None:
        if isinstance(content_type, bytes):
            content_type = content_type.decode("latin-1")
        if _charset_needed(content_type):
            content_type = content_type + "; charset=utf-8"
    no_body = status in (204, 304) or 100 <= status < 200
    # The status line, then the generated header lines: names and values we make ourselves
    # need no check, those the caller gave do (and replace generated ones of the same name).
    lines = [_status_line(status)]
    if date:
        lines.append(_date_line())
    if server_name:
        lines.append(_server_line(server_name))
    if content_type is not None and not no_body:
        lines.append(_HTML_LINE if content_type is _HTML else b"Content-Type: " + _header_bytes(content_type))
    if not (status == 204 or 100 <= status < 200 or (status == 304 and not body)):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    lines.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
    if headers:
        items = headers.items() if hasattr(headers, "items") else headers
        extra = [(_header_bytes(n), _header_bytes(v)) for n, v in items]
        overridden = set([n.lower() for n, _ in extra])
        # (a list, not a generator: a generator costs a call per line it yields)
        lines[1:] = [line for line in lines[1:] if line.split(b":", 1)[0].lower() not in overridden]
        lines.extend([bname + b": " + bvalue for bname, bvalue in extra])
    out = b"\r\n".join(lines) + b"\r\n\r\n"
    if head or no_body:
        return out
    return out + body
