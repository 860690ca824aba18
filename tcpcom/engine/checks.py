"""Argument checks shared by the engine and the faces: each error says what is wrong and what to do."""
from __future__ import absolute_import

import socket

from .._compat import integer_types, string_types


def check_port(port, allow_zero=True):
    """Validate a port number with a message that says what is wrong.

    ``allow_zero``: 0 is accepted (a listener: the system chooses a free port);
    a port to connect to must be from 1 to 65535.
    """
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, integer_types):
        raise TypeError("port must be an int from %d to 65535, not %s %r" % (low, type(port).__name__, port))
    if not low <= port <= 65535:
        hint = " (0 lets the system choose)" if allow_zero else ""
        raise ValueError("port must be from %d to 65535%s, not %d" % (low, hint, port))
    return port


def check_number(value, name, minimum=None, integer=False):
    """Validate a limit or timeout option (None allowed) with a message naming it."""
    if value is None:
        return value
    kinds = integer_types if integer else integer_types + (float,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError("%s must be %s or None, not %s %r" % (
            name, "an int" if integer else "a number (seconds)", type(value).__name__, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be at least %s, not %r" % (name, minimum, value))
    return value


def check_host(host):
    if not isinstance(host, string_types):
        raise TypeError("host must be a string such as '127.0.0.1' ('' = all interfaces), not %s %r"
                        % (type(host).__name__, host))
    return host


def check_options(max_message_size, read_timeout, send_timeout):
    """The options every connection has."""
    if max_message_size is None:
        raise TypeError("max_message_size must be an int (bytes), not None")
    check_number(max_message_size, "max_message_size", 1, integer=True)
    check_number(read_timeout, "read_timeout")
    check_number(send_timeout, "send_timeout")


def check_callable(fn, what):
    """``fn`` must be a function or None; ``what`` names the argument in the message."""
    if fn is not None and not callable(fn):
        raise TypeError("%s must be a function (or None), not %s %r" % (what, type(fn).__name__, fn))


def is_ipv4_literal(address):
    """True for a dotted quad such as '192.168.1.20' (not a name, not a short form like '10.1')."""
    try:
        socket.inet_aton(address)
    except (socket.error, OSError, TypeError, ValueError):
        return False
    return address.count(".") == 3


def is_ip_literal(address):
    """True for an IPv4 dotted quad or an IPv6 address (anything with a colon); False for a name."""
    return is_ipv4_literal(address) or (isinstance(address, string_types) and ":" in address)
