"""Package attributes loaded on first use, so that importing a package loads nothing.

A Ray collector process imports ``distinfer.distributed._collector`` without OpenVINO,
an inference actor without pydantic's config models it does not use, and
``distinfer --help`` stays quick.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps each name to the module,
    relative to the package, that defines it.

    >>> getattr_ = lazy_attributes("distinfer", {"RunConfig": "._config"})
    >>> getattr_("RunConfig").__name__
    'RunConfig'
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
