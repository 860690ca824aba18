"""A typed program using tcpcom: checked with `mypy --strict` against the stubs
(.ci/typecheck) and run from the built wheel in a fresh venv (.ci/package).

It makes two round trips on 127.0.0.1, one through the TigerJython face
(TCPServer + TCPClient) and one through the engine (Listener + connect), and
prints ROUNDTRIP-OK with the version when both answered. Every wait is bounded.
"""
import sys
import threading
from typing import Any, List, Optional

import tcpcom
from tcpcom import TCPClient, TCPServer
from tcpcom.engine import Connection, Handler, Listener, connect

DEADLINE = 10.0


def face_round_trip() -> str:
    events: List[str] = []

    def on_server(state: str, msg: Any) -> None:
        events.append(state)
        if state == TCPServer.MESSAGE:
            server.sendMessage("echo: " + str(msg))

    server = TCPServer(0, on_server, host="127.0.0.1")
    try:
        client = TCPClient("127.0.0.1", server.getPort(), lambda state, msg: None)
        if not client.connect(DEADLINE):
            raise SystemExit("TCPClient could not connect")
        reply: Optional[str] = client.sendMessage(u"Grüezi", responseTime=DEADLINE)
        client.disconnect()
    finally:
        server.terminate()
    if reply != u"echo: Grüezi":
        raise SystemExit("TCPClient got %r (server events: %r)" % (reply, events))
    return reply


class Upper(Handler):
    def message_received(self, conn: Connection, message: Any) -> None:
        conn.send_message(str(message).upper())


def engine_round_trip() -> str:
    listener = Listener(0, lambda conn: Upper(), host="127.0.0.1", framing="line")
    try:
        got: List[str] = []
        done = threading.Event()

        def on_event(conn: Connection, event: str, data: Any) -> None:
            if event == Connection.DATA:
                got.append(str(data))
                done.set()

        conn = connect("127.0.0.1", listener.port, on_event, framing="line")
        conn.send_message("hello")
        done.wait(DEADLINE)
        conn.close()
    finally:
        listener.close()
    if got != ["HELLO"]:
        raise SystemExit("engine round trip got %r" % (got,))
    return got[0]


def main() -> int:
    a = face_round_trip()
    b = engine_round_trip()
    print("ROUNDTRIP-OK tcpcom %s (%s, %s) from %s" % (TCPServer.getVersion(), a, b, tcpcom.__file__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
