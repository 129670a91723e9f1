"""A Python client that speaks the Lightroom bridge protocol (docs/lightroom-bridge.md) as the
Photonic.lrplugin does: handshake, send, long-poll, disconnect, with the secret header on every
call. Tests drive the bridge with it in place of Lightroom."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

SECRET_HEADER = "X-Photonic-Bridge-Secret"
Message = dict[str, Any]  # JSON as decoded: tests index into it freely


class BridgeCallError(Exception):
    """The bridge answered a call with an error status; .error is its sentence."""

    def __init__(self, status: int, body: Mapping[str, object]) -> None:
        self.status = status
        self.error = str(body.get("error", body))
        super().__init__(f"{status}: {self.error}")


class BridgeClient:
    """One plugin instance. Methods raise BridgeCallError on a 4xx/5xx answer; call() gives the
    raw status and body for tests of refusals."""

    def __init__(self, base_url: str, secret: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.client_id: str | None = None
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90))

    async def __aenter__(self) -> BridgeClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def call(self, method: str, path: str, body: object = None,
                   params: Mapping[str, str] | None = None,
                   data: bytes | None = None) -> tuple[int, Message]:
        headers = {} if self.secret is None else {SECRET_HEADER: self.secret}
        async with self._session.request(method, self.base_url + path, json=body, data=data,
                                         params=params, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def _ok(self, method: str, path: str, body: object = None,
                  params: Mapping[str, str] | None = None) -> Message:
        status, reply = await self.call(method, path, body, params)
        if status >= 400:
            raise BridgeCallError(status, reply)
        return reply

    async def handshake(self, client_type: str = "lightroom", protocol_version: int = 1
                        ) -> Message:
        reply = await self._ok("POST", "/bridge/handshake", {
            "client_type": client_type, "protocol_version": protocol_version})
        self.client_id = str(reply["client_id"])
        return reply

    async def send(self, message: Mapping[str, object]) -> Message:
        return await self._ok("POST", "/bridge/send",
                              {"client_id": self.client_id, "message": dict(message)})

    async def register(self, lightroom_version: str = "13.2", catalog: str = "Test Catalog",
                       plugin_version: str = "1.0") -> Message:
        return await self.send({"type": "register", "lightroom_version": lightroom_version,
                                "catalog": catalog, "plugin_version": plugin_version})

    async def subscribe(self, *channels: str) -> Message:
        return await self.send({"type": "subscribe", "channels": list(channels or ("jobs",))})

    async def unsubscribe(self, *channels: str) -> Message:
        return await self.send({"type": "unsubscribe", "channels": list(channels)})

    async def ping(self) -> Message:
        return await self.send({"type": "ping"})

    async def progress(self, job: Mapping[str, object], fraction: float, message: str = ""
                       ) -> Message:
        return await self.send({"type": "job_progress", "job_id": job["job_id"],
                                "attempt": job["attempt"], "fraction": fraction,
                                "message": message})

    async def complete(self, job: Mapping[str, object], outputs: Sequence[Path | str]
                       ) -> Message:
        return await self.send({"type": "job_completed", "job_id": job["job_id"],
                                "attempt": job["attempt"], "outputs": [str(o) for o in outputs]})

    async def fail(self, job: Mapping[str, object], error: str) -> Message:
        return await self.send({"type": "job_failed", "job_id": job["job_id"],
                                "attempt": job["attempt"], "error": error})

    async def poll(self, timeout_s: float = 0.0) -> list[Message]:
        reply = await self._ok("GET", "/bridge/poll", params={
            "client_id": str(self.client_id), "timeout": f"{timeout_s:g}"})
        messages = reply["messages"]
        assert isinstance(messages, list)
        return messages

    async def poll_for(self, kind: str, timeout_s: float = 10.0) -> Message:
        """Polls until a message of this type arrives (others are skipped)."""
        while True:
            for message in await self.poll(timeout_s):
                if message.get("type") == kind:
                    return message

    async def disconnect(self) -> Message:
        return await self._ok("POST", "/bridge/disconnect", {"client_id": self.client_id})

    async def status(self) -> Message:
        return await self._ok("GET", "/bridge/status")
