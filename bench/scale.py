#!/usr/bin/env python3
"""Figure 7: 10,000 simultaneous connections to one engine Listener, against raw threads.

``python3 bench/scale.py [--quick] [--n N] [--json FILE]``; ``bench/run.py --only 7``
runs the same figure.  A plugin that talks to every device in a building
holds a connection to each: one client process opens N connections in a burst
(every non-blocking connect issued before any is waited for), each makes
``rounds`` round trips, and all N stay open until every one is done, so the
server's peak holds N connections at once.  Reported per server: time,
failures, peak RSS (VmHWM) and peak RSS per connection (above the server's RSS
before the first connection), peak threads, server CPU.  Both servers run
against the same client job in fresh processes, interleaved.

The bench raises its processes' file limit (RLIMIT_NOFILE, bench/workers.py
``raise_nofile``), never the library.  N connections need N client ports
(fine on 127.0.0.1) and, for a thread-per-connection server, N threads: the
limits that can stop it (threads-max, pid_max, RLIMIT_NPROC, vm.max_map_count,
memory, net.core.somaxconn for the burst) are printed with the figure.
Every run is bounded by the job's deadline.
"""
from __future__ import print_function

import argparse
import os
import resource
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402
from run import BACKLOG, Server, Table, client, fmt, med, ratio  # noqa: E402

FULL = dict(n=10000, rounds=1, reps=1, deadline=120)  # one run each: 10,000 threads load the whole machine
QUICK = dict(n=200, rounds=1, reps=1, deadline=30)
#: the Listener's max_connections in the bench (bench/workers.py MAX_CONNECTIONS): above N,
#: since the default (4,096) refuses the rest by design
MAX_CONNECTIONS = 16384


def _read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except (IOError, OSError):
        return None


def limits():
    """What can stop N connections or N threads on this machine (None: not known here)."""
    out = {}
    for name, path in (("somaxconn", "/proc/sys/net/core/somaxconn"),
                       ("threads_max", "/proc/sys/kernel/threads-max"),
                       ("pid_max", "/proc/sys/kernel/pid_max"),
                       ("max_map_count", "/proc/sys/vm/max_map_count")):
        v = _read(path)
        out[name] = int(v[0]) if v else None
    ports = _read("/proc/sys/net/ipv4/ip_local_port_range")
    out["client_ports"] = int(ports[1]) - int(ports[0]) + 1 if ports else None
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    out["nproc"] = None if nproc == resource.RLIM_INFINITY else nproc
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # the workers raise their soft limit to it
    out["nofile_hard"] = None if nofile == resource.RLIM_INFINITY else nofile
    out["mem_available_mib"] = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    out["mem_available_mib"] = int(line.split()[1]) // 1024
    except (IOError, OSError):
        pass
    return out


class ProcWatch(object):
    """The server process's peak RSS, peak threads and CPU, read from /proc by this process.

    Not asked of the server itself: with 10,000 threads waking at once (all the
    connections end together) its main thread waited minutes for the GIL before it
    could answer; the kernel's counters need no GIL."""

    def __init__(self, pid):
        self.pid = pid
        self.rss_start_kb = self._field("VmRSS")
        self.threads_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.daemon = True
        self._thread.start()

    def _field(self, name):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith(name + ":"):
                        return int(line.split()[1])
        except (IOError, OSError):
            pass
        return 0

    def _sample(self):
        while not self._stop.is_set():
            self.threads_peak = max(self.threads_peak, self._field("Threads"))
            self._stop.wait(0.01)

    def stats(self):
        """Stop sampling; the stats as the server would report them."""
        self._stop.set()
        self._thread.join(5)
        ticks = os.sysconf("SC_CLK_TCK")
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / float(ticks)  # utime, stime
        except (IOError, OSError, IndexError, ValueError):
            cpu_s = 0.0
        return {"hwm_kb": self._field("VmHWM"), "threads_peak": max(self.threads_peak, self._field("Threads")),
                "cpu_s": cpu_s, "rss_start_kb": self.rss_start_kb}


def _short(label):
    return label.split(",")[0]


def fig_scale(S, R):
    n = S["n"]
    kinds = [("(a) raw thread per connection, backlog %d" % BACKLOG, "raw"),
             ("ours: engine Listener, default backlog, max_connections %d" % MAX_CONNECTIONS, "listener")]
    lim = limits()
    print("\nlimits: %s" % ", ".join("%s %s" % (k, "?" if v is None else v) for k, v in sorted(lim.items())))
    problems = []
    if lim["nofile_hard"] is not None and lim["nofile_hard"] < n + 100:
        problems.append("RLIMIT_NOFILE hard limit %d < %d connections" % (lim["nofile_hard"], n))
    for key, what in (("threads_max", "kernel.threads-max"), ("pid_max", "kernel.pid_max (all threads of "
                      "the machine)"), ("nproc", "RLIMIT_NPROC (ulimit -u, threads of this user)")):
        if lim[key] is not None and lim[key] < n + 100:
            problems.append("%s is %d < %d threads" % (what, lim[key], n))
    if lim["max_map_count"] is not None and lim["max_map_count"] < 2 * n + 1000:
        problems.append("vm.max_map_count %d < %d (two maps per thread stack)" % (lim["max_map_count"], 2 * n))
    if lim["client_ports"] is not None and lim["client_ports"] < n:
        problems.append("only %d client ports (net.ipv4.ip_local_port_range)" % lim["client_ports"])
    for p in problems:
        print("LIMIT: %s" % p)
    load = " ".join("%.1f" % x for x in os.getloadavg())
    runs = dict((sk, []) for _, sk in kinds)
    stats = dict((sk, []) for _, sk in kinds)
    for _ in range(S["reps"]):  # a fresh server process per run, servers interleaved
        for label, sk in kinds:
            srv = Server(sk)
            watch = ProcWatch(srv.proc.pid)
            runs[sk].append(client("concurrency", "raw", srv.port,
                                   dict(n=n, rounds=S["rounds"], deadline=S["deadline"]), None,
                                   timeout=S["deadline"] + 60))
            stats[sk].append(watch.stats())  # before the client's exit ends every connection at once
            srv.stop(S["deadline"])
    t = Table("Figure 7: %d simultaneous connections to one server, %d round trip%s each, all held open "
              "until every one is done (unpinned; median of %d runs, fresh server processes; burst connect; "
              "deadline %d s; load average at start %s)"
              % (n, S["rounds"], "" if S["rounds"] == 1 else "s", S["reps"], S["deadline"],
                 load),
              ["server", "time s", "connect s", "failures", "peak RSS MiB", "KiB per connection",
               "peak threads", "server CPU s", "time x (a)", "RSS x (a)", "KiB/conn x (a)"])
    rows = {}
    for label, sk in kinds:
        ok = [r for r in runs[sk] if "error" not in r]
        sts = stats[sk]
        rows[sk] = {
            "n": n, "label": label,
            "time": med([r["time"] for r in ok]),
            "connect_s": med([r["connect_time"] for r in ok]),
            "fails": sum(r["fails"] for r in ok) + (len(runs[sk]) - len(ok)) * n,
            "served": sum(r["round_trips"] for r in ok),
            "rss_mib": med([st.get("hwm_kb", 0) / 1024.0 for st in sts]),
            "kib_per_conn": med([(st.get("hwm_kb", 0) - st.get("rss_start_kb", 0)) / float(n) for st in sts]),
            "threads": max([st.get("threads_peak", 0) for st in sts] or [0]),
            "server_cpu_s": med([st.get("cpu_s", 0) for st in sts]),
            "fail_kinds": run.merged_kinds(ok),
            "errors": [r["error"] for r in runs[sk] if "error" in r]}
    a = rows["raw"]
    for label, sk in kinds:
        r = rows[sk]
        ours = sk != "raw"
        t.add(label, fmt(r["time"], ".2f") if not r["errors"] else r["errors"][0], fmt(r["connect_s"], ".2f"),
              r["fails"], fmt(r["rss_mib"], ".1f"), fmt(r["kib_per_conn"], ".1f"), r["threads"],
              fmt(r["server_cpu_s"], ".1f"), fmt(ratio(r["time"], a["time"]), ".2f") if ours else "",
              fmt(ratio(r["rss_mib"], a["rss_mib"]), ".2f") if ours else "",
              fmt(ratio(r["kib_per_conn"], a["kib_per_conn"]), ".2f") if ours else "")
    t.show()
    for label, sk in kinds:
        r = rows[sk]
        if r["fail_kinds"]:
            print("failures, %s: %s" % (_short(label), ", ".join(
                "%d %s" % (c, why) for why, c in sorted(r["fail_kinds"].items()))))
        if r["fails"] and r["threads"] < n:
            print("NOTE: %s: %d failures; its peak was %d threads for %d connections (a thread per connection): "
                  "see the limits above, the deadline, and the load average"
                  % (_short(label), r["fails"], r["threads"], n))
    R["scale"] = {"limits": lim, "limit_problems": problems, "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="%d connections: a smoke test" % QUICK["n"])
    ap.add_argument("--n", type=int, help="connections (default %d)" % FULL["n"])
    ap.add_argument("--reps", type=int, help="runs per server (default %d)" % FULL["reps"])
    ap.add_argument("--json", help="also write every number to this file")
    args = ap.parse_args(argv)
    S = dict(QUICK if args.quick else FULL)
    if args.n:
        S["n"] = args.n
    if args.reps:
        S["reps"] = args.reps
    M = run.machine()
    print("# tcpcom scale bench: %s, nproc %s, Python %s, load average %s"
          % (M["date"], M["nproc"], M["python"], M["loadavg"]))
    R = {"machine": M, "quick": args.quick}
    t0 = time.time()
    fig_scale(S, R)
    return run.finish(R, t0, args.json)


if __name__ == "__main__":
    sys.exit(main())
