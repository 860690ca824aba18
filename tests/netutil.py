"""Where can the tests carry multicast: on loopback, or in a network namespace they create?"""
import os
import shutil
import socket
import subprocess
import sys
import uuid

_probe = []


def loopback_multicast_ok():
    """(True, "") if a datagram sent to a group on 127.0.0.1 arrives; else (False, why).

    Probed once with plain sockets; set ``XTCOMPAT_TEST_NETNS=1`` to pretend
    it does not (to exercise the network-namespace path).
    """
    if os.environ.get("XTCOMPAT_TEST_NETNS") == "1":
        return False, "XTCOMPAT_TEST_NETNS=1: loopback multicast not used"
    if _probe:
        return _probe[0]
    result = (False, "loopback cannot carry multicast")
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        r.bind(("", 0))
        r.settimeout(3.0)
        r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton("239.255.99.99") + socket.inet_aton("127.0.0.1"))
        s.bind(("127.0.0.1", 0))
        token = uuid.uuid4().hex.encode("ascii")
        for _ in range(3):
            s.sendto(token, ("239.255.99.99", r.getsockname()[1]))
        data, _ = r.recvfrom(100)
        if data == token:
            result = (True, "")
    except (socket.error, OSError) as e:
        result = (False, "loopback cannot carry multicast: %s" % e)
    finally:
        r.close()
        s.close()
    _probe.append(result)
    return result


def netns_available():
    """(True, "") if this process may create network namespaces; else (False, why)."""
    if not sys.platform.startswith("linux"):
        return False, "network namespaces need Linux"
    if shutil.which("ip") is None:
        return False, "the 'ip' command is missing"
    if os.geteuid() != 0:
        return False, "creating a network namespace needs root"
    return True, ""


class NetNS(object):
    """A throw-away network namespace with only ``lo`` (up); removed on exit."""

    def __init__(self):
        self.name = "xtc-%s" % uuid.uuid4().hex[:10]

    def __enter__(self):
        subprocess.check_call(["ip", "netns", "add", self.name])
        try:
            self.run(["ip", "link", "set", "lo", "up"])
        except Exception:
            self.remove()
            raise
        return self

    def run(self, argv, **kw):
        return subprocess.check_call(["ip", "netns", "exec", self.name] + list(argv), **kw)

    def popen(self, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + list(argv), **kw)

    def remove(self):
        subprocess.call(["ip", "netns", "delete", self.name])

    def __exit__(self, *exc):
        self.remove()
        return False
