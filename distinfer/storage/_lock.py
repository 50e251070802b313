"""One run per output: a lock on the output folder for as long as the run writes there.

On a local (or shared, mounted) disk: an exclusive ``flock`` on ``folder/_lock``;
the kernel drops it when the process dies, however it dies.

On object storage, which has no locks, a lease: the object ``prefix/_lock``,
created only if absent (``If-None-Match: *``), whose JSON body names its holder
(host, pid, start time, a random token). A daemon thread renews it every
``expiry_s / 4`` by replacing it only if it is still the version we wrote
(``If-Match``). A second run finds it and fails at once with
``OutputExistsError``, unless the lock is stale:

- not renewed for ``expiry_s``, judged by the object's ``Last-Modified`` (the
  server's clock) against this machine's clock, so the two must agree within a
  few seconds (NTP does that); or
- held by a process of this same machine that is gone (its pid is not running,
  or is another process now: a different start time), so a run killed with
  SIGKILL and started again on the same machine resumes at once.

A stale lock is taken over with a replace conditional on its tag: of two
contenders, one wins and the other sees the winner. If renewal finds the lock
replaced or deleted, the lease is lost: ``lease.lost`` turns true and
``lease.check()`` raises ``OutputError``, so the run stops writing.

A writer in another process (the collector) cannot see the lease; it gets
``lease.fence``, a small picklable check that reads the lock object and fails
with ``OutputError`` unless it still holds this run's token: one GET, before
each part it writes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .._errors import OutputError, OutputExistsError, PreconditionFailedError, StorageError
from ._holder import Holder
from ._location import Location
from ._object import ObjectFileSystem
from ._options import StorageOptions

logger = logging.getLogger(__name__)

LOCK_NAME = "_lock"
_KEY = "output.parquet"
_MAX_LOCK_BYTES = 64 << 10
_ACQUIRE_ATTEMPTS = 5  # each lost race re-reads the lock; the winner then holds it


@dataclass(frozen=True)
class LockFence:
    """Checks, from any process, that the lock object still names this run.

    >>> fence.check()  # doctest: +SKIP  (OutputError once another run took the lock)
    """

    location: Location
    token: str

    def check(self) -> None:
        """One GET of the lock; ``OutputError`` unless it holds this run's token."""
        try:
            current = Holder.parse(self.location.fs.read(self.location.path, _MAX_LOCK_BYTES))
        except FileNotFoundError:
            current = None
        if current is None or current.record.get("token") != self.token:
            who = current.describe() if current is not None else "it was deleted"
            raise OutputError(
                f"{self.location.parent.uri}: this run no longer holds its output lock "
                f"({who}); stopping so that two runs never write the same output"
            )


class Lease:
    """A held output lock; ``lost`` turns true when another run took it over.

    ``fence`` is None on a local disk (a ``flock`` cannot be taken over), else the
    check a writer in another process runs before it writes.

    >>> with output_lock(resolve_location("s3://b/out/")) as lease:  # doctest: +SKIP
    ...     for part in parts:
    ...         lease.check()  # OutputError once another run owns the output
    ...         write(part)
    """

    def __init__(self, uri: str, holder: str, fence: LockFence | None = None) -> None:
        self.uri = uri
        self.holder = holder
        self.fence = fence
        self._lost_reason: str | None = None

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    def check(self) -> None:
        """Raise ``OutputError`` if the lock was lost: another run may be writing."""
        if self._lost_reason is not None:
            raise OutputError(
                f"{self.uri}: this run lost its output lock ({self._lost_reason}); "
                "stopping so that two runs never write the same output"
            )

    def _lose(self, reason: str) -> None:
        if self._lost_reason is None:
            logger.error("%s: output lock lost: %s", self.uri, reason)
            self._lost_reason = reason


@contextmanager
def output_lock(
    location: Location, *, holder_info: str = "", expiry_s: float | None = None
) -> Iterator[Lease]:
    """Hold the output folder ``location`` for one run; a second run fails at once.

    Raises ``OutputExistsError`` (exit code 2 in the CLI) naming the holder.
    ``holder_info`` is a short note shown to that second run (a job name, say).
    ``expiry_s`` defaults to the location's ``storage.lock_expiry_s``.
    """
    if expiry_s is None:
        options = location.fs.options if isinstance(location.fs, ObjectFileSystem) else None
        expiry_s = (options or StorageOptions()).lock_expiry_s
    if not expiry_s > 0:
        raise ValueError(f"expiry_s: expected seconds > 0, got {expiry_s!r}")
    holder = Holder.this_process(holder_info)
    if location.is_local:
        with _local_lock(location.path.rstrip("/") or "/", holder) as lease:
            yield lease
        return
    lock = _ObjectLock(location.join(LOCK_NAME), holder, expiry_s)
    lease = lock.acquire()
    try:
        yield lease
    finally:
        lock.release()


@contextmanager
def _local_lock(folder: str, holder: Holder) -> Iterator[Lease]:
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputExistsError(f"{folder} exists and is not a folder", _KEY)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise OutputExistsError(
                f"{folder} is being written by another distinfer run ({text}); "
                "wait for it to finish or choose another output.parquet",
                _KEY,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.describe().encode(), 0)
        yield Lease(folder, holder.describe())
    finally:
        os.close(fd)


class _ObjectLock:
    def __init__(self, location: Location, holder: Holder, expiry_s: float) -> None:
        self.location = location
        self.holder = holder
        self.expiry_s = expiry_s
        token = holder.record["token"]
        self.lease = Lease(location.parent.uri, holder.describe(), LockFence(location, token))
        self._tag = ""
        self._renewed = 0.0  # monotonic time of the last successful write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="distinfer-lock", daemon=True)

    def acquire(self) -> Lease:
        fs, path = self.location.fs, self.location.path
        for _ in range(_ACQUIRE_ATTEMPTS):
            try:
                self._tag = fs.create(path, self.holder.body())
                return self._started()
            except FileExistsError:
                pass
            try:
                info = fs.info(path)
                current = Holder.parse(fs.read(path, _MAX_LOCK_BYTES))
            except FileNotFoundError:
                continue  # released in between: try to create it again
            age_s = max(0.0, time.time() - info.mtime_s)
            who = current.describe() if current else "an unreadable lock"
            if current is not None and current.is_gone():
                reason = f"its process ({who}) is gone"
            elif age_s > self.expiry_s:
                reason = f"it ({who}) was not renewed for {age_s:.0f} s"
            else:
                raise OutputExistsError(
                    f"{self.lease.uri} is being written by another distinfer run ({who}; "
                    f"lock renewed {age_s:.0f} s ago); wait for it to finish or choose "
                    f"another output.parquet (a lock not renewed for {self.expiry_s:g} s "
                    "is taken over)",
                    _KEY,
                )
            if info.tag is None:
                raise OutputExistsError(
                    f"{self.location.uri} is stale ({reason}) but the store gives no "
                    "version tag to take it over safely; delete it by hand",
                    _KEY,
                )
            try:
                self._tag = fs.replace(path, self.holder.body(), if_match=info.tag)
            except (PreconditionFailedError, FileNotFoundError):
                continue  # another run moved first: look at the lock again
            logger.warning("%s: took the output lock over: %s", self.lease.uri, reason)
            return self._started()
        raise OutputExistsError(
            f"{self.lease.uri}: other runs keep taking its lock; try again later", _KEY
        )

    def _started(self) -> Lease:
        self._renewed = time.monotonic()
        self._thread.start()
        return self.lease

    def _renew(self) -> None:
        fs, path = self.location.fs, self.location.path
        while not self._stop.wait(self.expiry_s / 4):
            try:
                self._tag = fs.replace(path, self.holder.body(), if_match=self._tag)
                self._renewed = time.monotonic()
            except (PreconditionFailedError, FileNotFoundError):
                self.lease._lose(f"{self._current_holder()} replaced or deleted it")
                return
            except (StorageError, OSError) as exc:
                late_s = time.monotonic() - self._renewed
                logger.warning("%s: cannot renew the output lock: %s", self.lease.uri, exc)
                if late_s > self.expiry_s:
                    self.lease._lose(f"not renewed for {late_s:.0f} s, so others may take it")
                    return

    def _current_holder(self) -> str:
        try:
            current = Holder.parse(self.location.fs.read(self.location.path, _MAX_LOCK_BYTES))
        except (StorageError, OSError):
            return "another run"
        return current.describe() if current else "another run"

    def release(self) -> None:
        """Stop renewing; delete the lock if it is still ours (a lost one is not)."""
        self._stop.set()
        self._thread.join()
        if self.lease.lost:
            return
        fs, path = self.location.fs, self.location.path
        try:
            current = Holder.parse(fs.read(path, _MAX_LOCK_BYTES))
            # No conditional delete on S3: check the token, then delete. Only a lock
            # already expired could change hands in between.
            if current is not None and current.record.get("token") == self.holder.record["token"]:
                fs.delete(path)
        except FileNotFoundError:
            pass
        except (StorageError, OSError) as exc:
            logger.warning(
                "%s: could not release the output lock (%s); it expires after %g s",
                self.lease.uri,
                exc,
                self.expiry_s,
            )
