"""docs/config.md is the config model's own descriptions: every key has one, and the
page is what they render (``python3 dev.py docs`` rewrites it)."""

from __future__ import annotations

from pathlib import Path

from distinfer._config import RunConfig
from distinfer._config_doc import render, sections, undocumented

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_every_key_of_the_job_file_is_described() -> None:
    assert [name for name, _ in sections()] == ["model", "input", "output", "cluster", "storage"]
    assert undocumented() == []


def test_docs_config_md_is_what_the_descriptions_render() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/config.md is out of date: run `python3 dev.py docs`"
    )


def test_the_page_names_every_key_with_its_default() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for name, section in sections():
        for key in section.model_fields:
            assert f"| `{name}.{key}` |" in page
    assert "| `cluster.reorder_buffer_items` | integer | `4096` |" in page
    assert "| `output.parquet` | string | required |" in page
    assert set(RunConfig.model_fields) - {"base_dir"} == {n for n, _ in sections()}
