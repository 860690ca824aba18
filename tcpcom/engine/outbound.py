"""Outbound: sending on one connection's socket.

- One sender at a time (a lock), so concurrent messages never interleave.
- ``since``: when the send under way started to wait (the send timeout's
  clock; None when no send is under way).
- The end of the stream (FIN) follows every send that was under way when
  the connection was closed: :meth:`owe_fin` asks for it, and whoever holds
  the send lock last sends it -- a close never waits for a slow send.
- A big message (BIG_SEND or more) with a framing that only appends a delimiter
  is sent as the payload and then the delimiter, a big UTF-8 text a slice at a
  time (no second copy of it); any other framer (a length prefix, a header)
  gets ``framer.encode(payload)`` whole.
"""
from __future__ import absolute_import

import logging
import threading

from .._compat import LOSSLESS_ERRORS, monotonic, text_type, to_bytes
from ..framing import DelimiterFramer, LineFramer, RawFramer
from .errors import NETWORK_ERRORS
from .sockets import shutdown_both, shutdown_write, writable_now

log = logging.getLogger("tcpcom.engine")

BIG_SEND = 1 << 20  # payloads this long are sent without a copy to append the delimiter
#: text this short is framed without a look at its encoded size: it encodes to less than
#: BIG_SEND bytes in every text codec but the escape codecs (8 bytes per character at most;
#: one that encodes to more is only copied once more to append the delimiter)
SMALL_TEXT = BIG_SEND // 8

#: the framings whose encode() only appends bytes (encode(b"")) to the payload
_SUFFIX_ENCODERS = (DelimiterFramer.encode, LineFramer.encode, RawFramer.encode)


def framing_suffix(framer):
    """What ``framer.encode()`` appends to every payload, if that is all it does (a built-in
    framer's encode, not overridden); else None: a big payload is framed whole."""
    encode = getattr(type(framer), "encode", None)
    if encode in _SUFFIX_ENCODERS and "encode" not in getattr(framer, "__dict__", ()):
        return framer.encode(b"")
    return None


def _is_utf8(encoding):
    # (asked per big message, not per connection: most connections never send one)
    return encoding.lower().replace("-", "").replace("_", "") == "utf8"


class Outbound(object):
    """What a connection sends.  ``owner``: the connection; its ``_check_open()`` raises
    when sending is over, its ``_send_failed(error)`` ends it after a failed send and
    returns the exception for the sender.  (The owner, not two bound methods: those cost
    every connection 128 bytes more, for calls that come only at its end.)"""

    __slots__ = ("sock", "framer", "encoding", "since", "stopped", "wrote_end", "_suffix", "_lock",
                 "_fin_owed", "_owner")

    def __init__(self, sock, framer, encoding, owner):
        self.sock = sock
        self.framer = framer
        self.encoding = encoding or "utf-8"
        self.since = None
        #: set (by the connection) once sending is over: each send then asks ``check_open()``
        #: for the exception to raise -- a flag, so that a send in the open state makes no call
        self.stopped = False
        self.wrote_end = False  # the end of the stream (FIN) was sent
        self._suffix = framing_suffix(framer)  # None: a framing with a header (say, a length prefix)
        self._lock = threading.Lock()
        self._fin_owed = False
        self._owner = owner

    def send(self, data):
        """Text (encoded) or bytes exactly as given, no framing added."""
        self.send_message(None, (to_bytes(data, self.encoding),))

    def sendall(self, data):
        """Send ``data`` whole."""
        self.send_message(None, (data,))

    def send_message(self, message, parts=None):
        """One message: text (encoded) or bytes, followed by the framing's delimiter.

        ``parts`` (``message`` None): bytes already framed, sent each in turn as one message
        (no other sender in between).  One method for both, so that a message makes one call
        (it runs per message): a small one is sent as one ``bytes`` object, with no tuple and
        no loop around it."""
        if parts is None:
            if message.__class__ is text_type and len(message) < SMALL_TEXT and self._suffix is not None:
                parts = message.encode(self.encoding, LOSSLESS_ERRORS) + self._suffix  # the common case
            else:
                parts = self._frame(message)
        if self.stopped:
            self._owner._check_open()
        lock = self._lock
        lock.acquire()  # (not "with": this runs per message, and "with" costs more)
        try:
            if parts.__class__ is bytes:
                self.since = monotonic()  # the send timeout's clock starts
                self.sock.sendall(parts)
            else:
                for part in parts:
                    if part:
                        self.since = monotonic()  # progress: the send timeout restarts
                        self.sock.sendall(part)
        except NETWORK_ERRORS as e:
            raise self._owner._send_failed(e)
        finally:
            self.since = None
            lock.release()
        if self._fin_owed:
            self.pay_fin()

    def _frame(self, message):
        # what send_message() sends for ``message``: bytes, or parts to send in turn
        if message.__class__ is text_type:
            if len(message) >= BIG_SEND and self._suffix is not None and _is_utf8(self.encoding):
                return self._encode_slices(message)
            payload = message.encode(self.encoding, LOSSLESS_ERRORS)
        elif message is None:
            raise TypeError("cannot send None: pass text or bytes")
        else:
            payload = to_bytes(message, self.encoding)
        suffix = self._suffix
        if suffix is None:  # a framing with a header (say, a length prefix)
            return (self.framer.encode(payload),)
        if len(payload) < BIG_SEND:
            return payload + suffix
        return (payload, suffix)  # no copy of a big payload just to append the delimiter

    def _encode_slices(self, text):
        # UTF-8 is stateless: the slices encode to exactly the bytes of the whole
        step, n, i = BIG_SEND, len(text), 0
        while i < n:
            j = min(i + step, n)
            if j < n and 0xD800 <= ord(text[j - 1]) <= 0xDBFF:
                j += 1  # never split a surrogate pair (UTF-16 builds, Jython)
            yield text[i:j].encode("utf-8", LOSSLESS_ERRORS)
            i = j
        yield self._suffix

    def send_now(self, data):
        """Send short ``data`` if the socket takes it at once and no send is under way
        (a farewell at a deadline: never waits).  True if sent."""
        if not self._lock.acquire(False):
            return False
        try:
            if writable_now(self.sock):
                self.sock.send(data)
                return True
        except NETWORK_ERRORS as e:
            log.debug("%r: not sent: %s", self.sock, e)
        finally:
            self._lock.release()
        return False

    def close_write(self):
        """End the stream after what was sent (waits for a send under way)."""
        with self._lock:
            self.wrote_end = True
            try:
                shutdown_write(self.sock)
            except Exception as e:
                log.debug("shutdown for writing failed: %s", e)

    def end_now(self, shutdown=True):
        """End the stream and the reading at once, if no send is under way (then True).
        ``shutdown`` False: the reader thread itself closes the socket next, which ends both."""
        return self._end(shutdown_both if shutdown else None, True)

    def owe_fin(self):
        """End the stream after the send under way, if any; does not wait for it."""
        self._fin_owed = True
        self.pay_fin()

    def pay_fin(self):
        # whoever holds the send lock last sends the FIN
        while self._fin_owed:
            if not self._end(shutdown_write, False):
                return  # the sender holding it pays when it is done

    def _end(self, shutdown, always):
        # the end of the stream (``always``, or if owed), if the send lock is free: True if it was
        if not self._lock.acquire(False):
            return False
        try:
            if always or self._fin_owed:
                self._fin_owed = False
                self.wrote_end = True
                if shutdown is not None:
                    shutdown(self.sock)
        except Exception as e:
            log.debug("shutdown failed: %s", e)
        finally:
            self._lock.release()
        return True
