"""Chat pair, server side: prints what the client says and answers with each typed line.

    python samples/chat_server.py [PORT]       then: python samples/chat_client.py HOST PORT
"""
from __future__ import print_function

import sys

from tcpcom import TCPServer


def onStateChanged(state, msg):
    if state == TCPServer.MESSAGE:
        print("client says: " + msg)
    else:
        print(state, msg)
    sys.stdout.flush()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
server = TCPServer(port, stateChanged=onStateChanged)
try:
    for line in sys.stdin:  # each line typed goes to the client; Ctrl-D or Ctrl-C ends
        server.sendMessage(line.rstrip("\n"))
except KeyboardInterrupt:
    pass
server.terminate()
