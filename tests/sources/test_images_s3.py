"""Image inputs on object storage (moto's S3 server): the same kinds, order and bytes as on disk."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from _s3 import Bucket

from distinfer._errors import InputError
from distinfer.sources import ArchiveCache, ImageRef, iter_images, read_bytes

MAX_BYTES = 1 << 20
# A file and a folder sharing a prefix, hidden names, other extensions, depth.
TREE = ["a.jpg", "a/b.jpg", "a-b.jpg", "b/.hidden.jpg", "b/c/d.png", "notes.txt", "Z.JPG"]


def _both(bucket: Bucket, tmp_path: Path, files: list[str]) -> Path:
    for name in files:
        bucket.put(f"tree/{name}", name.encode())
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    return tmp_path


def _listing(refs: object) -> list[tuple[str, bytes]]:
    return [(ref.relpath, read_bytes(ref, MAX_BYTES)) for ref in refs]  # type: ignore[attr-defined]


def test_a_prefix_lists_like_the_same_local_folder(s3_bucket: Bucket, tmp_path: Path) -> None:
    local = _both(s3_bucket, tmp_path, TREE)
    expected = [(n, n.encode()) for n in ["Z.JPG", "a-b.jpg", "a.jpg", "a/b.jpg", "b/.hidden.jpg"]]
    expected.append(("b/c/d.png", b"b/c/d.png"))
    assert _listing(iter_images(local)) == expected  # a.jpg before a/b.jpg, as S3 lists keys
    assert _listing(iter_images(s3_bucket.uri("tree/"))) == expected
    assert _listing(iter_images(s3_bucket.uri("tree"))) == expected  # no slash: no such object
    refs = list(iter_images(s3_bucket.uri("tree/")))
    assert refs[0].source == s3_bucket.uri("tree/Z.JPG") and refs[0].path == "tree/Z.JPG"


@pytest.mark.parametrize("pattern", ["**/*.jpg", "*/*", "[ab]*", "**"])
def test_a_glob_matches_what_it_matches_on_disk(
    s3_bucket: Bucket, tmp_path: Path, pattern: str
) -> None:
    local = _both(s3_bucket, tmp_path, TREE)
    on_disk = _listing(iter_images(f"{local}/{pattern}"))
    assert on_disk and _listing(iter_images(s3_bucket.uri(f"tree/{pattern}"))) == on_disk
    assert ("b/.hidden.jpg", b"b/.hidden.jpg") not in on_disk  # wildcards skip hidden names


def test_one_object_and_a_name_that_matches_nothing(s3_bucket: Bucket) -> None:
    s3_bucket.put("one/x.webp", b"webp")
    assert _listing(iter_images(s3_bucket.uri("one/x.webp"))) == [("x.webp", b"webp")]
    with pytest.raises(InputError, match=r"input not found: 's3://.*/one/y\.webp'"):
        iter_images(s3_bucket.uri("one/y.webp"))
    assert list(iter_images(s3_bucket.uri("empty/"))) == []  # as an empty folder
    s3_bucket.put("one/model.xml", b"<xml/>")
    with pytest.raises(InputError, match="unsupported input"):
        iter_images(s3_bucket.uri("one/model.xml"))


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_members_are_read_by_byte_range(s3_bucket: Bucket) -> None:
    members = {"p/a.jpg": b"A" * 700, "notes.txt": b"no", "p/b.png": b"B" * 300_000}
    s3_bucket.put("set.tar", _tar(members))
    s3_bucket.put("set.tar.gz", _tar(members, "w:gz"))
    refs = list(iter_images(s3_bucket.uri("set.tar")))
    assert [(r.member, r.offset is not None, r.data) for r in refs] == [
        ("p/a.jpg", True, None),
        ("p/b.png", True, None),
    ]
    assert refs[1].source == s3_bucket.uri("set.tar") + "!p/b.png"
    assert [read_bytes(r, MAX_BYTES) for r in refs] == [b"A" * 700, b"B" * 300_000]
    streamed = list(iter_images(s3_bucket.uri("set.tar.gz")))
    assert [(r.relpath, r.data) for r in streamed] == [
        ("p/a.jpg", b"A" * 700),
        ("p/b.png", b"B" * 300_000),
    ]


def test_zip_members_are_read_through_the_archive_cache(s3_bucket: Bucket) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/a.png", b"P" * 3000)
        zf.writestr("readme.md", b"no")
        zf.writestr("d/b.jpg", b"J" * 10)
    s3_bucket.put("set.zip", buffer.getvalue())
    refs = list(iter_images(s3_bucket.uri("set.zip")))
    assert [r.relpath for r in refs] == ["d/a.png", "d/b.jpg"]
    with ArchiveCache() as archives:
        assert [read_bytes(r, MAX_BYTES, archives=archives) for r in refs] == [
            b"P" * 3000,
            b"J" * 10,
        ]
    with pytest.raises(InputError, match="too large"):
        read_bytes(refs[0], 2999)


def test_a_list_names_keys_beside_it_uris_and_local_paths(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    (tmp_path / "local.jpg").write_bytes(b"local")
    s3_bucket.put("lists/rel.jpg", b"rel")
    s3_bucket.put("other/abs.png", b"abs")
    text = (
        f"# one per line\nrel.jpg\n{s3_bucket.uri('other/abs.png')}\n{tmp_path / 'local.jpg'}\n"
        "missing.jpg\nhdfs://nn/x.jpg\n../../out.jpg\n"
    )
    s3_bucket.put("lists/todo.txt", text.encode())
    refs = list(iter_images(s3_bucket.uri("lists/todo.txt")))
    assert [r.source for r in refs[:4]] == [
        s3_bucket.uri("lists/rel.jpg"),
        s3_bucket.uri("other/abs.png"),
        str(tmp_path / "local.jpg"),
        s3_bucket.uri("lists/missing.jpg"),
    ]
    assert [read_bytes(r, MAX_BYTES) for r in refs[:3]] == [b"rel", b"abs", b"local"]
    assert refs[1].relpath == f"{s3_bucket.name}/other/abs.png"
    with pytest.raises(InputError, match=r"file not found: s3://.*/lists/missing\.jpg"):
        read_bytes(refs[3], MAX_BYTES)  # one error row, not the run
    assert "HDFS is not supported" in (refs[4].error or "")
    assert "climbs out of the bucket" in (refs[5].error or "")


def test_a_missing_object_reads_as_an_input_error(s3_bucket: Bucket) -> None:
    assert list(iter_images(s3_bucket.uri("x/"))) == []
    s3_bucket.put("x/big.jpg", b"x" * 101)
    (ref,) = iter_images(s3_bucket.uri("x/"))
    with pytest.raises(InputError, match=r"too large.*input\.max_file_bytes"):
        read_bytes(ref, 100)
    s3_bucket.client().delete_object(Bucket=s3_bucket.name, Key="x/big.jpg")
    with pytest.raises(InputError, match="file not found"):
        read_bytes(ref, 1000)
    assert isinstance(ref, ImageRef) and ref.fs.scheme == "s3"
