#!/usr/bin/env python3
"""Figure 1b: the occupied verdict against servers that hang up late: ``python3 bench/occupied.py``.

A one-client server (tcpcom's ``TCPServer``, the original TigerJython
tcpcom) turns a second client away by accepting it and closing it: the
hang-up is the only sign of ``SERVER_OCCUPIED`` on the wire.  How soon it
comes depends on the server's accept loop, not on the network: our
``TCPServer`` closes within a fraction of a millisecond, the original on
Jython 1-20 ms later, and a server whose accept thread is still inside a
slow ``CONNECTED`` callback only when the callback returns.

For every server below, with a first client holding it, this measures

- when the hang-up reaches a raw second client (ms after its connect()
  returned): the distribution every wait setting is up against;
- for several settings of the occupied wait, what our ``TCPClient`` (the
  second client) reports: ``connect()`` False with ``SERVER_OCCUPIED``
  (the first line of defence), or True, ``CONNECTED`` and then
  ``SERVER_OCCUPIED`` (the second line: a hang-up without a byte within
  2 s), or wrong (``CONNECTED`` and a bare ``DISCONNECTED``, or no hang-up);
- the time ``connect()`` takes to a free ``TCPServer`` with the default.

All of it once on the machine as it is and once with one CPU kept busy on
purpose (a spinning process), rounds interleaved (each setting once per
round) so that a load spike from elsewhere hits every setting alike.

The originals are not part of this project: point the bench at a copy
(``--original-py DIR``: the directory of the original ``tcpcom.py``, run
under ``jython``; ``--original-java DIR``: the ``ch/aplu/tcpcom`` sources,
their classes or a jar, run under ``java``).  The drivers written here only
start an original ``TCPServer`` and print its events.

    python3 bench/occupied.py [--quick] [--attempts N] [--load idle,busy]
        [--original-py DIR] [--original-java DIR] [--json FILE]
"""
from __future__ import print_function

import argparse
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.environ.get("TCPCOM_BENCH_PATH") or ROOT)

from run import Table, finish, fmt, machine, med  # noqa: E402  (bench/run.py: one style for every figure)

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue

#: the settings compared: (label, how to set it on a TCPClient)
SETTINGS = [("old default: 25 x handshake, min 2 ms", ("old",)),
            ("occupiedWait=0.005", ("fixed", 0.005)),
            ("occupiedWait=0.01", ("fixed", 0.01)),
            ("occupiedWait=0.02", ("fixed", 0.02)),
            ("occupiedWait=0.04", ("fixed", 0.04)),
            ("occupiedWait=0.06", ("fixed", 0.06)),
            ("occupiedWait=0.08", ("fixed", 0.08)),
            ("default", ("default",))]
#: for servers whose hang-up comes long after any first-line wait: the two that matter
SHORT_SETTINGS = [SETTINGS[0], SETTINGS[-1]]
BUSY_CALLBACK_MS = 150
VERDICT_DEADLINE = 5.0  # s to wait for SERVER_OCCUPIED/DISCONNECTED after a True
PROBE_DEADLINE = 3.0    # s a raw second client waits for the hang-up

# -- the servers -------------------------------------------------------------------
#
# Every server runs in a process of its own and prints its events as lines
# "EV <state> <msg>" (LISTENING, CONNECTED); it stops when its stdin closes.

DRIVER_PY = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from tcpcom import TCPServer
slow = float(sys.argv[3]) / 1000.0
def onStateChanged(state, msg):
    sys.stdout.write("EV %s %s\n" % (state, msg))
    sys.stdout.flush()
    if state == "CONNECTED" and slow > 0:
        time.sleep(slow)  # the accept thread is busy in the callback
import tcpcom
sys.stdout.write("EV VERSION %s %s\n" % (TCPServer.getVersion(), tcpcom.__file__))
sys.stdout.flush()
server = TCPServer(int(sys.argv[2]), stateChanged=onStateChanged)
sys.stdin.readline()
server.terminate()
'''

DRIVER_JAVA = r'''
import ch.aplu.tcpcom.*;
import java.io.*;

public class OccupiedPeer {
  public static void main(String[] args) throws Exception {
    final long slow = Long.parseLong(args[1]);
    final PrintStream out = System.out;
    out.println("EV VERSION " + TCPServer.getVersion());
    out.flush();
    TCPServer server = new TCPServer(Integer.parseInt(args[0]));
    server.addTCPServerListener(new TCPServerListener() {
      public void onStateChanged(String state, String msg) {
        synchronized (out) { out.println("EV " + state + " " + msg); out.flush(); }
        if (state.equals("CONNECTED") && slow > 0) {
          try { Thread.sleep(slow); } catch (InterruptedException e) { }  // the accept thread is busy
        }
      }
    });
    new BufferedReader(new InputStreamReader(System.in)).readLine();
    server.terminate();
    System.exit(0);
  }
}
'''


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve_ours(kind, args):
    """``occupied.py serve KIND ...``: one of our servers (tcpcom's TCPServer, or a raw
    accept loop imitating a late hang-up); prints ``PORT n`` then events."""
    if kind == "tcpserver":
        from tcpcom import TCPServer
        server = TCPServer(0, lambda state, msg: say("EV %s %s" % (state, msg)), host="127.0.0.1")
        say("PORT %d" % server.getPort())
        sys.stdin.readline()
        server.terminate()
        return 0
    lo = hi = busy = 0.0
    if kind == "late":      # a second client is closed lo..hi ms after its accept
        lo, hi = float(args[0]) / 1000, float(args[1]) / 1000
    elif kind == "busy":    # the accept thread runs a slow CONNECTED callback
        busy = float(args[0]) / 1000
    else:
        raise SystemExit("unknown server kind %r" % kind)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held = []

    def hold(conn):  # the first client: read until it leaves, then free the slot
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()
        del held[:]
        say("EV LISTENING 0")

    def accept_loop():
        while True:
            try:
                conn, addr = lsock.accept()
            except OSError:
                return
            if held:
                if hi:
                    time.sleep(random.uniform(lo, hi))
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
                continue
            held.append(conn)
            threading.Thread(target=hold, args=(conn,), daemon=True).start()
            say("EV CONNECTED %s" % addr[0])
            if busy:
                time.sleep(busy)
    threading.Thread(target=accept_loop, daemon=True).start()
    say("PORT %d" % lsock.getsockname()[1])
    sys.stdin.readline()
    lsock.close()
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Peer(object):
    """A server process whose stdout lines are read with deadlines."""

    def __init__(self, label, cmd, port=None, env=None, cwd=None):
        self.label = label
        self.lines = queue.Queue()
        self.version = ""
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, universal_newlines=True, env=env, cwd=cwd)
        t = threading.Thread(target=self._pump, daemon=True)
        t.start()
        self.port = port
        if port is None:
            line = self.wait_line("PORT ", 30)
            self.port = int(line.split()[1])

    def _pump(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("EV VERSION"):
                self.version = line[len("EV VERSION "):]
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, prefix, timeout):
        """The next line starting with ``prefix`` (others are skipped); RuntimeError after ``timeout``."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            try:
                line = self.lines.get(True, max(0.0, left))
            except queue.Empty:
                raise RuntimeError("%s: no %r line within %g s" % (self.label, prefix, timeout))
            if line is None:
                raise RuntimeError("%s: the server process ended (exit code %s)" % (self.label, self.proc.poll()))
            if line.startswith(prefix):
                return line

    def drain(self):
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def stop(self):
        try:
            self.proc.stdin.write("STOP\n")
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_ours(label, kind, *args):
    return Peer(label, [sys.executable, os.path.abspath(__file__), "serve", kind] + [str(a) for a in args],
                env=dict(os.environ, PYTHONPATH=os.environ.get("TCPCOM_BENCH_PATH") or ROOT))


def start_original_py(label, origdir, workdir, slow_ms):
    driver = os.path.join(workdir, "original_py_driver.py")
    with open(driver, "w") as f:
        f.write(DRIVER_PY)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the original's tcpcom, never ours
    env.pop("JYTHONPATH", None)
    port = free_port()
    peer = Peer(label, ["jython", driver, os.path.abspath(origdir), str(port), str(slow_ms)], port=port, env=env,
                cwd=workdir)
    peer.wait_line("EV LISTENING", 120)  # the JVM starts in seconds
    if "1.32" not in peer.version:
        say("note: %s runs tcpcom %s" % (label, peer.version))
    return peer


def build_original_java(origdir, workdir):
    """The classpath for the Java edition's driver (compiling the original's sources if given)."""
    src = os.path.join(workdir, "OccupiedPeer.java")
    with open(src, "w") as f:
        f.write(DRIVER_JAVA)
    classes = os.path.join(workdir, "classes")
    os.makedirs(classes, exist_ok=True)
    if origdir.endswith(".jar"):
        cp = origdir
        sources = [src]
    else:
        sources = [src]
        for dirpath, _, files in os.walk(origdir):
            sources += [os.path.join(dirpath, n) for n in files if n.endswith(".java")]
        cp = origdir
    subprocess.check_call(["javac", "-nowarn", "-d", classes, "-cp", cp] + sources,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return classes + os.pathsep + cp


def start_original_java(label, classpath, slow_ms):
    port = free_port()
    peer = Peer(label, ["java", "-cp", classpath, "OccupiedPeer", str(port), str(slow_ms)], port=port)
    peer.wait_line("EV VERSION", 60)
    return peer


# -- the clients -------------------------------------------------------------------

class Recorder(object):
    def __init__(self):
        self.states = []
        self.cond = threading.Condition()

    def __call__(self, state, msg):
        with self.cond:
            self.states.append(state)
            self.cond.notify_all()

    def wait_end(self, timeout):
        deadline = time.time() + timeout
        with self.cond:
            while "DISCONNECTED" not in self.states:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def make_client(port, setting, rec):
    from tcpcom import TCPClient
    c = TCPClient("127.0.0.1", port, rec)
    if setting[0] == "old":
        c.OCCUPIED_WAIT_MIN, c.OCCUPIED_WAIT_FACTOR = 0.002, 25
    elif setting[0] == "fixed":
        c.occupiedWait = setting[1]
    return c


def second_client(port, setting):
    """One attempt of our TCPClient against an occupied server: its verdict and connect() time."""
    rec = Recorder()
    c = make_client(port, setting, rec)
    t0 = time.perf_counter()
    ok = c.connect()
    took = time.perf_counter() - t0
    if not ok:
        verdict = "first" if rec.states[-1:] == ["SERVER_OCCUPIED"] else "failed"
    else:
        ended = rec.wait_end(VERDICT_DEADLINE)
        if "SERVER_OCCUPIED" in rec.states:
            verdict = "second"
        else:
            verdict = "wrong" if ended else "stayed"
    c.disconnect()
    return {"verdict": verdict, "connected": bool(ok), "ms": took * 1000, "wait_ms": (c.getOccupiedWait() or 0) * 1000}


def raw_probe(port):
    """ms from a raw client's connect() returning until the server's hang-up (None: none came)."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    t0 = time.perf_counter()
    try:
        r, _, _ = select.select([s], [], [], PROBE_DEADLINE)
        if not r:
            return None
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        return (time.perf_counter() - t0) * 1000 if not data else None
    finally:
        s.close()


#: s a one-client server gets after announcing LISTENING before the next first client
#: connects: the originals announce LISTENING before they close the old connection's
#: socket, kept in a field (``self.conn``; ``is``/``os``) that by then may hold the next
#: client -- which they would close.  Attempts where it happens anyway are retried.
SETTLE = 0.1


class Holder(object):
    """The first client: a raw socket that keeps the one-client server busy."""

    def __init__(self, peer):
        self.peer = peer
        self.sock = None
        self.lost = 0  # attempts retried because the server had closed the first client

    def take(self):
        self.peer.drain()
        deadline = time.time() + 30
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.peer.port), 5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)  # the server is still starting: poll (bench only)
        self.peer.wait_line("EV CONNECTED", 30)

    def intact(self):
        """True while the server still holds the first client (it has not closed it)."""
        r, _, _ = select.select([self.sock], [], [], 0)
        if not r:
            return True
        try:
            return self.sock.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def release(self, announced=True):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            try:
                self.peer.wait_line("EV LISTENING", 30 if announced else 2)
            except RuntimeError:
                if announced:
                    raise
            time.sleep(SETTLE)

    def run(self, fn, per_attempt, tries=3):
        """``fn()`` with the server occupied by the first client; retried when the
        server turned out not to hold it (see SETTLE)."""
        for _ in range(tries):
            if per_attempt:
                self.take()
            result = fn()
            ok = self.intact()
            if per_attempt or not ok:
                self.release(announced=ok)
                if not per_attempt:
                    self.take()
            if ok:
                return result
            self.lost += 1
        return result


def measure_server(peer, settings, attempts, probes, per_attempt_holder):
    """Interleaved rounds: each round ``probes`` raw probes and one attempt per setting."""
    res = {"probe": [], "settings": dict((label, []) for label, _ in settings)}
    holder = Holder(peer)
    if not per_attempt_holder:
        holder.take()
    try:
        for _ in range(attempts):
            order = [("probe", None)] * probes + list(settings)
            random.shuffle(order)
            for label, setting in order:
                if setting is None:
                    res["probe"].append(holder.run(lambda: raw_probe(peer.port), per_attempt_holder))
                else:
                    res["settings"][label].append(
                        holder.run(lambda: second_client(peer.port, setting), per_attempt_holder))
    finally:
        if not per_attempt_holder:
            holder.release()
    res["retried"] = holder.lost
    return res


def free_connect_times(attempts):
    """connect() with the default settings to a free TCPServer (then disconnect)."""
    peer = start_ours("TCPServer (free)", "tcpserver")
    times, waits = [], []
    try:
        for _ in range(attempts):
            rec = Recorder()
            c = make_client(peer.port, ("default",), rec)
            t0 = time.perf_counter()
            ok = c.connect()
            times.append((time.perf_counter() - t0) * 1000)
            waits.append((c.getOccupiedWait() or 0) * 1000)
            if ok:
                peer.wait_line("EV CONNECTED", 30)
                c.disconnect()
                peer.wait_line("EV LISTENING", 30)
    finally:
        peer.stop()
    return times, waits


def pct(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# -- the figure --------------------------------------------------------------------

def servers_to_run(args, workdir):
    """(label, start function, settings, the first client per attempt?)"""
    out = [("TCPServer (ours)", lambda: start_ours("TCPServer", "tcpserver"), SETTINGS, False),
           ("accept loop, hang-up 0-40 ms (random)", lambda: start_ours("late 0-40", "late", 0, 40), SETTINGS, False),
           ("accept loop, hang-up 150 ms", lambda: start_ours("late 150", "late", 150, 150), SHORT_SETTINGS, False),
           ("accept loop busy %d ms in CONNECTED" % BUSY_CALLBACK_MS,
            lambda: start_ours("busy", "busy", BUSY_CALLBACK_MS), SHORT_SETTINGS, True)]
    if args.original_py:
        d = args.original_py
        out.append(("original 1.32 on Jython", lambda: start_original_py("original-py", d, workdir, 0),
                    SETTINGS, False))
        out.append(("original 1.32 on Jython, busy %d ms in CONNECTED" % BUSY_CALLBACK_MS,
                    lambda: start_original_py("original-py busy", d, workdir, BUSY_CALLBACK_MS),
                    SHORT_SETTINGS, True))
    if args.original_java:
        cp = build_original_java(args.original_java, workdir)
        out.append(("original Java 1.00", lambda: start_original_java("original-java", cp, 0), SETTINGS, False))
        out.append(("original Java 1.00, busy %d ms in CONNECTED" % BUSY_CALLBACK_MS,
                    lambda: start_original_java("original-java busy", cp, BUSY_CALLBACK_MS), SHORT_SETTINGS, True))
    if args.only:
        out = [s for s in out if any(w.lower() in s[0].lower() for w in args.only.split(","))]
    return out


LOADS = {"idle": (0, "as found"), "busy": (1, "one CPU kept busy by a spinning process"),
         "busy2": (2, "both CPUs kept busy by two spinning processes")}


def run_load(load, args, workdir, R):
    spinners = []
    n, words = LOADS[load]
    for _ in range(n):  # CPUs kept busy on purpose, for the whole figure
        spinners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
    try:
        say("\n# load: %s (load average at the start %s)" % (
            words, " ".join("%.2f" % x for x in os.getloadavg())))
        results = []
        for label, start, settings, per_attempt in servers_to_run(args, workdir):
            try:
                peer = start()
            except Exception as e:  # an original that cannot run here: say so in its row
                results.append((label, settings, {"error": str(e)}, ""))
                continue
            try:
                n = args.attempts if not per_attempt else max(1, args.attempts // 2)
                res = measure_server(peer, settings, n, 1 if per_attempt else args.probes, per_attempt)
            except Exception as e:
                res = {"error": str(e)}
            finally:
                peer.stop()
            results.append((label, settings, res, peer.version))
        times, waits = free_connect_times(args.free)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    show(load, results, times, waits, R)


def show(load, results, times, waits, R):
    L = R.setdefault(load, {"servers": {}})
    t = Table("Figure 1b (%s): when the hang-up reaches a raw second client, ms after its connect() returned"
              % load, ["server", "n", "median", "p90", "p99", "max", "no hang-up", "retried"])
    for label, _, res, version in results:
        if "error" in res:
            t.add(label, res["error"][:80], "", "", "", "", "", "")
            continue
        p = res["probe"]
        got = [x for x in p if x is not None]
        t.add(label, len(p), fmt(med(got), ".2f"), fmt(pct(got, 0.9), ".2f"), fmt(pct(got, 0.99), ".2f"),
              fmt(max(got) if got else None, ".2f"), sum(1 for x in p if x is None), res["retried"])
        L["servers"][label] = {"version": version, "probe_ms": p, "retried": res["retried"]}
    t.show()
    t = Table("Figure 1b (%s): false CONNECTED (connect() returned True) / attempts, and in brackets the wrong "
              "final verdicts (a bare DISCONNECTED, or no hang-up)" % load,
              ["server"] + [label for label, _ in SETTINGS])
    for label, _, res, _ in results:
        if "error" in res:
            continue
        cells = []
        for slabel, _ in SETTINGS:
            rows = res["settings"].get(slabel)
            if rows is None:
                cells.append("")
                continue
            false = sum(1 for r in rows if r["connected"])
            wrong = sum(1 for r in rows if r["verdict"] in ("wrong", "stayed", "failed"))
            cells.append("%d / %d (%d)" % (false, len(rows), wrong))
            L["servers"][label].setdefault("settings", {})[slabel] = rows
        t.add(label, *cells)
    t.show()
    t = Table("Figure 1b (%s): connect() to a free TCPServer with the default settings, %d attempts"
              % (load, len(times)), ["median ms", "p90 ms", "max ms", "median wait ms"])
    t.add(fmt(med(times), ".1f"), fmt(pct(times, 0.9), ".1f"), fmt(max(times) if times else None, ".1f"),
          fmt(med(waits), ".1f"))
    L["free_connect_ms"] = times
    L["free_wait_ms"] = waits
    t.show()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny counts, our servers only: a smoke test")
    ap.add_argument("--attempts", type=int, default=40, help="attempts per setting and server (default 40)")
    ap.add_argument("--probes", type=int, default=5, help="raw probes per round (default 5: 200 in 40 rounds)")
    ap.add_argument("--free", type=int, default=40, help="connect() calls to a free server (default 40)")
    ap.add_argument("--load", default="idle,busy",
                    help="comma-separated: idle, busy (one CPU kept busy), busy2 (both); default idle,busy")
    ap.add_argument("--original-py", help="directory of the original tcpcom.py (1.32), run under jython")
    ap.add_argument("--original-java", help="the original Java edition: ch/aplu/tcpcom sources, classes or a jar")
    ap.add_argument("--only", help="comma-separated words: only the servers whose label contains one")
    ap.add_argument("--json", help="also write every number to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.attempts, args.probes, args.free, args.load = 2, 1, 3, "idle"
    M = machine()
    say("# tcpcom occupied bench: %s, nproc %s, Python %s, %s, load average %s"
        % (M["date"], M["nproc"], M["python"], M["cpu"], M["loadavg"]))
    R = {"machine": M, "attempts": args.attempts}
    t0 = time.time()
    workdir = tempfile.mkdtemp(prefix="tcpcom-occupied-")
    try:
        for load in args.load.split(","):
            run_load(load.strip(), args, workdir, R)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return finish(R, t0, args.json, say)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        sys.exit(serve_ours(sys.argv[2], sys.argv[3:]))
    sys.exit(main())
