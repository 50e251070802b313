"""Distributed runs end to end on a real local Ray: ordering, completeness, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _jobs import colour_of, job_config, labels_of, rgb, write_images, write_video

from distinfer import (
    Deployment,
    OutputError,
    Prediction,
    RunConfig,
    draw_prediction,
    read_results,
    run,
)
from distinfer.sources import probe, read_segment, whole_video
from distinfer.storage import output_lock, resolve_location


def test_images_are_written_once_in_index_order_like_the_in_process_deployment(
    ray_session: Any, tmp_path: Path
) -> None:
    paths = write_images(tmp_path / "imgs", 23)
    (tmp_path / "imgs" / "part1" / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(tmp_path / "imgs")},
            output={"overlays": str(tmp_path / "overlays"), "rows_per_part": 5},
        )
    )
    summary = run(config)

    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(24))
    assert summary.total == 24 and summary.errors == 1
    good = [r for r in rows if r["error"] is None]
    assert [Path(r["source"]) for r in good] == paths  # sorted folder walk, part0 then part1
    broken = next(r for r in rows if r["error"] is not None)
    assert broken["source"].endswith("zz-broken.jpg") and "JPEG" in broken["error"]

    deployment = Deployment.from_model(config.model.path or "")
    for row, path in zip(good, paths, strict=True):
        local = deployment.infer(rgb(path))
        assert row["predictions"][0]["label"] == local.annotations[0].label
        assert row["predictions"][0]["score"] == pytest.approx(local.annotations[0].score, abs=1e-3)
        assert (row["width"], row["height"]) == (local.width, local.height)
    deployment.close()
    assert len(list((tmp_path / "overlays").rglob("*.jpg"))) == 23
    manifest = summary.manifest
    assert manifest["finished"] and manifest["committed_until"] == 24
    assert len(manifest["parts"]) == 5  # rows_per_part=5 -> 5, 5, 5, 5, 4


def test_a_second_run_into_an_output_in_use_fails_at_once(ray_session: Any, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    config = RunConfig.parse(job_config(tmp_path, input={"images": str(tmp_path / "imgs")}))
    busy = pytest.raises(OutputError, match=r"another distinfer run \(pid \d+ on ")
    with (
        output_lock(resolve_location(str(tmp_path / "results"))),
        busy,
    ):  # as the driver of a run in progress holds it
        run(config, overwrite=True)
    assert run(config, overwrite=True).total == 3  # free again once that run ends
    assert len(read_results(tmp_path / "results")) == 3


def test_a_finished_output_is_refused_unless_overwritten(ray_session: Any, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    config = RunConfig.parse(job_config(tmp_path, input={"images": str(tmp_path / "imgs")}))
    run(config)
    with pytest.raises(OutputError, match="--overwrite"):
        run(config)
    assert run(config, overwrite=True).total == 3


def test_video_frames_come_back_in_order_and_the_annotated_video_has_every_frame(
    ray_session: Any, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.mp4", 37)
    write_images(tmp_path / "imgs", 2)
    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={
                "videos": str(video),
                "images": str(tmp_path / "imgs"),
                "video_segment_frames": 10,
            },
            output={"video": str(tmp_path / "annotated.mp4")},
        )
    )
    summary = run(config)
    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(39))
    frames = rows[:37]
    assert [r["frame"] for r in frames] == list(range(37))
    assert labels_of(frames) == [colour_of(i) for i in range(37)]
    assert [r["frame"] for r in rows[37:]] == [None, None]
    assert summary.errors == 0
    out = probe(tmp_path / "annotated.mp4")
    assert out.frame_count == 37 and (out.width, out.height) == (64, 48)
    # Each frame carries its row's drawing (read from the row's columns by the collector).
    source = dict(read_segment(str(video), whole_video(probe(video))))
    annotated = dict(read_segment(str(tmp_path / "annotated.mp4"), whole_video(out)))
    for n in range(0, 37, 6):
        drawn = draw_prediction(source[n], Prediction.from_row(frames[n])).astype(int)
        assert (
            np.abs(annotated[n] - drawn).mean()
            < np.abs(annotated[n] - source[n].astype(int)).mean()
        )
