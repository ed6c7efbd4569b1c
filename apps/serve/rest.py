"""TF Serving's REST API on aiohttp: status, metadata and `:predict`.

The paths and answers follow `model_servers/http_rest_api_handler.cc`: an unknown path
under `/v1/` is a 400 ("Malformed request"), errors are `{"error": "..."}` with the
status TF Serving gives the same failure, and the request body is read only up to the
configured limit (a larger one is refused with 413 as soon as its size is known).
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import unquote

from aiohttp import HttpVersion11, web
from google.protobuf import json_format

from apps.serve import json_tensors, streaming, ui
from apps.serve.errors import InvalidArgument, ServingError
from apps.serve.service import Service, check_name, check_version
from apps.serve.signatures import signature_def_map_json

log = logging.getLogger(__name__)

# TF Serving's patterns: a model, optionally a version or a label, then a verb or /metadata.
MODEL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
PREDICT = re.compile(MODEL + r":(?P<verb>predict|classify|regress)")
STREAM = re.compile(MODEL + r":stream")  # apps serve's extension: server-sent events
METADATA = re.compile(MODEL + r"/metadata")
STATUS = re.compile(MODEL)
SERVICE_KEY = web.AppKey("service", Service)
LIMIT_KEY = web.AppKey("body_limit", int)
CHUNK = 64 * 1024


class PayloadTooLarge(ServingError):
    code = "INVALID_ARGUMENT"

    @property
    def http_status(self) -> int:
        return 413


def json_response(document: object, status: int = 200, close: bool = False) -> web.Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = web.Response(body=body, status=status, content_type="application/json")
    if close:
        response.force_close()  # do not drain a refused body to keep the connection
    return response


def error_response(error: ServingError) -> web.Response:
    return json_response(
        {"error": error.message}, error.http_status, close=isinstance(error, PayloadTooLarge)
    )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing it (413) as soon as it is known to exceed `limit` bytes."""
    check_length(request, limit)
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes (--body-limit)")
    return bytes(body)


def check_length(request: web.Request, limit: int) -> None:
    """Refuse a declared Content-Length over the limit before reading a byte of the body."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(
            f"Request body of {length} bytes is over the limit of {limit} bytes (--body-limit)"
        )


def _target(match: re.Match) -> tuple[str, int | None]:
    """Model name and version from a path match, validated (no path tricks)."""
    if match.group("label") is not None:
        raise InvalidArgument("Version labels are not supported by apps serve: use /versions/N")
    name = check_name(unquote(match.group("name")))
    version = match.group("version")
    return name, check_version(unquote(version)) if version is not None else None


async def handle(request: web.Request) -> web.StreamResponse:
    """Route one request by TF Serving's path patterns; every failure is a JSON error."""
    service = request.app[SERVICE_KEY]
    path = request.rel_url.raw_path
    try:
        if request.method == "POST" and (match := PREDICT.fullmatch(path)):
            return await predict(request, service, match)
        if request.method == "POST" and (match := STREAM.fullmatch(path)):
            return await stream(request, service, match)
        if request.method in ("GET", "HEAD") and ui.is_page(path):
            return ui.page(path, service)
        if request.method == "GET" and (match := METADATA.fullmatch(path)):
            return metadata(service, match)
        if request.method == "GET" and (match := STATUS.fullmatch(path)):
            name, version = _target(match)
            status = service.status(name, version)
            return json_response(_proto_json(status))
        if path.startswith("/v1/") or path == "/v1":
            raise InvalidArgument(f"Malformed request: {request.method} {path[:200]}")
        return json_response({"error": f"Not found: {path[:200]}"}, 404)
    except ServingError as error:
        return error_response(error)


def metadata(service: Service, match: re.Match) -> web.Response:
    name, version = _target(match)
    loaded, signature_map = service.metadata(name, version)
    return json_response(
        {
            "model_spec": {
                "name": loaded.name,
                "signature_name": "",
                "version": str(loaded.version),
            },
            "metadata": {"signature_def": signature_def_map_json(signature_map.signature_def)},
        }
    )


async def predict(request: web.Request, service: Service, match: re.Match) -> web.Response:
    if match.group("verb") != "predict":
        raise ServingError(
            f"The {match.group('verb')} API is not supported by apps serve: use :predict",
            "UNIMPLEMENTED",
        )
    name, version = _target(match)
    loaded = service.find(name, version)  # 404 before reading a body for nothing
    body = await read_body(request, request.app[LIMIT_KEY])
    document = json_tensors.parse_body(body)
    signature = loaded.signature(json_tensors.signature_name_of(document))
    form, inputs = json_tensors.decode_request(document, signature)
    outputs = await service.predict(loaded, signature, inputs)
    return json_response(json_tensors.encode_response(form, outputs))


async def stream(request: web.Request, service: Service, match: re.Match) -> web.StreamResponse:
    """`:stream`: a predict body for a generation signature, answered as server-sent events."""
    name, version = _target(match)
    loaded = service.find(name, version)
    body = await read_body(request, request.app[LIMIT_KEY])
    document = json_tensors.parse_body(body)
    signature = loaded.signature(json_tensors.signature_name_of(document))
    streaming.check_streamable(signature)
    _, inputs = json_tensors.decode_request(document, signature)
    return await streaming.stream(request, service, loaded, signature, inputs)


def _proto_json(message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@web.middleware
async def last_resort(request: web.Request, handler) -> web.StreamResponse:
    """Anything unexpected is a 500 with a JSON body; the server keeps running."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - one request's bug must not take the server down
        log.exception("Unexpected error on %s %s", request.method, request.rel_url.raw_path[:200])
        return json_response({"error": "Internal error"}, 500)


def make_app(service: Service, body_limit: int) -> web.Application:
    """The aiohttp application; `client_max_size` backs up the limit in `read_body`."""
    app = web.Application(client_max_size=body_limit, middlewares=[last_resort])
    app[SERVICE_KEY] = service
    app[LIMIT_KEY] = body_limit
    app.router.add_route("*", "/{tail:.*}", handle, expect_handler=expect_handler)
    return app


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` (curl sends it for large bodies): refuse big ones up front."""
    try:
        check_length(request, request.app[LIMIT_KEY])
    except PayloadTooLarge as error:
        return error_response(error)
    if (
        request.version == HttpVersion11
        and request.headers.get("Expect", "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None
    return json_response({"error": "Only 'Expect: 100-continue' is understood"}, 417)
