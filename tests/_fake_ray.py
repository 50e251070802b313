"""A deterministic stand-in for the slice of Ray that the dispatcher uses.

``FakeRay`` offers ``wait``, ``get``, ``kill`` and ``exceptions`` (Ray's own
classes, so the dispatcher's ``except`` clauses match). Time is simulated: a
fake actor finishes a unit ``delay_s(unit)`` simulated seconds after it was
sent, and answers ``answer_s`` later; ``wait`` runs the events in time order
(ties in the order they were scheduled) until an awaited ref is ready, so the
order in which units complete is the test's to choose, whatever the machine's
load. ``clock`` stands in for the ``time`` module of ``_dispatch``, so probes
and restart timeouts run on the same simulated time.

``FakeActor`` builds real rows for each index of a unit and hands them to the
real ``OrderedCollector`` behind a ``FakeCollector`` before it answers, as the
inference actor does. Failures are scripted: an actor that dies (and comes
back after a while, or not), an item that makes its unit raise (``poison``) or
kills its actor (``killer``), an item that becomes an error row (``bad``), a
collector that restarts after its n-th batch (a new ``OrderedCollector`` on the
same folder: a new epoch, the rows it had not committed lost).

>>> ray = FakeRay()
>>> ref = FakeRef("x")
>>> ray.at(2.0, lambda: ref.resolve("done"))
>>> ray.wait([ref], num_returns=1, timeout=0.5)
([], [FakeRef(x)])
>>> ray.now, ray.get(ref), ray.now
(0.5, 'done', 2.0)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray.exceptions

from distinfer.distributed._collector import OrderedCollector
from distinfer.distributed._rows import ResultBatch, error_row, result_row
from distinfer.distributed._work import CollectorStatus, ImageUnit, UnitDone, WorkUnit
from distinfer.engine._prediction import Prediction
from distinfer.sources import ImageRef


class Stuck(AssertionError):
    """The simulated run cannot go on: nothing left to happen, or far too long."""


def image_unit(unit_id: int, first: int, count: int) -> ImageUnit:
    """A unit of ``count`` images from index ``first``; image i is ``img<i>.png``."""
    return ImageUnit(
        unit_id,
        tuple(
            (i, ImageRef(source=f"img{i}.png", path=f"/in/img{i}.png"))
            for i in range(first, first + count)
        ),
    )


class FakeRef:
    """An ObjectRef: ready once resolved with a value or an error."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.ready = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.on_get: Callable[[FakeRef], None] | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.ready:
            self.ready, self.value, self.error = True, value, error

    def __repr__(self) -> str:
        return f"FakeRef({self.label}{', ready' if self.ready else ''})"


class _Method:
    """``handle.method.remote(*args)``: calls ``call`` and returns its ref."""

    def __init__(self, call: Callable[..., FakeRef]) -> None:
        self.remote = call


class Clock:
    """The simulated time, in seconds: what ``_dispatch`` sees as its ``time`` module."""

    def __init__(self, ray: FakeRay) -> None:
        self._ray = ray

    def monotonic(self) -> float:
        return self._ray.now

    def perf_counter(self) -> float:
        return self._ray.now

    def sleep(self, seconds: float) -> None:
        self._ray.run_until(self._ray.now + seconds)


@dataclass(frozen=True)
class Dispatch:
    """A unit sent to an actor at ``time``; ``lowest_open`` was then the lowest index
    sent before and not yet answered with success (None: none was open)."""

    time: float
    actor: str
    first: int
    end: int
    lowest_open: int | None


class FakeRay:
    """``wait``, ``get``, ``kill`` and ``exceptions`` on simulated time; see the module doc.

    ``max_time_s`` bounds the simulated time: a dispatcher that waits for
    something that never comes fails with ``Stuck`` instead of hanging.
    """

    exceptions = ray.exceptions

    def __init__(self, max_time_s: float = 3600.0) -> None:
        self.now = 0.0
        self.max_time_s = max_time_s
        self.clock = Clock(self)
        self.killed: list[tuple[str, float]] = []  # (actor, simulated time)
        self.dispatches: list[Dispatch] = []
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._open: set[int] = set()  # indices sent and not yet answered with success

    # -- simulated time -----------------------------------------------------------

    def at(self, time_s: float, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated ``time_s`` (after what is already scheduled then)."""
        heapq.heappush(self._events, (max(time_s, self.now), next(self._seq), action))

    def _step(self) -> None:
        time_s, _, action = heapq.heappop(self._events)
        self._advance(time_s)
        action()

    def _advance(self, time_s: float) -> None:
        if time_s > self.max_time_s:
            raise Stuck(f"still running after {self.max_time_s:.0f} simulated seconds")
        self.now = max(self.now, time_s)

    def run_until(self, time_s: float) -> None:
        while self._events and self._events[0][0] <= time_s:
            self._step()
        self._advance(time_s)

    # -- the Ray API --------------------------------------------------------------

    def wait(
        self, refs: Sequence[FakeRef], *, num_returns: int = 1, timeout: float | None = None
    ) -> tuple[list[FakeRef], list[FakeRef]]:
        """Ready refs in the order given, once ``num_returns`` are or ``timeout`` passed."""
        deadline = self.now + timeout if timeout is not None else float("inf")
        while sum(r.ready for r in refs) < num_returns:
            if not self._events or self._events[0][0] > deadline:
                if deadline == float("inf"):
                    raise Stuck(f"waiting for {refs} with nothing left to happen")
                self._advance(deadline)
                break
            self._step()
        ready = [r for r in refs if r.ready][:num_returns]
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: FakeRef) -> Any:
        while not ref.ready:
            if not self._events:
                raise Stuck(f"get({ref}) with nothing left to happen")
            self._step()
        if ref.on_get is not None:
            callback, ref.on_get = ref.on_get, None
            callback(ref)
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, actor: FakeActor, *, no_restart: bool = True) -> None:
        self.killed.append((actor.name, self.now))
        actor.die(restart_after_s=None)

    # -- books for the tests --------------------------------------------------------

    def sent(self, actor: str, unit: WorkUnit) -> None:
        low = min(self._open) if self._open else None
        self.dispatches.append(
            Dispatch(self.now, actor, unit.first_index, unit.first_index + len(unit), low)
        )
        self._open.update(unit.indices)

    def answered(self, unit: WorkUnit, success: bool) -> None:
        """The driver took a unit's answer; a failed unit's indices stay open (retried)."""
        if success:
            self._open.difference_update(unit.indices)


class FakeActor:
    """An inference actor on simulated time; see the module doc.

    A unit takes ``delay_s(unit)`` seconds (default ``seconds_per_item`` per
    item), units in parallel; its answer reaches the driver ``answer_s`` after
    its rows reached the collector. An item of ``bad`` becomes an error row, one of
    ``poison`` makes its unit raise, one of ``killer`` kills the actor, which is back
    ``restart_after_s`` later. ``units`` lists every unit sent, ``done``
    those whose rows it delivered, ``lost`` those it held when it died;
    ``max_held`` is the most units it held at once (sent, answer not yet taken).
    """

    def __init__(
        self,
        ray: FakeRay,
        name: str,
        *,
        seconds_per_item: float = 1.0,
        delay_s: Callable[[WorkUnit], float] | None = None,
        answer_s: float = 0.0,
        bad: Collection[int] = (),
        poison: Collection[int] = (),
        killer: Collection[int] = (),
        restart_after_s: float | None = 1.0,
    ) -> None:
        self.ray = ray
        self.name = name
        self.delay_s = delay_s or (lambda unit: seconds_per_item * len(unit))
        self.answer_s = answer_s
        self.bad, self.poison, self.killer = set(bad), set(poison), set(killer)
        self.killer_restart_after_s = restart_after_s
        self.state = "alive"  # or "restarting", or "gone"
        self.life = 0  # bumped at each death: work of an earlier life is void
        self.units: list[WorkUnit] = []
        self.done: list[WorkUnit] = []
        self.lost: list[WorkUnit] = []
        self.held = 0
        self.max_held = 0
        self.probes = 0
        self._running: dict[FakeRef, WorkUnit] = {}
        self.process = _Method(self._process)
        self.info = _Method(self._info)

    def __repr__(self) -> str:
        return f"FakeActor({self.name})"

    # -- scripted failures ---------------------------------------------------------

    def die_at(self, time_s: float, restart_after_s: float | None) -> None:
        """Die at ``time_s``; come back ``restart_after_s`` later, or never (None)."""
        self.ray.at(time_s, lambda: self.die(restart_after_s))

    def die(self, restart_after_s: float | None) -> None:
        if self.state == "gone":
            return
        self.life += 1
        for ref, unit in self._running.items():
            self.lost.append(unit)
            ref.resolve(error=ray.exceptions.ActorDiedError())
        self._running.clear()
        if restart_after_s is None:
            self.state = "gone"
            return
        self.state = "restarting"
        life = self.life
        self.ray.at(self.ray.now + restart_after_s, lambda: self._restart(life))

    def _restart(self, life: int) -> None:
        if self.state == "restarting" and self.life == life:
            self.state = "alive"

    # -- the remote methods ----------------------------------------------------------

    def _process(self, unit: WorkUnit, collector: FakeCollector) -> FakeRef:
        ref = FakeRef(f"{self.name}:{unit.first_index}+{len(unit)}")
        self.units.append(unit)
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        self.ray.sent(self.name, unit)

        def taken(ref: FakeRef) -> None:
            self.held -= 1
            self.ray.answered(unit, success=ref.error is None)

        ref.on_get = taken
        if self.state != "alive":
            ref.resolve(error=ray.exceptions.ActorDiedError())
            return ref
        self._running[ref] = unit
        life = self.life
        self.ray.at(self.ray.now + self.delay_s(unit), lambda: self._finish(ref, collector, life))
        return ref

    def _finish(self, ref: FakeRef, collector: FakeCollector, life: int) -> None:
        if life != self.life:
            return  # died meanwhile: the ref failed then
        unit = self._running.pop(ref)
        indices = set(unit.indices)
        if indices & self.killer:
            self._running[ref] = unit
            self.die(self.killer_restart_after_s)
            return
        if indices & self.poison:
            cause = ValueError(f"poison item {min(indices & self.poison)}")
            error = ray.exceptions.RayTaskError("InferenceActor.process", "", cause)
            self.ray.at(self.ray.now + self.answer_s, lambda: ref.resolve(error=error))
            return
        assert isinstance(unit, ImageUnit), "the fake actor does images only"
        batch = ResultBatch.from_rows([self._row(i, image) for i, image in unit.items])
        epoch, committed = self.ray.get(collector.add.remote(batch))  # as the real actor does
        self.done.append(unit)
        errors = batch.errors()
        answer = UnitDone(
            unit_id=unit.unit_id,
            node=self.name,
            items=len(batch),
            errors=len(errors),
            busy_s=self.delay_s(unit),
            collector_epoch=epoch,
            committed_until=committed,
            error_samples=tuple(errors[:3]),
        )
        self.ray.at(self.ray.now + self.answer_s, lambda: ref.resolve(answer))

    def _row(self, index: int, image: ImageRef) -> dict[str, Any]:
        if index in self.bad:
            return error_row(index, image.source, None, f"bad image {index}", self.name)
        return result_row(index, image.source, None, Prediction.empty(4, 3), self.name)

    def _info(self) -> FakeRef:
        self.probes += 1
        ref = FakeRef(f"{self.name}.info")
        if self.state == "alive":
            ref.resolve({"node": self.name})
        elif self.state == "restarting":
            ref.resolve(error=ray.exceptions.ActorUnavailableError("restarting", None))
        else:
            ref.resolve(error=ray.exceptions.ActorDiedError())
        return ref


class FakeCollector:
    """The real ``OrderedCollector`` behind a handle whose calls complete at once.

    ``restart_after(n)`` replaces the instance right after it took its n-th
    batch, as Ray restarts a collector that died: a new epoch, resuming at the
    manifest's ``committed_until``. ``lost`` holds the status of each instance
    replaced; ``taken`` the batches each instance took, as ``(first, end, node)``.
    """

    def __init__(self, ray: FakeRay, folder: str | Path, *, rows_per_part: int = 10) -> None:
        self.ray = ray
        self.folder = str(folder)
        self.rows_per_part = rows_per_part
        self.instance = self._start()
        self.taken: list[list[tuple[int, int, str]]] = [[]]
        self.lost: list[CollectorStatus] = []
        self._restart_at: set[int] = set()
        self.add = _Method(self._add)
        self.flush = _Method(lambda: self._now(self.instance.flush()))
        self.status = _Method(lambda: self._now(self.instance.status()))

    def _start(self) -> OrderedCollector:
        return OrderedCollector(
            self.folder, "job", rows_per_part=self.rows_per_part, flush_interval_s=3600
        )

    def _now(self, value: Any) -> FakeRef:
        ref = FakeRef("collector")
        ref.resolve(value)
        return ref

    @property
    def batches(self) -> int:
        """Batches taken by any instance."""
        return sum(map(len, self.taken))

    def _add(self, batch: ResultBatch) -> FakeRef:
        ref = self._now(self.instance.add(batch))
        node = batch.records.column("node")[0].as_py()
        self.taken[-1].append((batch.first, batch.end, node))
        if self.batches in self._restart_at:
            self.restart()
        return ref

    def restart_after(self, *batches: int) -> None:
        """Restart right after the n-th batch taken, for each n given (counted from 1)."""
        self._restart_at.update(batches)

    def restart(self) -> None:
        self.lost.append(self.instance.status())
        self.instance = self._start()
        self.taken.append([])


def actors(*fakes: FakeActor) -> dict[str, FakeActor]:
    """The actors by name, as the dispatcher takes them."""
    return {a.name: a for a in fakes}


def indices_of(dispatches: Iterable[Dispatch]) -> list[tuple[int, int]]:
    return [(d.first, d.end) for d in dispatches]
