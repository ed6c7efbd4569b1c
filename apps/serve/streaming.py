"""`POST /v1/models/NAME[/versions/V]:stream`: generated text as server-sent events.

An extension beside TF Serving's API (which has no streaming), for the playground and
for any client that wants text as it is produced. It drives an unchanged generation
signature in chunks: a signature that takes `prompt` (string) and `max_tokens` (int)
and answers `text` (the prompt included) is called again and again with the text so
far as its prompt and a few tokens to add (1, 2, 4, ... then `MAX_CHUNK` at a time).
The SavedModel is the one TF Serving serves; nothing is added to it. The LM's sampler
draws each token's noise from (seed, position), so with a `seed` the streamed text is
the text one `:predict` call gives whenever the tokenizer reads its own output back the
same way (always for character models).

Events: `token` (`{"text": piece}`) as pieces arrive, then one `done` (`{"text": all
text, prompt included, "tokens": n}`), or `error` (`{"error": sentence}`) once the
stream has started. Errors before the first byte are ordinary JSON errors with TF
Serving's status codes. A client that disconnects stops the work before the next chunk.
"""

from __future__ import annotations

import json
import logging

import numpy as np
from aiohttp import web

from apps.serve import json_tensors
from apps.serve.errors import InvalidArgument, ServingError
from apps.serve.signatures import Signature

log = logging.getLogger(__name__)

PROMPT, MAX_TOKENS, TEXT, TOKENS = "prompt", "max_tokens", "text", "tokens"
MAX_CHUNK = 16  # tokens per call once the stream is under way
MAX_STREAM_TOKENS = 10_000  # the exported LM's own cap on one request


def streamable(signature: Signature) -> bool:
    """Whether `signature` is a generation signature this endpoint can drive."""
    prompt, limit, text = (signature.inputs.get(PROMPT), signature.inputs.get(MAX_TOKENS),
                           signature.outputs.get(TEXT))
    return (prompt is not None and prompt.dtype.name == "string" and limit is not None
            and limit.dtype.is_integer and text is not None and text.dtype.name == "string")


def check_streamable(signature: Signature) -> None:
    if not streamable(signature):
        raise InvalidArgument(
            f"Signature '{signature.name}' cannot stream: :stream needs a string input "
            f"'{PROMPT}', an integer input '{MAX_TOKENS}' and a string output '{TEXT}'"
        )


def single(inputs: dict[str, np.ndarray], key: str) -> object:
    """The one value of input `key`; a stream generates for one prompt at a time."""
    values = np.asarray(inputs[key]).reshape(-1)
    if values.size != 1:
        raise InvalidArgument(f"A stream takes one {key}, got {values.size}: send one instance")
    return values[0]


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _with(inputs: dict[str, np.ndarray], key: str, value) -> dict[str, np.ndarray]:
    """`inputs` with input `key` holding `value`, in the shape the client sent it."""
    original = np.asarray(inputs[key])
    replaced = np.empty(original.shape, dtype=original.dtype)
    replaced.fill(value)
    return {**inputs, key: replaced}


def _closed(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def stream(request: web.Request, service, loaded, signature: Signature,
                 inputs: dict[str, np.ndarray]) -> web.StreamResponse:
    """Run the generation in chunks, writing each new piece as an event."""
    check_streamable(signature)
    prompt = single(inputs, PROMPT)
    prompt = prompt.decode("utf-8") if isinstance(prompt, bytes) else str(prompt)
    wanted = int(single(inputs, MAX_TOKENS))
    if not 0 <= wanted <= MAX_STREAM_TOKENS:
        raise InvalidArgument(
            f"{MAX_TOKENS} must be between 0 and {MAX_STREAM_TOKENS} for a stream, got {wanted}")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    text, produced, chunk = prompt, 0, 1
    try:
        while produced < wanted:
            if _closed(request):
                return response
            count = min(chunk, wanted - produced)
            call = _with(_with(inputs, PROMPT, text.encode("utf-8")), MAX_TOKENS, count)
            outputs = await service.predict(loaded, signature, call)
            # `text` is the prompt given plus what was generated, so it starts with ours
            longer = json_tensors.to_json(TEXT, np.asarray(outputs[TEXT]).reshape(-1))[0]
            made = int(np.asarray(outputs[TOKENS]).reshape(-1)[0]) if TOKENS in outputs \
                else count
            piece = longer[len(text):]
            text, produced, chunk = longer, produced + made, min(chunk * 2, MAX_CHUNK)
            if piece:
                await response.write(event("token", {"text": piece}))
            if made < count:  # the model ended its text
                break
        await response.write(event("done", {"text": text, "tokens": produced}))
    except ServingError as error:
        await response.write(event("error", {"error": error.message}))
    except (ConnectionResetError, ConnectionError):
        log.info("Stream of %s closed by the client after %d tokens", loaded.name, produced)
    return response
