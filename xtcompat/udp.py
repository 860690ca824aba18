"""UDP in the XTension face: listeners, datagrams, broadcast and multicast.

A UDP listener is the engine's :class:`tcpcom.udp.UDPEndpoint`; its
datagrams arrive in the script's ``XTReceivedDatagram(theData,
theListenerID, theInfo)``, one at a time in the order they came.
"""
from __future__ import absolute_import

import logging

from tcpcom.diagnostics import excerpt
from tcpcom.engine import NETWORK_ERRORS, error_text, is_name_error
from tcpcom.udp import MAX_DATAGRAM, UDPEndpoint

from .constants import (xtBroadcastAddress, xtErrInvalidPort, xtErrNameResolution, xtKeyPeerPort,
                        xtKeyRemoteAddress, xtKeyRemotePort)
from .face import UDP, check_data, face, is_port, start_listener, stop_listener

log = logging.getLogger("tcpcom.xtcompat")


class XTDatagrams(object):
    """The engine handler of one UDP listener."""

    def __init__(self, listener_id):
        self.listener_id = listener_id

    def datagram_received(self, endpoint, data, address):
        info = {xtKeyRemoteAddress: address[0], xtKeyRemotePort: address[1], xtKeyPeerPort: address[1]}
        face.call("XTReceivedDatagram", (data, self.listener_id, info),
                  "datagrams received are not delivered")


def XTStartUDPListener(thePort, host="", binary=False, broadcastAddress=None, maxDatagramSize=MAX_DATAGRAM):
    """Open a UDP socket on a port; returns a non-zero listener ID, or 0 (the reason is logged).

    Port rules as for ``XTStartTCPListener``: 1024 to 65535, or 0 for a
    free port the system chooses; any other is error 107.  0 is returned
    also when another socket holds the port.  Each datagram calls the
    script's ``XTReceivedDatagram(theData, theListenerID, theDatagramInfo)``,
    one at a time, in the order they came; the info holds the sender's
    ``xtKeyRemoteAddress`` and ``xtKeyRemotePort`` (and ``xtKeyPeerPort``,
    the same port).  The listener also sends: :func:`XTSendDatagram`.

    This library's additions (keyword arguments):

    - ``host``: the address to bind; "" (default) is every IPv4 address,
      as a listener that receives broadcasts needs;
    - ``binary``: True delivers bytes instead of text;
    - ``broadcastAddress``: where ``xtBroadcastAddress`` sends (default
      255.255.255.255; e.g. "127.255.255.255" for this machine only);
    - ``maxDatagramSize``: bytes (65535); a longer datagram is dropped and
      logged, never delivered cut short.
    """
    where = "XTStartUDPListener"
    holder = XTDatagrams(None)

    def make(port):
        return UDPEndpoint(port, holder, host=host, encoding=None if binary else "utf-8",
                           broadcast_address=broadcastAddress, max_datagram=maxDatagramSize,
                           executor=face.serial, start=False)
    return start_listener(where, UDP, thePort, host, make, holder)


def XTStopUDPListener(theListenerID):
    """Stop a UDP listener; True, or False for an unknown ID (logged).  Its port is free when this returns."""
    return stop_listener("XTStopUDPListener", UDP, theListenerID)


def _endpoint(where, lid):
    ep = face.listeners.get(lid, UDP)
    if ep is None:
        log.error("%s(%s, ...): no UDP listener has that ID", where, excerpt(lid))
    return ep


def _run(ep, call, op):
    """Run ``op(ep)``: True, or False with the reason logged (``call`` names what was asked)."""
    try:
        op(ep)
        return True
    except NETWORK_ERRORS + (ValueError, TypeError) as e:
        if is_name_error(e):
            log.error("%s failed with error %d: %s", call, xtErrNameResolution, error_text(e))
        else:
            log.error("%s failed: %s", call, e)
    return False


def XTSendDatagram(theListenerID, theRemoteAddress, theRemotePort, theData):
    """Send a datagram from the listener's own socket and port; True, or False (the reason is logged).

    ``theRemoteAddress``: an address, a host name (one that does not
    resolve is error 103), a multicast group, or ``xtBroadcastAddress`` to
    broadcast (to the listener's ``broadcastAddress``).  ``theRemotePort``:
    1 to 65535 (else 107).  ``theData``: text (sent as UTF-8) or bytes;
    anything else is a TypeError.  False also for an unknown listener ID.
    """
    where = "XTSendDatagram"
    check_data(where, theData)
    ep = _endpoint(where, theListenerID)
    if ep is None:
        return False
    if not is_port(theRemotePort):
        log.error("%s(%s, %s, %s, ...) failed with error %d: ports are from 1 to 65535", where,
                  excerpt(theListenerID), excerpt(theRemoteAddress), excerpt(theRemotePort), xtErrInvalidPort)
        return False

    def send(ep):
        if theRemoteAddress == xtBroadcastAddress:
            ep.send_broadcast(theData, theRemotePort)
        else:
            ep.send(theData, theRemoteAddress, theRemotePort)
    return _run(ep, "%s to %s:%s" % (where, excerpt(theRemoteAddress), excerpt(theRemotePort)), send)


def _group_op(where, theListenerID, theGroup, op):
    """Run ``op(endpoint)`` for a multicast call: True, or False with the reason logged."""
    ep = _endpoint(where, theListenerID)
    if ep is None:
        return False
    return _run(ep, "%s(%s, %s)" % (where, excerpt(theListenerID), excerpt(theGroup)), op)


def XTJoinMulticastGroup(theListenerID, theGroup, theInterface=None):
    """Join a multicast group on a UDP listener: datagrams to the group and the listener's port arrive.

    ``theGroup``: a multicast address (e.g. "239.255.0.1") or a name.
    Returns True, or False (the reason is logged): an unknown listener, an
    address that is not a group, a name that does not resolve (103), or a
    system without multicast (Jython 2.7 cannot join groups).

    This library's addition: ``theInterface``, the local address of the
    interface to join on (default: the system chooses); it is then also the
    interface the listener's own datagrams to groups leave by.
    """
    def join(ep):
        ep.join_group(theGroup, theInterface)
        if theInterface:
            ep.set_multicast_interface(theInterface)
    return _group_op("XTJoinMulticastGroup", theListenerID, theGroup, join)


def XTLeaveMulticastGroup(theListenerID, theGroup, theInterface=None):
    """Leave a multicast group; True, or False if it was not joined (logged).

    ``theInterface``: as given to :func:`XTJoinMulticastGroup`.
    """
    return _group_op("XTLeaveMulticastGroup", theListenerID, theGroup,
                     lambda ep: ep.leave_group(theGroup, theInterface))
