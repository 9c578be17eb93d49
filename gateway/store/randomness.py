"""Random hex for ids, from the operating system's CSPRNG, fetched a page at a time.

Every governed request needs fresh random ids (its decision id, its request id). `os.urandom` is
one system call per id, which on some hosts costs tens of microseconds under load; `random_hex`
draws from a 4 KiB page of `os.urandom` bytes instead, refilled when spent. The bytes are the
same quality (the kernel's CSPRNG); a page is never reused, and a child process after `fork`
starts with an empty page of its own rather than its parent's.
"""

from __future__ import annotations

import os
import threading

_PAGE = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._page = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._page):
                self._page, self._at = os.urandom(max(_PAGE, n)), 0
            chunk = self._page[self._at : self._at + n]
            self._at += n
            return chunk

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._page, self._at = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as lowercase hex (like `secrets.token_hex`)."""
    return _pool.take(nbytes).hex()
