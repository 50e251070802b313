"""``distinfer bench``: the project's speed figures, as ratios measured in one run.

Engine modes (one process, no Ray) run on the same encoded JPEG pages, read
into memory once (file reading is left out of every mode; decoding and
post-processing are in every mode except ``limit``):

- ``limit``: what OpenVINO's ``benchmark_app`` measures, on the *bare* model
  file (static shape, f32 input, no preprocessing): THROUGHPUT hint,
  ``AsyncInferQueue`` with OPTIMAL_NUMBER_OF_INFER_REQUESTS, one input tensor
  prepared once, run for ``seconds``, once per round and once more at the end;
  the highest is kept (other work slowing part of the run makes the ratios err
  low, never high). Every other figure is a ratio to it;
- ``plain``: the loop a user writes without distinfer (``cv2.imdecode``,
  ``cv2.resize``, normalise, ``compiled_model(x)``, the same DB post-processing);
- ``sync``: ``Deployment.infer(jpeg_bytes)`` in a loop;
- ``async``: ``set_asynchronous_callback`` + ``infer_async`` + ``await_all``;
- ``video``: ``AsyncVideoProcessor`` over the pages as frames (order checked).

The Ray modes (``distributed``, ``raydata``, ``cls``, ``collector``,
``memory``) are in ``_bench_dist``. Targets are reported, never asserted.

>>> report = run_bench(BenchOptions(modes=("limit", "sync"), images=4, seconds=1))
... # doctest: +SKIP
>>> report.values["sync_fps"] / report.values["limit_fps"]      # doctest: +SKIP
0.71
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ENGINE_MODES = ("limit", "plain", "sync", "async", "video")
RAY_MODES = ("distributed", "raydata", "cls", "collector", "memory")
MODES = ENGINE_MODES + RAY_MODES
#: The modes that run on the pages (generated, or ``--images-dir``).
PAGE_MODES = ("plain", "sync", "async", "video", "distributed", "raydata")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

Echo = Callable[[str], None]


class BenchSkipped(Exception):
    """A mode that cannot run here; the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    """What ``distinfer bench`` measures; the fields mirror its options."""

    modes: tuple[str, ...] = ENGINE_MODES
    model: str = "ppocr-det"
    images: int = 200
    images_dir: Path | None = None
    seconds: float = 10.0
    repeat: int = 1
    crops: int = 5000
    collector_rows: int = 200_000
    memory_sizes: tuple[int, ...] = (1_000, 50_000)
    overrides: tuple[str, ...] = ()
    device: str = "CPU"

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise ValueError(f"unknown modes {unknown or '(none)'}; choose from {', '.join(MODES)}")
        for name in ("images", "repeat", "crops", "collector_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")

    def command(self, *modes: str) -> str:
        """The ``distinfer bench`` command line that measures ``modes`` alone."""
        parts = ["distinfer bench", f"--modes {','.join(modes)}"]
        if set(modes) & {*ENGINE_MODES, "distributed", "raydata"}:
            parts.append(f"--model {self.model}")
        if set(modes) & set(PAGE_MODES):
            parts.append(
                f"--images-dir {self.images_dir}" if self.images_dir else f"--images {self.images}"
            )
        if set(modes) & {"limit", "cls", "distributed", "raydata"}:
            parts.append(f"--seconds {self.seconds:g}")
        if self.repeat > 1 and set(modes) & {*ENGINE_MODES, "raydata", "distributed", "cls"}:
            parts.append(f"--repeat {self.repeat}")
        if "cls" in modes:
            parts.append(f"--crops {self.crops}")
        if "collector" in modes:
            parts.append(f"--collector-rows {self.collector_rows}")
        if "memory" in modes:
            parts.append(f"--memory-sizes {','.join(map(str, self.memory_sizes))}")
        parts.extend(f"--set {o}" for o in self.overrides)
        return " ".join(parts)


@dataclass(frozen=True)
class Target:
    """A speed target: ``value`` (a ratio) must be ``>=`` (or ``<=``) ``bound``."""

    name: str
    value: float
    bound: float
    op: str = ">="

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.op == ">=" else self.value <= self.bound


@dataclass
class Report:
    """Everything measured: flat ``values`` (the JSON), targets, and why modes did not run."""

    options: BenchOptions
    values: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, float, str, str]] = field(default_factory=list)  # see add()
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, mode: str, key: str, value: float, unit: str, vs: str = "") -> None:
        """Record a figure: a table row (``vs``: its ratio, as text) and a JSON value."""
        self.values[key] = value
        self.rows.append((mode, key, value, unit, vs))

    def ratio(self, key: str, num: str, den: str) -> float | None:
        """Record ``num / den`` under ``key`` when both were measured."""
        a, b = self.values.get(num), self.values.get(den)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or b <= 0:
            return None
        self.values[key] = a / b
        return a / b

    def target(self, name: str, num: str, den: str | None, bound: float, op: str = ">=") -> None:
        """Record a target on ``num / den`` (or on ``num`` itself) when measured."""
        value = self.ratio(name, num, den) if den is not None else self.values.get(num)
        if isinstance(value, int | float):
            self.targets.append(Target(name, float(value), bound, op))

    def to_json(self) -> str:
        doc = {
            **self.values,
            "targets": {
                t.name: {"value": t.value, "target": f"{t.op} {t.bound}", "met": t.met}
                for t in self.targets
            },
            "skipped": self.skipped,
            "failed": self.failed,
            "commands": {m: self.options.command(m) for m in self.options.modes},
        }
        return json.dumps(doc, sort_keys=True)

    def render(self) -> str:
        """The human-readable table, each mode followed by the command that measures it."""
        lines = [f"{'mode':<12} {'figure':<36} {'value':>10}  {'unit':<30} ratio"]
        last = None
        for mode, key, value, unit, vs in self.rows:
            if mode != last and last is not None:
                lines.append(f"{'':<12} $ {self.options.command(last)}")
            lines.append(f"{mode:<12} {key:<36} {value:>10,.1f}  {unit:<30} {vs}".rstrip())
            last = mode
        if last is not None:
            lines.append(f"{'':<12} $ {self.options.command(last)}")
        if self.targets:
            lines.append("")
            lines.append("targets (ratios measured in this run):")
            for t in self.targets:
                verdict = "met" if t.met else "NOT MET"
                lines.append(f"  {t.name:<32} {t.value:7.3f}  (target {t.op} {t.bound})  {verdict}")
        for mode, why in self.skipped.items():
            lines.append(f"skipped {mode}: {why}")
        for mode, why in self.failed.items():
            lines.append(f"FAILED {mode}: {why}")
        for name, note in self.notes.items():
            lines.append(f"note {name}: {note}")
        return "\n".join(lines)


# -- inputs and models -------------------------------------------------------------


def image_paths(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted (what every mode runs on)."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BenchSkipped(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


def page_images(options: BenchOptions, workdir: Path) -> tuple[Path, list[bytes]]:
    """The folder of test images and their bytes (``--images-dir``, or generated pages)."""
    if options.images_dir is not None:
        folder = Path(options.images_dir)
    else:
        from ._demo import write_pages

        folder = workdir / "pages"
        write_pages(folder, options.images)
    return folder, [p.read_bytes() for p in image_paths(folder)]


def bare_model(model: str, image: bytes | None = None) -> Any:
    """The model file as it is (no preprocessing), reshaped to the static size we run.

    Bundled ``ppocr-det``: PP-OCRv6 det small at 1x3xHxW, the detector shape that
    ``image`` (the first test image) runs at (1x3x480x640 for the 1280x960 pages;
    1x3x640x640 without an image); ``ppocr-cls``: the mobile classifier at 1x3x48x192.
    A model file with a dynamic input gets batch 1 and the height and width of the
    graph distinfer compiles for it.
    """
    import openvino as ov

    from .engine._decode import image_size
    from .models._openvino import read_model

    if model == "ppocr":
        raise BenchSkipped(
            "ppocr is a chain of three models, without one bare model to time; "
            "use --model ppocr-det (or ppocr-cls) for the engine modes"
        )
    if model in ("ppocr-det", "ppocr-cls"):
        from .models import ppocr

        folder = ppocr.bundled_models_dir()
        if model == "ppocr-det":
            size = image_size(image) if image is not None else None
            stage = ppocr.det_stage(*size) if size else "det"
            path, (h, w) = ppocr.model_file(folder, ppocr.DET_FILE), ppocr.DET_SHAPES[stage]
        else:
            path, (h, w) = ppocr.model_file(folder, ppocr.CLS_FILE), ppocr.CLS_HW
        bare = read_model(path)
        bare.reshape({bare.inputs[0].get_any_name(): ov.PartialShape([1, 3, h, w])})
        return bare
    path = Path(model)
    if not path.is_file():
        raise BenchSkipped(f"{model}: limit needs a model file (a folder holds its own graphs)")
    bare = read_model(path)
    shape = bare.inputs[0].get_partial_shape()
    if shape.is_dynamic:
        from .models import task_from_model

        graphs = task_from_model(model).graphs()
        if len(graphs) != 1:
            raise BenchSkipped(f"{model}: a task with {len(graphs)} graphs has no single limit")
        _, h, w, _ = next(iter(graphs.values())).inputs[0].get_shape()
        dims = (
            [1, 3, h, w] if shape.rank.get_length() == 4 and shape[3].is_dynamic else [1, h, w, 3]
        )
        bare.reshape({bare.inputs[0].get_any_name(): ov.PartialShape(dims)})
    return bare


# -- the engine modes ---------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One timed pass: items per second, and this process's CPU time per item.

    CPU time per item barely moves when other processes share the machine, so
    ``limit``'s over a mode's says how close the mode would come on a machine of
    its own (when it keeps every core busy), where the fps ratio cannot.
    """

    fps: float
    cpu_ms: float


def timed(items: int, fn: Callable[[], object]) -> Sample:
    """Run ``fn`` (which handles ``items`` items) once and time it."""
    cpu, start = _process_cpu_s(), time.perf_counter()
    fn()
    elapsed, cpu = time.perf_counter() - start, _process_cpu_s() - cpu
    return Sample(items / elapsed, 1e3 * cpu / items)


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def measure_limit(bare: Any, seconds: float, device: str = "CPU") -> tuple[Sample, int]:
    """benchmark_app's figure on ``bare``, and the number of infer requests it used."""
    import openvino as ov

    compiled = ov.Core().compile_model(bare, device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    port = compiled.inputs[0]
    data = np.random.default_rng(0).random(tuple(port.get_shape()))
    tensor = ov.Tensor(np.ascontiguousarray(data.astype(port.get_element_type().to_dtype())))
    queue.start_async({0: tensor})  # the "first inference", not timed (benchmark_app too)
    queue.wait_all()
    submitted = [0]

    def run() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            queue.start_async({0: tensor})  # blocks until a request is idle
            submitted[0] += 1
        queue.wait_all()

    sample = timed(1, run)  # per "1 item" here; rescaled below
    count = max(1, submitted[0])
    return Sample(sample.fps * count, sample.cpu_ms / count), requests


def plain_loop(model: str, bare: Any, device: str) -> Callable[[bytes], None]:
    """A user's loop body without distinfer: full decode, resize, normalise, infer,
    the same post-processing; the model compiled with OpenVINO's default config."""
    import cv2
    import openvino as ov

    if model not in ("ppocr-det", "ppocr-cls"):
        raise BenchSkipped(
            "the plain loop is written for the bundled ppocr-det and ppocr-cls "
            "(it needs the model's pre- and post-processing)"
        )
    from .models._db import db_boxes

    compiled = ov.Core().compile_model(bare, device)
    _, _, h, w = compiled.inputs[0].get_shape()

    def one(data: bytes) -> None:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RuntimeError("plain: an image could not be decoded")
        x = cv2.resize(bgr, (w, h)).astype(np.float32)  # PaddleOCR models take BGR
        x = ((x - 127.5) / 127.5).transpose(2, 0, 1)[None]
        out = compiled(x)[0]
        if model == "ppocr-det":
            quads, _ = db_boxes(out.reshape(out.shape[-2:]))
            quads *= np.array([bgr.shape[1] / w, bgr.shape[0] / h], dtype=np.float32)
        else:
            int(out.reshape(-1).argmax())

    return one


def _async_pass(deployment: Any, images: Sequence[bytes]) -> None:
    done = [0]
    deployment.set_asynchronous_callback(lambda image, pred, i: done.__setitem__(0, done[0] + 1))
    for i, data in enumerate(images):
        deployment.infer_async(data, runtime_data=i)
    deployment.await_all()
    deployment.asynchronous_mode = False
    if done[0] != len(images):
        raise RuntimeError(f"async: {done[0]} callbacks for {len(images)} images")


def _video_pass(deployment: Any, images: Sequence[bytes]) -> None:
    from .engine._video_processor import AsyncVideoProcessor

    order: list[int] = []
    processor = AsyncVideoProcessor(deployment, lambda frame, pred, i: order.append(i))
    processor.start()
    for i, data in enumerate(images):
        processor.process(data, runtime_data=i)
    processor.await_all()
    processor.stop()
    if order != list(range(len(images))):
        raise RuntimeError("video: frames were processed out of order")


def engine_modes(options: BenchOptions, report: Report, images: Sequence[bytes]) -> None:
    """Measure the engine modes asked for, interleaved ``repeat`` times (medians kept)."""
    from .engine._deployment import Deployment

    wanted = [m for m in ENGINE_MODES if m in options.modes and m not in report.skipped]
    bare = None
    if {"limit", "plain"} & set(wanted):
        try:
            bare = bare_model(options.model, images[0] if images else None)
        except BenchSkipped as exc:
            report.skipped.update(dict.fromkeys({"limit", "plain"} & set(wanted), str(exc)))
            wanted = [m for m in wanted if m not in report.skipped]
    runs: dict[str, Callable[[], Sample]] = {}
    if "limit" in wanted:

        def limit() -> Sample:
            sample, report.values["limit_infer_requests"] = measure_limit(
                bare, options.seconds, options.device
            )
            return sample

        runs["limit"] = limit
    if "plain" in wanted:
        try:
            one = plain_loop(options.model, bare, options.device)
            one(images[0])  # warm-up
            runs["plain"] = lambda: timed(len(images), lambda: [one(x) for x in images])
        except BenchSkipped as exc:
            report.skipped["plain"] = str(exc)
    deployment = None
    if {"sync", "async", "video"} & set(wanted):
        deployment = Deployment.from_model(options.model)
        started = time.perf_counter()
        deployment.load_inference_models(device=options.device)
        report.values["engine_compile_s"] = time.perf_counter() - started
        report.values["engine_infer_requests"] = deployment.engine.jobs
        report.values["engine_max_in_flight"] = deployment.engine.max_in_flight
        for data in images[: 2 * deployment.engine.max_in_flight]:  # warm-up, not timed
            deployment.infer(data)
        d = deployment
        runs["sync"] = lambda: timed(len(images), lambda: [d.infer(x) for x in images])
        runs["async"] = lambda: timed(len(images), lambda: _async_pass(d, images))
        runs["video"] = lambda: timed(len(images), lambda: _video_pass(d, images))
    samples: dict[str, list[Sample]] = {m: [] for m in wanted if m in runs}
    try:
        for _ in range(options.repeat):  # interleaved: a change of load hits every mode
            for mode in list(samples):
                try:
                    samples[mode].append(runs[mode]())
                except Exception as exc:  # reported; the other modes go on
                    logger.debug("bench mode %s failed", mode, exc_info=True)
                    report.failed[mode] = f"{type(exc).__name__}: {exc}"
                    del samples[mode]
        if samples.get("limit"):  # once more at the end: the ratios take the highest limit
            samples["limit"].append(runs["limit"]())
    finally:
        if deployment is not None:
            deployment.close()
    _report_engine(report, samples)


def _report_engine(report: Report, samples: dict[str, list[Sample]]) -> None:
    medians = {
        mode: Sample(
            statistics.median(s.fps for s in got), statistics.median(s.cpu_ms for s in got)
        )
        for mode, got in samples.items()
        if got
    }
    if samples.get("limit"):  # other work slowing part of the run makes ratios err low, not high
        medians["limit"] = max(samples["limit"], key=lambda s: s.fps)
    limit = medians.get("limit")
    for mode in ENGINE_MODES:
        if mode not in medians:
            continue
        sample = medians[mode]
        vs = f"{sample.fps / limit.fps:.3f} x limit" if limit and mode != "limit" else ""
        report.add(mode, f"{mode}_fps", sample.fps, "images/s", vs)
        vs = f"{limit.cpu_ms / sample.cpu_ms:.3f} limit/mode" if limit and mode != "limit" else ""
        report.add(mode, f"{mode}_cpu_ms_per_item", sample.cpu_ms, "ms CPU/image (process)", vs)
        if len(samples[mode]) > 1:
            report.values[f"{mode}_fps_samples"] = [s.fps for s in samples[mode]]
        if mode != "limit":
            report.ratio(f"{mode}_ratio", f"{mode}_fps", "limit_fps")
            report.ratio(f"{mode}_cpu_ratio", "limit_cpu_ms_per_item", f"{mode}_cpu_ms_per_item")
    report.target("async_vs_limit", "async_fps", "limit_fps", 0.90)
    report.target("video_vs_async", "video_fps", "async_fps", 0.95)
    report.target("sync_vs_plain", "sync_fps", "plain_fps", 1.0)


# -- the whole run ----------------------------------------------------------------


def run_bench(options: BenchOptions, echo: Echo | None = None) -> Report:
    """Run the modes of ``options``; a mode that cannot run is recorded with the reason.

    ``echo`` receives progress lines (the CLI passes stderr); the report renders
    the table and the JSON.
    """
    say = echo or (lambda line: None)
    report = Report(options)
    report.values.update(model=options.model, device=options.device, cores=_cores())
    with tempfile.TemporaryDirectory(prefix="distinfer-bench-") as tmp:
        workdir = Path(tmp)
        needs_pages = set(options.modes) & set(PAGE_MODES)
        folder: Path | None = None
        images: list[bytes] = []
        if needs_pages:
            say(f"preparing {options.images_dir or f'{options.images} generated pages'} ...")
            try:
                folder, images = page_images(options, workdir)
                report.values["images"] = len(images)
            except BenchSkipped as exc:
                report.skipped.update(dict.fromkeys(needs_pages, str(exc)))
        engine = [m for m in ENGINE_MODES if m in options.modes and m not in report.skipped]
        if engine:
            before = cpu_seconds()
            guard(report, ", ".join(engine), say, lambda: engine_modes(options, report, images))
            _note_foreign_cpu(report, before, cpu_seconds(), options.repeat)
        if set(options.modes) & set(RAY_MODES):
            from ._bench_dist import ray_modes

            ray_modes(options, report, folder, workdir, say)
    return report


def guard(report: Report, mode: str, say: Echo, fn: Callable[[], None]) -> None:
    """Run one mode; record why it was skipped or how it failed, and go on."""
    say(f"{mode} ...")
    try:
        fn()
    except BenchSkipped as exc:
        report.skipped[mode] = str(exc)
    except Exception as exc:  # one mode failing must not hide the others
        logger.debug("bench mode %s failed", mode, exc_info=True)
        report.failed[mode] = f"{type(exc).__name__}: {exc}"


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall, CPU seconds busy on the machine, CPU seconds of this process); Linux only."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def _note_foreign_cpu(
    report: Report,
    before: tuple[float, float, float] | None,
    after: tuple[float, float, float] | None,
    repeat: int,
) -> None:
    """Record how much of the machine other processes used while the engine modes ran."""
    if before is None or after is None or after[0] <= before[0]:
        return
    machine = (os.cpu_count() or 1) * (after[0] - before[0])
    foreign = max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / machine
    report.values["engine_foreign_cpu"] = foreign
    if foreign > 0.05:
        report.notes["engine"] = (
            f"other processes used {foreign:.0%} of the machine's CPU during the engine modes: "
            "the figures and even their ratios are disturbed; rerun on a quiet machine"
            + (" or with --repeat 3 (modes interleaved, medians kept)" if repeat == 1 else "")
        )


def _cores() -> int:
    from .engine._engine import available_cores

    return available_cores()


def parse_modes(text: str) -> tuple[str, ...]:
    """``"limit,sync"`` -> the modes; ``engine``, ``ray`` and ``all`` name groups."""
    groups = {"engine": ENGINE_MODES, "ray": RAY_MODES, "all": MODES}
    modes: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        for mode in groups.get(name, (name,) if name else ()):
            if mode not in modes:
                modes.append(mode)
    return tuple(modes)


def bench_cli(
    modes: str, images_dir: str | None, memory_sizes: str, as_json: bool, **options: Any
) -> int:
    """What ``distinfer bench`` does: run, print the table (and the JSON); the exit code.

    ``options`` are the other ``BenchOptions`` fields. Exit 0 when every mode ran or
    was skipped with a reason (targets not met are reported, not failures); 1 when
    a mode failed. Bad options raise ``click.UsageError`` (exit 2).
    """
    import click

    try:
        bench_options = BenchOptions(
            modes=parse_modes(modes),
            images_dir=Path(images_dir) if images_dir else None,
            memory_sizes=tuple(int(n) for n in memory_sizes.split(",") if n.strip()),
            **options,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    report = run_bench(bench_options, echo=lambda line: click.echo(line, err=True))
    click.echo(report.render())
    if as_json:
        click.echo(report.to_json())
    return 1 if report.failed else 0
