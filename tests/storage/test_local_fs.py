"""The local disk behind the same interface: listing order, links, access checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distinfer.storage import StorageAccessError, resolve_location


def test_listing_follows_links_and_skips_loops(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "b.jpg").write_bytes(b"b")
    (tmp_path / "in" / "a.jpg").write_bytes(b"a")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.jpg").write_bytes(b"c")
    os.symlink(tmp_path / "elsewhere", tmp_path / "in" / "linked")
    os.symlink(tmp_path / "in", tmp_path / "in" / "sub" / "loop")
    os.symlink(tmp_path / "nowhere", tmp_path / "in" / "broken.jpg")
    os.mkfifo(tmp_path / "in" / "fifo.jpg")
    loc = resolve_location(str(tmp_path / "in"), ".")
    listed = [(i.path.removeprefix(f"{tmp_path}/in/"), i.size) for i in loc.fs.list(loc.path)]
    assert listed == [("a.jpg", 1), ("linked/c.jpg", 1), ("sub/b.jpg", 1)]


def test_listing_is_lazy_and_a_missing_folder_lists_nothing(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(b"x")
    loc = resolve_location(str(tmp_path), ".")
    listing = loc.fs.list(loc.path)
    assert next(listing).path == f"{tmp_path}/a/x.jpg"
    (tmp_path / "b" / "y.jpg").write_bytes(b"y")  # folder b is read only when reached
    assert [i.name for i in listing] == ["x.jpg", "y.jpg"]
    assert list(loc.fs.list(f"{tmp_path}/missing")) == []
    with pytest.raises(NotADirectoryError):
        loc.fs.list(f"{tmp_path}/a/x.jpg")


def test_open_read_and_info(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"0123456789")
    loc = resolve_location(str(tmp_path / "x.bin"), ".")
    info = loc.fs.info(loc.path)
    assert (info.size, info.name) == (10, "x.bin") and info.tag
    with loc.fs.open(loc.path, block_size=4) as f:
        assert f.seek(-4, os.SEEK_END) == 6 and f.read() == b"6789"
    assert loc.fs.read_range(loc.path, 3, 2) == b"34"
    with pytest.raises(IsADirectoryError):
        loc.fs.info(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_check_access_on_a_local_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        loc = resolve_location(str(locked / "out"), ".")
        with pytest.raises(StorageAccessError, match="permission denied"):
            loc.fs.check_access(loc.path)
    finally:
        locked.chmod(0o755)


def test_check_access_accepts_an_output_folder_not_made_yet(tmp_path: Path) -> None:
    loc = resolve_location(str(tmp_path / "new" / "results/"), ".")
    loc.fs.check_access(loc.path)
