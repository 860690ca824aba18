"""Test helpers: record callback events and wait for them with deadlines."""
import socket
import threading
import time

from testkit import Recorder  # noqa: F401  (the tests import it from here)

DEADLINE = 10.0  # generous: CI machines are small and loaded; waits end as soon as satisfied


def wait_until(predicate, timeout=DEADLINE, interval=0.005):
    """Poll ``predicate`` until true; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        threading.Event().wait(interval)


def raw_client(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), DEADLINE)
    s.settimeout(DEADLINE)
    return s


def recv_until(sock, n_delims, delim=b"\0"):
    data = b""
    while data.count(delim) < n_delims:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def engine_threads():
    """Names of live threads that belong to one object (not the shared pool/watchdog)."""
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith("tcpcom-") and not t.name.startswith(("tcpcom-dispatch", "tcpcom-watchdog", "tcpcom-spare")))
