"""Glob patterns over a local disk or an object store, in the store's key order.

A pattern is split at its first segment with a wildcard: the part before is a
folder (a prefix), the rest is matched segment by segment below it. ``*``, ``?``
and ``[...]`` match within one segment, ``**`` any number of folders (none
included); wildcards do not match names starting with ``.`` unless the pattern
segment does, as ``glob`` behaves.

Matches come in lexicographic order of their full path (``a.jpg`` before
``a/b.jpg``), the order object stores list keys in, on a local disk too: the
same files give the same order wherever they are.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
from collections.abc import Iterator

from distinfer.storage import FileSystem

logger = logging.getLogger(__name__)

MAGIC = re.compile(r"[*?\[]")


def has_magic(path: str) -> bool:
    return MAGIC.search(path) is not None


class Pattern:
    """The segments of a pattern below its base folder, matched one name at a time.

    A state is the set of pattern positions reached so far (``**`` makes several).

    >>> p = Pattern("**/*.png")
    >>> p.matches("a.png"), p.matches("x/y/a.png"), p.matches(".x/a.png"), p.matches("a.jpg")
    (True, True, False, False)
    """

    def __init__(self, pattern: str) -> None:
        self.parts = pattern.split("/")

    def start(self) -> frozenset[int]:
        return frozenset({0})

    def _closure(self, states: frozenset[int]) -> set[int]:
        out = set(states)
        for i in sorted(out):  # ascending: ``**`` at i reaches i + 1 without a name
            j = i
            while j < len(self.parts) and self.parts[j] == "**":
                j += 1
                out.add(j)
        return out

    def step(self, states: frozenset[int], name: str) -> frozenset[int]:
        """The positions reached after ``name`` (a folder or a file name)."""
        out = set()
        for i in self._closure(states):
            if i >= len(self.parts):
                continue
            part = self.parts[i]
            if part == "**":
                if not name.startswith("."):
                    out.add(i)
            elif _segment_matches(part, name):
                out.add(i + 1)
        return frozenset(out)

    def accepts(self, states: frozenset[int]) -> bool:
        """A file reaching ``states`` matches the whole pattern."""
        return len(self.parts) in self._closure(states)

    def goes_deeper(self, states: frozenset[int]) -> bool:
        """A folder reaching ``states`` may hold matches."""
        return any(i < len(self.parts) for i in self._closure(states))

    def matches(self, relpath: str) -> bool:
        """``relpath`` (``/``-separated, below the base) is a file matching the pattern."""
        states = self.start()
        *folders, name = relpath.split("/")
        for folder in folders:
            states = self.step(states, folder)
            if not self.goes_deeper(states):
                return False
        return self.accepts(self.step(states, name))


def _segment_matches(part: str, name: str) -> bool:
    if not has_magic(part):
        return part == name
    if name.startswith(".") and not part.startswith("."):
        return False  # like glob: wildcards do not match hidden names
    return fnmatch.fnmatchcase(name, part)


def split(path: str) -> tuple[str, str]:
    """``(base, pattern)``: the folder before the first wildcard segment, and the rest.

    >>> split("/data/scans/**/*.jpg")
    ('/data/scans', '**/*.jpg')
    >>> split("pages/*.jpg")
    ('pages', '*.jpg')
    """
    parts = path.split("/")
    first = next(i for i, part in enumerate(parts) if has_magic(part))
    return "/".join(parts[:first]), "/".join(parts[first:])


def iter_glob(fs: FileSystem, path: str) -> Iterator[tuple[str, str]]:
    """``(path, relpath)`` of every file matching ``path``, in lexicographic order;
    ``relpath`` is below the base folder. Lazy: a local disk is walked one folder at a
    time, pruned by the pattern; an object store lists the base prefix page by page."""
    base, pattern = split(path)
    matcher = Pattern(pattern)
    if fs.scheme == "file":
        root = base or "/"
        try:
            st = os.stat(root)
        except OSError:
            return
        yield from _walk(root, "", matcher, matcher.start(), ((st.st_dev, st.st_ino),))
        return
    prefix = f"{base}/" if base else ""
    for info in fs.list(base):
        relpath = info.path[len(prefix) :]
        if matcher.matches(relpath):
            yield info.path, relpath


def _walk(
    folder: str,
    rel: str,
    matcher: Pattern,
    states: frozenset[int],
    parents: tuple[tuple[int, int], ...],
) -> Iterator[tuple[str, str]]:
    try:
        with os.scandir(folder) as it:
            entries = []
            for entry in it:
                try:
                    st = entry.stat()  # follows symlinks
                except OSError:
                    continue  # a broken symlink matches no file
                is_dir = stat.S_ISDIR(st.st_mode)
                entries.append((entry.name + "/" if is_dir else entry.name, entry, st))
    except OSError:
        return
    entries.sort(key=lambda e: e[0])
    for key, entry, st in entries:
        reached = matcher.step(states, entry.name)
        if not reached:
            continue
        if key.endswith("/"):
            node = (st.st_dev, st.st_ino)
            if not matcher.goes_deeper(reached):
                continue
            if node in parents:
                logger.warning("glob: not following symlink loop at %s", entry.path)
                continue
            yield from _walk(entry.path, rel + key, matcher, reached, (*parents, node))
        elif stat.S_ISREG(st.st_mode) and matcher.accepts(reached):
            yield entry.path, rel + entry.name
