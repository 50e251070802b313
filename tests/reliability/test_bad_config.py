"""A wrong key, type or path: exit code 2, a message naming the key, no traceback,
and Ray never started (the CLI runs with ``import ray`` made impossible)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _jobs import job_config, write_images


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A valid config: each case below breaks one thing in it."""
    tmp = tmp_path_factory.mktemp("bad-config")
    write_images(tmp / "imgs", 2)
    (tmp / "not-a-model.xml").write_text("not a model\n")
    (tmp / "a-file").write_text("a file, not a folder\n")
    return job_config(tmp, input={"images": str(tmp / "imgs")})


def section(config: dict[str, Any], name: str, **values: Any) -> dict[str, Any]:
    return {**config, name: {**config[name], **values}}


def beside(config: dict[str, Any], name: str) -> str:
    """A path in the good config's folder."""
    return str(Path(config["output"]["parquet"]).parent / name)


CASES: dict[str, tuple[Any, tuple[str, ...], str]] = {
    # name: (change to the good config, --set overrides, what stderr must say)
    "unknown key": (lambda c: section(c, "cluster", workers=3), (), "cluster.workers: unknown key"),
    "unknown section": (lambda c: {**c, "clutser": {}}, (), "clutser: unknown key"),
    "wrong type": (
        lambda c: section(c, "cluster", items_per_unit="many"),
        (),
        "cluster.items_per_unit: give a number of images greater than 0, or auto",
    ),
    "out of range": (
        lambda c: section(c, "input", max_image_pixels=-5),
        (),
        "input.max_image_pixels: Input should be greater than 0",
    ),
    "missing section": (
        lambda c: {k: v for k, v in c.items() if k != "output"},
        (),
        "output: required key is missing",
    ),
    "input not found": (
        lambda c: section(c, "input", images="/nonexistent/pages"),
        (),
        "input.images[0]: /nonexistent/pages does not exist",
    ),
    "model not found": (
        lambda c: section(c, "model", path="/nonexistent/m.xml"),
        (),
        "model.path: model file or folder /nonexistent/m.xml does not exist",
    ),
    "not a model": (
        lambda c: section(c, "model", path=beside(c, "not-a-model.xml")),
        (),
        "error: model: ",
    ),
    "output under a file": (
        lambda c: section(c, "output", parquet=beside(c, "a-file/results")),
        (),
        "output.parquet: cannot create folder",
    ),
    "bad override key": (lambda c: c, ("cluster.bogus=1",), "cluster.bogus: unknown key"),
    "bad override value": (
        lambda c: c,
        ("cluster.items_per_unit=[1",),
        "cluster.items_per_unit: --set",
    ),
    "not a mapping": (lambda c: ["model", "input"], (), "must be a mapping of sections"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_config_exits_2_naming_the_key_without_starting_ray(
    case: str, good: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    change, overrides, message = CASES[case]
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(change(good)))
    sets = [arg for item in overrides for arg in ("--set", item)]
    done = cli.run("run", str(config), *sets, without_ray=True, timeout_s=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_yaml_python_tag_is_refused_not_executed(cli: Any, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    config = tmp_path / "job.yaml"
    config.write_text(
        f"model: !!python/object/apply:os.system ['touch {marker}']\n"
        "input: {images: x}\noutput: {parquet: out}\n"
    )
    done = cli.run("run", str(config), without_ray=True, timeout_s=60)
    assert done.returncode == 2 and "not valid YAML" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()
    override = cli.run(
        "run",
        str(config),
        "--set",
        f"model=!!python/object/apply:os.system ['touch {marker}']",
        without_ray=True,
        timeout_s=60,
    )
    assert override.returncode == 2 and not marker.exists()
