"""Test helpers: record callback events and wait for them with deadlines."""
import socket
import threading
import time

DEADLINE = 10.0  # generous: CI machines are small and loaded; waits end as soon as satisfied


class Recorder(object):
    """A stateChanged(state, msg) callback that remembers every call."""

    def __init__(self, name="rec"):
        self.name = name
        self.events = []
        self.cond = threading.Condition()
        self.threads = set()
        self.active = 0
        self.overlap = False

    def __call__(self, state, msg):
        with self.cond:
            self.active += 1
            if self.active > 1:
                self.overlap = True
            self.events.append((state, msg))
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()
        with self.cond:
            self.active -= 1

    def states(self):
        with self.cond:
            return [s for s, _ in self.events]

    def messages(self, state="MESSAGE"):
        with self.cond:
            return [m for s, m in self.events if s == state]

    def wait_for(self, predicate, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out; events so far: %r" % (self.name, self.events))
                self.cond.wait(left)
            return list(self.events)

    def wait_state(self, state, count=1, timeout=DEADLINE):
        return self.wait_for(lambda ev: sum(1 for s, _ in ev if s == state) >= count, timeout)

    def wait_messages(self, n, timeout=DEADLINE):
        self.wait_for(lambda ev: sum(1 for s, _ in ev if s == "MESSAGE") >= n, timeout)
        return self.messages()


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
