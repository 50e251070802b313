"""Jobs on object storage (moto's S3 server): one set of small inputs of every kind, on S3
and on a local disk alike, and a job over them.

The shared Ray session's workers were started before any test set an endpoint, so
every job here names its server in ``storage.endpoint``, as a user of an
S3-compatible server does.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _jobs import write_images, write_video
from _models import classifier
from _s3 import Bucket

from distinfer.storage import Location, StorageOptions, resolve_location


@dataclass(frozen=True)
class Inputs:
    """The same files in ``local`` and in ``bucket`` (keys relative to ``local``)."""

    local: Path
    bucket: Bucket

    def root(self, where: str) -> str:
        return str(self.local) if where == "local" else self.bucket.uri().rstrip("/")

    def job(self, where: str, out: str, **sections: Mapping[str, Any]) -> dict[str, Any]:
        """Every kind of input at ``where`` ("local" or "s3"), results under ``out``."""
        root = self.root(where)
        config: dict[str, Any] = {
            "model": {"path": f"{root}/models/cls.xml"},
            "input": {
                "images": [
                    f"{root}/in/pages/",
                    f"{root}/in/pages/part1/*.png",
                    f"{root}/in/set.tar",
                    f"{root}/in/set.zip",
                    f"{root}/in/pages/part0/todo.txt",
                ],
                "videos": [f"{root}/in/clip.mp4"],
                "video_segment_frames": 8,
            },
            "output": {"parquet": f"{out}/results", "rows_per_part": 8},
            "cluster": {"progress": "off", "items_per_unit": 4},
            "storage": {"endpoint": self.bucket.endpoint, "retry_timeout_s": 20},
        }
        for name, values in sections.items():
            config[name] = {**config.get(name, {}), **values}
        return config

    def location(self, uri: str) -> Location:
        """``uri`` on this bucket's server."""
        return resolve_location(uri, options=StorageOptions(endpoint=self.bucket.endpoint))

    def keys(self, prefix: str) -> list[str]:
        s3 = self.bucket.client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket.name, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def get(self, key: str) -> bytes:
        body = self.bucket.client().get_object(Bucket=self.bucket.name, Key=key)["Body"]
        data: bytes = body.read()
        return data


def _archive_members(paths: Sequence[Path]) -> dict[str, bytes]:
    return {f"scan/{p.name}": p.read_bytes() for p in paths}


def write_inputs(local: Path, bucket: Bucket) -> Inputs:
    """49 items: 20 video frames, a prefix of 12 pages, a glob of 6, a tar and a zip of 4
    each, and a list of 3 naming one object that does not exist; the model beside."""
    pages = write_images(local / "in" / "pages", 12)
    write_video(local / "in" / "clip.mp4", 20)
    members = _archive_members(write_images(local / "archived", 4))
    with tarfile.open(local / "in" / "set.tar", "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(local / "in" / "set.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    (local / "in" / "pages" / "part0" / "todo.txt").write_text(
        f"{pages[0].name}\n# a comment\ngone.png\n{pages[2].name}\n"
    )
    classifier(local / "models" / "cls.xml")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = str(path.relative_to(local))
        if key.startswith(("in/", "models/")):
            bucket.put(key, path.read_bytes())
    return Inputs(local, bucket)


def comparable(rows: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """Rows less the node that did them, with the inputs' root cut from sources and errors."""
    return [
        {
            **{k: v for k, v in row.items() if k != "node"},
            "source": row["source"].replace(root, "<root>"),
            "error": row["error"] and row["error"].replace(root, "<root>"),
        }
        for row in rows
    ]


def write_config(folder: Path, config: Mapping[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(dict(config)))
    return path
