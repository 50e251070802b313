"""The driver: enumerate inputs lazily, shard them across actors, keep the books.

``run(config)`` is what ``distinfer run`` does. It never touches pixels of
file inputs: units carry references. Work in flight is bounded per actor,
and no unit is sent further than ``reorder_buffer_items`` past the lowest
unfinished index, so the collector's buffer stays bounded too. A unit whose
actor dies goes back to the front of the queue; the collector drops the
duplicates that a retry can produce.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._actor import InferenceActor, describe, error_row
from ._collector import OrderedCollector, VideoOutput
from ._config import RunConfig
from ._errors import ActorDiedError, InputError
from ._ray import ray_session
from ._work import ImageUnit, UnitDone, VideoUnit, WorkUnit
from .sinks._parquet import prepare_output
from .sources import iter_images, plan_segments, probe

logger = logging.getLogger(__name__)

#: A unit that failed this many times is split into single items; a single item
#: (or a video segment) that fails this many times becomes error rows.
MAX_ATTEMPTS = 2
#: How long a dead actor may take to come back before its node is given up.
ACTOR_RESTART_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 0.5


@dataclass
class RunSummary:
    """What a run did; ``errors`` > 0 makes ``distinfer run`` exit with 1."""

    total: int = 0
    processed: int = 0
    errors: int = 0
    resumed_from: int = 0
    elapsed_s: float = 0.0
    aborted: str | None = None
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressFn = Callable[[RunSummary, int | None], None]


def fingerprint(config: RunConfig) -> str:
    """Identifies a job's results: same model and inputs, same indices."""
    key = {"model": config.model.model_dump(), "input": config.input.model_dump(),
           "base_dir": config.base_dir}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def video_paths(config: RunConfig) -> list[str]:
    """The video files of the config, globs expanded (sorted), in config order."""
    paths: list[str] = []
    for spec in config.input.videos:
        spec = config.resolve(spec)
        if any(c in spec for c in "*?["):
            paths.extend(sorted(glob.glob(spec, recursive=True)))
        else:
            paths.append(spec)
    return paths


@dataclass
class _Plan:
    """Videos come first (probed up front: the collector needs their indices)."""

    videos: list[tuple[str, Any, int]]  # (path, VideoInfo | InputError, base index)
    first_image_index: int


def plan_videos(config: RunConfig) -> _Plan:
    videos = []
    index = 0
    for path in video_paths(config):
        try:
            info: Any = probe(path)
            videos.append((path, info, index))
            index += info.frame_count
        except InputError as exc:
            videos.append((path, exc, index))
            index += 1  # one error row for the unreadable video
    return _Plan(videos, index)


class Enumeration:
    """Work units in index order, lazily, skipping committed indices.

    Yields ``WorkUnit`` objects, or a ready error row (a dict) for an input known
    bad before any actor sees it. ``total`` is the number of indices, known once
    iteration ends.
    """

    def __init__(self, config: RunConfig, plan: _Plan, resume_from: int) -> None:
        self.config = config
        self.plan = plan
        self.resume_from = resume_from
        self.total: int | None = None

    def __iter__(self) -> Iterator[WorkUnit | dict[str, Any]]:
        config, resume_from = self.config, self.resume_from
        unit_ids = itertools.count()
        for video_id, (path, info, base) in enumerate(self.plan.videos):
            if isinstance(info, InputError):
                if base >= resume_from:
                    yield error_row(base, path, None, str(info), "driver")
                continue
            for segment in plan_segments(info, config.input.video_segment_frames):
                if base + segment.end_frame > resume_from:
                    yield VideoUnit(next(unit_ids), path, path, segment, base, video_id)
        index = self.plan.first_image_index
        batch: list[tuple[int, Any]] = []
        for spec in config.input.images:
            refs = iter_images(config.resolve(spec), max_inline_bytes=config.input.max_file_bytes)
            for ref in refs:
                if index >= resume_from:
                    batch.append((index, ref))
                    if len(batch) == config.cluster.items_per_unit:
                        yield ImageUnit(next(unit_ids), tuple(batch))
                        batch = []
                index += 1
        if batch:
            yield ImageUnit(next(unit_ids), tuple(batch))
        self.total = index


def _video_outputs(config: RunConfig, plan: _Plan) -> list[VideoOutput]:
    """Where annotated videos go: ``output.video`` itself for one input video;
    for several, ``<stem>-<n>-<video stem><suffix>`` beside it."""
    if config.output.video is None:
        return []
    target = Path(config.resolve(config.output.video))
    good = [(path, info, base) for path, info, base in plan.videos
            if not isinstance(info, InputError)]
    outputs = []
    for n, (path, info, base) in enumerate(good):
        out = target if len(good) == 1 else target.with_name(
            f"{target.stem}-{n:03d}-{Path(path).stem}{target.suffix}")
        outputs.append(VideoOutput(path, str(out), base, info.frame_count))
    return outputs


def _split(unit: WorkUnit, unit_ids: Iterator[int]) -> list[WorkUnit]:
    if isinstance(unit, ImageUnit) and len(unit) > 1:
        return [ImageUnit(next(unit_ids), (item,)) for item in unit.items]
    return []


def _failed_rows(unit: WorkUnit, reason: str) -> list[dict[str, Any]]:
    if isinstance(unit, ImageUnit):
        return [error_row(i, ref.source, None, reason, "driver") for i, ref in unit.items]
    return [error_row(unit.base_index + n, unit.source, n, reason, "driver")
            for n in range(unit.segment.start_frame, unit.segment.end_frame)]


def start_actors(ray: Any, config: RunConfig, collector: Any) -> dict[str, Any]:
    """One inference actor per alive node with CPUs (``actors_per_node`` each)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = config.cluster
    actors: dict[str, Any] = {}
    remote_cls = ray.remote(InferenceActor)
    for node in ray.nodes():
        cpus = node.get("Resources", {}).get("CPU", 0)
        if not node.get("Alive") or cpus <= 0:
            continue
        share = cpus / cluster.actors_per_node
        jobs = cluster.jobs_per_actor if cluster.jobs_per_actor is not None else max(1, int(share))
        openvino = dict(config.model.openvino)
        if cluster.actors_per_node > 1:
            # Several OpenVINO instances on one node: each gets its share of cores
            # (Ray's OMP_NUM_THREADS does not limit OpenVINO's TBB pool).
            openvino.setdefault("INFERENCE_NUM_THREADS", max(1, int(share)))
        model = config.model.model_copy(update={"openvino": openvino})
        for k in range(cluster.actors_per_node):
            name = node["NodeID"][:12] + (f"-{k}" if cluster.actors_per_node > 1 else "")
            actors[name] = remote_cls.options(
                num_cpus=cluster.cpus_per_actor or share,
                max_restarts=cluster.max_actor_restarts,
                max_task_retries=0,  # the driver re-dispatches, knowing what was lost
                max_concurrency=cluster.units_in_flight_per_actor + 1,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(
                model, config.base_dir, collector,
                jobs=jobs,
                max_image_pixels=config.input.max_image_pixels,
                max_file_bytes=config.input.max_file_bytes,
                overlays_dir=config.resolve(config.output.overlays) if config.output.overlays else None,
                node=name,
            )
    if not actors:
        raise ActorDiedError("no alive Ray node with CPUs to place an inference actor on")
    return actors


class _Dispatcher:
    """The scheduling loop: credits per actor, retries, the reorder window.

    Each actor holds at most ``units_in_flight_per_actor`` units, so a faster
    actor frees credits sooner and gets more work. A new unit is sent only if
    its first index is within ``reorder_buffer_items`` of the lowest unit not
    yet finished; retried units always go first.
    """

    def __init__(self, ray: Any, config: RunConfig, collector: Any, actors: dict[str, Any],
                 units: Iterator[WorkUnit | dict[str, Any]], summary: RunSummary,
                 progress: ProgressFn | None) -> None:
        self.ray = ray
        self.cluster = config.cluster
        self.collector = collector
        self.actors = actors
        self.units = units
        self.summary = summary
        self.progress = progress
        self.retry: deque[WorkUnit] = deque()
        self.peeked: WorkUnit | None = None
        self.exhausted = False
        self.in_flight: dict[Any, tuple[str, WorkUnit]] = {}
        self.load = dict.fromkeys(actors, 0)
        self.suspect: dict[str, tuple[Any, float]] = {}  # actor -> (probe ref, since)
        self.attempts: dict[int, int] = {}
        self.open_heap: list[tuple[int, int]] = []  # (first index, unit id), lazily pruned
        self.open_ids: set[int] = set()
        self.acked: dict[int, WorkUnit] = {}  # acked; needed again if the collector restarts
        self.epoch: str | None = None
        self.unit_ids = itertools.count(10**12)  # ids for units made by splitting

    # -- the window ------------------------------------------------------------------

    def track(self, unit: WorkUnit) -> None:
        self.open_ids.add(unit.unit_id)
        heapq.heappush(self.open_heap, (unit.first_index, unit.unit_id))

    def low_index(self) -> int | None:
        while self.open_heap and self.open_heap[0][1] not in self.open_ids:
            heapq.heappop(self.open_heap)
        return self.open_heap[0][0] if self.open_heap else None

    def next_unit(self) -> WorkUnit | None:
        if self.retry:
            return self.retry.popleft()
        while self.peeked is None and not self.exhausted:
            item = next(self.units, None)
            if item is None:
                self.exhausted = True
            elif isinstance(item, dict):  # an error row known at enumeration
                self.send_rows([item])
            else:
                self.peeked = item
        if self.peeked is None:
            return None
        low = self.low_index()
        if low is not None and self.peeked.first_index >= low + self.cluster.reorder_buffer_items:
            return None  # too far ahead of the slowest unit: wait
        unit, self.peeked = self.peeked, None
        self.track(unit)
        return unit

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.fill()
            if not self.in_flight and not self.suspect:
                if self.exhausted and not self.retry and self.peeked is None:
                    return
                if not self.actors:
                    raise ActorDiedError(
                        "every inference actor died and none could be restarted; "
                        "check the actors' logs (`ray logs`) for the cause, then rerun "
                        "the same command to resume from what was committed"
                    )
            waiting = list(self.in_flight) + [probe for probe, _ in self.suspect.values()]
            ready, _ = self.ray.wait(waiting, num_returns=1, timeout=WAIT_TIMEOUT_S)
            for ref in ready:
                if ref in self.in_flight:
                    self.on_unit_done(ref)
                else:
                    self.on_probe_done(ref)
            self.expire_suspects()
            if self.progress is not None:
                self.progress(self.summary, None)
            self.check_error_budget()

    def fill(self) -> None:
        limit = self.cluster.units_in_flight_per_actor
        while True:
            free = [n for n in self.actors if n not in self.suspect and self.load[n] < limit]
            if not free:
                return
            unit = self.next_unit()
            if unit is None:
                return
            name = min(free, key=self.load.__getitem__)
            self.in_flight[self.actors[name].process.remote(unit)] = (name, unit)
            self.load[name] += 1

    def on_unit_done(self, ref: Any) -> None:
        name, unit = self.in_flight.pop(ref)
        self.load[name] -= 1
        try:
            done: UnitDone = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            logger.warning("actor %s died while processing unit %d: %s", name, unit.unit_id, exc)
            self.mark_suspect(name)
            self.reschedule(unit, f"worker died ({type(exc).__name__})")
            return
        except self.ray.exceptions.RayTaskError as exc:
            logger.warning("unit %d failed on %s: %s", unit.unit_id, name, exc)
            self.reschedule(unit, describe(exc.cause or exc))
            return
        self.on_ack(unit, done)

    def on_ack(self, unit: WorkUnit, done: UnitDone) -> None:
        if self.epoch is not None and done.collector_epoch != self.epoch:
            self.collector_restarted()
        self.epoch = done.collector_epoch
        self.open_ids.discard(unit.unit_id)
        self.acked[unit.unit_id] = unit
        s = self.summary
        s.processed += done.items
        s.errors += done.errors
        if len(s.error_samples) < 10:
            s.error_samples.extend(done.error_samples)
        node = s.nodes.setdefault(done.node, {"items": 0, "errors": 0, "busy_s": 0.0})
        node["items"] += done.items
        node["errors"] += done.errors
        node["busy_s"] += done.busy_s
        if len(self.acked) > 4 * len(self.actors) * self.cluster.units_in_flight_per_actor:
            self.forget_committed()

    def forget_committed(self) -> None:
        committed = self.ray.get(self.collector.status.remote())["committed_until"]
        for unit_id, unit in list(self.acked.items()):
            if unit.first_index + len(unit) <= committed:
                del self.acked[unit_id]

    def collector_restarted(self) -> None:
        """A new collector epoch: rows it buffered are gone; send those units again."""
        committed = self.ray.get(self.collector.status.remote())["committed_until"]
        logger.warning("collector restarted; resending work from index %d", committed)
        for unit in sorted(self.acked.values(), key=lambda u: u.first_index):
            if unit.first_index + len(unit) > committed:
                self.summary.processed -= len(unit)
                self.track(unit)
                self.retry.append(unit)
        self.acked.clear()

    def reschedule(self, unit: WorkUnit, reason: str) -> None:
        attempts = self.attempts[unit.unit_id] = self.attempts.get(unit.unit_id, 0) + 1
        if attempts < MAX_ATTEMPTS:
            self.retry.appendleft(unit)
            return
        self.open_ids.discard(unit.unit_id)
        parts = _split(unit, self.unit_ids)
        if not parts:  # one item, or a video segment: its rows record the failure
            self.send_rows(_failed_rows(unit, f"failed {attempts} times; last: {reason}"))
            return
        for part in parts:  # isolate the item that kills workers
            self.attempts[part.unit_id] = MAX_ATTEMPTS - 1
            self.track(part)
        self.retry.extendleft(reversed(parts))

    def send_rows(self, rows: list[dict[str, Any]]) -> None:
        self.ray.get(self.collector.add.remote(rows))
        self.summary.processed += len(rows)
        self.summary.errors += len(rows)
        if len(self.summary.error_samples) < 10:
            self.summary.error_samples.append(rows[0]["error"])

    # -- actor health ----------------------------------------------------------------

    def mark_suspect(self, name: str) -> None:
        if name in self.actors and name not in self.suspect:
            self.suspect[name] = (self.actors[name].info.remote(), time.monotonic())

    def on_probe_done(self, ref: Any) -> None:
        name = next(n for n, (probe, _) in self.suspect.items() if probe == ref)
        del self.suspect[name]
        try:
            self.ray.get(ref)
            logger.info("actor %s is back", name)
        except self.ray.exceptions.RayActorError:
            logger.warning("actor %s is gone for good", name)
            self.drop_actor(name)

    def expire_suspects(self) -> None:
        now = time.monotonic()
        for name, (_, since) in list(self.suspect.items()):
            if now - since > ACTOR_RESTART_TIMEOUT_S:
                del self.suspect[name]
                logger.warning("actor %s not back after %.0f s", name, ACTOR_RESTART_TIMEOUT_S)
                self.drop_actor(name)

    def drop_actor(self, name: str) -> None:
        self.actors.pop(name, None)
        self.load.pop(name, None)

    def check_error_budget(self) -> None:
        s = self.summary
        limit = self.cluster.max_error_fraction
        if limit < 1.0 and s.processed >= 20 and s.errors > limit * s.processed:
            s.aborted = (
                f"{s.errors} of {s.processed} items failed, more than "
                f"cluster.max_error_fraction={limit}"
            )
            raise _Abort(s.aborted)


class _Abort(Exception):
    """Raised inside the loop when the error budget is spent."""


def run(
    config: RunConfig, *, overwrite: bool = False, progress: ProgressFn | None = None
) -> RunSummary:
    """Run a job to the end; see the module docstring. Raises ``ConfigError``,
    ``OutputError`` or ``ActorDiedError``; item failures are counted, not raised.

    >>> summary = run(RunConfig.load("configs/demo.yaml"))     # doctest: +SKIP
    >>> summary.errors                                       # doctest: +SKIP
    0
    """
    config.check_paths()
    config.model.build_task(config.base_dir)  # a bad model fails here, before Ray starts
    parquet_dir = config.resolve(config.output.parquet)
    resume_from = prepare_output(parquet_dir, fingerprint(config), overwrite=overwrite)
    started = time.perf_counter()
    summary = RunSummary(resumed_from=resume_from)
    plan = plan_videos(config)
    with ray_session(config.cluster.address, dashboard=config.cluster.dashboard) as ray:
        collector = ray.remote(OrderedCollector).options(
            num_cpus=0, max_restarts=-1, max_task_retries=-1,
        ).remote(
            parquet_dir, fingerprint(config),
            rows_per_part=config.output.rows_per_part,
            flush_interval_s=config.output.flush_interval_s,
            videos=_video_outputs(config, plan),
        )
        actors = start_actors(ray, config, collector)
        enumeration = Enumeration(config, plan, resume_from)
        dispatcher = _Dispatcher(
            ray, config, collector, actors, iter(enumeration), summary, progress
        )
        try:
            dispatcher.run()
        except _Abort:
            summary.elapsed_s = time.perf_counter() - started
            return summary
        assert enumeration.total is not None
        total = summary.total = enumeration.total
        summary.elapsed_s = time.perf_counter() - started
        stats = {"elapsed_s": summary.elapsed_s, "items_per_s": summary.items_per_s,
                 "nodes": summary.nodes, "resumed_from": resume_from}
        summary.manifest = ray.get(collector.finish.remote(total, stats))
    if progress is not None:
        progress(summary, total)
    return summary
