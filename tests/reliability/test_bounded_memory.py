"""Memory is bounded by configuration, not input size: with one actor held up by slow
items, the collector never buffers more than the reorder window plus one unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _jobs import job_config, write_images

from distinfer import RunConfig, read_results, run

WINDOW = 16
UNIT = 4


def test_a_slow_actor_holds_the_others_back_instead_of_growing_the_reorder_buffer(
    ray_session: Any, tmp_path: Path
) -> None:
    write_images(tmp_path / "imgs", 240)
    # Noise PNGs take far longer to decode than the 48x40 images around them: the
    # actor that gets one falls behind while the other runs ahead.
    noise = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
    for k in (3, 50, 100):
        assert cv2.imwrite(str(tmp_path / "imgs" / "part0" / f"img{k:04d}-slow.png"), noise)
    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(tmp_path / "imgs")},
            cluster={
                "actors_per_node": 2,
                "items_per_unit": UNIT,
                "reorder_buffer_items": WINDOW,
                # 2 actors x 8 units x 4 items in flight: far more than the window
                "units_in_flight_per_actor": 8,
            },
        )
    )
    summary = run(config)

    assert len(read_results(tmp_path / "results")) == 243 and summary.errors == 0
    collector = summary.manifest["stats"]["collector"]
    assert 0 < collector["max_buffered"] <= WINDOW + UNIT
