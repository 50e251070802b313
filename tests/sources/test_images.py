"""Enumerating image inputs (folders, globs, archives, lists) and reading their bytes."""

from __future__ import annotations

import csv
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distinfer._errors import InputError
from distinfer.sources import ArchiveCache, ImageRef, iter_images, read_bytes, safe_relpath

MAX_BYTES = 1 << 20


def _touch(path: Path, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if data is not None else path.name.encode())
    return path


def _relpaths(refs: Iterator[ImageRef]) -> list[str]:
    return [ref.relpath for ref in refs]


def _add_tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_tar_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def _make_tar(path: Path, mode: Literal["w", "w:gz"]) -> None:
    with tarfile.open(path, mode) as tar:
        _add_tar_member(tar, "imgs/a.jpg", b"A" * 700)
        _add_tar_member(tar, "notes.txt", b"not an image")
        _add_tar_member(tar, "../../evil.png", b"EVIL")
        _add_tar_link(tar, "imgs/link.jpg", "/etc/passwd", tarfile.SYMTYPE)
        _add_tar_link(tar, "imgs/hard.jpg", "imgs/a.jpg", tarfile.LNKTYPE)
        dev = tarfile.TarInfo("imgs/dev.jpg")
        dev.type = tarfile.CHRTYPE
        tar.addfile(dev)
        _add_tar_member(tar, "imgs/b.JPEG", b"B" * 1300)


# Folders ---------------------------------------------------------------------


def test_folder_is_recursive_sorted_and_filtered_by_extension(tmp_path: Path) -> None:
    for name in ["b.png", "a.jpg", "c/d.webp", "c/a.TIF", "ab/x.gif", "notes.txt", "c/e.bmp"]:
        _touch(tmp_path / name)
    refs = list(iter_images(tmp_path))
    assert [ref.relpath for ref in refs] == [
        "a.jpg",
        "ab/x.gif",
        "b.png",
        "c/a.TIF",
        "c/d.webp",
        "c/e.bmp",
    ]
    assert all(ref.error is None and os.path.isabs(ref.path) for ref in refs)
    assert read_bytes(refs[0], MAX_BYTES) == b"a.jpg"


def test_folder_yields_the_first_items_before_listing_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ["a", "b", "c"]:
        _touch(tmp_path / folder / "x.jpg")
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> object:
        listed.append(os.path.basename(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    refs = iter_images(tmp_path)
    assert next(refs).relpath == "a/x.jpg"
    assert "b" not in listed and "c" not in listed
    assert _relpaths(refs) == ["b/x.jpg", "c/x.jpg"]


def test_folder_follows_symlinked_folders_and_reports_a_loop_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _touch(root / "sub" / "a.jpg")
    _touch(tmp_path / "elsewhere" / "b.jpg")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)
    (root / "other").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refs = list(iter_images(root))
    assert [(ref.relpath, ref.error is None) for ref in refs] == [
        ("other/b.jpg", True),
        ("sub/a.jpg", True),
        ("sub/up", False),
    ]
    assert refs[2].error is not None and "symlink loop" in refs[2].error
    with pytest.raises(InputError, match="symlink loop"):
        read_bytes(refs[2], MAX_BYTES)


def test_folder_yields_broken_symlinks_as_error_items(tmp_path: Path) -> None:
    _touch(tmp_path / "good.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    refs = list(iter_images(tmp_path))
    assert [ref.relpath for ref in refs] == ["gone.jpg", "good.jpg"]
    assert refs[0].error is not None and "broken symlink" in refs[0].error
    assert refs[1].error is None


# Globs -----------------------------------------------------------------------


def test_glob_matches_sorted_images_only(tmp_path: Path) -> None:
    for name in ["x/b1.jpg", "x/a1.jpg", "x/a1.txt", "y/a2.png", "y/z/a3.png", "x/.a0.jpg"]:
        _touch(tmp_path / name)
    assert _relpaths(iter_images(str(tmp_path / "*" / "a*"))) == ["x/a1.jpg", "y/a2.png"]
    assert _relpaths(iter_images(str(tmp_path / "**" / "*.png"))) == ["y/a2.png", "y/z/a3.png"]
    assert _relpaths(iter_images(str(tmp_path / "[xz]" / "*.jpg"))) == ["x/a1.jpg", "x/b1.jpg"]
    assert list(iter_images(str(tmp_path / "nothing*"))) == []


# Tar -------------------------------------------------------------------------


def test_tar_refs_carry_byte_ranges_and_never_the_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "set.tar"
    _make_tar(archive, "w")
    refs = list(iter_images(archive))
    by_name = {ref.member: ref for ref in refs}
    assert list(by_name) == [
        "imgs/a.jpg",
        "../../evil.png",
        "imgs/link.jpg",
        "imgs/hard.jpg",
        "imgs/dev.jpg",
        "imgs/b.JPEG",
    ]
    good = by_name["imgs/a.jpg"]
    assert good.data is None and good.size == 700 and good.offset is not None
    assert good.source == f"{archive}!imgs/a.jpg"
    # A worker reads the range directly, without opening the archive as a tar.
    with open(archive, "rb") as f:
        f.seek(good.offset)
        assert f.read(good.size) == b"A" * 700
    assert read_bytes(good, MAX_BYTES) == b"A" * 700
    assert read_bytes(by_name["imgs/b.JPEG"], MAX_BYTES) == b"B" * 1300
    evil = by_name["../../evil.png"]
    assert evil.relpath == "evil.png" and read_bytes(evil, MAX_BYTES) == b"EVIL"
    assert "symlink; not followed" in (by_name["imgs/link.jpg"].error or "")
    assert "hard link; not followed" in (by_name["imgs/hard.jpg"].error or "")
    assert "device" in (by_name["imgs/dev.jpg"].error or "")


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz"])
def test_compressed_tar_members_carry_their_bytes(tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / f"set{suffix}"
    _make_tar(archive, "w:gz")
    refs = [ref for ref in iter_images(archive) if ref.error is None]
    assert [ref.relpath for ref in refs] == ["imgs/a.jpg", "evil.png", "imgs/b.JPEG"]
    assert all(ref.offset is None and ref.data is not None for ref in refs)
    assert read_bytes(refs[0], MAX_BYTES) == b"A" * 700
    with pytest.raises(InputError, match=r"too large.*input\.max_file_bytes"):
        read_bytes(refs[2], 1000)
    limited = {ref.member: ref.error for ref in iter_images(archive, max_inline_bytes=1000)}
    assert limited["imgs/a.jpg"] is None
    assert "too large" in (limited["imgs/b.JPEG"] or "")


def test_truncated_tar_gives_an_error_item_and_a_precise_read_error(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar"
    with tarfile.open(archive, "w") as tar:
        _add_tar_member(tar, "a.jpg", b"A" * 600)
        _add_tar_member(tar, "b.jpg", b"B" * 5000)
    data = archive.read_bytes()
    archive.write_bytes(data[: data.index(b"B" * 100) + 1000])
    refs = list(iter_images(archive))
    assert [ref.member for ref in refs[:2]] == ["a.jpg", "b.jpg"]
    assert read_bytes(refs[0], MAX_BYTES) == b"A" * 600
    with pytest.raises(InputError, match="archive truncated"):
        read_bytes(refs[1], MAX_BYTES)
    assert refs[-1].error is not None and "truncated" in refs[-1].error


def test_truncated_tar_gz_gives_an_error_item(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            _add_tar_member(tar, f"{i}.jpg", os.urandom(4000))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    refs = list(iter_images(archive))
    assert refs[0].error is None and refs[0].data is not None
    assert refs[-1].error is not None and "truncated" in refs[-1].error


# Zip -------------------------------------------------------------------------


def test_zip_refs_name_members_and_flag_symlinks(tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dir/", b"")
        zf.writestr("dir/a.png", b"P" * 3000)
        zf.writestr("../up.jpg", b"U")
        zf.writestr("readme.md", b"no")
        link = zipfile.ZipInfo("dir/link.jpg")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    refs = list(iter_images(archive))
    assert [(ref.member, ref.relpath) for ref in refs] == [
        ("dir/a.png", "dir/a.png"),
        ("../up.jpg", "up.jpg"),
        ("dir/link.jpg", ""),
    ]
    assert refs[0].source == f"{archive}!dir/a.png" and refs[0].data is None
    assert read_bytes(refs[0], MAX_BYTES) == b"P" * 3000
    with ArchiveCache(max_open=1) as archives:
        assert read_bytes(refs[1], MAX_BYTES, archives=archives) == b"U"
        assert read_bytes(refs[0], MAX_BYTES, archives=archives) == b"P" * 3000
    assert "symlink; not followed" in (refs[2].error or "")
    with pytest.raises(InputError, match="too large"):
        read_bytes(refs[0], 2999)
    missing = ImageRef(source="x", path=str(archive), member="nope.jpg")
    with pytest.raises(InputError, match="member not found"):
        read_bytes(missing, MAX_BYTES)


def test_a_corrupt_zip_cannot_be_enumerated(tmp_path: Path) -> None:
    archive = _touch(tmp_path / "bad.zip", b"PK\x03\x04 not really")
    with pytest.raises(InputError, match="cannot open zip"):
        list(iter_images(archive))


# Untrusted names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/b.jpg", "a/b.jpg"),
        ("../../x.jpg", "x.jpg"),
        ("/abs/x.jpg", "abs/x.jpg"),
        ("a/../../b.jpg", "b.jpg"),
        ("a/./b/../c.jpg", "a/c.jpg"),
        ("C:\\x.jpg", "x.jpg"),
        ("c:/dir\\sub\\x.jpg", "dir/sub/x.jpg"),
        ("//server/share/x.jpg", "server/share/x.jpg"),
        ("a\x00b.jpg", "a_b.jpg"),
        ("...jpg", "...jpg"),
    ],
)
def test_safe_relpath_keeps_names_inside_the_output_folder(name: str, expected: str) -> None:
    assert safe_relpath(name) == expected


@pytest.mark.parametrize("name", ["", "/", "..", "../..", "C:", "./."])
def test_safe_relpath_rejects_names_with_nothing_left(name: str) -> None:
    with pytest.raises(InputError, match="unsafe name"):
        safe_relpath(name)


# Lists -----------------------------------------------------------------------


def test_txt_list_resolves_relative_paths_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = tmp_path / "lists"
    _touch(lists / "rel.jpg")
    absolute = _touch(tmp_path / "abs.png")
    (lists / "in.txt").write_text(f"# comment\nrel.jpg\n\n  {absolute}  \nmissing.jpg\n")
    monkeypatch.chdir(tmp_path)  # relative entries must not depend on the cwd
    refs = list(iter_images(lists / "in.txt"))
    assert [ref.path for ref in refs] == [
        str(lists / "rel.jpg"),
        str(absolute),
        str(lists / "missing.jpg"),
    ]
    assert read_bytes(refs[0], MAX_BYTES) == b"rel.jpg"
    with pytest.raises(InputError, match="file not found"):
        read_bytes(refs[2], MAX_BYTES)


def test_csv_list_uses_the_path_column_or_the_first_column(tmp_path: Path) -> None:
    with open(tmp_path / "named.csv", "w", newline="") as f:
        csv.writer(f).writerows([["label", "path"], ["cat", "a.jpg"], ["dog", "b, c.jpg"]])
    assert _relpaths(iter_images(tmp_path / "named.csv")) == ["a.jpg", "b, c.jpg"]

    (tmp_path / "bare.csv").write_text("x/a.jpg,1\nx/b.jpg,2\n")
    assert _relpaths(iter_images(tmp_path / "bare.csv")) == ["x/a.jpg", "x/b.jpg"]

    (tmp_path / "header.csv").write_text("file,label\nx/a.jpg,1\n")
    assert _relpaths(iter_images(tmp_path / "header.csv")) == ["x/a.jpg"]


def test_parquet_list_reads_the_path_column(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3], "path": ["a.jpg", None, "/data/b.png"]})
    pq.write_table(table, tmp_path / "list.parquet")
    refs = list(iter_images(tmp_path / "list.parquet"))
    assert [ref.path for ref in refs] == [str(tmp_path / "a.jpg"), "", "/data/b.png"]
    assert refs[1].error is not None and "empty path" in refs[1].error

    pq.write_table(pa.table({"file": ["a.jpg"]}), tmp_path / "nopath.parquet")
    with pytest.raises(InputError, match="no 'path' column"):
        list(iter_images(tmp_path / "nopath.parquet"))


# Specs and reads -------------------------------------------------------------


def test_a_single_image_file_is_one_item(tmp_path: Path) -> None:
    image = _touch(tmp_path / "one.webp")
    assert [ref.path for ref in iter_images(image)] == [str(image)]


def test_bad_specs_raise_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        iter_images(tmp_path / "nope")
    with pytest.raises(InputError, match="unsupported input"):
        iter_images(_touch(tmp_path / "model.xml"))


def test_read_bytes_says_precisely_why_a_file_cannot_be_read(tmp_path: Path) -> None:
    def ref(path: Path) -> ImageRef:
        return ImageRef(source=str(path), path=str(path))

    with pytest.raises(InputError, match="file not found"):
        read_bytes(ref(tmp_path / "missing.jpg"), MAX_BYTES)
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        read_bytes(ref(tmp_path / "dir.jpg"), MAX_BYTES)
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(InputError, match="not a regular file"):
        read_bytes(ref(tmp_path / "pipe.jpg"), MAX_BYTES)
    big = _touch(tmp_path / "big.jpg", b"x" * 101)
    with pytest.raises(InputError, match=r"101 bytes, over the limit of 100"):
        read_bytes(ref(big), 100)
    assert read_bytes(ref(big), 101) == b"x" * 101
    with pytest.raises(InputError, match="known bad"):
        read_bytes(ImageRef(source="s", path="p", error="known bad"), MAX_BYTES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_read_bytes_reports_permission_denied(tmp_path: Path) -> None:
    locked = _touch(tmp_path / "locked.jpg")
    locked.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        read_bytes(ImageRef(source=str(locked), path=str(locked)), MAX_BYTES)


def test_image_ref_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="needs a size"):
        ImageRef(source="s", path="p", offset=10)
    with pytest.raises(ValueError, match="not both"):
        ImageRef(source="s", path="p", offset=0, size=1, data=b"x")
