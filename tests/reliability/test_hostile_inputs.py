"""Hostile and broken inputs: each costs exactly one error row with a precise reason,
everything else is processed, and nothing is written outside the output folders."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from _jobs import colour_of, labels_of, write_images, write_job, write_video

from distinfer import read_results

# Tests run as root, and root reads files whatever their mode. Dropping the
# capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the CLI and
# every process it starts makes a chmod 000 file unreadable, as it is for users.
AS_ROOT_WITHOUT_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height``, with a tiny IDAT: a pixel bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def photo_jpeg() -> bytes:
    """A JPEG whose entropy-coded data is most of the file, like a photo's."""
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise)
    assert ok
    return bytes(data.tobytes())


def video_without_frames(path: Path) -> Path:
    """An AVI with a video stream and no frames (MP4/MOV drop a stream without frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    return path


def hostile_tar(path: Path, jpeg: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in ("../../escape.jpg", "/abs/rooted.jpg", "member.jpg"):
            info = tarfile.TarInfo(name)
            info.size = len(jpeg)
            tar.addfile(info, io.BytesIO(jpeg))
        link = tarfile.TarInfo("link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    return path


#: source name -> what its error must say (None: processed without error)
EXPECTED = {
    "truncated.mp4": "MP4 is truncated",
    "no-frames.avi": "video has no frames",
    "fifo.jpg": "not a regular file",
    "huge.png": "image too large: 60000x60000 = 3,600,000,000 pixels is over the limit "
    "of 10,000,000; raise input.max_image_pixels",
    "loop/up": "directory symlink loop",
    "unreadable.jpg": "permission denied",
    "text.jpg": "not an image: 25 bytes whose first bytes look like text",
    "truncated.jpg": "truncated JPEG",
    "truncated-header.jpg": "truncated JPEG",
    "zero.jpg": "empty file (0 bytes)",
    "members.tar!../../escape.jpg": None,
    "members.tar!/abs/rooted.jpg": None,
    "members.tar!member.jpg": None,
    "members.tar!link.jpg": "archive member is a symlink; not followed",
}


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"),
    reason="as root, needs setpriv to make a file unreadable",
)
def test_each_hostile_input_costs_one_error_row_and_the_rest_is_processed(
    tmp_path: Path, cli: Any
) -> None:
    inputs = tmp_path / "in"
    folder = inputs / "imgs"
    write_images(folder, 4)  # four good images: part0/img0000.png ...
    jpeg = photo_jpeg()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (folder / "truncated-header.jpg").write_bytes(jpeg[:300])  # cut before the first scan
    (folder / "text.jpg").write_text("hello, I am not an image\n")
    (folder / "huge.png").write_bytes(png_header_only(60000, 60000))
    (folder / "unreadable.jpg").write_bytes(jpeg)
    os.chmod(folder / "unreadable.jpg", 0)
    os.mkfifo(folder / "fifo.jpg")  # opening it to read would block forever
    (folder / "loop").mkdir()
    os.symlink("..", folder / "loop" / "up")
    archive = hostile_tar(inputs / "members.tar", jpeg)
    good_video = write_video(inputs / "good.mp4", 6)
    data = good_video.read_bytes()
    (inputs / "truncated.mp4").write_bytes(data[: len(data) // 2])
    video_without_frames(inputs / "no-frames.avi")
    out = tmp_path / "out"
    config = write_job(
        tmp_path,
        input={
            "images": [str(folder), str(archive)],
            "videos": [str(inputs / n) for n in ("truncated.mp4", "no-frames.avi", "good.mp4")],
            "max_image_pixels": 10_000_000,
        },
        output={"parquet": str(out / "results"), "overlays": str(out / "overlays")},
    )
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}

    prefix = AS_ROOT_WITHOUT_DAC if os.geteuid() == 0 else ()
    done = cli.run("run", str(config), prefix=prefix, timeout_s=120)

    assert done.returncode == 1, done.stderr[-3000:]  # items failed; the job did not
    assert "Traceback" not in done.stderr
    rows = read_results(out / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(len(rows)))
    frames = [r for r in rows if r["frame"] is not None]
    assert [r["source"] for r in frames] == [str(good_video)] * 6
    assert labels_of(frames) == [colour_of(i) for i in range(6)]
    items = {
        r["source"].removeprefix(f"{inputs}/").removeprefix("imgs/"): r
        for r in rows
        if r["frame"] is None
    }
    assert len(items) == len(rows) - len(frames)  # one row per input
    for source, reason in EXPECTED.items():
        row = items.pop(source)
        if reason is None:
            assert row["error"] is None and row["predictions"], source
        else:
            assert row["error"] is not None and reason in row["error"], (source, row["error"])
    # what is left: the four good images, processed
    assert sorted(items) == [f"part{i % 2}/img{i:04d}.png" for i in (0, 2, 1, 3)]
    assert all(r["error"] is None and r["predictions"] for r in items.values())

    # overlays of archive members land inside output.overlays, under cleaned names
    # (named <folders>/<stem>-<index>.jpg)
    overlays = sorted(
        re.sub(r"-\d+\.jpg$", "", str(p.relative_to(out / "overlays")))
        for p in (out / "overlays").rglob("*.jpg")
    )
    assert overlays == sorted(
        ["escape", "abs/rooted", "member", *(name.removesuffix(".png") for name in items)]
    )
    created = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)} - before
    assert created == set(), created  # nothing written beside the outputs...
    assert not list(tmp_path.parent.glob("escape*"))  # ...nor above them
    assert not Path("/abs").exists()
