"""What the upstream servers serve: their model list (cached a few seconds), a request's model name
resolved against it, and the readiness probe.

Why the proxy resolves the model itself, before a run: a response must carry the model that answered
(not the ``+deepprune`` alias the client typed), also in the first chunk of a stream, and an unknown
model must be a 404 ``model_not_found`` before any stream opens, not an error event after a 200.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from deepprune_agents.backends.openai_stream import api_key_from_env, ssl_context
from deepprune_agents.server.errors import MODEL_NOT_FOUND, UPSTREAM_UNAVAILABLE, ClientError

PROBE_TIMEOUT_S = 5.0
CACHE_S = 10.0


class Upstreams:
    """The upstream base URLs (``…/v1``) and what they list at ``/models``."""

    def __init__(self, urls: list[str], *, cache_s: float = CACHE_S) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.cache_s = cache_s
        self._models: list[str] = []
        self._at = -1e9
        self._http: httpx.AsyncClient | None = None
        self._probing: asyncio.Future[list[list[str] | None]] | None = None

    def http(self) -> httpx.AsyncClient:
        """One client for every probe and /tokenize call of the app: a new client per request loaded the
        CA bundle on the event loop each time (~30 ms), which with 64 requests arriving at once kept the
        loop from accepting connections for seconds (bench/proxy.py, sigterm scenario)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, verify=ssl_context())
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _list_one(self, client: httpx.AsyncClient, url: str) -> list[str] | None:
        try:
            resp = await client.get(url + "/models", headers={"Authorization": f"Bearer {api_key_from_env()}"})
            data: Any = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return None
        return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m]

    async def probe(self) -> list[list[str] | None]:
        """Each upstream's model list, None where it did not answer (readiness, and the cache's refresh).
        Callers that arrive while a probe runs share it (a burst of requests makes one probe)."""
        if self._probing is None or self._probing.done():
            self._probing = asyncio.ensure_future(self._probe())
        return list(await asyncio.shield(self._probing))

    async def _probe(self) -> list[list[str] | None]:
        found = await asyncio.gather(*(self._list_one(self.http(), url) for url in self.urls))
        models: list[str] = []
        for ids in found:
            models += [m for m in ids or [] if m not in models]
        if models:
            self._models, self._at = models, time.monotonic()
        return list(found)

    async def models(self, *, fresh: bool = False) -> list[str]:
        """The models the upstreams serve (first upstream first); 503 when none answers."""
        if fresh or time.monotonic() - self._at > self.cache_s or not self._models:
            await self.probe()
        if not self._models or (fresh and time.monotonic() - self._at > self.cache_s):
            raise ClientError(
                503,
                "the model server is unavailable: no upstream answered. Try again later.",
                "server_error",
                UPSTREAM_UNAVAILABLE,
                headers={"Retry-After": "5"},
            )
        return list(self._models)

    async def resolve(self, name: str | None) -> str:
        """``name`` if an upstream serves it (the list is refreshed once before a 404), else the first
        model when ``name`` is None."""
        models = await self.models()
        if name is None:
            return models[0]
        if name not in models:
            models = await self.models(fresh=True)
        if name not in models:
            raise ClientError(
                404,
                f"The model {name!r} does not exist: this server serves {', '.join(models)} "
                "(append '+deepprune' to a name to pass options in it).",
                code=MODEL_NOT_FOUND,
                param="model",
            )
        return name
