"""Every Python example in README.md and docs/**/*.md runs, and prints what the page shows (issue 17).

The convention (docs-common of issue 17; the pages follow it, this file enforces it):

- Every ```` ```python ```` fence is a whole program, marked by an HTML comment right before it
  (blank lines between are fine)::

      <!-- example: NAME -->               run with python3; must exit 0 within TIMEOUT s
      <!-- example: NAME server -->        keeps running: started first, waited for until it
                                           listens, stopped with SIGINT (one Ctrl-C) at the end
      <!-- example: NAME with=SERVER -->   run to completion while SERVER (same page) runs

  Extra words this runner understands: ``timeout=SECONDS`` (instead of TIMEOUT) and
  ``traceback`` (the program is meant to print a traceback on stderr; without it a
  ``Traceback (most recent call last)`` on stderr fails the example, because a callback
  that raises is only logged and the program would still exit 0).
- NAME is unique across README and docs; README's start with ``readme-``, docs/de's with
  ``de-``, docs/xtcompat's with ``xt-``, docs/engine's with ``engine-``.
- The numbers 5000-5099 in an example are ports: each is replaced by a free port, the same
  one for the same number everywhere on a page; in the program's output the free port is
  turned back into the number the page shows.
- What a program prints is shown after its fence (right after it, or after a sentence: the
  comment names the example, which must be above it on the same page)::

      <!-- output: NAME -->            (or <!-- output: NAME subset -->)
      ```text
      ...
      ```

  Without ``subset`` stdout must be exactly these lines; with it, these lines in this order
  with others in between.  Trailing spaces and blank lines at the end do not count.  A
  server's output is checked after it was stopped.

How it runs: a page is one unit (its examples share port numbers), run in document order:
first the examples without a server, then each server with the examples that name it.
Pages run in parallel (``TCPCOM_DOC_JOBS``, default 3).  Each program runs as
``sys.executable NAME.py`` in a scratch folder with PYTHONPATH = the repository, in a
session of its own (so a stray child is killed with it) and with Ctrl-C at its default.
A server counts as started when each of its ports has a listening TCP socket or a
bound UDP socket of its own in /proc/net (never connecting to it: a one-client server
would see a client); without /proc, a short TCP connect is tried instead.

One test per example (the test id is its name), one test for the markup (every python
fence marked, names unique, ``with=`` naming a server of the same page, outputs after
their examples), and tests that feed the core broken Markdown and check that it says so.
"""
from __future__ import print_function

import collections
import glob
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: seconds an example may take (the convention: "must exit 0 within ~20 s")
TIMEOUT = 20.0
#: seconds a server may take to listen, and to end after SIGINT
SERVER_START = 20.0
SERVER_STOP = 10.0
#: a listening server counts as ready once its stdout has not grown for this long: listening
#: comes in the middle of a line like ``TCPServer(...)`` (which still posts LISTENING), and a
#: Ctrl-C there would interrupt that line, not the ``loopForever()`` after it
SERVER_SETTLE = 0.1
#: pages run at the same time (each runs its own examples one after another)
JOBS = int(os.environ.get("TCPCOM_DOC_JOBS", "3"))

PORT_RE = re.compile(r"(?<![\w.])(50\d\d)(?![\w])")
FENCE_RE = re.compile(r"^( *)(`{3,}|~{3,})\s*(.*?)\s*$")
COMMENT_RE = re.compile(r"^\s*<!--\s*(example|output)\s*:\s*(.*?)\s*-->\s*$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PYTHON_INFOS = ("python", "python3", "py", "py3")
DIRECTIVES = ("{code-block}", "{code}", "{sourcecode}")
PREFIXES = [("README.md", "readme-"), ("docs/de/", "de-"), ("docs/xtcompat/", "xt-"),
            ("docs/engine/", "engine-")]


class Example(object):
    """One ```python fence of a page and what its comments say about it."""

    def __init__(self, name, page, line, code):
        self.name, self.page, self.line, self.code = name, page, line, code
        self.server = False
        self.with_ = None
        self.timeout = TIMEOUT
        self.traceback = False
        self.output = None      # the lines the page shows, or None
        self.subset = False

    def where(self):
        return "%s:%d" % (self.page, self.line)


def _is_python(info):
    words = info.split()
    if not words:
        return False
    if words[0].lower() in PYTHON_INFOS:
        return True
    return words[0] in DIRECTIVES and len(words) > 1 and words[1].lower() in PYTHON_INFOS


def parse(text, page):
    """The examples of one Markdown page, and the problems of its markup: ([Example], [str])."""
    lines = text.splitlines()
    examples, problems = [], []
    pending = None        # (line number, words) of an example comment waiting for its fence
    pending_output = None  # (line, example, subset) of an output comment waiting for its text fence
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        fence = FENCE_RE.match(line)
        comment = COMMENT_RE.match(line)
        if not line.strip():
            i += 1
            continue
        if fence:
            indent, mark, info = len(fence.group(1)), fence.group(2), fence.group(3)
            body, j = [], i + 1
            closer = re.compile(r"^ *" + re.escape(mark[0]) + "{%d,}\\s*$" % len(mark))
            while j < len(lines) and not closer.match(lines[j]):
                body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
                j += 1
            if j == len(lines):
                problems.append("%s:%d: the fence is never closed" % (page, number))
            code = "\n".join(body) + "\n"
            if pending_output is not None:
                at, example, subset = pending_output
                pending_output = None
                if info.split()[:1] != ["text"]:
                    problems.append("%s:%d: the output of %s must be a ```text fence" % (page, number, example.name))
                else:
                    example.output, example.subset = body, subset
            elif _is_python(info):
                if info.split()[0] in DIRECTIVES:
                    problems.append("%s:%d: write examples as plain ```python fences, not %s"
                                    % (page, number, info.split()[0]))
                if pending is None:
                    problems.append("%s:%d: a ```python fence without an <!-- example: NAME --> comment before it"
                                    % (page, number))
                else:
                    example = _example(pending, page, code, problems)
                    pending = None
                    if example is not None:
                        examples.append(example)
            else:
                if pending is not None:
                    problems.append("%s:%d: the example comment is followed by a ```%s fence, not ```python"
                                    % (page, pending[0], info))
                    pending = None
            i = j + 1
            continue
        if pending_output is not None:
            problems.append("%s:%d: the output comment of %s is not followed by a ```text fence"
                            % (page, pending_output[0], pending_output[1].name))
            pending_output = None
        if pending is not None:
            problems.append("%s:%d: the example comment is not followed by a ```python fence" % (page, pending[0]))
            pending = None
        if comment and comment.group(1) == "example":
            pending = (number, comment.group(2).split())
        elif comment:
            words = comment.group(2).split()
            above = dict((e.name, e) for e in examples)
            if not words or words[1:] not in ([], ["subset"]):
                problems.append("%s:%d: expected <!-- output: NAME --> or <!-- output: NAME subset -->, found %r"
                                % (page, number, line.strip()))
            elif words[0] not in above:
                problems.append("%s:%d: <!-- output: %s --> names no example above it on this page"
                                % (page, number, words[0]))
            elif above[words[0]].output is not None:
                problems.append("%s:%d: a second output of %s" % (page, number, words[0]))
            else:
                pending_output = (number, above[words[0]], words[1:] == ["subset"])
        i += 1
    if pending is not None:
        problems.append("%s:%d: the example comment is not followed by a ```python fence" % (page, pending[0]))
    if pending_output is not None:
        problems.append("%s:%d: the output comment of %s is not followed by a ```text fence"
                        % (page, pending_output[0], pending_output[1].name))
    return examples, problems


def _example(pending, page, code, problems):
    number, words = pending
    if not words or not NAME_RE.match(words[0]):
        problems.append("%s:%d: an example comment needs a NAME (letters, digits, - _ .)" % (page, number))
        return None
    example = Example(words[0], page, number, code)
    for word in words[1:]:
        key, _, value = word.partition("=")
        try:
            if word == "server":
                example.server = True
            elif word == "traceback":
                example.traceback = True
            elif key == "with" and value:
                example.with_ = value
            elif key == "timeout" and value:
                example.timeout = float(value)
            else:
                raise ValueError(word)
        except ValueError:
            problems.append("%s:%d: %s: unknown word %r in the example comment" % (page, number, example.name, word))
    if example.server and example.with_:
        problems.append("%s:%d: %s: a server cannot run with= another server" % (page, number, example.name))
    if example.server and not PORT_RE.search(code):
        problems.append("%s:%d: %s: a server example must use a port from 5000-5099 (the runner waits for it)"
                        % (page, number, example.name))
    return example


def collect(root):
    """README.md and docs/**/*.md of ``root``: ({page: [Example]}, [problem])."""
    pages = collections.OrderedDict()
    problems = []
    paths = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"),
                                                                   recursive=True))
    for path in paths:
        if not os.path.isfile(path) or "/_build/" in path.replace(os.sep, "/"):
            continue
        page = os.path.relpath(path, root).replace(os.sep, "/")
        with io.open(path, encoding="utf-8") as f:
            examples, found = parse(f.read(), page)
        problems.extend(found)
        if examples:
            pages[page] = examples
    problems.extend(check_names(pages))
    return pages, problems


def check_names(pages):
    problems, seen = [], {}
    for page, examples in pages.items():
        servers = dict((e.name, e) for e in examples if e.server)
        for e in examples:
            if e.name in seen:
                problems.append("%s: the name %s is taken already (%s)" % (e.where(), e.name, seen[e.name].where()))
            seen.setdefault(e.name, e)
            for prefix_page, prefix in PREFIXES:
                if page.startswith(prefix_page) and not e.name.startswith(prefix):
                    problems.append("%s: the examples of %s are named %s..., not %s" % (e.where(), page, prefix, e.name))
            if e.with_ is not None and e.with_ not in servers:
                problems.append("%s: %s runs with=%s, which is no server example of %s"
                                % (e.where(), e.name, e.with_, page))
    return problems


# --- running -------------------------------------------------------------------------------

class Result(object):
    """What running one example found: ``failures`` (empty: it passed), its output, its time."""

    def __init__(self, example, code=None):
        self.example = example
        self.code = example.code if code is None else code  # as run: the ports rewritten
        self.failures = []
        self.stdout = self.stderr = ""
        self.seconds = 0.0

    def fail(self, text):
        self.failures.append(text)

    def report(self):
        e = self.example
        out = ["%s (%s) failed after %.1f s:" % (e.name, e.where(), self.seconds)]
        out += ["  " + f for f in self.failures]
        out += ["--- the program as run ---", self.code,
                "--- its stdout ---", self.stdout, "--- its stderr ---", self.stderr]
        return "\n".join(out)


_given = set()
_given_lock = threading.Lock()


def _ephemeral_low():
    """The lowest port the system hands out by itself (bind to port 0, a client's own port)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


_EPHEMERAL_LOW = _ephemeral_low()
_random = random.Random()


def free_port():
    """A port free for TCP and UDP on every address, not handed out before in this run.

    An example binds its port a while after this returns. Taken from below the system's
    ephemeral range where it is known (Linux), so that a port 0 listener or an outgoing
    connection of another test running meanwhile (CI runs two suites at once) cannot take it
    in between: seen once, an example's server failing with "address already in use".
    """
    for _ in range(200):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if _EPHEMERAL_LOW is not None and _EPHEMERAL_LOW > 20000:
                try:
                    tcp.bind(("", _random.randrange(10000, _EPHEMERAL_LOW)))
                except socket.error:
                    continue
            else:
                tcp.bind(("", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("", port))
            except socket.error:
                continue
            with _given_lock:
                if port in _given:
                    continue
                _given.add(port)
            return port
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError("no free port found")


def rewrite(code, ports):
    return PORT_RE.sub(lambda m: str(ports[m.group(1)]), code)


def restore_ports(text, ports):
    for number, port in ports.items():
        text = re.sub(r"(?<!\d)%d(?!\d)" % port, number, text)
    return text


#: run first (``-I -S``: quick): Ctrl-C back at its default, whatever the runner had (a shell's
#: background job ignores SIGINT, and a Python started so would not raise KeyboardInterrupt)
TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
              "os.execv(sys.argv[1], sys.argv[1:])")


class Program(object):
    """One example run as ``python NAME.py`` in ``workdir``; its output in files."""

    def __init__(self, example, code, workdir):
        self.example = example
        self.path = os.path.join(workdir, example.name + ".py")
        with io.open(self.path, "w", encoding="utf-8") as f:
            f.write(code)
        self.out_path, self.err_path = self.path + ".stdout", self.path + ".stderr"
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1",
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONSTARTUP", None)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", TRAMPOLINE, sys.executable, self.path],
                                         cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)
        self.started = time.time()

    def signal(self, signum):
        try:
            os.killpg(self.proc.pid, signum)
        except OSError:  # already gone
            pass

    def kill(self):
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def output(self):
        with io.open(self.out_path, encoding="utf-8", errors="replace") as f:
            out = f.read()
        with io.open(self.err_path, encoding="utf-8", errors="replace") as f:
            err = f.read()
        return out, err


def _proc_sockets(kind):
    """{port: set(inode)} of the listening TCP (kind "tcp") or bound UDP ("udp") sockets; None without /proc."""
    found, any_file = collections.defaultdict(set), False
    for path in ("/proc/net/%s" % kind, "/proc/net/%s6" % kind):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except (IOError, OSError):
            continue
        any_file = True
        for row in rows:
            cols = row.split()
            if len(cols) < 10:
                continue
            if kind == "tcp" and cols[3] != "0A":  # LISTEN
                continue
            found[int(cols[1].rsplit(":", 1)[1], 16)].add(cols[9])
    return found if any_file else None


def _inodes(pid):
    """The socket inodes of process ``pid`` (and its session's children are not looked at), or None."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    return inodes


def listening(pid, ports):
    """Whether each of ``ports`` has a listening TCP or bound UDP socket (of ``pid`` where /proc says)."""
    tcp, udp = _proc_sockets("tcp"), _proc_sockets("udp")
    if tcp is None and udp is None:  # no /proc: knock once (the only way left)
        for port in ports:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
            except socket.error:
                return False
        return True
    mine = _inodes(pid)
    for port in ports:
        inodes = (tcp or {}).get(port, set()) | (udp or {}).get(port, set())
        if not inodes or (mine is not None and not inodes & mine):
            return False
    return True


def check(result, out, err, started_ok=True):
    """The checks after a program ended: the output the page shows, no unexpected traceback."""
    e = result.example
    if not e.traceback and "Traceback (most recent call last)" in _without_interrupt(err, e.server):
        result.fail("it printed a traceback on stderr (if the page means it to, add the word `traceback` "
                    "to its example comment)")
    if e.output is not None:
        got = [line.rstrip() for line in out.splitlines()]
        want = [line.rstrip() for line in e.output]
        while got and not got[-1]:
            got.pop()
        while want and not want[-1]:
            want.pop()
        if e.subset:
            it = iter(got)
            missing = [line for line in want if not any(line == g for g in it)]
            if missing:
                result.fail("its stdout lacks the shown line %r (or has the shown lines in another order)"
                            % missing[0])
        elif got != want:
            diff = [(n + 1, w, g) for n, (w, g) in enumerate(zip(want + [None] * len(got), got + [None] * len(want)))
                    if w != g][:1]
            n, w, g = diff[0]
            result.fail("its stdout differs from the shown output at line %d: shown %r, printed %r" % (n, w, g))


def _without_interrupt(err, server):
    """A server's stderr without the KeyboardInterrupt traceback that SIGINT may print."""
    if not server:
        return err
    parts = err.split("Traceback (most recent call last)")
    return "Traceback (most recent call last)".join(p for p in parts if "KeyboardInterrupt" not in p)


def run_to_end(example, code, workdir, ports):
    result = Result(example, code)
    program = Program(example, code, workdir)
    try:
        code_ = program.proc.wait(example.timeout)
    except subprocess.TimeoutExpired:
        program.kill()
        result.fail("it did not end within %g s (killed)" % example.timeout)
        code_ = None
    result.seconds = time.time() - program.started
    out, err = program.output()
    result.stdout, result.stderr = restore_ports(out, ports), err
    if code_ is not None and code_ != 0:
        result.fail("exit status %d" % code_)
    if not result.failures:
        check(result, result.stdout, err)
    return result


def run_page(examples, ports, workdir):
    """Run one page's examples (in document order: the plain ones, then each server with its
    clients); {name: Result}."""
    results = collections.OrderedDict()
    plain = [e for e in examples if not e.server and e.with_ is None]
    for e in plain:
        results[e.name] = run_to_end(e, rewrite(e.code, ports), workdir, ports)
    for server in (e for e in examples if e.server):
        clients = [e for e in examples if e.with_ == server.name]
        results.update(run_server(server, clients, ports, workdir))
    for e in examples:  # with= a server that is not there: check_names reports it; here it did not run
        if e.name not in results:
            r = results[e.name] = Result(e)
            r.fail("it did not run: with=%s names no server example of this page" % e.with_)
    return results


def wait_settled(program, deadline):
    """Wait until ``program``'s stdout has not grown for SERVER_SETTLE s (or it ended, or the deadline)."""
    size, since = -1, time.time()
    while time.time() < deadline and program.proc.poll() is None:
        now = os.path.getsize(program.out_path)
        if now != size:
            size, since = now, time.time()
        elif time.time() - since >= SERVER_SETTLE:
            return
        time.sleep(0.02)  # polling a file: nothing to wait on


def run_server(server, clients, ports, workdir):
    results = collections.OrderedDict()
    code = rewrite(server.code, ports)
    result = results[server.name] = Result(server, code)
    wanted = sorted(set(ports[n] for n in PORT_RE.findall(server.code)))
    program = Program(server, code, workdir)
    try:
        deadline = time.time() + SERVER_START
        up = False
        while time.time() < deadline and program.proc.poll() is None:
            if listening(program.proc.pid, wanted):
                up = True
                break
            time.sleep(0.02)  # polling /proc: nothing to wait on
        if up:
            wait_settled(program, deadline)
        if not up:
            if program.proc.poll() is None:
                result.fail("it did not listen on port(s) %s within %g s" % (wanted, SERVER_START))
            else:
                result.fail("it ended (exit status %s) before it listened" % program.proc.returncode)
        else:
            for client in clients:
                results[client.name] = run_to_end(client, rewrite(client.code, ports), workdir, ports)
                if program.proc.poll() is not None:
                    result.fail("it ended (exit status %s) while %s ran" % (program.proc.returncode, client.name))
                    break
            if program.proc.poll() is None:
                program.signal(signal.SIGINT)
                try:
                    status = program.proc.wait(SERVER_STOP)
                    if status not in (0, -signal.SIGINT, 128 + signal.SIGINT):
                        result.fail("after SIGINT it ended with exit status %d" % status)
                except subprocess.TimeoutExpired:
                    result.fail("one SIGINT did not end it within %g s (killed)" % SERVER_STOP)
            elif not result.failures:
                result.fail("it ended (exit status %s) before it was stopped" % program.proc.returncode)
    finally:
        if program.proc.poll() is None:
            program.kill()
    result.seconds = time.time() - program.started
    out, err = program.output()
    result.stdout, result.stderr = restore_ports(out, ports), err
    if not result.failures:
        check(result, result.stdout, err)
    for client in clients:
        if client.name not in results:
            r = results[client.name] = Result(client)
            r.fail("it did not run: its server %s failed" % server.name)
    return results


def run_pages(pages, jobs=JOBS):
    """Run every page's examples, pages in parallel; {name: Result}."""
    workroot = tempfile.mkdtemp(prefix="tcpcom-doc-examples-")
    results = {}
    try:
        def one(item):
            n, (page, examples) = item
            numbers = sorted(set(PORT_RE.findall("".join(e.code for e in examples))))
            ports = dict((number, free_port()) for number in numbers)
            workdir = os.path.join(workroot, "%02d-%s" % (n, re.sub(r"\W", "_", page)))
            os.mkdir(workdir)
            return run_page(examples, ports, workdir)
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for page_results in pool.map(one, enumerate(pages.items())):
                results.update(page_results)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    return results


# --- the tests ------------------------------------------------------------------------------

PAGES, PROBLEMS = collect(ROOT)
NAMES = [e.name for examples in PAGES.values() for e in examples]


def test_every_python_fence_is_a_marked_example_with_a_unique_name():
    assert PROBLEMS == [], "the examples' markup:\n" + "\n".join(PROBLEMS)


@pytest.fixture(scope="session")
def example_results(request):
    """The examples of the pages whose examples were selected, run once for the session."""
    selected = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and item.originalname == "test_example":
            selected.add(callspec.params.get("name"))
    pages = collections.OrderedDict((page, examples) for page, examples in PAGES.items()
                                    if any(e.name in selected for e in examples))
    return run_pages(pages)


@pytest.mark.timeout(900)  # the first one runs them all (in parallel); each is bounded by TIMEOUT
@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_example(name, example_results):
    result = example_results[name]
    if result.failures:
        pytest.fail(result.report(), pytrace=False)


# --- the runner can fail ---------------------------------------------------------------------

BROKEN_PAGE = u'''# A page

<!-- example: good -->
```python
print("hello")
print("Grüße")
```

<!-- output: good -->
```text
hello
Grüße
```

<!-- example: raises -->
```python
raise SystemExit("no")
```

<!-- example: wrong-output -->
```python
print("one")
print("two")
```

<!-- output: wrong-output -->
```text
one
three
```

<!-- example: subset-ok -->
```python
print("one")
print("noise")
print("two")
```

<!-- output: subset-ok subset -->
```text
one
two
```

<!-- example: subset-wrong-order -->
```python
print("two")
print("one")
```

<!-- output: subset-wrong-order subset -->
```text
one
two
```

A fence nobody marked:

```python
print("unmarked")
```

<!-- example: logged-traceback -->
```python
import logging
try:
    1 / 0
except ZeroDivisionError:
    logging.exception("a callback raised")
```

<!-- example: echo server -->
```python
from tcpcom import *

def onStateChanged(state, msg):
    if state == TCPServer.MESSAGE:
        server.sendMessage("echo: " + msg)
    elif state == TCPServer.LISTENING:
        print("LISTENING", msg)

server = TCPServer(5000, stateChanged=onStateChanged)
```

<!-- output: echo subset -->
```text
LISTENING 5000
```

<!-- example: client with=echo -->
```python
from tcpcom import *

client = TCPClient("localhost", 5000, stateChanged=lambda state, msg: None)
if client.connect():
    print(client.sendMessage("Hallo", responseTime=5))
    client.disconnect()
```

<!-- output: client -->
```text
echo: Hallo
```

<!-- example: lost with=nobody -->
```python
print("never run")
```

<!-- example: slow timeout=1 -->
```python
import time
time.sleep(30)
```
'''


def test_the_runner_reports_an_unmarked_fence_an_unknown_server_and_stray_comments():
    examples, problems = parse(BROKEN_PAGE, "docs/x.md")
    text = "\n".join(problems)
    unmarked = BROKEN_PAGE.splitlines().index('print("unmarked")')  # the fence is the line before
    assert "docs/x.md:%d: a ```python fence without an <!-- example: NAME --> comment" % unmarked in text
    more, more_problems = parse(u"<!-- example: a -->\n\ntext\n\n<!-- output: b -->\n```text\nx\n```\n"
                                u"<!-- example: good -->\n```python\npass\n```\n<!-- output: other -->\n"
                                u"```text\n```\n<!-- example: c unknownword -->\n```python\npass\n```\n"
                                u"````markdown\n```python\nnot an example: inside another fence\n```\n````\n",
                                "docs/y.md")
    assert [e.name for e in more] == ["good", "c"]
    text = "\n".join(more_problems)
    assert "docs/y.md:1: the example comment is not followed by a ```python fence" in text
    assert "docs/y.md:5: <!-- output: b --> names no example above it on this page" in text
    assert "docs/y.md:13: <!-- output: other --> names no example above it on this page" in text
    assert "unknown word 'unknownword'" in text
    assert len(more_problems) == 4, more_problems
    names = check_names({"docs/x.md": examples, "docs/y.md": more, "README.md": [Example("good", "README.md", 1, "")]})
    text = "\n".join(names)
    assert "docs/y.md:9: the name good is taken already (docs/x.md:3)" in text
    assert "lost runs with=nobody, which is no server example of docs/x.md" in text
    assert "README.md:1: the examples of README.md are named readme-..., not good" in text


@pytest.mark.timeout(120)
def test_the_runner_fails_a_broken_example_a_wrong_output_and_a_hidden_traceback_and_passes_good_ones():
    examples, _ = parse(BROKEN_PAGE, "docs/x.md")
    results = run_pages({"docs/x.md": examples})
    failed = dict((name, "\n".join(r.failures)) for name, r in results.items() if r.failures)
    assert sorted(failed) == ["logged-traceback", "lost", "raises", "slow", "subset-wrong-order",
                              "wrong-output"], "\n\n".join(r.report() for r in results.values() if r.failures)
    assert "exit status 1" in failed["raises"]
    assert "no" in results["raises"].stderr
    assert "line 2: shown 'three', printed 'two'" in failed["wrong-output"]
    assert "lacks the shown line 'two'" in failed["subset-wrong-order"]
    assert "traceback on stderr" in failed["logged-traceback"]
    assert "did not end within 1 s" in failed["slow"]
    assert "did not run" in failed["lost"]
    assert results["echo"].stdout.startswith("LISTENING 5000\n")  # the free port, shown as the page's number
    assert "no" in results["raises"].report() and "raise SystemExit" in results["raises"].report()


@pytest.mark.timeout(120)
def test_the_runner_fails_a_server_that_never_listens_or_dies_and_its_clients(monkeypatch):
    page = u'''<!-- example: quiet server -->
```python
import time
PORT = 5000  # never opened
time.sleep(60)
```

<!-- example: asker with=quiet -->
```python
print("hi")
```

<!-- example: dies server -->
```python
from tcpcom import *
PORT = 5001  # the script ends before it opens it
```
'''
    examples, problems = parse(page, "docs/s.md")
    assert problems == []
    monkeypatch.setattr(sys.modules[__name__], "SERVER_START", 3.0)
    results = run_pages({"docs/s.md": examples})
    assert "did not listen on port(s)" in "\n".join(results["quiet"].failures)
    assert "did not run: its server quiet failed" in "\n".join(results["asker"].failures)
    assert "it ended (exit status 0) before it listened" in "\n".join(results["dies"].failures)
