# -*- coding: utf-8 -*-
"""Jython and CPython talk to each other, in two processes.

Run under Jython, this starts ``python3``; run under CPython, it starts
``jython`` (set TCPCOM_OTHER_PYTHON to choose the program).  One process of
the other interpreter (peer.py) plays both roles, so both directions are
covered with a single (slow to start) JVM: its TCPServer answers our
TCPClient, and its TCPClient talks to our TCPServer, with umlauts each way.
"""
from __future__ import absolute_import, print_function

import json
import os
import subprocess
import sys
import threading
import unittest

from jyutil import DEADLINE, HERE, IMPL, JYTHON, Recorder, monotonic, other_interpreter, queue, utf8, wait_until

from tcpcom import TCPClient, TCPServer

try:  # pytest collects this module too: the JVM start needs more than its default 60 s
    import pytest
    pytestmark = pytest.mark.timeout(300)
except ImportError:
    pass

#: seconds to wait for the other interpreter to start and print its port
STARTUP = 120.0


class Peer(object):
    """The other interpreter running peer.py, read line by line with deadlines."""

    def __init__(self, exe):
        self.proc = subprocess.Popen([exe, os.path.join(HERE, "peer.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.stderr = []
        for stream, sink in ((self.proc.stdout, self.lines.put), (self.proc.stderr, self.stderr.append)):
            t = threading.Thread(target=self._pump, args=(stream, sink))
            t.daemon = True
            t.start()

    @staticmethod
    def _pump(stream, sink):
        for raw in iter(stream.readline, b""):
            sink(raw.decode("ascii", "replace").rstrip("\r\n"))
        sink(None)

    def expect(self, word, timeout=DEADLINE):
        try:
            line = self.lines.get(True, timeout)
        except queue.Empty:
            line = "(nothing within %.0f s)" % timeout
        if line is None or not line.startswith(word + " "):
            raise AssertionError("peer: expected %s, got %r; its stderr:\n%s"
                                 % (word, line, "\n".join(x for x in self.stderr if x)))
        return line[len(word) + 1:]

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode("ascii"))
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass


class CrossInterpreter(unittest.TestCase):
    timeout = 300  # the per-test guard of run.py

    def setUp(self):
        self.exe = other_interpreter()
        if not self.exe:
            self.skipTest("the other interpreter (%s) is not installed; this test needs both "
                          "jython and python3" % ("python3" if JYTHON else "jython"))
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass

    def test_both_directions_with_umlauts_and_server_occupied(self):
        peer = Peer(self.exe)
        self.cleanups.append(peer.stop)
        port = int(peer.expect("PORT", STARTUP))

        # 1. our TCPClient -> the other interpreter's TCPServer
        crec = Recorder("client")
        client = TCPClient("127.0.0.1", port, crec)
        self.cleanups.append(client.disconnect)
        self.assertTrue(client.connect(DEADLINE))
        mine = u"Grüezi aus %s: ÄÖÜ ß €" % IMPL
        self.assertEqual(client.sendMessage(mine, DEADLINE), u"echo: " + mine)
        self.assertEqual(client.sendMessage(utf8(u"roh ö"), DEADLINE), u"echo: roh ö")
        # a second client: the other server refuses it
        orec = Recorder("occupied")
        # the hang-up comes from the other process; wait for it as long as it takes
        second = TCPClient("127.0.0.1", port, orec, occupiedWait=DEADLINE)
        self.assertFalse(second.connect(DEADLINE))
        self.assertEqual(orec.states(), ["CONNECTING", "SERVER_OCCUPIED"])
        client.disconnect()

        # 2. the other interpreter's TCPClient -> our TCPServer
        srec = Recorder("server")

        def echo(state, msg):
            if state == TCPServer.MESSAGE:
                server.sendMessage(u"echo: " + msg)

        srec.on_event = echo
        server = TCPServer(0, srec, host="127.0.0.1")
        self.cleanups.append(server.terminate)
        peer.send("CONNECT %d" % server.getPort())
        other = u"Grüße von %s: äöü €" % ("CPython" if JYTHON else "Jython")
        self.assertEqual(json.loads(peer.expect("REPLY")), u"echo: " + other)
        self.assertEqual(json.loads(peer.expect("REPLY")), u"echo: bytes ß")
        self.assertEqual(srec.messages(), [other, u"bytes ß"])

        # 3. what the other server received from us, and a clean end
        self.assertEqual(json.loads(peer.expect("SERVER")), [mine, u"roh ö"])
        peer.expect("DONE")
        deadline = monotonic() + DEADLINE
        wait_until(lambda: peer.proc.poll() is not None or monotonic() > deadline, DEADLINE + 1)
        self.assertEqual(peer.proc.poll(), 0)


if __name__ == "__main__":
    unittest.main()
