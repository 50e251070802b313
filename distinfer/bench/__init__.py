"""``distinfer bench``: what your model does on your machine, as ratios measured in one run.

Every figure is a ratio to the bare model's *limit*, what OpenVINO's
``benchmark_app`` measures on the same model file (``_limit``), so a slower
pipeline can never look better. Modes:

- engine (one process, no Ray; ``_engine_modes``): ``limit``, ``plain`` (a
  user's own OpenVINO loop), ``sync``, ``async`` and ``video`` (the
  ``Deployment`` and ``AsyncVideoProcessor`` API);
- ``host`` (``_host``): what a page costs the host with the inference taken
  out: CPU ms per page (outputs replayed from a recording) and GIL-held ms
  per page on the async pipeline (``py-spy``);
- ``distributed`` (``_distributed``): one ``distinfer run`` of the same pages,
  its steady rate against the limit.

Targets are reported, never asserted. The comparisons with other tools and the
instruments behind the README's figures live in the repository's
``benchmarks/`` folder, which imports the helpers exported here.

>>> from distinfer.bench import BenchOptions, run_bench
>>> report = run_bench(BenchOptions(modes=("limit", "sync"), images=4, seconds=1))
... # doctest: +SKIP
>>> print(report.render())                                          # doctest: +SKIP
"""

from ._distributed import (
    Bracket,
    RunFigures,
    RunTiming,
    Watch,
    bracketed_run,
    distributed_mode,
    timed_run,
)
from ._limit import Sample, bare_model, measure_limit, timed
from ._options import ENGINE_MODES, MODES, BenchOptions, parse_modes
from ._pages import image_paths, page_images
from ._report import BenchSkipped, Echo, Report, Target, guard
from ._run import bench_cli, run_bench

__all__ = [
    "ENGINE_MODES",
    "MODES",
    "BenchOptions",
    "BenchSkipped",
    "Bracket",
    "Echo",
    "Report",
    "RunFigures",
    "RunTiming",
    "Sample",
    "Target",
    "Watch",
    "bare_model",
    "bench_cli",
    "bracketed_run",
    "distributed_mode",
    "guard",
    "image_paths",
    "measure_limit",
    "page_images",
    "parse_modes",
    "run_bench",
    "timed",
    "timed_run",
]
