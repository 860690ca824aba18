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


class Inbound(object):
    """Bytes in, messages out (text when ``encoding`` is set, else bytes)."""

    __slots__ = ("framer", "encoding", "errors", "_decoder")

    def __init__(self, framer, encoding, errors):
        self.framer = framer
        self.encoding = encoding
        self.errors = errors
        self._decoder = None
        if encoding and isinstance(framer, DelimiterFramer):
            framer.allow_bytearray = True  # decoded at once: no copy of big messages needed
        if encoding and isinstance(framer, RawFramer):  # unframed text: a character may be cut
            self._decoder = codecs.getincrementaldecoder(encoding)(errors)

    def feed(self, data):
        """The messages in ``data``, and the exception that must end the connection (or None)."""
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
