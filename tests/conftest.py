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
