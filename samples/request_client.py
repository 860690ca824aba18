"""Request/response client: asks the server and waits for each answer.

    python samples/request_client.py HOST PORT [QUESTION ...]
"""
from __future__ import print_function

import sys

from tcpcom import TCPClient


def onStateChanged(state, msg):
    if state != TCPClient.MESSAGE:
        print(state, msg)


host, port = sys.argv[1], int(sys.argv[2])
questions = sys.argv[3:] or ["What time is it?", "Wie geht's?"]
client = TCPClient(host, port, stateChanged=onStateChanged)
if client.connect(5):
    for q in questions:
        reply = client.sendMessage(q, responseTime=2)  # blocks until the answer (or 2 s)
        print("asked %r, got %r" % (q, reply))
    client.disconnect()
else:
    sys.exit(1)
