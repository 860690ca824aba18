# -*- coding: utf-8 -*-
"""The other side of the cross-interpreter test (runs under Jython 2.7 and CPython 3).

Started by test_jy_interop.py with the *other* interpreter.  It talks to its
parent with ASCII lines on stdin/stdout (texts as JSON, so umlauts survive
any console encoding):

1. starts a TCPServer on 127.0.0.1 port 0 that answers every message with
   ``"echo: " + msg`` and prints ``PORT <port>``;
2. waits for ``CONNECT <port>`` and connects a TCPClient to the parent's
   server; sends a text (unicode) message and a UTF-8 byte string and prints
   ``REPLY <json>`` for each answer (sendMessage with responseTime);
3. prints ``SERVER <json list of messages its server received>``,
   terminates and prints ``DONE <implementation>``.

Every step is bounded; a failure prints ``ERROR <text>`` and exits 1.
"""
from __future__ import absolute_import, print_function

import json
import os
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tcpcom import TCPClient, TCPServer  # noqa: E402
from tcpcom._compat import JYTHON  # noqa: E402

DEADLINE = 30.0
IMPL = "Jython" if JYTHON else "CPython"


def say(*words):
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


def main():
    received = []
    lock = threading.Lock()

    def on_server(state, msg):
        if state == TCPServer.MESSAGE:
            with lock:
                received.append(msg)
            server.sendMessage(u"echo: " + msg)

    server = TCPServer(0, on_server, host="127.0.0.1")
    say("PORT", str(server.getPort()))
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "CONNECT":
        say("ERROR", "expected CONNECT <port>, got %r" % (line,))
        return 1
    client = TCPClient("127.0.0.1", int(line[1]), None)
    if not client.connect(DEADLINE):
        say("ERROR", "could not connect to the parent's server")
        return 1
    text = u"Grüße von %s: äöü €" % IMPL
    say("REPLY", json.dumps(client.sendMessage(text, DEADLINE)))
    say("REPLY", json.dumps(client.sendMessage(u"bytes ß".encode("utf-8"), DEADLINE)))
    client.disconnect()
    with lock:
        say("SERVER", json.dumps(received))
    server.terminate()
    say("DONE", IMPL)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
