"""Diagnostics: what the library writes for people to read, each step written once.

- :func:`excerpt` -- how a log line quotes user data: at most ``EXCERPT``
  characters, marked as cut and with the full length, so a 1 MB message
  costs one short line, never 2 MB on stderr.
- :func:`console_write` -- a line to a console that may not show every
  character (Python 2 / Jython on an ASCII terminal or a pipe): what it
  cannot encode is written as a backslash escape instead of raising.
- :class:`LastResort` -- Python 2.7 and Jython have no
  ``logging.lastResort``: without it Python 2 prints "No handlers could be
  found for logger ..." once and drops every warning of the library.
  :func:`install_last_resort` puts one on the ``tcpcom`` logger
  (:mod:`tcpcom._compat` does, on those interpreters only); every face's
  logger (``tcpcom.server``, ``tcpcom.xtcompat``, ...) is below it.

This module imports nothing of the package, so every layer may use it
(:mod:`tcpcom._compat` included).
"""
from __future__ import absolute_import

import logging
import sys

#: how many characters (bytes) of user data a log line quotes at the most
EXCERPT = 60
#: the mark at the end of a cut excerpt (inside its quotes)
ELLIPSIS = u"\u2026"

_TEXT = type(u"")  # str on Python 3, unicode on Python 2 / Jython


def excerpt(data, limit=EXCERPT, quote=True):
    """User data as a log line quotes it: ``repr`` of at most ``limit`` characters.

    Short data is its ``repr`` (``'hello'``); longer data is cut, marked
    with :data:`ELLIPSIS` and measured: ``'aaaa(...)' (1,000,000 characters)``,
    with the ellipsis character in place of ``(...)`` and "bytes" for bytes.
    Anything else (a list passed where text was expected) is its ``repr``,
    cut the same way.  ``quote=False``: text as it is, without quotes
    (a request path in an access-log line: ``/page``, ``/aaaa(...) (9,000
    characters)``).
    """
    if not quote and isinstance(data, _TEXT):
        if len(data) <= limit:
            return data
        return data[:limit] + ELLIPSIS + " (%s characters)" % "{:,}".format(len(data))
    if isinstance(data, memoryview):
        data = data.tobytes()
    elif isinstance(data, bytearray):
        data = bytes(data)
    if isinstance(data, _TEXT):
        unit = "characters"
    elif isinstance(data, bytes):
        unit = "bytes"
    else:
        try:
            data = repr(data)
        except Exception as e:  # a broken __repr__ must not break the log line
            return "<%s: repr failed: %s>" % (type(data).__name__, e)
        if len(data) <= limit:
            return data
        return data[:limit] + ELLIPSIS + " (%s characters of repr)" % "{:,}".format(len(data))
    if len(data) <= limit:
        return _quote(data)
    quoted = _quote(data[:limit])
    return quoted[:-1] + ELLIPSIS + quoted[-1:] + " (%s %s)" % ("{:,}".format(len(data)), unit)


def _quote(data):
    r = repr(data)
    if r[:1] == "u" and isinstance(data, _TEXT):  # Python 2: u'...' -> '...', as on Python 3
        r = r[1:]
    return r


def console_write(stream, text):
    """Write ``text`` to ``stream``; characters its encoding lacks become backslash escapes.

    (Python 3 consoles do that themselves; Python 2 and Jython raise
    ``UnicodeEncodeError`` on an ASCII console or a pipe.)
    """
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding))


class LastResort(logging.Handler):
    """Python 2.7 / Jython stand-in for Python 3's ``logging.lastResort``.

    Like Python 3's, it writes warnings and errors (the message only) to
    stderr as long as the program has not configured logging itself: once
    the root logger, or a logger between the record's and this handler's,
    has a handler, that handler has the record and this one stays silent.
    ``top``: the name of the logger it is put on; ``stream``: where to write
    (default: ``sys.stderr`` as it is at the time).
    """

    def __init__(self, top="tcpcom", stream=None, level=logging.WARNING):
        logging.Handler.__init__(self, level)
        self.top = top
        self.stream = stream

    def emit(self, record):
        if logging.getLogger().handlers:
            return  # the program configured logging: its handlers have it
        name = record.name
        while "." in name and name != self.top:  # a handler further down had it already
            if logging.getLogger(name).handlers:
                return
            name = name.rsplit(".", 1)[0]
        try:
            console_write(self.stream or sys.stderr, self.format(record) + "\n")
        except Exception:  # pragma: no cover
            self.handleError(record)


def install_last_resort(logger_name="tcpcom"):
    """Put a :class:`LastResort` on the logger ``logger_name`` (once, also when this
    module is imported again: TigerJython reruns scripts in one JVM).  Returns it."""
    logger = logging.getLogger(logger_name)
    for h in logger.handlers:
        if type(h).__name__ in ("LastResort", "_LastResort"):
            return h
    handler = LastResort(logger_name)
    logger.addHandler(handler)
    return handler
