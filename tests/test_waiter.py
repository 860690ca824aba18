"""reading.Waiter: the one-shot slot a request() waits on.  wake() makes its waiter look again
without filling it (the reader thread leaving the socket to callers, see Connection._park);
woken and filled at about the same time, it must neither raise nor lose the fill."""
import threading

import pytest

from helpers import DEADLINE
from tcpcom.engine import reading
from tcpcom.engine.reading import Waiter


@pytest.fixture(params=["lock", "event"])
def make(request, monkeypatch):
    """Both kinds: a bare lock (CPython 3) and an Event (interpreters whose locks take no timeout)."""
    monkeypatch.setattr(reading, "LOCK_TIMEOUT", request.param == "lock")
    return Waiter


def waiting(w, timeout=DEADLINE):
    """A thread in w.wait(timeout); its result lands in the returned list."""
    got = []
    t = threading.Thread(target=lambda: got.append(w.wait(timeout)))
    t.daemon = True
    t.start()
    return t, got


def test_wake_ends_a_wait_without_filling_and_the_next_wait_waits_again(make):
    w = make()
    t, got = waiting(w)
    w.wake()
    t.join(DEADLINE)
    assert got == [False] and not w.done
    assert armed(w), "woken once, every later wait() would return at once (a busy loop)"


def armed(w):
    """A wait() on ``w`` would block (until a fill, a wake or its timeout)."""
    return w._lock.locked() if w._event is None else not w._event.is_set()


def test_a_fill_after_a_wake_is_seen_by_every_later_wait(make):
    w = make()
    w.wake()  # nobody waits yet: the next wait returns at once, unfilled
    w.set("reply")
    assert w.wait(DEADLINE) is True and w.value == "reply"
    assert w.wait(DEADLINE) is True


def test_a_wake_after_a_fill_changes_nothing(make):
    w = make()
    w.set("reply")
    w.wake()
    assert w.wait(DEADLINE) is True and w.value == "reply"


def test_wakes_and_a_fill_racing_a_waiter_never_raise_nor_lose_the_fill(make):
    for i in range(300):
        w = make()
        errors = []

        def waiter():
            try:
                while not w.wait(DEADLINE):
                    pass  # woken: look again (as request() does)
            except Exception as e:  # pragma: no cover - what the test is for
                errors.append(e)
        t = threading.Thread(target=waiter)
        t.daemon = True
        t.start()
        w.wake()
        w.set(i)
        w.wake()
        t.join(DEADLINE)
        assert not t.is_alive(), "the waiter never saw the fill"
        assert errors == [] and w.value == i
