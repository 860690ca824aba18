"""Echo server: sends every message back.  Ctrl-C ends it.

    python samples/echo_server.py [PORT]      (default 5000; 0 lets the system choose)
"""
from __future__ import print_function

import sys

from tcpcom import TCPServer


def onStateChanged(state, msg):
    print(state, msg)
    sys.stdout.flush()
    if state == TCPServer.MESSAGE:
        server.sendMessage(msg)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
server = TCPServer(port, stateChanged=onStateChanged)
print("echo server ready on port %d (Ctrl-C ends)" % server.getPort())
sys.stdout.flush()
server.loopForever()
