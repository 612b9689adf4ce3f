"""A body shorter than its Content-Length does not hold a real ``amr api`` process: it is
answered 408 within seconds and the server keeps answering others meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from amr.api.limits import BODY_TIMEOUT
from tests.api.live import Server, serve, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("slow")
    config = write_config(folder / "amr.toml", f"sqlite:///{folder / 'amr.sqlite'}")
    with serve(config) as running:
        yield running


def _stalled(server: Server, path: str) -> socket.socket:
    """A connection that sends headers announcing 100 bytes and only 10 of them."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT + 10)
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept-Language: en\r\nContent-Length: 100\r\n\r\n".encode()
        + b'{"login": '
    )
    return conn


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/public/readings"])
def test_a_short_body_is_answered_408_within_seconds(server: Server, path: str) -> None:
    started = time.monotonic()
    conn = _stalled(server, path)
    try:
        assert server.request("GET", "/healthz", timeout=3)[0] == 200  # others are served meanwhile
        answer = _read_all(conn)  # the server answers and closes the connection
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body_timeout"' in answer and b"Content-Length" in answer
    assert BODY_TIMEOUT - 0.5 <= elapsed < BODY_TIMEOUT + 5, elapsed


def test_many_stalled_connections_are_all_let_go(server: Server) -> None:
    started = time.monotonic()
    conns = [_stalled(server, "/api/v1/auth/token") for _ in range(20)]
    try:
        answers = [_read_all(c) for c in conns]
    finally:
        for conn in conns:
            conn.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers)
    assert time.monotonic() - started < BODY_TIMEOUT + 8
    assert server.request("POST", "/api/v1/auth/token", {"login": "x", "password": "y"})[0] == 401


def test_a_complete_body_sent_slowly_in_parts_is_still_read(server: Server) -> None:
    body = b'{"login": "nobody", "password": "wrong"}'
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT + 10)
    try:
        conn.sendall(
            f"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        for part in (body[:10], body[10:20], body[20:]):
            time.sleep(BODY_TIMEOUT / 3)
            conn.sendall(part)
        answer = _read_all(conn)
    finally:
        conn.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
