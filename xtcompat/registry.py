"""Listener IDs: one registry for every kind of listener (TCP, UDP, later HTML)."""
from __future__ import absolute_import

import threading


class Registry(object):
    """Maps non-zero integer IDs to ``(kind, object)``; IDs are never reused.

    Adding a new kind of listener is ``rid = registry.add("html", server)``
    and ``registry.get(rid, "html")``; :meth:`remove_all` hands back every
    object so one call can stop them all.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._items = {}
        self._next = 1

    def add(self, kind, obj):
        with self._lock:
            rid = self._next
            self._next += 1
            self._items[rid] = (kind, obj)
            return rid

    def _item(self, rid, kind=None):
        """``(kind, object)`` with this ID (and kind, if given), or None; called with the lock held."""
        try:
            item = self._items.get(rid)
        except TypeError:  # an unhashable ID
            return None
        if item is None or (kind is not None and item[0] != kind):
            return None
        return item

    def kind(self, rid):
        with self._lock:
            item = self._item(rid)
        return item[0] if item is not None else None

    def get(self, rid, kind=None):
        """The object with this ID (and kind, if given), or None."""
        with self._lock:
            item = self._item(rid, kind)
        return item[1] if item is not None else None

    def remove(self, rid, kind=None):
        """Remove and return the object (None if there is none of that kind)."""
        with self._lock:
            item = self._item(rid, kind)
            if item is None:
                return None
            del self._items[rid]
            return item[1]

    def remove_all(self):
        """Remove everything; returns the ``(id, kind, object)`` triples."""
        with self._lock:
            items = sorted(self._items.items())
            self._items.clear()
        return [(rid, kind, obj) for rid, (kind, obj) in items]

    def ids(self, kind=None):
        with self._lock:
            return sorted(rid for rid, (k, _) in self._items.items() if kind is None or k == kind)

    def __len__(self):
        with self._lock:
            return len(self._items)
