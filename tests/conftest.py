import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leftover_servers():
    """A failed test must not leave a TCPServer/TCPClient whose (non-daemon) threads block exit."""
    yield
    from tcpcom.tcp import close_all
    close_all()


@pytest.fixture
def served():
    """``served(reply=None, **options)``: an engine HTTPListener on 127.0.0.1 that records its
    requests (helpers.Served); ``reply(request, conn)`` answers.  Closed after the test."""
    from helpers import Served
    made = []

    def make(reply=None, **options):
        s = Served(reply, **options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def closing():
    """Closes every connection and listener a test made (``closing(obj)``), even when it fails."""
    made = []
    yield made.append
    for obj in reversed(made):
        obj.close()
