"""The live page of ``deepprune serve --upstream URL --ui``: one static HTML file served at ``/``.

Why a page at all: pruning is easiest to understand by watching it — N branches start, some are pruned
or stopped once the vote is safe, the survivors finish and vote. The page is a client like any chat front
end: it posts the question to the proxy's own ``/v1/chat/completions`` with ``stream: true`` and
``deepprune.events: true`` and reads the SSE stream with ``fetch`` (protocol.py's event chunks give it the
branches; the last chunk's ``deepprune`` summary gives the vote). So it shows what any client would get,
and it needs the proxy key like any client.

The page is self-contained (no CDN, no build step) and runs under a strict Content-Security-Policy: its
one inline script and one inline style are allowed by hash, it may connect only to this origin, and it
writes model text with ``textContent`` only, so branch text can never run as markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import lru_cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from deepprune_agents.settings import DeepPruneContext

PAGE = "proxy_ui.html"
SETTINGS_MARK = "__DEEPPRUNE_SETTINGS__"  # replaced by the operator's defaults (a JSON data block, never run)
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)  # attribute-less tags: the code, not data


@lru_cache(maxsize=1)
def page_template() -> str:
    """The page as shipped (package data: deepprune_agents/server/static/)."""
    return resources.files("deepprune_agents.server").joinpath("static", PAGE).read_text(encoding="utf-8")


def content_security_policy(html: str) -> str:
    """Allow exactly the page's inline ``<script>`` and ``<style>`` blocks (by SHA-256) and requests to
    this origin; everything else (other scripts, frames, forms posting elsewhere) is refused."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        hashes[tag].append(f"'sha256-{digest}'")
    return (
        f"default-src 'none'; script-src {' '.join(hashes['script'])}; style-src {' '.join(hashes['style'])}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def render_page(defaults: DeepPruneContext, *, key_required: bool) -> str:
    """The page with the operator's defaults in its settings block (shown in the header and the form)."""
    settings = {
        "n": defaults.n,
        "max_n": defaults.max_n,
        "policy": defaults.policy,
        "judge": defaults.judge,
        "model": defaults.model,
        "key_required": key_required,
    }
    # "<" escaped: no value can close the <script type="application/json"> block it sits in.
    data = json.dumps(settings).replace("<", "\\u003c")
    return page_template().replace(SETTINGS_MARK, data)


def ui_routes(defaults: DeepPruneContext, *, key_required: bool) -> list[Route]:
    """``GET /``: the live page. It holds no secret (the key is typed into the page), so it needs none."""
    html = render_page(defaults, key_required=key_required)
    headers = {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    return [Route("/", page, methods=["GET"])]
