"""The process tree of a test, read from ``/proc`` (Linux), and the CLI in a subprocess.

Processes are found as descendants of a known process (this test process for the
shared session, a CLI subprocess for its embedded Ray), so a test only ever
signals processes it started itself, by pid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The CLI as users run it (``distinfer ...``), from this interpreter.
CLI = "import sys; from distinfer._main import main; sys.exit(main(prog_name='distinfer'))"
#: The same with ``import ray`` made impossible: proves no Ray process was started.
CLI_WITHOUT_RAY = "import sys; sys.modules['ray'] = None; " + CLI
_LISTEN = "0A"


@dataclass(frozen=True)
class Socket:
    address: str
    port: int
    pid: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback


class Processes:
    """The process tree, read from ``/proc`` (Linux)."""

    @staticmethod
    def cmdline(pid: int) -> str:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()

    @staticmethod
    def _parents() -> dict[int, int]:
        parents = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        return parents

    def descendants(self, root: int) -> dict[int, str]:
        """Every live descendant of ``root``: pid -> command line (or process title)."""
        children: dict[int, list[int]] = {}
        for pid, parent in self._parents().items():
            children.setdefault(parent, []).append(pid)
        found: dict[int, str] = {}
        stack = list(children.get(root, []))
        while stack:
            pid = stack.pop()
            cmdline = self.cmdline(pid)
            if cmdline:  # zombies have none
                found[pid] = cmdline
            stack.extend(children.get(pid, []))
        return found

    def follow_until(
        self,
        child: subprocess.Popen[str],
        ready: Callable[[], bool],
        tree: dict[int, str],
        timeout_s: float = 120,
    ) -> None:
        """Wait, while ``child`` runs, until ``ready()`` (rows committed, say), noting its
        process tree in ``tree`` as it grows: its Ray processes, for the test to end."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert child.poll() is None, "the run finished before it could be stopped"
            assert time.monotonic() < deadline, f"not ready within {timeout_s:g} s"
            tree.update(self.descendants(child.pid))
            time.sleep(0.05)
        tree.update(self.descendants(child.pid))

    @staticmethod
    def environ(pid: int) -> dict[str, str]:
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return {}
        pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0"))
        return {key: value for key, _, value in pairs if key}

    def titled(self, root: int, prefix: str) -> set[int]:
        """Descendants of ``root`` whose title starts with ``prefix`` (``ray::InferenceActor``)."""
        return {pid for pid, cmd in self.descendants(root).items() if cmd.startswith(prefix)}

    def listening(self, pids: Sequence[int]) -> list[Socket]:
        """The TCP sockets that ``pids`` listen on."""
        inodes: dict[str, int] = {}
        for pid in pids:
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        sockets = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and inode in inodes:
                    address, port = local.split(":")
                    sockets.append(Socket(_address(address), int(port, 16), inodes[inode]))
        return sockets

    @staticmethod
    def end(pids: Sequence[int] | Mapping[int, str]) -> None:
        """SIGKILL each of ``pids`` still alive (processes a test started)."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net stores the address as 32-bit words in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


class Cli:
    """``distinfer`` in a subprocess, with the environment a user would have."""

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # The suite's conftest (the loopback switch) and its ray.init (RAY_AUTH_MODE, ...)
        # set RAY_* variables here; a user's shell has none, and the CLI must do
        # without them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**env, **(extra or {})}

    def command(self, *args: str, without_ray: bool = False) -> list[str]:
        return [sys.executable, "-c", CLI_WITHOUT_RAY if without_ray else CLI, *args]

    def start(
        self,
        *args: str,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*prefix, *self.command(*args)],
            env=self.env(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        *args: str,
        timeout_s: float = 120,
        without_ray: bool = False,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``distinfer *args``; ``env`` is added to the environment, ``cwd`` the folder."""
        return subprocess.run(
            [*prefix, *self.command(*args, without_ray=without_ray)],
            env=self.env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
