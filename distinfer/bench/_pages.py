"""The images every page mode runs on: a folder of the user's, or generated document pages."""

from __future__ import annotations

from pathlib import Path

from ._report import BenchSkipped

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_paths(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted (what every mode runs on)."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BenchSkipped(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


def page_images(
    workdir: Path, images: int, images_dir: Path | None = None
) -> tuple[Path, list[bytes]]:
    """The folder of test images and their bytes: ``images_dir``, or ``images`` pages
    (generated 1280x960 document JPEGs) written under ``workdir``."""
    if images_dir is not None:
        folder = Path(images_dir)
    else:
        from .._demo import write_pages

        folder = workdir / "pages"
        write_pages(folder, images)
    return folder, [p.read_bytes() for p in image_paths(folder)]
