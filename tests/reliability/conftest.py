"""Fixtures of the reliability suite.

Every test may record its figures with the ``figures`` fixture
(``figures.update(connections=100, ...)``).  When the environment variable
``TCPCOM_RELIABILITY_JSON`` names a file, each test's outcome, duration,
docstring and figures are appended to it as one JSON line; ``report.py``
turns them into docs/RELIABILITY.md.

The autouse ``no_silent_thread_death`` fixture fails any test during which a
thread ended with an uncaught exception (``threading.excepthook``).
"""
import json
import os
import threading

import pytest

_FIGURES = {}


@pytest.fixture
def figures(request):
    d = {}
    _FIGURES[request.node.nodeid] = d
    return d


@pytest.fixture(autouse=True)
def no_silent_thread_death():
    died = []
    old = threading.excepthook

    def hook(args):
        died.append("%s: %s: %s" % (args.thread.name if args.thread else "?",
                                    args.exc_type.__name__, args.exc_value))
        old(args)

    threading.excepthook = hook
    try:
        yield died
    finally:
        threading.excepthook = old
    assert not died, "threads died with an uncaught exception: %r" % died


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    path = os.environ.get("TCPCOM_RELIABILITY_JSON")
    if not path:
        return
    if rep.when == "call" or (rep.when != "call" and not rep.passed):
        doc = (getattr(item, "function", None).__doc__ or "").strip() if hasattr(item, "function") else ""
        rec = {"nodeid": item.nodeid, "module": item.module.__name__ if item.module else "",
               "module_doc": ((item.module.__doc__ or "").strip().splitlines() or [""])[0],
               "name": item.name, "when": rep.when, "outcome": rep.outcome,
               "duration": round(rep.duration, 2), "doc": " ".join(doc.split()),
               "figures": _FIGURES.get(item.nodeid, {})}
        with open(path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
