"""What a distinfer Ray process does as it starts, before its first unit of work.

An inference actor and the collector call ``warm_up`` in their constructors (the
actor on a thread of its own, while OpenVINO compiles), so that the first unit of
a job does not pay for pyarrow's first conversion and for the imports it needs.

That first conversion imports pandas, when installed (Ray Data installs it), only
to ask whether its input is a pandas object: 0.35 s of CPU in every actor and
collector, and 40 MB of the collector's memory. Result rows never are pandas
objects, so the question is answered under an import hook in which pandas is
missing; pyarrow asks once per process and remembers, and whatever needs pandas
later (``to_pandas``) still imports it. The hook is in place only for that one
conversion.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

import pyarrow as pa

from ..engine._prediction import Prediction
from ._rows import ItemResult, ResultBatch, error_row, from_message


class _NoPandas(importlib.abc.MetaPathFinder):
    """An import hook under which ``import pandas`` fails as if it were not installed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


_NO_PANDAS = _NoPandas()


def warm_up() -> None:
    """Take one batch through the row builders, IPC and back, once per process
    (pyarrow's first conversion made without pandas: see the module docstring)."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NO_PANDAS)
        try:
            pa.array([0])  # pyarrow's one look for pandas
        finally:
            sys.meta_path.remove(_NO_PANDAS)
    one = Prediction.from_arrays([[0, 0, 1, 1]], [1.0], [0], [""], width=1, height=1)
    batch = ResultBatch.from_items([ItemResult(0, "", None, "", one)])
    from_message(batch.records.serialize())
    ResultBatch.from_rows([error_row(0, "", None, "", "")])
