"""An LRU cache of encoded images, bounded in bytes, with hit/miss counters.

Keys are content hashes (:func:`content_key`), so the stateless protocols of
annotation tools (every request resends the image) cost one decode per
click once an image has been seen. Concurrent requests for the same missing
key wait for one encode instead of running it twice.
"""
import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Dict, Generic, Optional, Tuple, TypeVar

__all__ = ['FeatureCache', 'content_key']

T = TypeVar('T')


def content_key(data: bytes) -> str:
    """SHA-256 hex digest of an image's bytes (its cache key / image id)."""
    return hashlib.sha256(data).hexdigest()


class FeatureCache(Generic[T]):
    """Thread-safe LRU of values with a byte size each.

    Args:
        max_bytes: evict least recently used entries beyond this total. An
            entry larger than the bound is returned but not kept.
        size_of: bytes held by a value.
    """

    def __init__(self, max_bytes: int,
                 size_of: Callable[[T], int]) -> None:
        if max_bytes < 0:
            raise ValueError(f'max_bytes must be >= 0, got {max_bytes}')
        self.max_bytes = int(max_bytes)
        self._size_of = size_of
        self._items: 'OrderedDict[str, Tuple[T, int]]' = OrderedDict()
        self._pending: Dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: str) -> Optional[T]:
        """The value for ``key`` (counted as a hit or a miss)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def get_or_create(self, key: str,
                      create: Callable[[], T]) -> Tuple[T, bool]:
        """The value for ``key``, created once if missing.

        Returns:
            tuple: (value, hit). Threads asking for a key being created wait
            for it (and count as hits).
        """
        while True:
            with self._lock:
                item = self._items.get(key)
                if item is not None:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return item[0], True
                event = self._pending.get(key)
                if event is None:
                    event = self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            event.wait()
            with self._lock:  # created meanwhile (or failed: try again)
                item = self._items.get(key)
                if item is not None:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return item[0], True
        try:
            value = create()
            self.put(key, value)
            return value, False
        finally:
            with self._lock:
                self._pending.pop(key, None)
            event.set()

    def put(self, key: str, value: T) -> None:
        """Insert or replace ``key``, then evict down to ``max_bytes``."""
        size = int(self._size_of(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size <= self.max_bytes:
                self._items[key] = (value, size)
                self.bytes += size
            self._evict()

    def resize(self, key: str) -> None:
        """Re-measure ``key``'s value after it grew or shrank in place."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return
            size = int(self._size_of(item[0]))
            self.bytes += size - item[1]
            self._items[key] = (item[0], size)
            self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._items:
            _, (_, size) = self._items.popitem(last=False)
            self.bytes -= size
            self.evictions += 1

    def stats(self) -> Dict[str, int]:
        with self._lock:
            return dict(entries=len(self._items), bytes=self.bytes,
                        max_bytes=self.max_bytes, hits=self.hits,
                        misses=self.misses, evictions=self.evictions)
