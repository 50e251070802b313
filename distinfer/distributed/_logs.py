"""Worker logs on the driver's console: each warning once, naming the node it came from.

Ray's own forwarding of worker output stays off (``log_to_driver=False``): it would
repeat every line of every process, Ray's and OpenVINO's included. Instead an
inference actor keeps the records of distinfer's loggers at or above the run's level
(``-v`` lowers it in the actors too) and hands the new ones back with each unit's
answer; the driver logs each distinct one once, with the node's name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

#: What one process forwards between two answers, at most (the rest is counted).
MAX_FORWARDED = 50
_PACKAGE = "distinfer"

logger = logging.getLogger(__name__)

#: ``(levelno, text)`` of one log record on its way to the driver.
Forwarded = tuple[int, str]


class LogForwarder(logging.Handler):
    """Keeps distinfer's log records in a worker until ``drain`` hands them over."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._records: list[Forwarded] = []
        self._dropped = 0
        self._guard = threading.Lock()  # records come from the engine's host threads too
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._guard:
            if len(self._records) < MAX_FORWARDED:
                self._records.append((record.levelno, text))
            else:
                self._dropped += 1

    def drain(self) -> tuple[Forwarded, ...]:
        """The records since the last call (and how many did not fit, as one more)."""
        with self._guard:
            records, dropped = self._records, self._dropped
            self._records, self._dropped = [], 0
        if dropped:
            records.append((logging.WARNING, f"{dropped} more log records not forwarded"))
        return tuple(records)

    @classmethod
    def install(cls, level: int) -> LogForwarder:
        """Forward distinfer's records at ``level`` and above from this process."""
        package = logging.getLogger(_PACKAGE)
        package.setLevel(level)
        forwarder = cls(level)
        package.addHandler(forwarder)
        return forwarder


class WorkerLogs:
    """On the driver: log what workers forwarded, each distinct record once."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self.repeats = 0
        self._log = logging.getLogger(f"{_PACKAGE}.worker")

    def show(self, node: str, records: Iterable[Forwarded]) -> None:
        for level, text in records:
            if (node, text) in self._seen:
                self.repeats += 1
                continue
            self._seen.add((node, text))
            self._log.log(level, "[%s] %s", node, text)


def run_log_level() -> int:
    """The level the driver runs distinfer's loggers at (``-v``: INFO, ``-vv``: DEBUG)."""
    return logging.getLogger(_PACKAGE).getEffectiveLevel()
