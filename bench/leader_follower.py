"""Prototype measurement: can a requesting thread read its own reply?

``python3 bench/leader_follower.py [--pin]`` measures, against a raw echo
server in another process, the round trip of four client designs in one run
(interleaved, medians), each on raw sockets so only the hand-off differs:

- direct: the caller sends and reads the reply itself (no reader thread: the floor);
- hop: a reader thread blocks in recv, hands the reply to the caller through a
  bare lock and runs the message callback inline (what tcpcom's engine does);
- lf-pool: leader/follower: the reader thread blocks in poll() on the socket
  and a wake-up pipe; a request evicts it through the pipe (it parks on a
  condition), the caller reads the reply itself, posts the message callback to
  a worker thread (it must not run user callbacks on the caller's thread),
  and on release wakes the reader to poll again;
- lf-reader: like lf-pool, but the parked reader delivers the callback when
  it is woken on release (no pool thread).

Used to decide whether the engine's ``request()`` should adopt it; see
docs/PERFORMANCE.md.  Every loop is bounded; loopback only.
"""
from __future__ import print_function

import collections
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MSG = b"r" * 31 + b"\0"


def on_message(m):  # the user's callback: trivial
    return m


class Direct(object):
    def __init__(self, sock):
        self.sock = sock

    def request(self):
        self.sock.sendall(MSG)
        data = b""
        while not data.endswith(b"\0"):
            data += self.sock.recv(65536)
        on_message(data)
        return data

    def close(self):
        self.sock.close()


class Hop(object):
    def __init__(self, sock):
        self.sock = sock
        self.waiter = None
        self.t = threading.Thread(target=self.loop)
        self.t.daemon = True
        self.t.start()

    def loop(self):
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            w = self.waiter
            if w is not None:
                self.waiter = None
                w[1] = data
                w[0].release()
            on_message(data)

    def request(self):
        lock = threading.Lock()
        lock.acquire()
        w = [lock, None]
        self.waiter = w
        self.sock.sendall(MSG)
        lock.acquire(True, 5)
        return w[1]

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.t.join(5)
        self.sock.close()


class HopPipe(Hop):
    """The hop, but the caller waits in os.read on a pipe and the reader wakes it
    with os.write: CPython releases the GIL *before* the write, so the woken
    caller finds the GIL free instead of waking, blocking on the GIL and
    waking again (the ping-pong a lock release causes on one CPU)."""

    def __init__(self, sock):
        self.r, self.w = os.pipe()
        Hop.__init__(self, sock)

    def loop(self):
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            w = self.waiter
            on_message(data)
            if w is not None:
                self.waiter = None
                w[1] = data
                os.write(self.w, b"x")

    def request(self):
        w = [None, None]
        self.waiter = w
        self.sock.sendall(MSG)
        os.read(self.r, 1)
        return w[1]


class LeaderFollower(object):
    def __init__(self, sock, via_pool):
        self.sock = sock
        self.via_pool = via_pool
        self.r, self.w = os.pipe()
        self.cond = threading.Condition(threading.Lock())
        self.owner = None       # the requesting thread that owns the socket
        self.polling = False    # the reader is in poll() (may be evicted)
        self.pending = collections.deque()  # callbacks for the reader/pool to deliver
        self.closed = False
        self.pool_cond = threading.Condition(threading.Lock())
        self.pool_q = collections.deque()
        if via_pool:
            self.pool = threading.Thread(target=self.pool_loop)
            self.pool.daemon = True
            self.pool.start()
        self.t = threading.Thread(target=self.loop)
        self.t.daemon = True
        self.t.start()

    def pool_loop(self):
        while True:
            with self.pool_cond:
                while not self.pool_q:
                    self.pool_cond.wait(5)
                    if self.closed:
                        return
                m = self.pool_q.popleft()
            on_message(m)

    def loop(self):
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        p.register(self.r, select.POLLIN)
        while not self.closed:
            with self.cond:
                while self.owner is not None:
                    self.cond.wait(5)
                while self.pending:
                    on_message(self.pending.popleft())
                self.polling = True
            ev = p.poll()
            with self.cond:
                self.polling = False
                if any(fd == self.r for fd, _ in ev):
                    os.read(self.r, 64)
                if self.owner is not None:
                    continue
            if any(fd == self.sock.fileno() for fd, _ in ev):
                data = self.sock.recv(65536)
                if not data:
                    return
                on_message(data)

    def request(self):
        with self.cond:
            self.owner = threading.current_thread()
            if self.polling:
                os.write(self.w, b"x")
        try:
            self.sock.sendall(MSG)
            data = b""
            while not data.endswith(b"\0"):
                data += self.sock.recv(65536)
        finally:
            with self.cond:
                self.owner = None
                if not self.via_pool:
                    self.pending.append(data)
                self.cond.notify()
        if self.via_pool:
            with self.pool_cond:
                self.pool_q.append(data)
                self.pool_cond.notify()
        return data

    def close(self):
        self.closed = True
        self.sock.shutdown(socket.SHUT_RDWR)
        os.write(self.w, b"x")
        self.t.join(5)
        self.sock.close()


DESIGNS = {"direct": Direct, "hop": Hop, "hop-pipe": HopPipe, "lf-pool": lambda s: LeaderFollower(s, True),
           "lf-reader": lambda s: LeaderFollower(s, False)}


def client(port, design, n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = DESIGNS[design](s)
    for _ in range(200):
        c.request()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        if c.request() != MSG:
            raise SystemExit("bad reply")
    dt, dc = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    c.close()
    return "%r %r" % (dt, dc)


def main():
    pin = "--pin" in sys.argv
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        if pin:
            os.sched_setaffinity(0, {0})
        print(client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
        return
    sys.path.insert(0, HERE)
    import run
    srv = run.Server("raw", 0 if pin else None)
    n = 2000
    rounds = 9 if "--quick" not in sys.argv else 1
    res = collections.defaultdict(list)
    try:
        for _ in range(rounds):
            for d in DESIGNS:
                cmd = [sys.executable, __file__, "client", str(srv.port), d, str(n)] + (["--pin"] if pin else [])
                out = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, timeout=120).stdout
                wall, cpu = out.strip().splitlines()[-1].split()
                res[d].append(float(wall))
                res[d + " cpu"].append(float(cpu))
    finally:
        srv.stop()
    base = statistics.median(res["direct"])
    print("round trip, %s, median of %d runs of %d:" % ("pinned to CPU 0" if pin else "unpinned", rounds, n))
    for d in DESIGNS:
        m = statistics.median(res[d])
        c = statistics.median(res[d + " cpu"])
        print("  %-10s %7.1f us  %.2f x direct   client CPU %5.1f us per round trip"
              % (d, m * 1e6, m / base, c * 1e6))


if __name__ == "__main__":
    main()
