"""What the engine can learn about hosts: this machine's addresses, a peer's name and MAC address.

- :func:`local_addresses`: this machine's IPv4 addresses (no packet is sent).
- The name comes from a reverse lookup (``socket.gethostbyaddr``), run in a
  helper thread and waited for at most ``name_timeout`` seconds; "?" if
  it fails or takes longer.  Results (also failures, and answers that come
  in late) are cached for ``ttl`` seconds, so a busy peer costs one lookup,
  and at most ``max_lookups`` lookups run at once (more get "?" at once).
- The MAC address comes from the system's neighbour table: ``/proc/net/arp``
  on Linux, else the output of ``ip -4 neigh`` or ``arp -an`` (run in a
  helper thread, bounded in time too).  Loopback peers, peers not on the
  local network and anything not found give "00:00:00:00:00:00".
"""
from __future__ import absolute_import

import logging
import os
import re
import socket
import subprocess
import threading

from .._compat import JYTHON, make_thread, monotonic

log = logging.getLogger("tcpcom.engine")

#: the MAC address reported when none is known
NO_MAC = "00:00:00:00:00:00"
#: the name reported when a reverse lookup fails or takes too long
UNKNOWN_NAME = "?"


def _java_interface_addresses():
    from java.net import Inet4Address, NetworkInterface
    found = []
    for nif in NetworkInterface.getNetworkInterfaces() or []:
        if nif.isUp():
            for addr in nif.getInetAddresses():
                if isinstance(addr, Inet4Address):
                    found.append(str(addr.getHostAddress()))
    return found


def _interface_addresses():
    """IPv4 addresses of the network interfaces (Linux ioctl, Java's NetworkInterface; else [])."""
    if JYTHON:
        try:
            return _java_interface_addresses()
        except Exception:
            return []
    try:
        import fcntl
        import struct
        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, AttributeError, OSError, socket.error):
        return []
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for name in names:
            try:
                req = struct.pack("256s", name.encode("ascii")[:15])
                raw = fcntl.ioctl(probe.fileno(), 0x8915, req)  # SIOCGIFADDR
                found.append(socket.inet_ntoa(raw[20:24]))
            except (IOError, OSError, UnicodeError, socket.error):
                continue
    finally:
        probe.close()
    return found


def local_addresses():
    """This machine's IPv4 addresses, non-loopback ones first (no packet is sent)."""
    found = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(info[4][0])
    except (socket.error, OSError):
        pass
    found.extend(_interface_addresses())
    unique = []
    for ip in found:
        if ip not in unique:
            unique.append(ip)
    return sorted(unique, key=lambda ip: ip.startswith("127."))




_MAC = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _norm_mac(mac):
    mac = ":".join("%02x" % int(p, 16) for p in mac.split(":"))
    return None if mac == NO_MAC else mac


def parse_proc_arp(text):
    """``/proc/net/arp`` -> {ip: mac}; incomplete entries (flags 0x0) are left out."""
    table = {}
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or not _MAC.match(f[3]):
            continue
        try:
            flags = int(f[2], 16)
        except ValueError:
            continue
        mac = _norm_mac(f[3])
        if flags & 0x2 and mac:  # ATF_COM: complete
            table[f[0]] = mac
    return table


def parse_neigh(text):
    """``ip neigh`` or ``arp -an`` output -> {ip: mac}."""
    table = {}
    for line in text.splitlines():
        ip = mac = None
        for word in line.replace("(", " ").replace(")", " ").split():
            if ip is None and _IPV4.match(word):
                ip = word
            elif mac is None and _MAC.match(word):
                mac = word
        if ip and mac and _norm_mac(mac):
            table[ip] = _norm_mac(mac)
    return table


def _which(cmd):
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, cmd)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _run_bounded(argv, timeout):
    """The output of a short command, or "" if it fails or takes longer than ``timeout``."""
    out = []

    def run():
        try:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out.append(p)
            data = p.communicate()[0]
            out.append(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
        except (OSError, ValueError):
            pass
    t = make_thread(run, "xtcompat-neigh")
    t.start()
    t.join(timeout)
    if t.is_alive():
        try:
            out[0].kill()
        except (IndexError, OSError, AttributeError):
            pass
        return ""
    return out[1] if len(out) > 1 else ""


def _reverse_lookup(address):
    return socket.gethostbyaddr(address)[0]


class PeerInfo(object):
    """Bounded, cached peer lookups (see the module docstring)."""

    def __init__(self, name_timeout=0.5, ttl=300.0, resolver=None, arp_path="/proc/net/arp",
                 max_lookups=8, max_cache=4096, neigh_timeout=1.0):
        self.name_timeout = name_timeout
        self.ttl = ttl
        self.resolver = resolver or _reverse_lookup
        self.arp_path = arp_path
        self.max_lookups = max_lookups
        self.max_cache = max_cache
        self.neigh_timeout = neigh_timeout
        self._lock = threading.Lock()
        self._names = {}
        self._pending = {}
        self._table = (None, {})

    # -- names -------------------------------------------------------------------

    def name(self, address):
        """A name for ``address`` within ``name_timeout`` seconds, else "?"."""
        timeout = self.name_timeout
        if not address or not timeout or timeout <= 0:
            return UNKNOWN_NAME
        now = monotonic()
        with self._lock:
            hit = self._names.get(address)
            if hit is not None and hit[0] > now:
                return hit[1]
            done = self._pending.get(address)
            if done is None:
                if len(self._pending) >= self.max_lookups:
                    log.debug("%d name lookups running; %s stays '?'", len(self._pending), address)
                    return UNKNOWN_NAME
                done = self._pending[address] = threading.Event()
                make_thread(self._resolve, "xtcompat-name", (address, done)).start()
        done.wait(timeout)
        with self._lock:
            hit = self._names.get(address)
        return hit[1] if hit is not None and done.is_set() else UNKNOWN_NAME

    def _resolve(self, address, done):
        try:
            name = self.resolver(address) or UNKNOWN_NAME
        except Exception as e:  # herror, gaierror, anything a custom resolver raises
            log.debug("no name for %s: %s", address, e)
            name = UNKNOWN_NAME
        with self._lock:
            if len(self._names) >= self.max_cache:
                self._names.clear()
            self._names[address] = (monotonic() + self.ttl, str(name))
            self._pending.pop(address, None)
        done.set()

    # -- MAC addresses -----------------------------------------------------------

    def mac(self, address):
        """The MAC address of ``address`` from the neighbour table, else all zeros."""
        if not address or address.startswith("127.") or address in ("::1", "localhost"):
            return NO_MAC
        return self._neighbours().get(address, NO_MAC)

    def _neighbours(self):
        now = monotonic()
        stamp, table = self._table
        if stamp is not None and now - stamp < 1.0:
            return table
        table = None
        if self.arp_path and os.path.exists(self.arp_path):
            try:
                with open(self.arp_path) as f:
                    table = parse_proc_arp(f.read())
            except (IOError, OSError) as e:
                log.debug("cannot read %s: %s", self.arp_path, e)
        if table is None:
            ip = _which("ip")
            arp = _which("arp")
            if ip:
                table = parse_neigh(_run_bounded([ip, "-4", "neigh", "show"], self.neigh_timeout))
            elif arp:
                table = parse_neigh(_run_bounded([arp, "-an"], self.neigh_timeout))
            else:
                table = {}
        self._table = (now, table)
        return table


def resolves(host):
    """False when ``host`` is a name that no name server knows (True for anything else)."""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    except (socket.error, OSError, UnicodeError):
        pass
    return True
