# -*- coding: utf-8 -*-
"""xtcompat (the XTension plugin API): TCP and UDP under Jython 2.7 and CPython 3."""
from __future__ import absolute_import, print_function

import logging
import socket
import threading
import unittest

from jyutil import DEADLINE, JYTHON, monotonic, raw_client, recv_until, text_type, utf8, wait_until

from xtcompat import (XTCloseConnection, XTGetListenerPort, XTJoinMulticastGroup, XTOpenTCPConnection,
                      XTRegisterHandlers, XTSendDatagram, XTStartTCPListener, XTStartUDPListener,
                      XTStopAll, XTStopTCPListener, XTStopUDPListener, XTWriteConnection,
                      xtKeyErrorNumber, xtKeyRemoteAddress, xtKeyRemotePort)


class Script(object):
    """A plugin script's event functions; records every call."""

    def __init__(self, echo=False):
        self.echo = echo
        self.events = []
        self.cond = threading.Condition()

    def _add(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def XTNewConnection(self, theConnectionID, theConnectionInfo):
        self._add("new", theConnectionID)
        return True

    def XTDataAvailable(self, theData, theConnectionID, theConnectionInfo):
        self._add("data", theConnectionID, theData)
        if self.echo and not theData.startswith(u"echo "):  # no ping-pong between two echoers
            XTWriteConnection(theConnectionID, u"echo " + theData + u"\r\n")

    def XTSocketError(self, theConnectionID, theConnectionInfo):
        self._add("error", theConnectionID, theConnectionInfo[xtKeyErrorNumber])

    def XTReceivedDatagram(self, theData, theListenerID, theDatagramInfo):
        self._add("datagram", theListenerID, theData,
                  (theDatagramInfo[xtKeyRemoteAddress], theDatagramInfo[xtKeyRemotePort]))

    def wait(self, kind, count=1):
        end = monotonic() + DEADLINE
        with self.cond:
            while sum(1 for e in self.events if e[0] == kind) < count:
                left = end - monotonic()
                if left <= 0:
                    raise AssertionError("no %d %r events: %r" % (count, kind, self.events))
                self.cond.wait(min(left, 0.5))
            return [e for e in self.events if e[0] == kind]


class XTension(unittest.TestCase):
    def setUp(self):
        self.script = Script(echo=True)
        XTRegisterHandlers(self.script)

    def tearDown(self):
        XTStopAll()
        XTRegisterHandlers(None)

    def test_tcp_listener_with_boundary_and_umlauts(self):
        lid = XTStartTCPListener(0, "\r\n", host="127.0.0.1")
        self.assertNotEqual(lid, 0)
        s = raw_client(XTGetListenerPort(lid))
        try:
            s.sendall(utf8(u"Grüße\r\nzwei"))
            s.sendall(utf8(u" € teile\r\n"))
            self.assertEqual(recv_until(s, 2, b"\r\n"), utf8(u"echo Grüße\r\necho zwei € teile\r\n"))
            data = [e[2] for e in self.script.wait("data", 2)]
            self.assertEqual(data, [u"Grüße", u"zwei € teile"])
            self.assertIsInstance(data[0], text_type)
            cid = self.script.wait("new")[0][1]
            self.assertTrue(XTCloseConnection(cid))
            self.assertEqual(s.recv(10), b"")
            self.assertEqual(self.script.wait("error")[0][2], 102)
        finally:
            s.close()
        self.assertTrue(XTStopTCPListener(lid))

    def test_outgoing_connection(self):
        lid = XTStartTCPListener(0, "\r\n", host="127.0.0.1")
        cid = XTOpenTCPConnection("127.0.0.1", XTGetListenerPort(lid), "\r\n")
        self.assertTrue(cid)
        self.assertTrue(XTWriteConnection(cid, u"hallo ä\r\n"))
        # the listener's side echoes; the outgoing side receives the echo
        wait_until(lambda: any(e[0] == "data" and e[1] == cid for e in list(self.script.events)),
                   what="the echo on the outgoing connection")
        got = [e[2] for e in self.script.events if e[0] == "data"]
        self.assertIn(u"hallo ä", got)
        self.assertIn(u"echo hallo ä", got)
        self.assertTrue(XTCloseConnection(cid))

    def test_udp_datagrams_both_ways(self):
        uid = XTStartUDPListener(0, host="127.0.0.1")
        self.assertNotEqual(uid, 0)
        port = XTGetListenerPort(uid)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(DEADLINE)
            peer.sendto(utf8(u"Grüezi UDP"), ("127.0.0.1", port))
            ev = self.script.wait("datagram")[0]
            self.assertEqual(ev[2], u"Grüezi UDP")
            self.assertEqual(ev[3][1], peer.getsockname()[1])
            self.assertTrue(XTSendDatagram(uid, "127.0.0.1", peer.getsockname()[1], u"Antwort ö"))
            data, addr = peer.recvfrom(2048)
            self.assertEqual(data, utf8(u"Antwort ö"))
            self.assertEqual(addr[1], port)
        finally:
            peer.close()
        self.assertTrue(XTStopUDPListener(uid))

    def test_large_datagram_is_not_cut_at_2048_bytes(self):
        # Jython's Netty cuts datagrams to 2048 bytes unless the engine raises the limit
        uid = XTStartUDPListener(0, host="127.0.0.1")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            payload = u"ü" * 3000  # 6000 bytes
            peer.sendto(utf8(payload), ("127.0.0.1", XTGetListenerPort(uid)))
            self.assertEqual(self.script.wait("datagram")[0][2], payload)
        finally:
            peer.close()

    @unittest.skipUnless(JYTHON, "on CPython multicast depends on the host's routes (tests/test_xtcompat.py)")
    def test_multicast_join_reports_false_on_jython(self):
        # Jython's socket module has no IP_ADD_MEMBERSHIP: a clear False, not a crash
        uid = XTStartUDPListener(0, host="127.0.0.1")
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        keep = Keep()
        logging.getLogger().addHandler(keep)  # also keeps the line off the console
        try:
            self.assertFalse(XTJoinMulticastGroup(uid, "239.255.0.1"))
        finally:
            logging.getLogger().removeHandler(keep)
        self.assertTrue(any("multicast" in r for r in records), records)


if __name__ == "__main__":
    unittest.main()
