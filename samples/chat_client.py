"""Chat pair, client side: sends each typed line and prints what the server says.

    python samples/chat_client.py HOST PORT
"""
from __future__ import print_function

import sys
import threading

from tcpcom import TCPClient

gone = threading.Event()


def onStateChanged(state, msg):
    if state == TCPClient.MESSAGE:
        print("server says: " + msg)
    else:
        print(state, msg)
    if state == TCPClient.DISCONNECTED:
        gone.set()
    sys.stdout.flush()


client = TCPClient(sys.argv[1], int(sys.argv[2]), stateChanged=onStateChanged)
if not client.connect(5):
    sys.exit(1)
for line in sys.stdin:
    if gone.is_set():
        break
    client.sendMessage(line.rstrip("\n"))
gone.wait(float(sys.argv[3]) if len(sys.argv) > 3 else 0)  # optionally wait for the server to hang up
client.disconnect()
