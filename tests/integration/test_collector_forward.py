"""Store and forward against the real PostgreSQL, made unreachable by cutting a TCP proxy on loopback.

The collector reaches PostgreSQL only through the proxy. While it is cut, polls go on and their
readings wait in the SQLite buffer; when it is back, they are written in order, the buffer
empties, and nothing is lost or doubled (a reading sent again, as after a crash between commit
and delete, comes back ``duplicate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import select

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.result import PollResult
from amr.config import config_from_dict
from amr.store import Store
from amr.store.health import load_health
from amr.store.models import meters_table
from simulators.modbus import ModbusTcpSimulator
from simulators.model import VirtualMeter
from simulators.serving import Connections
from tests.integration.test_collector import run


class Proxy:
    """A TCP proxy on 127.0.0.1 that can be cut (connections dropped, new ones refused) and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections = Connections()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        await self._connections.close(self._server)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._connections.open.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        tasks = [self._connections.spawn(pipe(reader, up_writer)), self._connections.spawn(pipe(up_reader, writer))]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.open.difference_update((writer, up_writer))


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, "", ""))


@pytest.mark.postgres
def test_postgres_away_readings_buffered_then_forwarded_none_lost_none_doubled(
    postgres_url: str, postgres_store: Store, tmp_path: Path
) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)
    target = urlsplit(postgres_url)
    meters = [VirtualMeter(f"FW{n}", address=n) for n in (1, 2)]

    async def scenario() -> tuple[list[PollResult], int, int]:
        proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
        await proxy.start()
        async with contextlib.AsyncExitStack() as stack:
            sims = [await stack.enter_async_context(ModbusTcpSimulator([m])) for m in meters]
            config = config_from_dict(
                {
                    "database": {"url": through(postgres_url, proxy.port)},
                    "buses": [{"name": "tcp", "kind": "modbus-tcp", "url": sims[0].url, "timeout": "300ms"}],
                    "meters": [
                        {"serial": m.serial, "bus": "tcp", "address": f"127.0.0.1:{s.port}/{m.address}",
                         "profile": "eastron-sdm630"}
                        for m, s in zip(meters, sims, strict=True)
                    ],
                    "collector": {"buffer": str(tmp_path / "buffer.sqlite"), "write_interval": "50ms",
                                  "store_retry": "200ms", "store_retry_max": "400ms"},
                },
                environ={},
                file=tmp_path / "amr.toml",
            )
            app = await asyncio.to_thread(App.open, config)
            stack.callback(app.close)
            collector = Collector(app)
            await collector.start(schedule=False)
            assert collector.writer is not None
            results: list[PollResult] = []
            try:
                first = await collector.poll_all()
                assert all(r.delivery and not r.delivery.buffered and r.delivery.summary.accepted for r in first)
                results += first
                await proxy.cut()
                for _ in range(3):
                    sweep = await collector.poll_all()
                    assert all(r.ok and r.delivery and r.delivery.buffered for r in sweep)
                    results += sweep
                    await asyncio.sleep(0.3)  # the writer keeps trying, and failing, meanwhile
                held = collector.writer.buffered
                collector.writer.buffer.append(first[0].readings)  # as if a crash came between commit and delete
                await proxy.start()
                deadline = time.monotonic() + 10
                while collector.writer.buffered and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                results += await collector.poll_all()
            finally:
                left = await collector.stop()
                await proxy.cut()
        return results, held, left

    results, held, left = run(scenario(), timeout=45)
    assert held == 6 and left == 0
    with postgres_store.engine.connect() as conn:
        ids = {serial: meter_id for meter_id, serial in conn.execute(select(meters_table.c.id, meters_table.c.serial))}
    for meter in meters:
        polled = {r.ts: r.values for result in results if result.serial == meter.serial for r in result.readings}
        stored = postgres_store.readings([ids[meter.serial]])
        assert len(polled) == 5
        assert {r.ts: r.values for r in stored} == polled  # every reading, exactly, once
        assert len(stored) == len(polled)
    health = load_health(postgres_store)
    assert all(health[ids[m.serial]].polls == 5 and health[ids[m.serial]].status == "online" for m in meters)

