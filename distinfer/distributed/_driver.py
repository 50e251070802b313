"""The driver: enumerate inputs lazily, start the actors, run the dispatcher.

``run(config)`` is what ``distinfer run`` does. It never touches pixels of
file inputs: units carry references. Everything that can be checked without
Ray (configuration, access to object storage, model, output folders, the
output lock) is checked before Ray starts. The scheduling and the failure
handling live in ``_dispatch``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._config import RunConfig
from .._errors import ActorDiedError, ConfigError, StorageAccessError
from .._locations import check_access
from ..sinks._parquet import prepare_output
from ..storage import output_lock
from ._actor import InferenceActor
from ._autoscale import ScaleRequests, request_resources
from ._collector import OrderedCollector, VideoOutput
from ._dispatch import Abort, Dispatcher, DispatchOptions
from ._logs import run_log_level
from ._metrics import MetricsReporter
from ._placement import Placement, actor_openvino_config, actors_for, node_cpus, short_id
from ._plan import Enumeration, TotalCount, VideoPlan, plan_videos
from ._ray import metrics_endpoints, ray_session
from ._reach import check_nodes_reach, local_paths, missing
from ._summary import ProgressFn, RunSummary
from ._work import UnitSize

logger = logging.getLogger(__name__)

#: After Ctrl-C, how long the collector may take to commit what it holds in order.
INTERRUPT_FLUSH_TIMEOUT_S = 15.0


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``committed_until`` is where a rerun resumes (None: unknown,
    the output's manifest says)."""

    def __init__(self, committed_until: int | None) -> None:
        super().__init__(committed_until)
        self.committed_until = committed_until


def fingerprint(config: RunConfig) -> str:
    """Identifies a job's results: same model and inputs, same indices."""
    key = {
        "model": config.model.model_dump(),
        "input": config.input.model_dump(),
        "base_dir": config.base_dir,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _video_outputs(config: RunConfig, plan: VideoPlan) -> list[VideoOutput]:
    """Where annotated videos go: ``output.video`` itself for one input video;
    for several, ``<stem>-<n>-<video stem><suffix>`` beside it."""
    target = config.locations.video
    if target is None:
        return []
    good = plan.readable
    outputs = []
    for n, video in enumerate(good):
        assert video.info is not None
        out = (
            target
            if len(good) == 1
            else target.parent.join(f"{target.stem}-{n:03d}-{video.location.stem}{target.suffix}")
        )
        outputs.append(VideoOutput(video.location, out, video.base_index, video.info.frame_count))
    return outputs


def spawn_actors(
    ray: Any, config: RunConfig, node: Mapping[str, Any], *, metrics_run: str | None = None
) -> dict[str, Any]:
    """The inference actors of one node (a ``ray.nodes()`` entry), by name:
    ``actors_per_node`` of them (``auto``: from the node's CPUs), each with its share
    of the node's cores. ``metrics_run``: the run's tag, when they record metrics."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = config.cluster
    cpus = node_cpus(node)
    count = actors_for(cluster.actors_per_node, cpus)
    openvino = actor_openvino_config(config.model.openvino, count, cpus)
    model = config.model.model_copy(update={"openvino": openvino})
    remote_cls = ray.remote(InferenceActor)
    actors: dict[str, Any] = {}
    for k in range(count):
        name = short_id(node["NodeID"]) + (f"-{k}" if count > 1 else "")
        actors[name] = remote_cls.options(
            num_cpus=cluster.cpus_per_actor or cpus / count,
            max_restarts=cluster.max_actor_restarts,
            max_task_retries=0,  # the driver re-dispatches, knowing what was lost
            max_concurrency=cluster.units_in_flight_per_actor + 1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote(
            model,
            config.locations.model,
            jobs=cluster.jobs_per_actor,  # None: the engine's default for its cores
            max_image_pixels=config.input.max_image_pixels,
            max_file_bytes=config.input.max_file_bytes,
            overlays=config.locations.overlays,
            node=name,
            log_level=run_log_level(),
            metrics_run=metrics_run,
        )
    return actors


def reach_check(ray: Any, config: RunConfig) -> Callable[[Mapping[str, Any]], Any] | None:
    """For a run on a cluster with local paths: ``check(node)``, what a joining node
    cannot see (``(key, path)`` pairs), as ``check_nodes_reach`` asks at the start."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = local_paths(config.locations)
    if config.cluster.address is None or not paths:
        return None
    task = ray.remote(missing)

    def check(node: Mapping[str, Any]) -> Any:
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        return task.options(num_cpus=0, max_retries=0, scheduling_strategy=strategy).remote(paths)

    return check


def start_collector(
    ray: Any, config: RunConfig, plan: VideoPlan, fence: Callable[[], None] | None = None
) -> Any:
    """The collector, on this node (local output paths are this machine's paths).

    ``fence`` (object storage) checks before each part that the run still holds
    its output lock."""
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
            config.locations.parquet,
            fingerprint(config),
            rows_per_part=config.output.rows_per_part,
            flush_interval_s=config.output.flush_interval_s,
            videos=_video_outputs(config, plan),
            fence=fence,
        )
    )


def create_output_folders(config: RunConfig) -> None:
    """Create the local output folders now, so a path that cannot be used fails before
    Ray (a prefix on object storage needs no creating)."""
    locations = config.locations
    folders = {
        "output.parquet": locations.parquet,
        "output.overlays": locations.overlays,
        "output.video": locations.video and locations.video.parent,
    }
    for key, folder in folders.items():
        if folder is None or not folder.is_local:
            continue
        path = folder.path
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create folder {path}: {exc.strerror or exc}", key) from None
        if not os.path.isdir(path):
            raise ConfigError(f"{path} is not a folder", key)


def _with_total(progress: ProgressFn | None, count: TotalCount) -> ProgressFn | None:
    """``progress`` told the total as soon as the background count has it; the count
    starts with the first results (the first units' listing goes first)."""
    if progress is None:
        return None

    def report(summary: RunSummary, total: int | None) -> None:
        if summary.processed:
            count.start()
        progress(summary, total if total is not None else count.total)

    return report


def _commit_what_is_in_order(ray: Any, collector: Any) -> int | None:
    """After Ctrl-C: commit the rows the collector holds in order, so a rerun
    resumes after them; the index committed up to, or None if that fails."""
    try:
        _, committed = ray.get(collector.flush.remote(), timeout=INTERRUPT_FLUSH_TIMEOUT_S)
        return int(committed)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        return None
    except Exception:  # the collector is gone too; the manifest says what is committed
        logger.debug("flush after an interrupt failed", exc_info=True)
        return None


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
    check_access(config.locations)  # object storage: one cheap request per location
    # A bad model fails here, before Ray starts (on object storage: fetched to this node).
    config.model.build_task(config.locations.model)
    create_output_folders(config)
    results = config.locations.parquet
    with contextlib.ExitStack() as stack:
        try:  # a second run into the same output fails here
            lease = stack.enter_context(output_lock(results))
        except (PermissionError, StorageAccessError) as exc:
            raise ConfigError(f"cannot lock {results.uri}: {exc}", "output.parquet") from None
        resume_from = prepare_output(results, fingerprint(config), overwrite=overwrite)
        fence = lease.fence.check if lease.fence is not None else None
        return _run(config, resume_from, progress, fence)


def _run(
    config: RunConfig,
    resume_from: int,
    progress: ProgressFn | None,
    fence: Callable[[], None] | None,
) -> RunSummary:
    started = time.perf_counter()
    plan = plan_videos(config)
    cluster = config.cluster
    with ray_session(
        cluster.address,
        dashboard=cluster.dashboard,
        metrics=cluster.metrics,
        metrics_port=cluster.metrics_port,
    ) as ray:
        if cluster.address is not None:
            check_nodes_reach(ray, config.locations)  # local paths, on every node
        collector = start_collector(ray, config, plan, fence)
        count = TotalCount(config, plan)

        def remaining(done: int) -> int | None:
            total = count.start().total  # asked once work is under way
            return None if total is None else total - resume_from - done

        scale = None
        if cluster.address is not None:  # an embedded Ray has no autoscaler to ask
            scale = ScaleRequests(
                request_resources, max_nodes=cluster.max_nodes, remaining=remaining
            )
        run_tag = fingerprint(config) if cluster.metrics else None
        placement = Placement(
            ray,
            functools.partial(spawn_actors, ray, config, metrics_run=run_tag),
            max_nodes=cluster.max_nodes,
            check=reach_check(ray, config),
            scale=scale,
        )
        try:
            actors = placement.start()
            if not actors:
                raise ActorDiedError("no alive Ray node with CPUs to place an inference actor on")
            size = UnitSize(
                cluster.items_per_unit,
                actors=len(actors),
                units_in_flight=cluster.units_in_flight_per_actor,
                window_items=cluster.reorder_buffer_items,
            )
            enumeration = Enumeration(config, plan, resume_from, size)
            options = DispatchOptions(
                units_in_flight_per_actor=cluster.units_in_flight_per_actor,
                reorder_buffer_items=cluster.reorder_buffer_items,
                unit_size=size,
                max_error_fraction=cluster.max_error_fraction,
                resumed_from=resume_from,
                progress=_with_total(progress, count),
                placement=placement,
                metrics=MetricsReporter(collector, run_tag) if run_tag is not None else None,
            )
            dispatcher = Dispatcher(ray, collector, actors, iter(enumeration), options)
            summary = dispatcher.summary
            summary.node_events.extend(placement.take_events())
            if cluster.metrics:
                summary.metrics_endpoints = metrics_endpoints(ray)
            try:
                dispatcher.run()
            except Abort:
                dispatcher.collector_call(collector.flush.remote())  # a rerun resumes after it
                summary.elapsed_s = time.perf_counter() - started
                summary.finished = True
                return summary
            except KeyboardInterrupt:
                raise RunInterrupted(_commit_what_is_in_order(ray, collector)) from None
            summary.node_events.extend(placement.finish().events)
            assert enumeration.total is not None
            total = summary.total = enumeration.total
            summary.elapsed_s = time.perf_counter() - started
            summary.items_per_unit = size.value
            stats = {
                "elapsed_s": summary.elapsed_s,
                "items_per_s": summary.items_per_s,
                "items_per_unit": size.value,
                "nodes": summary.nodes,
                "node_events": [dataclasses.asdict(e) for e in summary.node_events],
                "resumed_from": resume_from,
            }
            summary.manifest = dispatcher.collector_call(collector.finish.remote(total, stats))
            summary.finished = True
        finally:
            if scale is not None:
                scale.release()
            placement.close()
            ray.kill(collector, no_restart=True)
    if progress is not None:
        progress(summary, total)
    return summary
