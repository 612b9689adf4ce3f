"""The benchmarks' helper processes: a line from one within a time limit, and ending them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, NoReturn, Protocol, Self


def readline(stream: IO[str], timeout: float, what: str) -> str:
    """The next line of a child's output; `RuntimeError` naming `what` when none comes in time."""
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        raise RuntimeError(f"{what} within {timeout:g} s")
    return line


def end(procs: Iterable[subprocess.Popen[str]]) -> None:
    """Close every child's stdin (its signal to stop), wait for each, kill those that do not end."""
    procs = list(procs)
    for proc in procs:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class ServerGroup:
    """Processes serving `items` things (thing i in process i % processes), each started with
    ``command(part, parts)``, printing a JSON list of its ports and stopping at the end of its
    stdin; `ports[i]` is thing i's. A context manager: the processes end with the block."""

    def __init__(
        self, items: int, per_process: int, command: Callable[[int, int], list[str]], cwd: Path, what: str
    ) -> None:
        self.items = items
        self.parts = -(-items // per_process)
        self.command, self.cwd, self.what = command, cwd, what
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []

    def __enter__(self) -> Self:
        try:
            for part in range(self.parts):
                self.procs.append(subprocess.Popen(
                    self.command(part, self.parts), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    cwd=self.cwd,
                ))
            ports = []
            for proc in self.procs:
                assert proc.stdout is not None
                ports.append([int(port) for port in json.loads(readline(proc.stdout, 120.0, self.what))])
        except BaseException:
            end(self.procs)
            raise
        self.ports = [ports[i % self.parts][i // self.parts] for i in range(self.items)]
        return self

    def __exit__(self, *_: object) -> None:
        end(self.procs)

    def cpu(self) -> float:
        """CPU seconds the processes used so far."""
        total = 0
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")


class _Serving(Protocol):
    @property
    def port(self) -> int: ...

    async def stop(self) -> None: ...


async def serve_until_stdin_ends(servers: Sequence[_Serving], lifetime: float) -> NoReturn:
    """In a server process: print the ports of `servers` as a JSON list, serve until stdin ends (the
    parent's signal) or `lifetime` seconds, stop them and exit."""
    print(json.dumps([server.port for server in servers]), flush=True)
    eof = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    await asyncio.wait({eof}, timeout=lifetime)
    for server in servers:
        await server.stop()
    os._exit(0)  # the thread reading stdin may still be blocked
