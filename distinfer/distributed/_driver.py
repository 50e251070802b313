"""The driver: enumerate inputs lazily, start the actors, run the dispatcher.

``run(config)`` is what ``distinfer run`` does. It never touches pixels of
file inputs: units carry references. Everything that can be checked without
Ray (configuration, model, output folders) is checked before Ray starts. The
scheduling and the failure handling live in ``_dispatch``.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import RunConfig
from .._errors import ActorDiedError, ConfigError, InputError
from ..sinks._parquet import output_lock, prepare_output
from ..sources import iter_images, plan_segments, probe
from ._actor import InferenceActor
from ._collector import OrderedCollector, VideoOutput
from ._dispatch import Abort, Dispatcher
from ._ray import ray_session
from ._rows import error_row
from ._work import ImageUnit, UnitSize, VideoUnit, WorkUnit

logger = logging.getLogger(__name__)


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
    items_per_unit: int = 0  # images per unit at the end (``items_per_unit: auto`` adapts)

    @property
    def items_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressFn = Callable[[RunSummary, int | None], None]


def fingerprint(config: RunConfig) -> str:
    """Identifies a job's results: same model and inputs, same indices."""
    key = {
        "model": config.model.model_dump(),
        "input": config.input.model_dump(),
        "base_dir": config.base_dir,
    }
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

    def __init__(self, config: RunConfig, plan: _Plan, resume_from: int, size: UnitSize) -> None:
        self.config = config
        self.plan = plan
        self.resume_from = resume_from
        self.size = size
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
                    if len(batch) >= self.size.value:
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
    good = [
        (path, info, base) for path, info, base in plan.videos if not isinstance(info, InputError)
    ]
    outputs = []
    for n, (path, info, base) in enumerate(good):
        out = (
            target
            if len(good) == 1
            else target.with_name(f"{target.stem}-{n:03d}-{Path(path).stem}{target.suffix}")
        )
        outputs.append(VideoOutput(path, str(out), base, info.frame_count))
    return outputs


def actor_openvino_config(
    config: Mapping[str, Any], actors_per_node: int, cpus: float
) -> dict[str, Any]:
    """The OpenVINO settings of each of ``actors_per_node`` actors on a node of ``cpus``.

    Several OpenVINO instances on one node each get their share of cores (Ray's
    OMP_NUM_THREADS does not limit OpenVINO's TBB pool), unpinned: OpenVINO pins
    its threads to cores by default, and every instance pins to the same first
    cores. Measured on 16 cores with ``examples/actors_per_node.py`` (ppocr-det,
    the bare model's limit 287 fps): 4 processes of 4 threads ran 74 fps pinned
    and 237 unpinned; 2 of 8 threads 148 and 214; one process of 16 threads 179.
    Settings in ``config`` win.

    >>> actor_openvino_config({}, 4, 16)
    {'INFERENCE_NUM_THREADS': 4, 'ENABLE_CPU_PINNING': False}
    >>> actor_openvino_config({"ENABLE_CPU_PINNING": True}, 1, 16)
    {'ENABLE_CPU_PINNING': True}
    """
    openvino = dict(config)
    if actors_per_node > 1:
        openvino.setdefault("INFERENCE_NUM_THREADS", max(1, int(cpus / actors_per_node)))
        openvino.setdefault("ENABLE_CPU_PINNING", False)
    return openvino


def start_actors(ray: Any, config: RunConfig) -> dict[str, Any]:
    """One inference actor per alive node with CPUs (``actors_per_node`` each)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = config.cluster
    actors: dict[str, Any] = {}
    remote_cls = ray.remote(InferenceActor)
    overlays = config.resolve(config.output.overlays) if config.output.overlays else None
    for node in ray.nodes():
        cpus = node.get("Resources", {}).get("CPU", 0)
        if not node.get("Alive") or cpus <= 0:
            continue
        share = cpus / cluster.actors_per_node
        openvino = actor_openvino_config(config.model.openvino, cluster.actors_per_node, cpus)
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
                model,
                config.base_dir,
                jobs=cluster.jobs_per_actor,  # None: the engine's default for its cores
                max_image_pixels=config.input.max_image_pixels,
                max_file_bytes=config.input.max_file_bytes,
                overlays_dir=overlays,
                node=name,
            )
    if not actors:
        raise ActorDiedError("no alive Ray node with CPUs to place an inference actor on")
    return actors


def start_collector(ray: Any, config: RunConfig, plan: _Plan) -> Any:
    """The collector, on this node: the output folders are this machine's paths."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return (
        ray.remote(OrderedCollector)
        .options(
            num_cpus=0,
            max_restarts=-1,  # it resumes from the manifest; the dispatcher resends the rest
            max_task_retries=-1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        )
        .remote(
            config.resolve(config.output.parquet),
            fingerprint(config),
            rows_per_part=config.output.rows_per_part,
            flush_interval_s=config.output.flush_interval_s,
            videos=_video_outputs(config, plan),
        )
    )


def create_output_folders(config: RunConfig) -> None:
    """Create the output folders now, so a path that cannot be used fails before Ray."""
    output = config.output
    folders = {
        "output.parquet": output.parquet,
        "output.overlays": output.overlays,
        "output.video": output.video and str(Path(config.resolve(output.video)).parent),
    }
    for key, folder in folders.items():
        if folder is None:
            continue
        path = Path(config.resolve(folder))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create folder {path}: {exc.strerror or exc}", key) from None
        if not path.is_dir():
            raise ConfigError(f"{path} is not a folder", key)


def run(
    config: RunConfig, *, overwrite: bool = False, progress: ProgressFn | None = None
) -> RunSummary:
    """Run a job to the end; see the module docstring. Raises ``ConfigError``,
    ``OutputError`` or ``ActorDiedError``; item failures are counted, not raised.

    A run whose output holds an unfinished run of the same job resumes it:
    only the indices not yet committed are computed.

    >>> summary = run(RunConfig.load("configs/demo.yaml"))     # doctest: +SKIP
    >>> summary.errors                                       # doctest: +SKIP
    0
    """
    config.check_paths()
    config.model.build_task(config.base_dir)  # a bad model fails here, before Ray starts
    create_output_folders(config)
    results = config.resolve(config.output.parquet)
    with output_lock(results):  # a second run into the same folder fails here
        return _run(
            config, prepare_output(results, fingerprint(config), overwrite=overwrite), progress
        )


def _run(config: RunConfig, resume_from: int, progress: ProgressFn | None) -> RunSummary:
    started = time.perf_counter()
    summary = RunSummary(resumed_from=resume_from)
    plan = plan_videos(config)
    with ray_session(config.cluster.address, dashboard=config.cluster.dashboard) as ray:
        collector = start_collector(ray, config, plan)
        actors: dict[str, Any] = {}
        try:
            actors = start_actors(ray, config)
            size = UnitSize(
                config.cluster.items_per_unit,
                actors=len(actors),
                units_in_flight=config.cluster.units_in_flight_per_actor,
                window_items=config.cluster.reorder_buffer_items,
            )
            enumeration = Enumeration(config, plan, resume_from, size)
            dispatcher = Dispatcher(
                ray,
                config.cluster,
                collector,
                dict(actors),
                iter(enumeration),
                summary,
                progress,
                size,
            )
            try:
                dispatcher.run()
            except Abort:
                dispatcher.collector_call(collector.flush.remote())  # a rerun resumes after it
                summary.elapsed_s = time.perf_counter() - started
                return summary
            assert enumeration.total is not None
            total = summary.total = enumeration.total
            summary.elapsed_s = time.perf_counter() - started
            summary.items_per_unit = size.value
            stats = {
                "elapsed_s": summary.elapsed_s,
                "items_per_s": summary.items_per_s,
                "items_per_unit": size.value,
                "nodes": summary.nodes,
                "resumed_from": resume_from,
            }
            summary.manifest = dispatcher.collector_call(collector.finish.remote(total, stats))
        finally:
            for actor in [*actors.values(), collector]:
                ray.kill(actor, no_restart=True)
    if progress is not None:
        progress(summary, total)
    return summary
