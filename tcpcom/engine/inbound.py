"""Inbound: what arrives on a connection becomes messages.

Framing (a sans-IO framer from :mod:`tcpcom.framing`) and decoding, in one
small object with no socket and no thread: fed the bytes of each ``recv()``,
it returns the messages, and at the end says what was left over.
"""
from __future__ import absolute_import

import codecs
import logging

from ..framing import DelimiterFramer, MessageTooLarge, RawFramer

log = logging.getLogger("tcpcom.engine")

#: codecs (by their codecs.lookup() name) in which an ASCII byte is always that character
_ASCII_SAFE = ("utf-8", "ascii", "iso8859-1")


class Inbound(object):
    """Bytes in, messages out (text when ``encoding`` is set, else bytes)."""

    __slots__ = ("framer", "encoding", "errors", "pending", "_decoder", "_text_delimiter")

    def __init__(self, framer, encoding, errors):
        self.framer = framer
        self.encoding = encoding
        self.errors = errors
        #: bytes that came before the read loop started (a dialer's first read): fed first
        self.pending = b""
        self._decoder = None
        #: the delimiter as text where decoding a chunk's complete messages at once and then
        #: splitting the text gives the same messages as splitting first (one decode per chunk
        #: instead of one per message): a one-byte ASCII delimiter and an encoding in which an
        #: ASCII byte is always that character (UTF-8 never has one inside a multi-byte one)
        self._text_delimiter = None
        if (encoding and type(framer) is DelimiterFramer and len(framer.delimiter) == 1
                and framer.delimiter < b"\x80"
                and codecs.lookup(encoding).name in _ASCII_SAFE):
            self._text_delimiter = framer.delimiter.decode("ascii")
        if encoding and isinstance(framer, DelimiterFramer):
            framer.allow_bytearray = True  # decoded at once: no copy of big messages needed
        if encoding and isinstance(framer, RawFramer):  # unframed text: a character may be cut
            self._decoder = codecs.getincrementaldecoder(encoding)(errors)

    def feed(self, data):
        """The messages in ``data``, and the exception that must end the connection (or None)."""
        framer = self.framer
        if self._text_delimiter is not None and data.__class__ is bytes and len(data) <= framer.max_size:
            end = data.rfind(framer.delimiter)  # the end of the last complete message
            # (framer._buf, read directly: its "buffered" property would cost a call per chunk)
            if end >= 0 and not framer._buf:
                try:
                    messages = data[:end].decode(self.encoding, self.errors).split(self._text_delimiter)
                except UnicodeDecodeError:
                    pass  # errors="strict": the way below says which messages decode
                else:
                    if end + 1 < len(data):
                        framer.feed(data[end + 1:])  # the start of the next message waits
                    return messages, None
            elif end >= 0:
                messages = self._with_held(data, end)
                if messages is not None:
                    return messages, None
        error = None
        try:
            messages = self.framer.feed(data)
        except MessageTooLarge as e:
            messages, error = e.messages, e
        if self.encoding:
            try:
                if self._decoder is not None:
                    text = self._decoder.decode(messages[0] if messages else b"")
                    messages = [text] if text else []
                else:
                    enc, errs = self.encoding, self.errors
                    messages = [m.decode(enc, errs) for m in messages]
            except UnicodeDecodeError as e:  # errors="strict": what came before the bad bytes, then the end
                return self._before(messages, e), e
        return messages, error

    def _with_held(self, data, end):
        """The fast path for a chunk that begins with the end of a message an earlier chunk began
        (in a stream of messages a chunk boundary seldom falls between two): the held bytes join
        the chunk's complete messages, in place, and all decode at once.  None where that cannot
        be (the message is too large, or something does not decode): the way of ``feed`` below."""
        framer = self.framer
        buf = framer._buf
        held = len(buf)
        if held + data.find(framer.delimiter) > framer.max_size:
            return None  # that message is too large: the framer says so
        buf += data[:end]
        try:
            messages = buf.decode(self.encoding, self.errors).split(self._text_delimiter)
        except UnicodeDecodeError:
            del buf[held:]  # as it was: the way below says which messages decode
            return None
        framer._buf = bytearray()
        if end + 1 < len(data):
            framer.feed(data[end + 1:])  # the start of the next message waits
        return messages

    def _before(self, messages, e):
        # the messages (raw: the text of the chunk) that decode, up to the first that does not
        enc, errs = self.encoding, self.errors
        if self._decoder is not None:  # e.object: the decoder's pending bytes and this chunk
            self._decoder.reset()  # the end: no character is left pending for finish()
            try:
                text = bytes(e.object[:e.start]).decode(enc, errs)
            except (UnicodeDecodeError, TypeError):
                return []
            return [text] if text else []
        good = []
        for m in messages:
            try:
                good.append(m.decode(enc, errs))
            except UnicodeDecodeError:
                break
        return good

    def finish(self, where):
        """At the end of the stream: the text of a character cut by it (or None); an
        incomplete message is logged (never dropped silently).  ``where`` names the connection."""
        tail = None
        if self._decoder is not None:
            try:
                tail = self._decoder.decode(b"", True) or None
            except UnicodeDecodeError as e:
                log.warning("%r closed in the middle of a character: %s", where, e)
        partial = getattr(self.framer, "buffered", 0)
        if partial:
            log.warning("%r closed with %d bytes of an incomplete message (no delimiter yet); "
                        "they were discarded", where, partial)
        return tail
