"""Warden's JSON log lines written to a string, for a test, and the root logger put back after."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

from gateway.logs import configure_logging


def captured(level: str) -> Iterator[io.StringIO]:
    """A fixture body: every line logged at `level` or above while the test runs."""
    root = logging.getLogger()
    before, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    configure_logging(level, stream=stream)
    yield stream
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(before)
