#!/usr/bin/env python3
"""CI's version matrix: every Python the package promises, each running a suite.

    python3 .ci/matrix.py           run the matrix, then print what ran and what was skipped
    python3 .ci/matrix.py --list    print the matrix and where each interpreter was found

MATRIX below is the promise: setup.py's classifiers and python_requires, and
README's "Supported Pythons", list exactly these versions
(tests/test_packaging.py compares them). The default ``python3`` and Jython
run README's test command (the last line of .ci/run: the whole pytest suite,
then tests/jython/run.py under Jython), so this script leaves them to it.

- "pytest": a fresh venv with the test dependencies (setup.py's ``test``
  extra, from PyPI), then the pytest suite without tests/reliability (the
  reliability suite, about a minute more per interpreter, runs on the default
  python3 only).
- "stdlib": tests/jython/run.py, the standard-library suite (unittest only:
  no dependency to install; Python 2.7 has no pytest that runs this suite).

Interpreters are looked up in pyenv (``$PYENV_ROOT/versions`` or
``~/.pyenv/versions``, the newest patch release of each X.Y), then as
``pythonX.Y`` on PATH. One that is not found is reported as SKIPPED; set
TCPCOM_MATRIX_REQUIRE_ALL=1 to make that a failure. Exit status: 0 when every
run that could run passed.
"""
from __future__ import print_function

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (implementation, X.Y, suite); "test command": run by README's test command
MATRIX = [
    ("CPython", "2.7", "stdlib"),
    ("CPython", "3.8", "pytest"),     # the oldest CPython 3 supported
    ("CPython", "3.9", "stdlib"),
    ("CPython", "3.10", "stdlib"),
    ("CPython", "3.11", "test command"),  # the default python3 here
    ("CPython", "3.12", "stdlib"),
    ("CPython", "3.13", "pytest"),    # the newest
    ("Jython", "2.7", "test command"),
]

PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "--ignore=tests/reliability"]
TIMEOUT = {"pytest": 900, "stdlib": 300}


def cpython_versions():
    """The X.Y of every CPython in MATRIX (for setup.py and README to promise)."""
    return [v for impl, v, _ in MATRIX if impl == "CPython"]


def test_requirements():
    """setup.py's ``extras_require["test"]``: the one list of test dependencies."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return ast.literal_eval(node.value)["test"]
    raise SystemExit("setup.py has no extras_require['test']")


def _version_key(path):
    name = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return [int(p) if p.isdigit() else -1 for p in re.split(r"[.]", name)]


def find(impl, version, suite):
    """The interpreter's path, or None."""
    if impl == "Jython":
        return shutil.which("jython")
    if suite == "test command":  # README's command runs python3: it counts only if it is this X.Y
        exe = shutil.which("python3")
        return exe if exe and full_version(exe).split()[-1].startswith(version + ".") else None
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = [p for p in glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python"))
             if re.match(re.escape(version) + r"\.\d+$", os.path.basename(os.path.dirname(os.path.dirname(p))))]
    if found:
        return sorted(found, key=_version_key)[-1]
    return shutil.which("python" + version)


def full_version(exe):
    try:
        out = subprocess.check_output([exe, "--version"], stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.decode("utf-8", "replace").strip().splitlines()[-1]


def run_logged(cmd, log_path, timeout, env=None):
    """Run ``cmd`` in ROOT with its output in ``log_path``; returns (exit status, seconds)."""
    start = time.time()
    with open(log_path, "wb") as log:
        try:
            code = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            log.write(b"\n*** timed out after %d s ***\n" % timeout)
            code = 124
    return code, time.time() - start


def tail(path, n):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return [line for line in lines if "is ignored: it is neither a file nor a directory" not in line][-n:]


def summary_line(path, suite):
    """The runner's own closing line (e.g. '583 passed, 1 skipped in 44s' or 'OK (skipped=1)')."""
    lines = [line.strip() for line in tail(path, 40) if line.strip()]
    pattern = r"\d+ (passed|failed)|error" if suite == "pytest" else r"^(OK|FAILED)|^Ran \d+"
    picked = [line.strip("= ") for line in lines if re.search(pattern, line)]
    return "; ".join(picked[-2:]) if picked else (lines[-1] if lines else "no output")


def run_pytest(exe, workdir, log_path):
    venv = os.path.join(workdir, "venv")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
    code, took = run_logged([exe, "-m", "venv", venv], log_path, 300)
    vpy = os.path.join(venv, "bin", "python")
    if code == 0:
        setup_log = log_path + ".pip"
        code, t = run_logged([vpy, "-m", "pip", "install", "-q"] + test_requirements(), setup_log, 600, env)
        took += t
        if code != 0:
            shutil.copy(setup_log, log_path)
    if code != 0:
        return code, took, "could not create the venv or install " + " ".join(test_requirements())
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    code, t = run_logged([vpy, "-m", "pytest"] + PYTEST_ARGS, log_path, TIMEOUT["pytest"], env)
    return code, took + t, summary_line(log_path, "pytest")


def run_stdlib(exe, log_path):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    code, took = run_logged([exe, os.path.join("tests", "jython", "run.py")], log_path, TIMEOUT["stdlib"], env)
    return code, took, summary_line(log_path, "stdlib")


#: runs at the same time: the suites wait on sockets and subprocesses more than they compute,
#: and one after another the matrix took about 8 of CI's 15 minutes
PARALLEL = int(os.environ.get("TCPCOM_MATRIX_PARALLEL", "2"))


def run_one(impl, version, suite, exe, workdir):
    """One interpreter's suite: (status, what ran, its log's tail if it failed)."""
    log_path = os.path.join(workdir, "%s-%s.log" % (impl, version))
    if suite == "pytest":
        code, took, what = run_pytest(exe, os.path.join(workdir, version), log_path)
    else:
        code, took, what = run_stdlib(exe, log_path)
    status = "passed" if code == 0 else "FAILED (exit %d)" % code
    return status, "%s [%.0f s]" % (what, took), tail(log_path, 150) if code != 0 else []


def main(argv):
    from concurrent.futures import ThreadPoolExecutor
    listing = "--list" in argv
    require_all = os.environ.get("TCPCOM_MATRIX_REQUIRE_ALL") == "1"
    rows, failed, skipped = [], [], []
    workdir = tempfile.mkdtemp(prefix="tcpcom-matrix-")
    try:
        with ThreadPoolExecutor(max_workers=max(1, PARALLEL)) as pool:
            for impl, version, suite in MATRIX:
                label = "%s %s" % (impl, version)
                exe = find(impl, version, suite)
                if exe is None:
                    skipped.append(label)
                    rows.append((label, "SKIPPED", "python3 is another version" if suite == "test command"
                                 else "not found (pyenv, PATH)", suite, ""))
                    continue
                found = "%s (%s)" % (full_version(exe), exe)
                if listing or suite == "test command":
                    rows.append((label, "found", found, suite, "README's test command, after this"
                                 if suite == "test command" else ""))
                    continue
                print("matrix: %s, %s suite ..." % (label, suite))
                sys.stdout.flush()
                rows.append((label, pool.submit(run_one, impl, version, suite, exe, workdir), found, suite, ""))
            for i, (label, status, found, suite, what) in enumerate(rows):
                if hasattr(status, "result"):  # a suite that ran: its result, in the matrix's order
                    status, what, log_tail = status.result()
                    if log_tail:
                        failed.append(label)
                        print("%s failed:\n%s" % (label, "\n".join("    | " + line for line in log_tail)))
                    rows[i] = (label, status, found, suite, what)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nversion matrix (.ci/matrix.py):")
    for label, status, found, suite, what in rows:
        print("  %-13s %-8s %-7s %s%s" % (label, status, suite if suite != "test command" else "",
                                          found, ("\n                                 " + what) if what else ""))
    print("  found and run: %d; run by the test command: %d; skipped (not found): %s"
          % (sum(1 for r in rows if r[1] not in ("SKIPPED", "found")),
             sum(1 for r in rows if r[3] == "test command" and r[1] == "found"),
             ", ".join(skipped) or "none"))
    if failed:
        print("matrix FAILED on: " + ", ".join(failed))
        return 1
    if skipped and require_all:
        print("matrix: TCPCOM_MATRIX_REQUIRE_ALL=1 and %s not found" % ", ".join(skipped))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
