"""XTWriteLog: the script's log, on the console unless the program configured logging.

Lines go to the ``xtcompat`` logger (the library's own diagnostics go to
``tcpcom.xtcompat``).  A line's colour travels on the record as
``record.xtcolor``; :class:`ColourFormatter` shows it on a terminal.
"""
from __future__ import absolute_import

import logging
import re
import sys

from tcpcom._compat import PY2, binary_type, string_types, text_type
from tcpcom.diagnostics import console_write

#: where XTWriteLog writes (shown on the console unless logging is configured)
script_log = logging.getLogger("xtcompat")

_COLOUR = re.compile(r"^#?[0-9A-Fa-f]{6}$")
_console = []


class ColourFormatter(logging.Formatter):
    """Shows XTWriteLog's colour with ANSI escapes when the stream is a terminal."""

    def __init__(self, stream, fmt="%(asctime)s %(message)s", datefmt="%H:%M:%S"):
        logging.Formatter.__init__(self, fmt, datefmt)
        self.stream = stream

    def format(self, record):
        text = logging.Formatter.format(self, record)
        colour = getattr(record, "xtcolor", None)
        isatty = getattr(self.stream, "isatty", None)
        if colour and isatty is not None and isatty():
            r, g, b = int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)
            text = "\x1b[38;2;%d;%d;%dm%s\x1b[0m" % (r, g, b, text)
        return text


class ConsoleHandler(logging.StreamHandler):
    """A console handler that shows what the terminal cannot encode as escapes, never fails."""

    def emit(self, record):
        try:
            console_write(self.stream, self.format(record) + "\n")
            self.flush()
        except Exception:
            self.handleError(record)


def _ensure_console():
    if _console:
        return
    _console.append(True)
    if script_log.level == logging.NOTSET:
        script_log.setLevel(logging.INFO)
    if not script_log.handlers and not logging.getLogger().handlers:
        handler = ConsoleHandler(sys.stdout)
        handler.setFormatter(ColourFormatter(sys.stdout))
        script_log.addHandler(handler)
        script_log.propagate = False


def _part(p):
    if PY2 and not isinstance(p, text_type):  # pragma: no cover - Python 2 / Jython
        if isinstance(p, binary_type):
            return p.decode("utf-8", "replace")
        return text_type(p)
    return p if isinstance(p, text_type) else str(p)


def XTWriteLog(*parts):
    """Write one line to the script's log: the parts joined as ``print`` joins them.

    A last argument (after at least one other) that is a colour constant
    (``xtColorRed``, ...) or a 6-hex-digit colour string such as ``"FF0000"``
    is the line's colour, not part of the text.  The line goes to the
    ``xtcompat`` logger with the colour as ``record.xtcolor`` (None without
    one).  If, at the first line, the program has configured no ``logging``
    handler (neither on the root logger nor on ``xtcompat``), the lines go
    to stdout, each with the time, coloured on a terminal; a handler added
    to the ``xtcompat`` logger before the first line sends them elsewhere.
    """
    parts = list(parts)
    colour = None
    if len(parts) >= 2 and isinstance(parts[-1], string_types) and _COLOUR.match(parts[-1]):
        colour = parts.pop().lstrip("#").upper()
    _ensure_console()
    script_log.info(u" ".join(_part(p) for p in parts), extra={"xtcolor": colour})
