# -*- coding: utf-8 -*-
"""The shared test helpers can fail: the Recorder sees two calls that run at
once, and only then (Jython 2.7 and CPython 3).

Every "callbacks never overlap" assertion of both suites rests on
``Recorder.overlap``; these tests drive it with plain threads instead of the
engine's dispatcher, once deliberately concurrent and once serial.
"""
from __future__ import absolute_import, print_function

import threading
import unittest

from jyutil import DEADLINE, Recorder, monotonic, wait_until

from testkit import CallLog, OverlapMeter


def _call_together(rec, n=2):
    """n plain threads call ``rec`` at the same moment (released by one Event)."""
    go = threading.Event()
    threads = [threading.Thread(target=lambda i=i: (go.wait(DEADLINE), rec("MESSAGE", i)))
               for i in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(DEADLINE)
    return not any(t.is_alive() for t in threads)


class RecorderOverlapTest(unittest.TestCase):
    def test_a_call_held_inside_its_callback_overlaps_the_next_one(self):
        # the first call waits (inside the recorder) until the second has been recorded
        second_in = threading.Event()

        def on_event(state, msg):
            if msg == "first":
                second_in.wait(DEADLINE)
            else:
                second_in.set()
        rec = Recorder("held", on_event=on_event)
        first = threading.Thread(target=rec, args=("MESSAGE", "first"))
        first.start()
        rec.wait_messages(1)
        second = threading.Thread(target=rec, args=("MESSAGE", "second"))
        second.start()
        for t in (first, second):
            t.join(DEADLINE)
        self.assertTrue(second_in.is_set())
        self.assertEqual(rec.messages(), ["first", "second"])
        self.assertTrue(rec.overlap)

    def test_a_call_blocked_while_recording_overlaps_the_next_one(self):
        # no on_event: the plain default recorder; the first call is stopped
        # while it records (the test holds the recorder's condition)
        rec = Recorder("blocked")
        with rec.cond:
            first = threading.Thread(target=rec, args=("MESSAGE", "first"))
            first.start()
            wait_until(lambda: rec.meter.active == 1, what="the first call inside the recorder")
            second = threading.Thread(target=rec, args=("MESSAGE", "second"))
            second.start()
            wait_until(lambda: rec.meter.active == 2, what="the second call inside too")
        for t in (first, second):
            t.join(DEADLINE)
        self.assertEqual(sorted(rec.messages()), ["first", "second"])
        self.assertTrue(rec.overlap)

    def test_two_threads_calling_at_once_are_seen_as_overlapping(self):
        # the default recorder, two threads released together: its pause inside
        # the counted section makes the overlap visible (tried until the deadline,
        # a loaded machine may start one thread late)
        deadline = monotonic() + DEADLINE
        tries = 0
        seen = False
        while not seen and monotonic() < deadline:
            rec = Recorder("together")
            self.assertTrue(_call_together(rec))
            self.assertEqual(sorted(rec.messages()), [0, 1])
            tries += 1
            seen = rec.overlap
        self.assertTrue(seen, "no overlap seen in %d tries" % tries)

    def test_calls_from_many_threads_one_after_the_other_never_overlap(self):
        rec = Recorder("serial")
        turn = threading.Lock()

        def caller(i):
            for j in range(20):
                with turn:  # a serial stand-in dispatcher: one call at a time
                    rec("MESSAGE", (i, j))
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE)
        self.assertEqual(len(rec.messages()), 80)
        self.assertEqual(len(rec.threads), 4)
        self.assertFalse(rec.overlap)

    def test_a_call_log_counts_its_records_like_a_recorder(self):
        log = CallLog("log")
        log.record("made", 1)
        log.record("msg", "a")
        self.assertEqual(log.messages("msg"), ["a"])
        self.assertEqual(log.states(), ["made", "msg"])
        self.assertFalse(log.overlap)
        self.assertFalse(callable(log))  # a handler built on it is not taken for a function


class OverlapMeterTest(unittest.TestCase):
    def test_it_counts_the_threads_inside_and_keeps_the_most(self):
        meter = OverlapMeter()
        with meter:
            self.assertEqual(meter.active, 1)
            with meter:
                self.assertEqual(meter.active, 2)
        self.assertEqual((meter.active, meter.most, meter.overlap), (0, 2, True))


if __name__ == "__main__":
    unittest.main()
