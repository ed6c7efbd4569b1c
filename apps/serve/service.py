"""What REST and gRPC share: find the model version, describe it, run a prediction.

Both protocols call this one layer, so they validate, batch, time out and fail the
same way; each only translates its own wire format. Status and metadata are built as
TF Serving's own protos, which the REST side prints as JSON exactly as TF Serving does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from apps.serve.batching import Batcher, BatchPool
from apps.serve.errors import DeadlineExceeded, InvalidArgument
from apps.serve.registry import LoadedVersion, ModelRegistry
from apps.serve.signatures import Signature

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
MAX_VERSION = 2**63 - 1


def check_name(name: str) -> str:
    """A model name is a plain directory name: no separators, no dot segments."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(
            f"Invalid model name {name[:80]!r}: use letters, digits, '_', '-' and '.'"
            if isinstance(name, str)
            else "Invalid model name"
        )
    return name


def check_version(text: str | int | None) -> int | None:
    """A version is a non-negative int64 given as digits; None means the default."""
    if text is None:
        return None
    if isinstance(text, int):
        version = text
    elif isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19:
        version = int(text)
    else:
        raise InvalidArgument(f"Invalid model version {str(text)[:40]!r}: expected a whole number")
    if not 0 <= version <= MAX_VERSION:
        raise InvalidArgument(f"Invalid model version {version}: out of range")
    return version


class Service:
    """Model lookups and predictions for both front ends."""

    def __init__(
        self, registry: ModelRegistry, pool: BatchPool, request_timeout: float | None = 30.0
    ):
        self.registry = registry
        self.pool = pool
        self.request_timeout = request_timeout

    def find(self, name: str, version: int | None = None) -> LoadedVersion:
        return self.registry.get(check_name(name), check_version(version))

    def status(
        self, name: str, version: int | None = None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus.State
        for status in self.registry.statuses(check_name(name), check_version(version)):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = states.Value(status.state)
            entry.status.error_code = _error_code(status.error_code)
            entry.status.error_message = status.error_message
        return response

    def metadata(
        self, name: str, version: int | None = None
    ) -> tuple[LoadedVersion, get_model_metadata_pb2.SignatureDefMap]:
        loaded = self.find(name, version)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in loaded.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        return loaded, signature_map

    async def predict(
        self, loaded: LoadedVersion, signature: Signature, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Run `inputs` through the batcher of (version, signature), within the request timeout."""
        signature.check_inputs(inputs)
        batcher = loaded.batchers.get(signature.name)
        if batcher is None:
            batcher = loaded.batchers.setdefault(
                signature.name, Batcher(signature.run, self.pool, signature.batchable)
            )
        try:
            return await asyncio.wait_for(batcher.submit(inputs), self.request_timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"The request took longer than {self.request_timeout:g}s (--request-timeout)"
            ) from None


def _error_code(name: str) -> int:
    from tensorflow.core.protobuf import error_codes_pb2

    return error_codes_pb2.Code.Value(name)
