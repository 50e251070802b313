"""A load run: many small generated images through ``distinfer.run`` on an embedded Ray.

Reports items/s and the peak resident memory (VmHWM, from /proc; Linux only)
of the driver, the collector and the inference actors, and the collector's
largest reorder buffer: with memory bounded by configuration, these stay flat
as the input grows. Compare two sizes:

    python examples/load_run.py --images 2000 --out out/load-2k
    python examples/load_run.py --images 50000 --out out/load-50k
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from distinfer import RunConfig, run

SAMPLE_INTERVAL_S = 0.5
IMAGES_PER_FOLDER = 1000


def write_images(folder: Path, count: int) -> None:
    """``count`` 64x64 PNGs, a thousand per subfolder."""
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"{i // IMAGES_PER_FOLDER:04d}"
        if i % IMAGES_PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        image = np.full((64, 64, 3), rng.integers(0, 256, 3), np.uint8)
        cv2.putText(image, str(i % 100), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
        cv2.imwrite(str(sub / f"img{i:06d}.png"), image)


def _role(pid: int, root: int) -> str | None:
    if pid == root:
        return "driver"
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    for role in ("OrderedCollector", "InferenceActor"):
        if title.startswith(f"ray::{role}"):
            return role
    return None


def _peaks(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (role, VmHWM in kB) for the driver, collector and actors under ``root``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    peaks = {}
    for pid in parents:
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        role = _role(pid, root) if ancestor == root else None
        if role is None:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
        peaks[pid] = (role, hwm)
    return peaks


class PeakWatch:
    """Samples the peaks on a thread: a process's VmHWM is lost when it ends."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            for pid, (role, hwm) in _peaks(os.getpid()).items():
                self.seen[pid] = (role, max(hwm, self.seen.get(pid, (role, 0))[1]))

    def peak_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, hwm in self.seen.values():
            out[role] = max(out.get(role, 0.0), hwm / 1024)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path("out/load"))
    parser.add_argument("--model", default="ppocr-cls", help="bundled name or model path")
    parser.add_argument(
        "--items-per-unit", default="auto", type=lambda v: v if v == "auto" else int(v)
    )
    args = parser.parse_args()

    images = args.out / "images"
    if not images.exists() or sum(1 for _ in images.rglob("*.png")) != args.images:
        shutil.rmtree(images, ignore_errors=True)
        started = time.perf_counter()
        write_images(images, args.images)
        print(f"{args.images} images written in {time.perf_counter() - started:.0f} s")
    model = {"name": args.model} if "/" not in args.model else {"path": args.model}
    config = RunConfig.parse(
        {
            "model": model,
            "input": {"images": str(images.resolve())},
            "output": {"parquet": str((args.out / "results").resolve())},
            "cluster": {"items_per_unit": args.items_per_unit, "progress": "off"},
        }
    )
    with PeakWatch() as watch:
        summary = run(config, overwrite=True)
    collector = summary.manifest["stats"]["collector"]
    print(
        json.dumps(
            {
                "items": summary.total,
                "errors": summary.errors,
                "elapsed_s": round(summary.elapsed_s, 1),
                "items_per_s": round(summary.items_per_s, 1),
                "peak_rss_mb": {k: round(v) for k, v in sorted(watch.peak_mb().items())},
                "collector_max_buffered": collector["max_buffered"],
                "reorder_buffer_items": config.cluster.reorder_buffer_items,
            }
        )
    )


if __name__ == "__main__":
    main()
