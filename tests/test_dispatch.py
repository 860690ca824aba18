"""The dispatcher (tcpcom/dispatch.py): SerialExecutor, Dispatcher, EventPump, default_dispatcher.

Driven directly with plain threads and callbacks, no sockets: each test
names one promise of the module docstring.
"""
import logging
import threading

import pytest

from helpers import DEADLINE, Recorder, wait_until
from tcpcom.dispatch import Dispatcher, EventPump, SerialExecutor, default_dispatcher, set_default_dispatcher


#: how long a deliberately blocked callback waits for its release: longer than any
#: wait of the tests, so a test that waits for the wrong thing fails instead of
#: seeing the callback give up at the same moment
HELD = 3 * DEADLINE


@pytest.fixture
def pool():
    """A dispatcher of its own (not the shared default), small enough to be blocked."""
    d = Dispatcher(max_workers=2, idle_timeout=0.2, stall_timeout=0.05, name="test-dispatch")
    yield d
    wait_until(lambda: d.worker_count == 0, what="the test pool's workers ended")


def post_from_threads(ex, rec, threads=4, each=50, here=False):
    """``threads`` plain threads, released together, each post ``each`` callbacks to ``ex``,
    alternately inline (the poster may deliver itself) and scheduled; ``here``: the inline
    ones with ``post_here()`` (a reader thread's per-message path)."""
    go = threading.Event()

    def poster(t):
        go.wait(DEADLINE)
        for i in range(each):
            if here and i % 2 == 0:
                ex.post_here(lambda m: rec("MESSAGE", m), (t, i))
            else:
                ex.post(rec, ("MESSAGE", (t, i)), i % 2 == 0)
    posters = [threading.Thread(target=poster, args=(t,)) for t in range(threads)]
    for p in posters:
        p.start()
    go.set()
    for p in posters:
        p.join(DEADLINE)
    return rec.wait_messages(threads * each)


# -- order, one at a time -------------------------------------------------------------

def test_executor_order_and_reentrant_post():
    ex = SerialExecutor()
    out = []
    done = threading.Event()
    # hold delivery until everything is posted: else the order depends on how fast
    # the pool starts a worker (run alone, this test used to fail)
    gate = threading.Event()
    ex.post(gate.wait, (DEADLINE,))

    def first():
        ex.post(out.append, ("nested",))
        out.append("first")
    ex.post(first)
    ex.post(out.append, ("second",))
    ex.post(done.set)
    gate.set()
    assert done.wait(DEADLINE)
    assert out == ["first", "second", "nested"]


def test_callbacks_of_one_executor_run_in_the_order_posted(pool):
    ex = SerialExecutor(pool)
    rec = Recorder("one poster")
    for i in range(300):
        ex.post(rec, ("MESSAGE", i), i % 3 == 0)
    assert rec.wait_messages(300) == list(range(300))


@pytest.mark.parametrize("here", [False, True], ids=["post", "post_here"])
def test_callbacks_of_one_executor_never_run_two_at_once(pool, here):
    ex = SerialExecutor(pool)
    rec = Recorder("four posters")
    got = post_from_threads(ex, rec, here=here)
    assert not rec.overlap
    for t in range(4):  # each poster's callbacks in its order
        assert [i for (u, i) in got if u == t] == list(range(50))


def test_callbacks_of_different_executors_do_run_at_once(pool):
    # the control of the test above: the same recorder on two executors sees them overlap
    rec = Recorder("two executors")
    b_ran = threading.Event()

    def a_waits_for_b(state, msg):
        if msg == "a":
            b_ran.wait(DEADLINE)
        else:
            b_ran.set()
    rec.on_event = a_waits_for_b
    a, b = SerialExecutor(pool), SerialExecutor(pool)
    a.post(rec, ("MESSAGE", "a"))
    rec.wait_messages(1)
    b.post(rec, ("MESSAGE", "b"))
    rec.wait_messages(2)
    assert b_ran.wait(DEADLINE)
    assert rec.overlap


def test_an_inline_post_to_an_idle_executor_runs_on_the_posting_thread(pool):
    ex = SerialExecutor(pool)
    rec = Recorder("inline")
    ex.post(rec, ("MESSAGE", "here"), True)
    assert rec.events == [("MESSAGE", "here")]  # delivered before post() returned
    assert rec.threads == {threading.current_thread().name}


def test_post_here_to_an_idle_executor_runs_on_the_posting_thread_then_what_it_posted(pool):
    ex = SerialExecutor(pool)
    ran = []

    def first(tag):
        ex.post(ran.append, ("posted from inside",), True)  # queued behind this callback
        ran.append((tag, ex.in_callback()))
    ex.post_here(first, "here")
    assert ran == [("here", True), "posted from inside"]  # both before post_here() returned
    ex.post_here(ran.append, "idle again")
    assert ran[-1] == "idle again"


def test_post_here_after_deferred_ones_delivers_them_first(pool):
    ex = SerialExecutor(pool)
    ran = []
    ex.post(ran.append, ("deferred",), defer=True)
    ex.post_here(ran.append, "here")
    assert ran == ["deferred", "here"]


def test_post_here_with_an_event_pump_is_delivered_by_the_pump():
    pump = EventPump()
    ex = SerialExecutor(pump)
    ran = []
    ex.post_here(ran.append, "x")
    assert ran == []  # never on the posting thread: the program's loop delivers
    pump.pump(0)
    assert ran == ["x"]


def test_post_here_logs_what_its_function_raises_and_the_executor_is_idle_again(pool, caplog):
    ex = SerialExecutor(pool)

    def broken(arg):
        raise ValueError("bug in a per-message callback")
    with caplog.at_level(logging.ERROR, logger="tcpcom.dispatch"):
        ex.post_here(broken, "m")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "broken" in errors[0].getMessage() and errors[0].exc_info[0] is ValueError
    ran = []
    ex.post_here(ran.append, "next")  # idle again: runs here, at once
    assert ran == ["next"]


def test_a_keyboard_interrupt_in_post_here_flies_and_what_it_queued_is_still_delivered(pool):
    ex = SerialExecutor(pool)
    rec = Recorder("queued by the interrupted callback")

    def interrupted(arg):
        ex.post(rec, ("MESSAGE", "queued"), True)  # from inside: queued behind this callback
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ex.post_here(interrupted, "m")
    assert rec.wait_messages(1) == ["queued"]
    assert rec.threads != {threading.current_thread().name}  # handed to the dispatcher
    assert ex.wait_idle(DEADLINE)


# -- errors ----------------------------------------------------------------------------

def test_a_raising_callback_is_logged_with_its_traceback_and_delivery_goes_on(pool, caplog):
    ex = SerialExecutor(pool)
    rec = Recorder("after the error")

    def broken():
        raise ValueError("callback bug")
    with caplog.at_level(logging.ERROR, logger="tcpcom.dispatch"):
        ex.post(rec, ("MESSAGE", 1))
        ex.post(broken)
        ex.post(rec, ("MESSAGE", 2))
        assert rec.wait_messages(2) == [1, 2]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "broken" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ValueError


def test_a_keyboard_interrupt_in_a_pumped_callback_flies_and_the_rest_is_still_delivered():
    pump = EventPump()
    ex = SerialExecutor(pump)
    rec = Recorder("after ctrl-c")

    def interrupted():
        raise KeyboardInterrupt
    ex.post(interrupted)
    ex.post(rec, ("MESSAGE", "next"))
    with pytest.raises(KeyboardInterrupt):
        pump.pump()
    assert rec.events == []
    assert pump.pump_until(lambda: rec.events, DEADLINE)
    assert rec.messages() == ["next"]


def test_an_inline_callback_that_raises_is_logged_and_the_executor_is_idle_again(pool, caplog):
    ex = SerialExecutor(pool)
    rec = Recorder("after the error")

    def broken():
        raise ValueError("inline bug")
    with caplog.at_level(logging.ERROR, logger="tcpcom.dispatch"):
        ex.post(broken, (), True)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "broken" in errors[0].getMessage() and errors[0].exc_info[0] is ValueError
    ex.post(rec, ("MESSAGE", "next"), True)  # idle again: runs here, at once
    assert rec.events == [("MESSAGE", "next")] and rec.threads == {threading.current_thread().name}


def test_a_keyboard_interrupt_in_an_inline_callback_flies_and_what_it_queued_is_still_delivered(pool):
    ex = SerialExecutor(pool)
    rec = Recorder("queued by the interrupted callback")
    owned = []

    def queued(state, msg):
        owned.append(ex.in_callback())  # delivered by a thread that owns the executor
        rec(state, msg)

    def interrupted():
        ex.post(queued, ("MESSAGE", "queued"), True)  # from inside: queued behind this callback
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ex.post(interrupted, (), True)
    assert rec.wait_messages(1) == ["queued"]
    assert rec.threads != {threading.current_thread().name} and owned == [True]
    assert ex.wait_idle(DEADLINE)
    ex.post(rec, ("MESSAGE", "then"), True)
    assert rec.messages() == ["queued", "then"]


# -- wait_idle --------------------------------------------------------------------------

def test_wait_idle_returns_false_at_once_from_inside_a_callback(pool):
    # waiting there could never end (the caller is what is being waited for);
    # the timeout is longer than the test waits, so waiting it out fails the test
    ex = SerialExecutor(pool)
    result = []
    done = threading.Event()
    ex.post(lambda: (result.append(ex.wait_idle(HELD)), done.set()))
    assert done.wait(DEADLINE)
    assert result == [False]


def test_wait_idle_waits_until_everything_posted_was_delivered(pool):
    ex = SerialExecutor(pool)
    release, inside = threading.Event(), threading.Event()
    rec = Recorder("idle")
    ex.post(lambda: (inside.set(), release.wait(HELD)))
    ex.post(rec, ("MESSAGE", "last"))
    assert inside.wait(DEADLINE)
    assert ex.wait_idle(0.05) is False  # still delivering: timed out
    release.set()
    assert ex.wait_idle(DEADLINE) is True
    assert rec.messages() == ["last"]


def test_wait_idle_returns_false_at_once_with_an_event_pump():
    # the caller may be the pumping thread: nothing would ever be delivered while it waits
    ex = SerialExecutor(EventPump())
    ex.post(lambda: None)
    result = []
    t = threading.Thread(target=lambda: result.append(ex.wait_idle(HELD)))
    t.start()
    t.join(DEADLINE)
    assert result == [False]


# -- back-pressure -------------------------------------------------------------------------

def test_executor_back_pressure_bounds_the_queue():
    pump = EventPump()
    ex = SerialExecutor(pump, max_pending=5)
    posted = []

    def reader():
        for i in range(20):
            ex.post(lambda: None, (), True, lambda: False)
            posted.append(i)
    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: len(posted) >= 5)
    t.join(0.1)
    assert t.is_alive() and len(posted) <= 7  # waiting for room, not queueing without bound
    while t.is_alive():
        pump.pump(0.05)
    assert len(posted) == 20


def test_an_inline_poster_waiting_for_room_is_released_by_abort(pool):
    ex = SerialExecutor(pool, max_pending=3)
    release, inside, aborted = threading.Event(), threading.Event(), threading.Event()
    ex.post(lambda: (inside.set(), release.wait(HELD)))
    assert inside.wait(DEADLINE)
    posted = []

    def reader():
        for i in range(10):
            ex.post(lambda: None, (), True, aborted.is_set)
            posted.append(i)
    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: len(posted) >= 3)
    t.join(0.1)
    assert t.is_alive() and len(posted) <= 4  # held back while the callback blocks
    aborted.set()  # e.g. the connection closed: the reader must not wait for room any more
    t.join(DEADLINE)
    assert not t.is_alive() and len(posted) == 10
    release.set()
    assert ex.wait_idle(DEADLINE)


def test_a_scheduled_poster_never_waits_for_room(pool):
    # listener threads and timers post without inline: they must not block on a slow callback
    ex = SerialExecutor(pool, max_pending=3)
    release, inside = threading.Event(), threading.Event()
    ex.post(lambda: (inside.set(), release.wait(HELD)))
    assert inside.wait(DEADLINE)
    rec = Recorder("queued")
    t = threading.Thread(target=lambda: [ex.post(rec, ("MESSAGE", i)) for i in range(100)])
    t.start()
    t.join(DEADLINE)
    assert not t.is_alive()  # all 100 queued while the callback still blocks
    assert rec.events == []
    release.set()
    assert rec.wait_messages(100) == list(range(100))


# -- the shared pool ------------------------------------------------------------------------

def test_the_pool_grows_when_every_worker_blocks_so_another_executor_still_runs(pool):
    release = threading.Event()
    blocked = [threading.Event() for _ in range(pool.max_workers)]
    blockers = [SerialExecutor(pool) for _ in blocked]
    try:
        for ex, ev in zip(blockers, blocked):
            ex.post(lambda ev=ev: (ev.set(), release.wait(HELD)))
        for ev in blocked:
            assert ev.wait(DEADLINE)
        assert pool.worker_count == pool.max_workers  # every worker is held
        ran = threading.Event()
        SerialExecutor(pool).post(ran.set)
        assert ran.wait(DEADLINE)  # after stall_timeout a worker was added
        assert not release.is_set()
    finally:
        release.set()


def test_idle_workers_end(pool):
    done = threading.Event()
    SerialExecutor(pool).post(done.set)
    assert done.wait(DEADLINE)
    wait_until(lambda: pool.worker_count == 0, what="the idle worker ended")


# -- EventPump -------------------------------------------------------------------------------

def test_event_pump_delivers_only_when_pumped_and_on_the_pumping_thread():
    pump = EventPump()
    a, b = SerialExecutor(pump), SerialExecutor(pump)
    rec = Recorder("pumped")
    t = threading.Thread(target=lambda: [ex.post(rec, ("MESSAGE", i), True)
                                         for i, ex in enumerate((a, b, a))])
    t.start()
    t.join(DEADLINE)
    assert not t.is_alive()
    assert rec.events == []  # posted, even inline, but not pumped yet
    assert pump.pump() == 2  # one batch per executor
    assert rec.messages() == [0, 2, 1] and rec.threads == {threading.current_thread().name}
    assert pump.pump() == 0  # nothing pending: returns at once


def test_pump_until_returns_the_predicate_at_the_deadline():
    pump = EventPump()
    assert pump.pump_until(lambda: False, 0.05) is False
    SerialExecutor(pump).post(lambda: None)
    assert pump.pump_until(lambda: True, DEADLINE) is True


# -- the default ------------------------------------------------------------------------------

def test_objects_without_a_dispatcher_share_the_default_one():
    d = default_dispatcher()
    assert isinstance(d, Dispatcher) and default_dispatcher() is d
    assert SerialExecutor().dispatcher is d
    pump = EventPump()
    set_default_dispatcher(pump)
    try:
        assert default_dispatcher() is pump and SerialExecutor().dispatcher is pump
    finally:
        set_default_dispatcher(d)
    assert SerialExecutor().dispatcher is d


def test_a_deferred_post_waits_for_run_deferred_and_runs_there_in_order(pool):
    ex = SerialExecutor(pool)
    ran = []

    def record(tag):
        ran.append((tag, threading.current_thread().ident))
    ex.post(record, ("a",), defer=True)
    ex.post(record, ("b",), defer=True)
    assert ran == []  # only queued: no thread was woken for it
    done = threading.Event()
    t = threading.Thread(target=lambda: (ex.run_deferred(), done.set()))
    t.start()
    assert done.wait(DEADLINE)
    t.join(DEADLINE)
    assert ran == [("a", t.ident), ("b", t.ident)]


def test_an_inline_post_after_deferred_ones_delivers_them_first(pool):
    ex = SerialExecutor(pool)
    ran = []
    ex.post(ran.append, ("deferred",), defer=True)
    ex.post(ran.append, ("inline",), inline=True)
    assert ran == ["deferred", "inline"]


def test_a_scheduled_post_after_deferred_ones_delivers_them_too(pool):
    ex = SerialExecutor(pool)
    ran = []
    ex.post(ran.append, ("deferred",), defer=True)
    ex.post(ran.append, ("scheduled",))
    assert ex.wait_idle(DEADLINE)
    assert ran == ["deferred", "scheduled"]


def test_an_event_pump_gets_deferred_posts_like_any_other():
    pump = EventPump()
    ex = SerialExecutor(pump)
    ran = []
    ex.post(ran.append, ("x",), defer=True)
    ex.run_deferred()  # nothing to do: the pump owns delivery
    assert ran == []
    pump.pump(0)
    assert ran == ["x"]
