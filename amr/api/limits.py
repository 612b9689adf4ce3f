"""A request body must arrive in time: a client that announces more than it sends (a
``Content-Length`` longer than its body) or trickles it is answered 408 after `BODY_TIMEOUT`
seconds of silence and its connection closed, so it cannot hold the server's resources."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amr.api.errors import ApiError, pick_language

BODY_TIMEOUT = 5.0
"""Seconds the server waits for the next part of a request body."""


class BodyTimeout:
    """Reads each request's body before the app sees it, waiting at most `timeout` s for each part."""

    def __init__(self, app: ASGIApp, timeout: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the body (408 when it stalls), then pass the request on with the body replayed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: list[Message] = []
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                await self._too_slow(scope, send)
                return
            parts.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(p.get("body", b"") for p in parts if p["type"] == "http.request")
        last = parts[-1]
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        if last["type"] != "http.request":
            replay = [last]

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)

    async def _too_slow(self, scope: Scope, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        lang = pick_language(headers.get(b"accept-language", b"").decode("latin-1") or None)
        error = ApiError(
            408,
            "body_timeout",
            f"body: the request body did not arrive within {self.timeout:g} s; send as many bytes as "
            "Content-Length says",
            f"body: тело запроса не пришло за {self.timeout:g} с; отправьте столько байт, сколько указано "
            "в Content-Length",
            field="body",
            headers={"Connection": "close"},
        )
        await error.response(lang)(scope, _no_more, send)


async def _no_more() -> Message:
    return {"type": "http.disconnect"}
