"""XTOpenTCPConnection(..., reconnect=seconds): the ID lives on across restarts of the device."""
import threading

from helpers import DEADLINE, engine_threads, wait_until
from tcpcom.engine import Handler, Listener
from xtcompat import XTCloseConnection, XTOpenTCPConnection, XTRegisterHandlers, XTStopAll, XTWriteConnection


class Device(Handler):
    """A device that answers each line and greets whoever connects."""

    def connection_made(self, conn):
        conn.send_message("hello")

    def message_received(self, conn, message):
        conn.send_message("ok " + message)


class Script(object):
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def _add(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def handlers(self):
        return dict(XTDataAvailable=lambda data, cid, info: self._add("data", cid, data),
                    XTSocketError=lambda cid, info: self._add("error", cid, info["xtKeyErrorNumber"]
                                                              if "xtKeyErrorNumber" in info else None),
                    XTReconnected=lambda cid, info: self._add("back", cid))

    def count(self, kind):
        with self.cond:
            return sum(1 for e in self.events if e[0] == kind)

    def wait(self, kind, n):
        wait_until(lambda: self.count(kind) >= n, DEADLINE, "%d x %s in %r" % (n, kind, self.events[-5:]))


def test_the_id_comes_back_after_its_device_restarts_twenty_times():
    script = Script()
    XTRegisterHandlers(script.handlers())
    before = engine_threads()
    device = Listener(0, Device, host="127.0.0.1", framing="line")
    port = device.port
    try:
        cid = XTOpenTCPConnection("127.0.0.1", port, "\r\n", reconnect=0.1)
        assert cid
        script.wait("data", 1)  # hello
        for cycle in range(1, 21):
            assert XTWriteConnection(cid, "ping %d\r\n" % cycle)
            script.wait("data", 2 * cycle)
            device.close()  # the device restarts ...
            script.wait("error", cycle)
            assert XTWriteConnection(cid, "lost?\r\n") is False  # away: nothing is queued
            device = Listener(port, Device, host="127.0.0.1", framing="line")  # ... and is back
            script.wait("back", cycle)
            script.wait("data", 2 * cycle + 1)  # its greeting, on the same ID
        with script.cond:
            data = [e for e in script.events if e[0] == "data"]
            assert set(e[1] for e in script.events) == {cid}  # one ID all along
        assert [d for _, _, d in data][:3] == ["hello", "ok ping 1", "hello"]
        assert "ok ping 20" in [d for _, _, d in data]
        assert XTCloseConnection(cid)
        script.wait("error", 21)  # the close is reported as for any connection ...
        assert XTWriteConnection(cid, "gone\r\n") is False  # ... and the ID has ended
    finally:
        XTStopAll()
        device.close()
        XTRegisterHandlers({})
    wait_until(lambda: set(engine_threads()) <= set(before), DEADLINE, "no thread left")


def test_close_while_it_is_away_ends_the_id_and_its_dialling():
    script = Script()
    XTRegisterHandlers(script.handlers())
    before = engine_threads()
    device = Listener(0, Device, host="127.0.0.1", framing="line")
    try:
        cid = XTOpenTCPConnection("127.0.0.1", device.port, "\r\n", reconnect=0.05)
        script.wait("data", 1)
        device.close()
        script.wait("error", 1)
        assert XTCloseConnection(cid)
        assert XTWriteConnection(cid, "x\r\n") is False
        assert XTCloseConnection(cid) is False  # the ID is gone
    finally:
        XTStopAll()
        XTRegisterHandlers({})
    wait_until(lambda: set(engine_threads()) <= set(before), DEADLINE, "no redial thread left")
    assert script.count("back") == 0


def test_reconnect_to_a_port_nobody_listens_on_fails_at_once_as_without_it():
    script = Script()
    XTRegisterHandlers(script.handlers())
    s = Listener(0, Device, host="127.0.0.1")
    port = s.port
    s.close()
    try:
        assert XTOpenTCPConnection("127.0.0.1", port, "\r\n", reconnect=0.1) == ""
    finally:
        XTStopAll()
        XTRegisterHandlers({})
