"""Sans-IO framing: split a byte stream into messages.

A framer is fed the bytes as they arrive, in chunks of any size, and returns
the complete messages it found, without their delimiters.  It knows nothing
of sockets or threads; feeding a stream whole or split at any point gives the
same messages.  Work is linear in the input: no byte is scanned twice.

Three framers cover the engine's needs:

- :class:`DelimiterFramer` -- messages end with a delimiter byte string
  (tcpcom's ``\\0``, an XTension boundary string such as ``\\r\\n``);
- :class:`LineFramer` -- lines ending in CR, LF or CRLF;
- :class:`RawFramer` -- no framing: each chunk is delivered as it arrived.

A message longer than ``max_size`` bytes raises :class:`MessageTooLarge`
(the complete messages before it are on the exception's ``messages``), so a
peer that never sends a delimiter cannot grow memory without bound.
"""
from __future__ import absolute_import

import re

from ._compat import binary_type, string_types, text_type

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_NO_COPY_MIN = 65536


class MessageTooLarge(ValueError):
    """A message grew past the framer's ``max_size`` (a message of exactly ``max_size`` bytes passes).

    ``size``: the bytes of it seen so far (its size, if it was complete), more than ``limit``.
    """

    def __init__(self, size, limit, messages=()):
        ValueError.__init__(
            self,
            "message of at least %d bytes exceeds the maximum of %d bytes "
            "(raise max_message_size if you expect messages this large)" % (size, limit))
        self.size = size
        self.limit = limit
        #: complete messages that preceded the oversized one in the same feed
        self.messages = list(messages)


class DelimiterFramer(object):
    """Messages separated by ``delimiter`` (any non-empty byte string).

    Messages are ``bytes``.  With ``allow_bytearray = True`` a message of
    64 KiB or more that was assembled from several chunks is returned as
    the ``bytearray`` it was assembled in, saving a copy of it -- for a
    caller that decodes it at once (the engine does, when it delivers text).
    """

    allow_bytearray = False

    def __init__(self, delimiter=b"\0", max_size=DEFAULT_MAX_MESSAGE_SIZE):
        if isinstance(delimiter, text_type):
            delimiter = delimiter.encode("utf-8")
        if not isinstance(delimiter, binary_type) or not delimiter:
            raise ValueError("the delimiter must be a non-empty str or bytes, not %r" % (delimiter,))
        self.delimiter = delimiter
        self.max_size = max_size
        self._buf = bytearray()

    @property
    def buffered(self):
        """Bytes held for an incomplete message."""
        return len(self._buf)

    def encode(self, payload):
        return payload + self.delimiter

    def _check(self, size, messages):
        if size > self.max_size:
            self._buf = bytearray()
            raise MessageTooLarge(size, self.max_size, messages)

    def feed(self, data):
        delim = self.delimiter
        buf = self._buf
        if buf:
            # Only the tail that could hold the start of a split delimiter
            # is searched again.
            start = max(0, len(buf) - len(delim) + 1)
            buf += data
            i = buf.find(delim, start)
            if i < 0:
                self._check(len(buf) - len(delim) + 1, ())
                return []
            data = bytes(buf[i + len(delim):])  # the rest: at most this chunk
            del buf[i:]  # truncate in place, so the message is copied once
            self._check(len(buf), ())
            first = buf if self.allow_bytearray and len(buf) >= _NO_COPY_MIN else bytes(buf)
            self._buf = buf = bytearray()
            messages = [first]
        else:
            messages = []
        if not data:
            return messages
        parts = bytes(data).split(delim)
        rest = parts.pop()
        if len(data) > self.max_size:
            for n, part in enumerate(parts):
                self._check(len(part), messages + parts[:n])
        messages.extend(parts)
        if rest:
            self._check(len(rest) - len(delim) + 1, messages)
            buf += rest
        return messages


_LINE_END = re.compile(b"\r\n|\r|\n")


class LineFramer(object):
    """Lines ending in CR, LF or CRLF; ``encode`` appends ``newline``."""

    def __init__(self, newline=b"\r\n", max_size=DEFAULT_MAX_MESSAGE_SIZE):
        if isinstance(newline, text_type):
            newline = newline.encode("ascii")
        self.newline = newline
        self.max_size = max_size
        self._buf = bytearray()
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it

    @property
    def buffered(self):
        return len(self._buf)

    def encode(self, payload):
        return payload + self.newline

    def feed(self, data):
        if not data:
            return []
        data = bytes(data)
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        messages = []
        pos = 0
        for m in _LINE_END.finditer(data):
            line = data[pos:m.start()]
            if self._buf:
                line = bytes(self._buf) + line
                self._buf = bytearray()
            if len(line) > self.max_size:
                raise MessageTooLarge(len(line), self.max_size, messages)
            messages.append(line)
            pos = m.end()
        if pos == len(data) and data[-1:] == b"\r":
            self._skip_lf = True
        self._buf += data[pos:]
        if len(self._buf) > self.max_size:
            size = len(self._buf)
            self._buf = bytearray()
            raise MessageTooLarge(size, self.max_size, messages)
        return messages


class RawFramer(object):
    """No framing: every chunk is one message, exactly as it arrived."""

    buffered = 0

    def __init__(self, max_size=DEFAULT_MAX_MESSAGE_SIZE):
        self.max_size = max_size

    def encode(self, payload):
        return payload

    def feed(self, data):
        return [bytes(data)] if data else []


def make_framer(spec, max_size=DEFAULT_MAX_MESSAGE_SIZE):
    """Build a framer from a short description.

    ``spec`` is a framer class or factory (called with ``max_size=``; each
    connection needs a framer of its own), ``"line"`` for CR/LF/CRLF lines,
    ``"raw"`` or ``None`` for raw chunks, or any other non-empty str/bytes,
    taken as the delimiter.
    """
    if spec is None or spec == "raw":
        return RawFramer(max_size)
    if spec == "line":
        return LineFramer(max_size=max_size)
    if isinstance(spec, string_types) or isinstance(spec, binary_type):
        return DelimiterFramer(spec, max_size)
    if callable(spec):
        return spec(max_size=max_size)
    raise TypeError("framing must be a delimiter, 'line', 'raw', None or a framer, not %r" % (spec,))
