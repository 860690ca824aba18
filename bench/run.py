#!/usr/bin/env python3
"""tcpcom side-by-side benchmark: ``python3 bench/run.py [--quick] [--json FILE]``.

Runs, in one process tree and one run, tcpcom's engine and TigerJython face
next to two baselines written in ``bench/workers.py``: (a) raw blocking
sockets, a thread per connection, handler inline, and (c) an asyncio
Protocol server.  Every server runs in its own process and every client job
in another one, all on 127.0.0.1.

Pinned figures: the server process and the client process are both pinned
to CPU 0 (``os.sched_setaffinity`` at their start, so every thread they
create inherits it); unpinned figures let the scheduler place them.  Each
figure is the median of repeated runs; ratios are ours / baseline from the
same run.  See docs/PERFORMANCE.md for what the figures mean.
"""
from __future__ import print_function

import argparse
import datetime
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.join(HERE, "workers.py")
CPU = 0
BACKLOG = 2048  # the baselines' listen() backlog: bench/workers.py BACKLOG

VARIANTS = [(25, 0.002), (10, 0.001), (5, 0.0005), (2, 0.0002)]
FULL = dict(connect=dict(n=40, gap=0.01, rounds=4, occupied=100, variants=VARIANTS), roundtrip=dict(n=1000, reps=15),
            throughput=dict(n=300000, reps=7), bulk=dict(sizes=[16, 64], reps=5),
            concurrency=dict(sizes=[100, 500, 1000, 2000], rounds=20, reps=3, deadline=60),
            http=dict(n=3000, threads=8, procs=1, rounds=3))
QUICK = dict(connect=dict(n=4, gap=0.01, rounds=1, occupied=3, variants=VARIANTS[:1]), roundtrip=dict(n=50, reps=2),
             throughput=dict(n=2000, reps=1), bulk=dict(sizes=[1, 4], reps=1),
             concurrency=dict(sizes=[10, 20], rounds=20, reps=1, deadline=30),
             http=dict(n=40, threads=4, procs=1, rounds=1))


class Unavailable(Exception):
    pass


class Server(object):
    """A server worker process; ``stats`` holds its VmHWM/threads after stop()."""

    def __init__(self, kind, cpu=None, env=None):
        self.kind = kind
        cmd = [sys.executable, WORKERS, "server", kind]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     universal_newlines=True, cwd=os.path.dirname(HERE),
                                     env=dict(os.environ, **env) if env else None)
        line = self._readline(30)
        if line.startswith("UNAVAILABLE"):
            self.stop()
            raise Unavailable(line[len("UNAVAILABLE "):].strip())
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("server %s did not start: %r" % (kind, line))
        self.port = int(line.split()[1])
        self.stats = {}

    def _readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return ""
        return self.proc.stdout.readline()

    def stop(self, timeout=30):
        """Stop the server; ``timeout``: how long its stats may take (10,000 threads: long)."""
        try:
            self.proc.stdin.write("STOP\n")
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        line = self._readline(timeout)
        try:
            self.stats = json.loads(line) if line.strip() else {}
        except ValueError:
            self.stats = {}
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return self.stats


def client(job, kind, port, params, cpu=None, timeout=300, env=None):
    cmd = [sys.executable, WORKERS, "client", job, kind, str(port), json.dumps(params)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True,
                             timeout=timeout, cwd=os.path.dirname(HERE),
                             env=dict(os.environ, **env) if env else None).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return {"error": "client job failed: %r" % (e,)}


def interleaved(job, cases, servers, params, rounds, cpu, key):
    """Run every case once per round, cases interleaved, so that a load spike
    from elsewhere on the machine hits all of them alike; collects ``key`` (and
    every other list a job returns, e.g. "cpu", "rt")."""
    res = {}
    for _ in range(rounds):
        for label, ck, sk in cases:
            r = client(job, ck, servers[sk].port, params, cpu)
            acc = res.setdefault(label, {key: [], "fails": 0, "errors": [], "cpu": []})
            if "error" in r:
                acc["errors"].append(r["error"])
                continue
            for k, v in r.items():
                if isinstance(v, list):
                    acc.setdefault(k, []).extend(v)
            acc["fails"] += r.get("fails", 0)
    return res


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, q):
    """The q-th percentile (nearest rank) of xs."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100.0 * len(xs)))]


def ratio(x, y):
    if x is None or y is None or y != y or x != x or not y:
        return float("nan")
    return x / y


def fmt(x, spec):
    if x is None or x != x:
        return "-"
    return format(x, spec)


class Table(object):
    def __init__(self, title, columns):
        self.title = title
        self.columns = columns
        self.rows = []

    def add(self, *cells):
        self.rows.append([str(c) for c in cells])

    def show(self):
        print()
        print("## " + self.title)
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        sys.stdout.flush()


def start_servers(kinds, cpu):
    servers = {}
    for k in kinds:
        servers[k] = Server(k, cpu)
    return servers


def stop_all(servers):
    for s in servers.values():
        s.stop()


def pin_label(cpu):
    return "pinned, CPU %d" % cpu if cpu is not None else "unpinned"


def fig_connect(P, servers, cpu, R):
    cases = [("(a) raw connect -> raw server", "raw", "raw"),
             ("(c) raw connect -> asyncio server", "raw", "asyncio"),
             ("ours: TCPClient.connect() -> TCPServer", "tcpclient", "tcpserver"),
             ("ours: TCPClient.connect() -> engine Listener", "tcpclient", "listener")]
    C = P["connect"]
    res = interleaved("connect", cases, servers, dict(n=C["n"] // C["rounds"], gap=C["gap"]),
                      C["rounds"], cpu, "times")
    base_a = med(res[cases[0][0]].get("times", []))
    base_c = med(res[cases[1][0]].get("times", []))
    t = Table("Figure 1: connect() time (%s), median of %d, %d rounds interleaved"
              % (pin_label(cpu), C["n"] // C["rounds"] * C["rounds"], C["rounds"]),
              ["case", "median ms", "failures", "x (a)", "x (c)"])
    for label, ck, sk in cases:
        r = res[label]
        m = med(r.get("times", []))
        ours = label.startswith("ours")
        t.add(label, fmt(m * 1000, ".3f") if r["times"] else r["errors"][0], r["fails"] + len(r["errors"]),
              fmt(ratio(m, base_a), ".1f") if ours else "", fmt(ratio(m, base_c), ".1f") if ours else "")
        R.setdefault("connect", {}).setdefault(pin_label(cpu), {})[label] = {
            "median_ms": m * 1000, "fails": r["fails"], "errors": r["errors"]}
    t.show()
    # the price of a shorter occupied wait: how often connect() says True to a
    # server that is occupied (and hangs up right after)
    t = Table("Figure 1b: connect() to an occupied TCPServer (%s), %d attempts per setting"
              % (pin_label(cpu), C["occupied"]), ["occupied wait", "false CONNECTED", "median wait ms",
                                                   "median ms to False", "slowest ms to False"])
    for factor, minimum in C["variants"]:
        r = client("occupied", "tcpclient", servers["tcpserver"].port,
                   dict(n=C["occupied"], factor=factor, min=minimum), cpu)
        label = "%g x handshake, min %g ms%s" % (factor, minimum * 1000,
                                                 " (the default before issue 12)" if (factor, minimum) == (25, 0.002) else "")
        if "error" in r:
            t.add(label, r["error"], "", "")
            continue
        t.add(label, "%d / %d" % (r["false_connected"], C["occupied"]), fmt(med(r["waits"]) * 1000, ".2f"),
              fmt(med(r["times"]) * 1000, ".2f"), fmt(max(r["times"]) * 1000, ".2f"))
        R.setdefault("occupied", {}).setdefault(pin_label(cpu), {})[label] = {
            "false_connected": r["false_connected"], "attempts": C["occupied"],
            "median_wait_ms": med(r["waits"]) * 1000, "median_ms": med(r["times"]) * 1000,
            "max_ms": max(r["times"]) * 1000}
    t.show()


#: Each half of the raw pair -- the raw client with the minimal echo server (the client every
#: "raw client ->" case uses), the minimal client with the raw server (the baseline every ratio
#: divides by) -- may be at most this much above the minimal pair's round trip.  Each half does
#: its side's share of the job the minimal pair skips (framing, decoding, the handler): on a
#: quiet VM with a 10 us minimal pair, 1.05-1.08 x (client) and 1.10-1.23 x (server) in four
#: pinned runs (unpinned: 1.01-1.06 x).  The fault this guards against, a 1 MiB receive
#: buffer, costs about 16 us per call: 2.5 x and more.
HALF_SLACK = 1.25
#: the raw pair's round trip (the same runs: 1.25-1.29 x)
FLOOR_SLACK = 1.44


def fig_roundtrip(P, servers, cpu, R):
    cases = [("floor: minimal client -> minimal echo server", "minimal", "minimal"),
             ("floor: raw client -> minimal echo server", "raw", "minimal"),
             ("floor: minimal client -> raw server", "minimal", "raw"),
             ("(a) raw client -> raw server", "raw", "raw"),
             ("(c) raw client -> asyncio server", "raw", "asyncio"),
             ("ours: TCPClient -> TCPServer (end to end)", "tcpclient", "tcpserver"),
             ("ours: raw client -> TCPServer", "raw", "tcpserver"),
             ("ours: TCPClient -> raw server", "tcpclient", "raw"),
             ("ours: engine request() -> Listener", "engine", "listener"),
             ("ours: raw client -> Listener", "raw", "listener")]
    C = P["roundtrip"]
    res = interleaved("roundtrip", cases, servers, dict(n=C["n"], reps=1), C["reps"], cpu, "times")
    rt = dict((label, med(res[label].get("rt", []))) for label, _, _ in cases)
    base_a, base_c = rt[cases[3][0]], rt[cases[4][0]]
    t = Table("Figure 2: round trip of a 32-byte message (%s), %d interleaved batches of %d"
              % (pin_label(cpu), P["roundtrip"]["reps"], P["roundtrip"]["n"]),
              ["case", "median us", "p99 us", "batch mean us", "x (a)", "x (c)", "client CPU us",
               "client CPU x (a)"])
    cpu_a = med(res[cases[3][0]]["cpu"])
    for label, ck, sk in cases:
        r = res[label]
        m, c = rt[label], med(r["cpu"])
        ours = label.startswith("ours")
        t.add(label, fmt(m * 1e6, ".1f") if r.get("rt") else r["errors"][0], fmt(pct(r.get("rt"), 99) * 1e6, ".1f"),
              fmt(med(r.get("times", [])) * 1e6, ".1f"),
              fmt(ratio(m, base_a), ".2f") if ours else "", fmt(ratio(m, base_c), ".2f") if ours else "",
              fmt(c * 1e6, ".1f"), fmt(ratio(c, cpu_a), ".2f") if ours else "")
        R.setdefault("roundtrip", {}).setdefault(pin_label(cpu), {})[label] = {
            "median_us": m * 1e6, "p99_us": pct(r.get("rt"), 99) * 1e6,
            "batch_mean_us": med(r.get("times", [])) * 1e6, "client_cpu_us": c * 1e6, "errors": r["errors"]}
    t.show()
    check_floor(R, pin_label(cpu), base_a, rt[cases[0][0]], P is QUICK,
                (rt[cases[1][0]], rt[cases[2][0]]))


def check_floor(R, where, raw, minimal, quick=False, halves=None):
    """The raw pair's round trip against the minimal pair's, measured in the same run: far
    above it, the harness slows every case down and every ratio is too kind.  A full run
    then fails (exit 3); a --quick run (a few samples, a smoke test) only says so.
    ``halves``: the round trips of the raw client with the minimal server and of the
    minimal client with the raw server; each is checked too, and says which side it is."""
    floor = ratio(raw, minimal)
    R.setdefault("floor", {})[where] = floor
    # (a nan fails each check: a floor we could not measure is no floor)
    failed = [] if floor <= FLOOR_SLACK else ["the raw pair's round trip is %.2f x the minimal pair's "
                                              "(allowed: %.2f x)" % (floor, FLOOR_SLACK)]
    said = "raw pair %.2f x" % floor
    if halves is not None:
        client, server = ratio(halves[0], minimal), ratio(halves[1], minimal)
        R.setdefault("floor_halves", {})[where] = {"raw_client": client, "raw_server": server}
        said += ", raw client half %.2f x, raw server half %.2f x" % (client, server)
        for half, what in ((client, "the raw client with the minimal server (the client every "
                                    "\"raw client\" case uses)"),
                           (server, "the minimal client with the raw server (the baseline every "
                                    "ratio divides by)")):
            if not half <= HALF_SLACK:
                failed.append("%s is %.2f x the minimal pair (allowed: %.2f x)" % (what, half, HALF_SLACK))
    said = "%s the minimal pair's %.1f us (allowed %.2f x per half, %.2f x the pair)" % (
        said, minimal * 1e6, HALF_SLACK, FLOOR_SLACK)
    if not failed:
        print("floor check (%s): %s" % (where, said))
        return True
    print("\n!!! FLOOR CHECK FAILED (%s): %s. The harness is slowing every case down, or the "
          "baseline is; the ratios above are too kind.%s\n    measured: %s"
          % (where, "; ".join(failed), " (--quick: too few samples to fail the run)" if quick else "", said))
    if not quick:
        R.setdefault("floor_failed", []).append(where)
    return False


def fig_throughput(P, servers, cpu, R):
    cases = [("(a) raw thread server, handler per message", "raw"),
             ("(c) asyncio Protocol server, handler per message", "asyncio"),
             ("ours: TCPServer stateChanged MESSAGE", "tcpserver"),
             ("ours: engine Listener message_received", "listener")]
    C = P["throughput"]
    res = interleaved("throughput", [(l, "raw", k) for l, k in cases], servers, dict(n=C["n"], reps=1),
                      C["reps"], cpu, "rates")
    base_a = med(res[cases[0][0]].get("rates", []))
    base_c = med(res[cases[1][0]].get("rates", []))
    t = Table("Figure 3: one-way throughput, 100-byte messages from a raw client (%s), median of %d "
              "interleaved runs of %d"
              % (pin_label(cpu), P["throughput"]["reps"], P["throughput"]["n"]),
              ["case", "median M msg/s", "failures", "x (a)", "x (c)"])
    for label, sk in cases:
        r = res[label]
        m = med(r.get("rates", []))
        ours = label.startswith("ours")
        t.add(label, fmt(m / 1e6, ".3f") if r["rates"] else r["errors"][0], r["fails"] + len(r["errors"]),
              fmt(ratio(m, base_a), ".2f") if ours else "", fmt(ratio(m, base_c), ".2f") if ours else "")
        R.setdefault("throughput", {}).setdefault(pin_label(cpu), {})[label] = {
            "median_msgs_per_s": m, "fails": r["fails"], "errors": r["errors"]}
    t.show()


def fig_bulk(P, servers, R):
    small, large = P["bulk"]["sizes"]
    cases = [("(a) raw client -> raw server", "raw", "raw"),
             ("(c) raw client -> asyncio server", "raw", "asyncio"),
             ("ours: TCPClient -> TCPServer", "tcpclient", "tcpserver")]
    res = dict((label, {}) for label, _, _ in cases)
    for _ in range(P["bulk"]["reps"]):  # interleaved rounds; medians
        for label, ck, sk in cases:
            r = client("bulk", ck, servers[sk].port, dict(sizes=P["bulk"]["sizes"]), None)
            for k, v in r.items():
                if k == "error":
                    res[label]["error"] = v
                else:
                    res[label].setdefault(k, []).extend(v)
    for label in res:
        for k in list(res[label]):
            if k != "error":
                res[label][k] = med(res[label][k])
    cols = ["case"]
    for d in ("up", "down"):
        cols += ["%s %d MiB s" % (d, small), "%s %d MiB s" % (d, large), "%s %d/%d" % (d, large, small)]
    cols += ["x (a)", "x (c)"]
    t = Table("Figure 4: bulk, one message each way (unpinned), median of %d interleaved runs"
              % P["bulk"]["reps"], cols)
    a, c = res[cases[0][0]], res[cases[1][0]]

    def total(r):
        try:
            return sum(r["%s%d" % (d, s)] for d in ("up", "down") for s in (small, large))
        except KeyError:
            return None

    for label, ck, sk in cases:
        r = res[label]
        if "error" in r:
            t.add(label, r["error"], *([""] * (len(cols) - 2)))
            continue
        cells = [label]
        for d in ("up", "down"):
            x, y = r.get("%s%d" % (d, small)), r.get("%s%d" % (d, large))
            cells += [fmt(x, ".3f"), fmt(y, ".3f"), fmt(ratio(y, x), ".2f")]
        ours = label.startswith("ours")
        cells += [fmt(ratio(total(r), total(a)), ".2f") if ours else "",
                  fmt(ratio(total(r), total(c)), ".2f") if ours else ""]
        t.add(*cells)
        R.setdefault("bulk", {})[label] = dict(r, total=total(r))
    t.show()


def fig_concurrency(P, R):
    """Figure 5: a burst.  Every client connects at the same moment: the client job issues all N
    non-blocking connects before it waits for any (one selector thread), then each connection
    makes ``rounds`` round trips.  The servers keep their own backlogs: the baselines 2,048,
    ours the Listener's default (what a program that keeps the defaults gets).  A connection
    that errs, or is not done by the job's deadline, is a failure."""
    C = P["concurrency"]
    kinds = [("(a) raw thread per connection, backlog %d" % BACKLOG, "raw"),
             ("(c) asyncio Protocol, backlog %d" % BACKLOG, "asyncio"),
             ("ours: engine Listener, default backlog", "listener")]
    t = Table("Figure 5: a burst of N connections at the same moment, then %d round trips each (unpinned; "
              "median of %d runs, each against a fresh server process; client: all connects issued "
              "before any is waited for, one selector thread; deadline %d s)"
              % (C["rounds"], C["reps"], C["deadline"]),
              ["N", "server", "time s", "connect s", "connections/s", "round trips/s", "failures",
               "peak RSS MiB", "peak threads", "server CPU s", "conn/s x (a)", "rt/s x (a)", "RSS x (a)"])
    for n in C["sizes"]:
        runs = dict((label, []) for label, _ in kinds)
        stats = dict((label, []) for label, _ in kinds)
        for _ in range(C["reps"]):  # a fresh server process per run, servers interleaved
            for label, sk in kinds:
                srv = Server(sk)
                runs[label].append(client("concurrency", "raw", srv.port,
                                          dict(n=n, rounds=C["rounds"], deadline=C["deadline"]), None))
                stats[label].append(srv.stop())
        rows = {}
        for label, sk in kinds:
            ok = [r for r in runs[label] if "error" not in r]
            rows[label] = {
                "time": med([r["time"] for r in ok]),
                "connect_s": med([r["connect_time"] for r in ok]),
                "conn_per_s": med([n / r["time"] for r in ok if r["time"] > 0]),
                "rtps": med([r["round_trips"] / r["rt_time"] for r in ok if r["rt_time"] > 0]),
                "fails": sum(r["fails"] for r in ok) + (len(runs[label]) - len(ok)) * n,
                "rss_mib": med([st.get("hwm_kb", 0) / 1024.0 for st in stats[label]]),
                "threads": max(st.get("threads_peak", 0) for st in stats[label]),
                "server_cpu_s": med([st.get("cpu_s", 0) for st in stats[label]]),
                "fail_kinds": merged_kinds(ok),
                "errors": [r["error"] for r in runs[label] if "error" in r]}
        a = rows[kinds[0][0]]
        for label, sk in kinds:
            r = rows[label]
            ours = label.startswith("ours")
            t.add(n, label, fmt(r["time"], ".2f"), fmt(r["connect_s"], ".2f"), fmt(r["conn_per_s"], ".0f"),
                  fmt(r["rtps"], ".0f"), r["fails"], fmt(r["rss_mib"], ".1f"), r["threads"],
                  fmt(r["server_cpu_s"], ".2f"),
                  fmt(ratio(r["conn_per_s"], a["conn_per_s"]), ".2f") if ours else "",
                  fmt(ratio(r["rtps"], a["rtps"]), ".2f") if ours else "",
                  fmt(ratio(r["rss_mib"], a["rss_mib"]), ".2f") if ours else "")
            R.setdefault("concurrency", {}).setdefault(str(n), {})[sk] = dict(r, label=label)
    t.show()
    for n, row in sorted(R.get("concurrency", {}).items(), key=lambda kv: int(kv[0])):
        for sk, r in sorted(row.items()):
            if r["fail_kinds"]:
                print("failures, N %s, %s: %s" % (n, r["label"], ", ".join(
                    "%d %s" % (c, why) for why, c in sorted(r["fail_kinds"].items()))))


def merged_kinds(results):
    """The failures of several client jobs, by kind (the jobs' ``fail_kinds``)."""
    kinds = {}
    for r in results:
        for why, c in r.get("fail_kinds", {}).items():
            kinds[why] = kinds.get(why, 0) + c
    return kinds


def fig_http(P, R):
    for keep in (False, True):
        _fig_http(P, R, keep)


def proc_cpu_s(pid):
    """CPU seconds (user + system, all threads) a live process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def _fig_http(P, R, keep):
    H = dict(P["http"], keepalive=keep)
    mode = "keep-alive where the server allows it" if keep else "a new connection per request"
    kinds = [("ThreadingHTTPServer (standard library)", "http-threading"),
             ("(a) raw thread per connection", "http-raw"), ("(c) asyncio Protocol", "http-asyncio"),
             ("ours: tcpcom.http HTTPServer", "http-tcpcom"),
             ("ours: tcpcom.httpserver HTTPListener", "http-listener")]
    t = Table("Figure 6%s: HTTP, a small page, %d requests from %d client threads in %d process(es), %s "
              "(unpinned; median of %d interleaved rounds; server CPU: its user + system time per request; "
              "switches: the server's context switches per request, all threads)"
              % ("b" if keep else "", H["n"], H["threads"], H.get("procs", 1), mode, H["rounds"]),
              ["server", "requests/s", "failures", "server CPU us/request", "switches/request",
               "x ThreadingHTTPServer", "CPU x ThreadingHTTPServer", "x (a)", "x (c)"])
    rows = {}
    notes = []
    for _ in range(H["rounds"]):  # interleaved rounds, a fresh server each; medians
        for label, sk in kinds:
            if label in rows and rows[label] is None:
                continue
            try:
                srv = Server(sk)
            except Unavailable as e:
                notes.append("NOTE: figure 6 row %r skipped: %s is not importable yet (%s)"
                             % (label, "tcpcom.http" if sk == "http-tcpcom" else "tcpcom.httpserver", e))
                rows[label] = None
                continue
            cpu0 = proc_cpu_s(srv.proc.pid)
            r = client("http", "raw", srv.port, dict(H, n=H["n"] // H["rounds"]), None)
            cpu = proc_cpu_s(srv.proc.pid) - cpu0  # the requests only, not the server's start
            srv.stop()
            acc = rows.setdefault(label, {"rps_all": [], "cpu_us_all": [], "switches_all": [], "fails": 0, "ok": 0})
            if "error" in r:
                acc["error"] = r["error"]
            else:
                acc["rps_all"].append(r["rps"])
                if r["ok"]:
                    acc["cpu_us_all"].append(cpu / r["ok"] * 1e6)
                    if "switches" in srv.stats:
                        acc["switches_all"].append(srv.stats["switches"] / float(r["ok"]))
                acc["fails"] += r["fails"]
                acc["ok"] += r["ok"]
    for r in rows.values():
        if r is not None:
            r["rps"] = med(r["rps_all"])
            r["cpu_us"] = med(r["cpu_us_all"])
            r["switches"] = med(r["switches_all"])
    base = lambda k, key="rps": (rows.get(kinds[k][0]) or {}).get(key)  # noqa: E731
    for label, sk in kinds:
        r = rows[label]
        if r is None:
            t.add(label, "skipped: not importable", "", "", "", "", "", "", "")
            continue
        ours = label.startswith("ours")
        t.add(label, fmt(r.get("rps"), ".0f") if "error" not in r else r["error"], r.get("fails", "-"),
              fmt(r.get("cpu_us"), ".0f"), fmt(r.get("switches"), ".1f"),
              fmt(ratio(r.get("rps"), base(0)), ".2f") if ours else "",
              fmt(ratio(r.get("cpu_us"), base(0, "cpu_us")), ".2f") if ours else "",
              fmt(ratio(r.get("rps"), base(1)), ".2f") if ours else "",
              fmt(ratio(r.get("rps"), base(2)), ".2f") if ours else "")
        R.setdefault("http-keepalive" if keep else "http", {})[label] = r
    t.show()
    for n in notes:
        print(n)


def targets(R):
    print()
    print("## Targets (ratios from this run)")
    out = []

    def line(name, value, ok):
        out.append((name, value, ok))
        print("- %-64s %-26s %s" % (name, value, "met" if ok else ("MISSED" if ok is False else "n/a")))

    pinned = pin_label(CPU)
    for pl in (pinned, "unpinned"):
        c = R.get("connect", {}).get(pl, {})
        m = [v["median_ms"] for k, v in c.items() if k.startswith("ours")]
        if m:
            line("connect() median <= 100 ms (%s; 80 ms of it the occupied wait)" % pl, "%.2f ms (worst row)" % max(m),
                 max(m) <= 100)
    rt = R.get("roundtrip", {}).get(pinned, {})  # issue 15's ratios: pinned, medians of every round trip
    raw = rt.get("(a) raw client -> raw server", {}).get("median_us")
    for label, limit in (("ours: raw client -> TCPServer", 1.2), ("ours: raw client -> Listener", 1.2),
                         ("ours: TCPClient -> TCPServer (end to end)", 1.5),
                         ("ours: engine request() -> Listener", 1.5)):
        if label in rt and raw:
            x = ratio(rt[label]["median_us"], raw)
            line("round trip %s <= %.1f x raw (a) (pinned)" % (label[6:], limit), "%.2f x" % x, x <= limit)
    tp = R.get("throughput", {}).get(pinned, {})
    if tp:
        raw = tp["(a) raw thread server, handler per message"]["median_msgs_per_s"]
        for label, limit in (("ours: engine Listener message_received", 0.9),
                             ("ours: TCPServer stateChanged MESSAGE", 1.0)):
            x = ratio(tp[label]["median_msgs_per_s"], raw)
            line("throughput %s >= %.1f x raw (a) (pinned)" % (label[6:], limit), "%.2f x" % x, x >= limit)
        x = ratio(tp["ours: TCPServer stateChanged MESSAGE"]["median_msgs_per_s"],
                  tp["(c) asyncio Protocol server, handler per message"]["median_msgs_per_s"])
        line("throughput TCPServer >= 0.8 x asyncio (pinned)", "%.2f x" % x, x >= 0.8)
    b = R.get("bulk", {})
    if b:
        ours, raw = b.get("ours: TCPClient -> TCPServer"), b.get("(a) raw client -> raw server")
        if ours and raw:
            x = ratio(ours["total"], raw["total"])
            line("bulk <= 1.3 x raw (a)", "%.2f x" % x, x <= 1.3)
            keys = sorted(k for k in ours if k.startswith("up") or k.startswith("down"))
            sizes = sorted({int(k.lstrip("updown")) for k in keys})
            worst = max(ratio(ours["%s%d" % (d, sizes[-1])], ours["%s%d" % (d, sizes[0])])
                        for d in ("up", "down"))
            line("bulk %d MiB <= 4.5 x %d MiB" % (sizes[-1], sizes[0]), "%.2f x (worst way)" % worst,
                 worst <= 4.5)
    cc = R.get("concurrency", {})
    if cc:
        n = max(cc, key=int)
        ours, raw = cc[n]["listener"], cc[n]["raw"]
        line("burst of %s connections, default backlog: no failures" % n, "%d failures" % ours["fails"],
             ours["fails"] == 0)
        x = ratio(ours["conn_per_s"], raw["conn_per_s"])
        line("burst of %s connections: connections/s >= 0.9 x raw (a)" % n, "%.2f x" % x, x >= 0.9)
        x = ratio(ours["rss_mib"], raw["rss_mib"])
        line("burst of %s connections: peak RSS <= 1.1 x raw (a)" % n, "%.2f x" % x, x <= 1.1)
    sc = R.get("scale", {}).get("rows")
    if sc:
        ours, raw = sc["listener"], sc["raw"]
        line("%d simultaneous connections to one Listener: no failures" % ours["n"],
             "%d failures (raw: %d)" % (ours["fails"], raw["fails"]), ours["fails"] == 0)
    for key, mode in (("http", "new connections"), ("http-keepalive", "keep-alive")):
        h = R.get(key, {})
        base = h.get("ThreadingHTTPServer (standard library)")
        for k in ("ours: tcpcom.http HTTPServer", "ours: tcpcom.httpserver HTTPListener"):
            name = "HTTP >= 1.5 x ThreadingHTTPServer (%s, %s)" % (k[6:].split()[-1], mode)
            if k in h and base:
                x = ratio(h[k].get("rps"), base.get("rps"))
                line(name, "%.2f x" % x, x >= 1.5)
            elif base:
                line(name, "skipped: not importable", None)
    R["targets"] = [{"target": n, "value": v, "met": ok} for n, v, ok in out]


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "python": platform.python_version(), "cpu": model,
            "loadavg": " ".join("%.2f" % x for x in os.getloadavg())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny counts: a smoke test (< 30 s)")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--only", help="comma-separated figure numbers to run (default: all)")
    args = ap.parse_args(argv)
    P = QUICK if args.quick else FULL
    only = set(int(x) for x in args.only.split(",")) if args.only else set(range(1, 8))
    can_pin = hasattr(os, "sched_setaffinity") and CPU in os.sched_getaffinity(0)
    M = machine()
    print("# tcpcom bench %s: %s, nproc %s, Python %s, %s, load average %s" % (
        "--quick" if args.quick else "(full)", M["date"], M["nproc"], M["python"], M["cpu"], M["loadavg"]))
    print("ratios are ours / baseline: for times lower is better, for rates higher is better")
    R = {"machine": M, "quick": args.quick}
    t0 = time.time()
    cpus = [CPU, None] if can_pin else [None]
    if args.quick:  # a smoke test: one placement is enough
        cpus = cpus[:1]
    for cpu in cpus:
        if not only & {1, 2, 3}:
            break
        servers = start_servers(["minimal", "raw", "asyncio", "tcpserver", "listener"], cpu)
        try:
            if 1 in only:
                fig_connect(P, servers, cpu, R)
            if 2 in only:
                fig_roundtrip(P, servers, cpu, R)
            if 3 in only:
                fig_throughput(P, servers, cpu, R)
        finally:
            stop_all(servers)
    if 4 in only:
        servers = start_servers(["raw", "asyncio", "tcpserver"], None)
        try:
            fig_bulk(P, servers, R)
        finally:
            stop_all(servers)
    if 5 in only:
        fig_concurrency(P, R)
    if 6 in only:
        fig_http(P, R)
    if 7 in only:
        import scale
        scale.fig_scale(scale.QUICK if args.quick else scale.FULL, R)
    targets(R)
    status = finish(R, t0, args.json)
    if R.get("floor_failed"):
        print("bench FAILED: the floor check failed (%s); see above" % ", ".join(R["floor_failed"]))
        return 3
    return status


def finish(R, t0, json_path, say=print):
    """Every bench ends so: how long it took, the load average then, the figures as JSON."""
    R["seconds"] = time.time() - t0
    R["loadavg_end"] = " ".join("%.2f" % x for x in os.getloadavg())
    say("\nbench took %.1f s; load average now %s" % (R["seconds"], R["loadavg_end"]))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(R, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
