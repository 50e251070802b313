"""Who holds an output lock: enough to name it, and to tell whether it still runs."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

FORMAT = "distinfer-lock"


class Holder:
    """Who holds a lock: enough to name it, and to tell whether it is still alive."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    @classmethod
    def this_process(cls, info: str) -> Holder:
        pid = os.getpid()
        return cls(
            {
                "format": FORMAT,
                "host": socket.gethostname(),
                "boot_id": _boot_id(),
                "pid": pid,
                "pid_start": _process_start(pid),
                "started_at": time.time(),
                "token": uuid.uuid4().hex,
                "info": info,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            record = json.loads(data)
        except ValueError:
            return None
        return cls(record) if isinstance(record, dict) and record.get("format") == FORMAT else None

    def describe(self) -> str:
        r = self.record
        text = f"pid {r.get('pid')} on {r.get('host')}"
        return f"{text}, {r['info']}" if r.get("info") else text

    def body(self) -> bytes:
        return json.dumps({**self.record, "renewed_at": time.time()}).encode()

    def is_gone(self) -> bool:
        """Held by a process of this machine that no longer runs."""
        r = self.record
        if r.get("host") != socket.gethostname() or r.get("boot_id") != _boot_id():
            return False
        pid = r.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        start = _process_start(pid)
        if start is None:
            return not _pid_running(pid)
        return r.get("pid_start") is not None and start != r.get("pid_start")


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22);
    -1 for a zombie (dead, not yet reaped); None where there is no /proc or no such pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name in (...) may hold spaces
    return -1 if fields[0] == "Z" else int(fields[19])


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
