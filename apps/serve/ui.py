"""The playground page: static files from `apps/serve/ui/` and the list of served models.

The page is plain HTML, CSS and JavaScript shipped in the package (no build step, nothing
fetched from elsewhere), served with a Content-Security-Policy of `default-src 'self'`.
It talks only to the server's own REST API (`:predict`, `:stream`) and to
`/ui/models.json`: every served model with its versions, its signatures' inputs and
outputs, and the few facts of its export metadata a panel can use (label names, the
audio sample rate), so the page picks each panel from what a signature takes and returns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiohttp import web

from apps.serve.errors import ServingError
from apps.serve.signatures import TensorSpec

log = logging.getLogger(__name__)

FILES = Path(__file__).with_name("ui")
PAGES = {"/": "index.html", "/ui": "index.html", "/ui/": "index.html",
         "/ui/app.js": "app.js", "/ui/style.css": "style.css"}
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MODELS = "/ui/models.json"


FAVICON = "/favicon.ico"


def is_page(path: str) -> bool:
    return path in PAGES or path in (MODELS, FAVICON)


def page(path: str, service) -> web.Response:
    """A static file of the page, or the model list, with the page's security headers."""
    if path == FAVICON:  # browsers ask for it; the page has none
        return web.Response(status=204, headers=HEADERS)
    if path == MODELS:
        body = json.dumps(models(service), ensure_ascii=False).encode("utf-8")
        return web.Response(body=body, content_type="application/json", headers=HEADERS)
    file = FILES / PAGES[path]
    return web.Response(body=file.read_bytes(), content_type=TYPES[file.suffix],
                        charset="utf-8", headers=HEADERS)


def models(service) -> dict:
    """`{"models": [{name, version, versions, signatures, metadata} | {name, error}]}`."""
    listed = []
    available = service.registry.available()
    for name in service.registry.names():
        try:
            loaded = service.find(name)
        except ServingError as error:
            listed.append({"name": name, "error": error.message})
            continue
        listed.append({
            "name": name,
            "version": loaded.version,
            "versions": available.get(name, []),
            "signatures": {
                key: {side: {k: spec_json(TensorSpec.from_tensor_info(k, info))
                             for k, info in sorted(getattr(definition, side).items())}
                      for side in ("inputs", "outputs")}
                for key, definition in sorted(loaded.signature_defs.items())
                if not key.startswith("__") and key in loaded.signatures
            },
            "metadata": page_metadata(loaded.path),
        })
    return {"models": listed}


def spec_json(spec: TensorSpec) -> dict:
    return {"dtype": spec.dtype.name, "shape": None if spec.shape is None else list(spec.shape),
            "described": spec.describe()}


def page_metadata(version_dir: Path) -> dict:
    """What a panel can use from the export's `assets/metadata.json`, if it has one."""
    from apps.errors import AppError
    from apps.metadata import read as read_metadata

    try:
        metadata = read_metadata(version_dir) or {}
    except (OSError, ValueError, AppError) as exc:
        log.warning("Unreadable metadata in %s: %s", version_dir, exc)
        return {}
    found = {"task": metadata.get("task")}
    if isinstance(metadata.get("labels"), list):
        found["labels"] = [str(label) for label in metadata["labels"]]
    audio = (metadata.get("inputters") or {}).get("audio") or {}
    if isinstance(audio.get("sample_rate"), int):
        found["sample_rate"] = audio["sample_rate"]
    if isinstance(metadata.get("beam_size"), int):
        found["beam_size"] = metadata["beam_size"]
    return found
