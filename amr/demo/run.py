"""``amr demo``: a whole АСКУЭ in one process — simulated meters, collector, API and dashboard.

Steps: simulators on loopback TCP ports and ptys; an MQTT broker (the one on 127.0.0.1:1883, or
one started here); the configuration written to the folder; the SQLite store migrated; demo
users with fresh passwords; 45 days of history through the pipeline; the collector polling every
10-15 s; the API and the dashboard on http://127.0.0.1:PORT/. SIGINT or SIGTERM stops everything
in reverse order and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from amr.app import App
from amr.config import load_config
from amr.core.logs import log_to_stderr
from amr.demo.broker import Broker, mqtt_broker
from amr.demo.field import SITE_TIMEZONE, Field, config_data, simulators, specs, to_toml
from amr.demo.history import backfill, start_of_history
from amr.errors import InputError

log = logging.getLogger("amr.demo")
CONFIG_NAME = "amr-demo.toml"
OWN_FILES = ("amr.sqlite", "amr.sqlite-wal", "amr.sqlite-shm", "buffer.sqlite", "buffer.sqlite-wal",
             "buffer.sqlite-shm", "mosquitto.conf", CONFIG_NAME)
HEADER = """amr demo: the configuration of this demo, written at start (the ports and ptys change every run).
Inspect it, or run the parts yourself against running simulators:
  amr check-config -c {path}
  amr readings -c {path} --meter MB-101 --from {today}
  amr rejected -c {path}"""


@dataclass
class Login:
    """A demo user as printed."""

    login: str
    role: str
    secret: str
    what: str
    key: bool = False


def _echo(text: str = "") -> None:
    print(text, flush=True)


def _bind(port: int, default: bool) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (any free port for 0, or when the default is taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if not default:
            sock.close()
            message = f"port {port} on 127.0.0.1 is taken ({exc.strerror}); choose another with --port"
            raise InputError(message) from None
        _echo(f"port {port} is taken; using a free port instead")
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def _folder(path: str | None) -> Iterator[Path]:
    """The demo's folder: the given one (kept), or a temporary one (removed at the end)."""
    if path:
        folder = Path(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        for name in OWN_FILES:  # a fresh demo: its history is generated anew
            (folder / name).unlink(missing_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="amr-demo-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _users(app: App) -> list[Login]:
    from amr.api.security import Passwords, digest, new_api_key
    from amr.store.users import Users

    users = Users(app.store)
    now = datetime.now(UTC)
    hasher = Passwords()
    made: list[Login] = []
    for login, role, name, what in (
        ("dispatcher", "dispatcher", "Диспетчер РЭС", "all meters, refused readings, exports"),
        ("admin", "admin", "Администратор", "everything"),
        ("askue", "askue", "Иванов И. И. (ЛС 1001)", "the АСКУЭ table of account 1001 (ME-301, ME-302)"),
    ):
        password = secrets.token_urlsafe(6)
        users.add(login, role, hasher.hash(password), now, name)
        if role == "askue":
            users.link(login, "account", ["1001"])
        made.append(Login(login, role, password, what))
    users.add("cabinet", "cabinet", None, now, "ЛК энергосбыта (сервисная учётная запись)")
    users.link("cabinet", "account", ["1001", "1002", "2001", "3001", "3002"])
    key = new_api_key()
    users.add_api_key("cabinet", digest(key), key[:12], now)
    made.append(Login("cabinet", "cabinet", key, "service account of a customer cabinet: send X-API-Key", key=True))
    return made


def _banner(url: str, folder: Path, config: Path, broker: Broker | None, logins: list[Login], counts: Any,
            temporary: bool) -> None:
    _echo()
    _echo("=" * 72)
    _echo(f"  АСКУЭ demo is running.  Dashboard: {url}")
    _echo("=" * 72)
    _echo("  Logins (fresh passwords every run):")
    for user in logins:
        if user.key:
            _echo(f"    {user.login:<11} API key {user.secret}")
            _echo(f"    {'':<11} ({user.what})")
        else:
            _echo(f"    {user.login:<11} / {user.secret:<10}  {user.role}: {user.what}")
    _echo()
    _echo("  Simulated meters: Modbus TCP (4 units on one port), Modbus RTU (pty), Mercury 230 (pty),")
    _echo("  IEC 62056-21 (TCP converter), DLMS/COSEM (TCP wrapper), MQTT gateway"
          + (f" via {broker.describe()}" if broker else " (off)"))
    _echo("  On purpose: ME-303 is silent (offline), MB-103 lacks a register (degraded), MB-104 sometimes")
    _echo("  sends a lower A+ (refused), ME-302 wrapped through zero (flagged rollover).")
    _echo(f"  History: {counts.accepted} readings accepted, {sum(counts.rejected.values())} refused "
          f"(last 45 days; 30-minute profile for the last 3)")
    _echo(f"  Folder: {folder}{'  (temporary: removed on exit; keep it with --dir)' if temporary else ''}")
    _echo(f"  Configuration: {config}")
    _echo(f"  API docs: {url}docs    Stop: Ctrl-C")
    _echo("=" * 72)
    _echo()


class _Server:
    """uvicorn without its own signal handling (the demo stops everything itself)."""

    def __init__(self, api: Any, sock: socket.socket) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.sock = sock
        self.server = Quiet(uvicorn.Config(api, log_level="warning", access_log=False, lifespan="off", ws="none"))

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self.server.should_exit = True


async def run_demo(folder: Path, port: int, default_port: bool, mqtt: bool, temporary: bool) -> int:
    """Everything of the demo, until SIGINT or SIGTERM."""
    from prometheus_client import CollectorRegistry

    from amr.api.app import create_app
    from amr.collector.collector import Collector
    from amr.collector.result import ApiPoller
    from amr.dashboard.polls import PollLog
    from simulators.mqtt_publisher import MqttPublisher

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def interrupt() -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for the meters' timeouts
            _echo("stopped at once")
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    started = time.monotonic()
    sock = _bind(port, default_port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    now = datetime.now(UTC).replace(microsecond=0)
    meters = specs()
    tz = ZoneInfo(SITE_TIMEZONE)
    for spec in meters:
        spec.build(start_of_history(now, tz))
    try:
        async with contextlib.AsyncExitStack() as stack:
            field: Field = await stack.enter_async_context(simulators(meters))
            broker = await stack.enter_async_context(mqtt_broker(folder)) if mqtt else None
            config_path = folder / CONFIG_NAME
            data = config_data(field, folder, broker.url if broker else None, sock.getsockname()[1])
            today = now.astimezone(tz).date().isoformat()
            config_path.write_text(to_toml(data, HEADER.format(path=config_path, today=today)), encoding="utf-8")
            config = load_config(config_path, environ={})
            app = await asyncio.to_thread(App.open, config)
            stack.callback(app.close)
            logins = await asyncio.to_thread(_users, app)
            counts = await asyncio.to_thread(backfill, app, meters, now)
            for spec in meters:
                spec.virtual.live = True
            if stop.is_set():
                return 0
            registry = CollectorRegistry()
            collector = Collector(app)
            polls = PollLog().attach(collector)
            api = create_app(app, ApiPoller(collector), registry=registry)
            api.state.poll_log = polls
            await collector.start()
            stack.push_async_callback(collector.stop)
            if broker is not None:
                publisher = MqttPublisher(
                    [m.virtual for m in field.of("mqtt")], payload="amr", topic=field.mqtt_topic, port=broker.port
                )
                await asyncio.to_thread(publisher.connect)
                stack.callback(publisher.close)
                publishing = asyncio.create_task(publisher.run_async(duration=10**9, period=10.0))
                stack.push_async_callback(_cancel, publishing)
            server = _Server(api, sock)
            serving = asyncio.create_task(server.serve())
            await asyncio.sleep(0.2)
            _banner(url, folder, config_path, broker, logins, counts, temporary)
            _echo(f"ready in {time.monotonic() - started:.1f} s")
            done = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, done}, return_when=asyncio.FIRST_COMPLETED)
            _echo("stopping the demo…")
            server.stop()
            done.cancel()
            await asyncio.gather(serving, done, return_exceptions=True)
    finally:
        sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    _echo("demo stopped")
    return 0


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def setup_logging(verbose: bool, tz: tzinfo) -> None:
    """Warnings of the collector on stderr (a meter going offline, a register missing), short, stamped with the
    time of day in the site's zone `tz`."""
    log_to_stderr(logging.INFO if verbose else logging.WARNING, tz, datefmt="%H:%M:%S")
    for noisy in ("apscheduler", "pymodbus", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


__all__ = ["CONFIG_NAME", "run_demo", "setup_logging"]
