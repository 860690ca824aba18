"""The engine underneath: one listener, many clients, a handler object per connection.

Line-based (CR, LF or CRLF), so `telnet localhost 5000` works.  Each
connection keeps its own count; the listener keeps a shared one.

    python samples/engine_multi_echo.py [PORT]
"""
from __future__ import print_function

import sys
import threading

from tcpcom.engine import Handler, Listener

total = {"messages": 0}
lock = threading.Lock()


class Echo(Handler):
    """One instance per connection (the Kamaelia 'protocol handler' style)."""

    def connection_made(self, conn):
        self.count = 0
        print("connected %s (%s:%d)" % (conn.id, conn.remote_address, conn.remote_port))
        conn.send_message("welcome, you are %s" % conn.id)
        sys.stdout.flush()

    def message_received(self, conn, message):
        self.count += 1
        with lock:
            total["messages"] += 1
        conn.send_message("%s #%d: %s" % (conn.id, self.count, message.upper()))

    def connection_lost(self, conn, reason):
        print("closed %s after %d messages (%s)" % (conn.id, self.count, reason or "normal"))
        sys.stdout.flush()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
listener = Listener(port, Echo, framing="line", read_timeout=300)
print("LISTENING %d" % listener.port)
sys.stdout.flush()
try:
    threading.Event().wait(float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
except KeyboardInterrupt:
    pass
listener.close()
print("total messages: %d" % total["messages"])
