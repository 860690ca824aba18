"""Helpers of the pytest suite (CPython 3).

The helpers the Jython suite uses too live in testkit.py (standard library,
Python 2.7 syntax) and are imported here under the names the tests use.
"""
from testkit import DEADLINE, Recorder, engine_threads, raw_client, recv_until, wait_until  # noqa: F401
