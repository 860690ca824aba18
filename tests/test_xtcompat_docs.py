"""The xtcompat reference page names everything the library exports and every event it calls."""
import io
import os
import re

import xtcompat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "docs", "xtcompat", "reference.md")
XTCOMPAT = os.path.join(ROOT, "xtcompat")


def reference_text():
    with io.open(REFERENCE, encoding="utf-8") as f:
        return f.read()


def named(name, text):
    """True if ``name`` occurs in ``text`` as a whole word (XTStopAll is not found in XTStopAllX)."""
    return re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), text) is not None


def exported_names():
    return sorted(n for n in dir(xtcompat) if n.startswith(("XT", "xt")))


def called_events():
    """The script's event functions the library looks up: face.call("XT...") and face.find("XT...")."""
    events = set()
    for name in os.listdir(XTCOMPAT):
        if name.endswith(".py"):
            with io.open(os.path.join(XTCOMPAT, name), encoding="utf-8") as f:
                events.update(re.findall(r"""\b(?:call|find)\(\s*["'](XT\w+)["']""", f.read()))
    return sorted(events)


def test_every_exported_xt_name_is_on_the_reference_page():
    names = exported_names()
    assert len(names) > 40, names  # the functions and constants were found at all
    assert set(names) == set(xtcompat.__all__), "dir() and __all__ disagree"
    text = reference_text()
    missing = [n for n in names if not named(n, text)]
    assert not missing, "docs/xtcompat/reference.md does not name: %s" % ", ".join(missing)


def test_every_exported_function_is_documented_by_autodoc():
    text = reference_text()
    functions = [n for n in exported_names() if callable(getattr(xtcompat, n))]
    missing = [n for n in functions if ".. autofunction:: xtcompat.%s\n" % n not in text]
    assert not missing, "no autofunction on docs/xtcompat/reference.md for: %s" % ", ".join(missing)


def test_every_event_the_library_calls_is_described_on_the_reference_page():
    events = called_events()
    assert {"XTNewConnection", "XTDataAvailable", "XTSocketError", "XTReceivedDatagram",
            "XTReconnected", "XTPageRequest"} <= set(events), events
    text = reference_text()
    missing = [e for e in events if "{py:function} %s(" % e not in text]
    assert not missing, "no {py:function} entry on docs/xtcompat/reference.md for: %s" % ", ".join(missing)


def test_every_exported_function_has_a_docstring():
    bare = [n for n in exported_names() if callable(getattr(xtcompat, n)) and
            len((getattr(xtcompat, n).__doc__ or "").strip()) < 40]
    assert not bare, "functions without a real docstring: %s" % ", ".join(bare)
