"""``docs/config.md``: the reference of every job-file key, written from ``RunConfig``.

Each key's text is its pydantic ``Field(description=...)``, so the code and the
reference cannot drift apart: ``python3 dev.py docs`` rewrites the page and a test
fails when the committed page differs from what this renders.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._config import RunConfig

HEADER = """\
# Job file reference

A job file is YAML with the sections below; `distinfer init job.yaml` writes a
commented one to start from. Unknown keys are refused (check the spelling), as are
wrong types and values out of range: every such error exits with code 2 before
anything starts, naming the key. Any key can be set on the command line with
`--set section.key=value` (the value is YAML: `--set cluster.address=auto`).

Relative paths are relative to the job file's folder. Every path may also be a URI
of object storage (`s3://bucket/key`): see [storage.md](storage.md).

<!-- Written by `python3 dev.py docs` from the descriptions in distinfer/_config.py;
     edit those, not this page. -->
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        (item, *_) = typing.get_args(annotation) or (Any,)
        return f"list of {_type_name(item)}"
    if origin is dict:
        return "mapping"
    names = {type(None): "null", str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "(section)"
    return "`" + json.dumps(value) + "`"


def sections() -> list[tuple[str, type[BaseModel]]]:
    """The job file's sections, in the order a job file writes them."""
    out = []
    for name, field in RunConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.append((name, annotation))
    return out


def render() -> str:
    """The whole reference page."""
    parts = [HEADER.rstrip("\n")]
    for name, section in sections():
        doc = " ".join((section.__doc__ or "").strip().split("\n\n")[0].split())
        doc = doc.replace("``", "`")
        parts.append(f"## `{name}`\n\n{doc}\n\n| key | type | default | |\n|---|---|---|---|")
        for key, field in section.model_fields.items():
            text = (field.description or "").replace("\n", " ")
            kind, default = _type_name(field.annotation), _default(field)
            parts[-1] += f"\n| `{name}.{key}` | {kind} | {default} | {text} |"
    return "\n\n".join(parts) + "\n"


def undocumented() -> list[str]:
    """Keys without a description (the test wants none)."""
    return [
        f"{name}.{key}"
        for name, section in sections()
        for key, field in section.model_fields.items()
        if not field.description
    ]


def write(path: str = "docs/config.md") -> None:
    """Write the reference page (``python3 dev.py docs``)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render())
