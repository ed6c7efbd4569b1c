"""What a SavedModel's signatures declare, and calling one with NumPy arrays.

The declarations are read from `saved_model.pb` itself (no model code runs), so
`apps models list` and the metadata endpoints describe exactly what TF Serving sees.
Nothing here knows about any task: inputs, outputs, dtypes and shapes all come from
the SignatureDefs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from apps.serve.errors import InvalidArgument, ServingError, from_tf_error

SERVING_DEFAULT = "serving_default"

# Values used to warm a freshly loaded version up: one row of each input.
WARM_UP_VALUES = {"string": b"warm-up", "int": 1, "float": 0.0, "bool": False}


@dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: key, dtype and shape (None dims are unknown)."""

    key: str
    dtype: tf.DType
    shape: tuple[int | None, ...] | None  # None when the rank itself is unknown

    @classmethod
    def from_tensor_info(cls, key: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
        dims = info.tensor_shape
        shape = (
            None if dims.unknown_rank else tuple(d.size if d.size >= 0 else None for d in dims.dim)
        )
        return cls(key, tf.as_dtype(info.dtype), shape)

    def describe(self) -> str:
        """`string[?]`, `float32[?,3]` or `int64[*]` (unknown rank)."""
        if self.shape is None:
            return f"{self.dtype.name}[*]"
        return f"{self.dtype.name}[{','.join('?' if d is None else str(d) for d in self.shape)}]"

    @property
    def has_batch_dim(self) -> bool:
        """True when the first dimension is open, so rows from several requests can stack."""
        return self.shape is not None and len(self.shape) > 0 and self.shape[0] is None


def read_signature_defs(version_dir: Path) -> Mapping[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the `serve` MetaGraph in `version_dir/saved_model.pb`.

    Raises ValueError when the file cannot be parsed or has no MetaGraph to serve.
    """
    path = Path(version_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except Exception as exc:  # DecodeError and friends: a damaged or foreign file
        raise ValueError(f"{path} is not a SavedModel protocol buffer ({exc})") from exc
    for meta_graph in saved_model.meta_graphs:
        if not meta_graph.meta_info_def.tags or "serve" in meta_graph.meta_info_def.tags:
            return meta_graph.signature_def
    raise ValueError(f"{path} has no MetaGraph tagged 'serve'")


def signature_def_map_json(signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> dict:
    """A SignatureDefMap as TF Serving's REST metadata writes it (proto field names)."""
    as_map = meta_graph_pb2.MetaGraphDef().signature_def  # a message map to copy into
    for name, signature_def in signature_defs.items():
        as_map[name].CopyFrom(signature_def)
    return {
        "signature_def": {
            name: json_format.MessageToDict(
                as_map[name],
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for name in sorted(as_map)
        }
    }


def describe_signatures(version_dir: Path) -> dict[str, dict]:
    """`{signature: {"inputs": {key: "string[?]"}, "outputs": {...}}}` for listings."""
    described = {}
    for name, signature_def in sorted(read_signature_defs(version_dir).items()):
        if name.startswith("__"):
            continue  # __saved_model_init_op and other internals
        described[name] = {
            side: {
                key: TensorSpec.from_tensor_info(key, info).describe()
                for key, info in sorted(getattr(signature_def, side).items())
            }
            for side in ("inputs", "outputs")
        }
    return described


class Signature:
    """A callable signature of a loaded SavedModel: NumPy arrays in, NumPy arrays out."""

    def __init__(
        self,
        name: str,
        signature_def: meta_graph_pb2.SignatureDef,
        function: Callable[..., Mapping[str, tf.Tensor]],
    ) -> None:
        self.name = name
        self.method_name = signature_def.method_name
        self.inputs = {
            k: TensorSpec.from_tensor_info(k, v) for k, v in signature_def.inputs.items()
        }
        self.outputs = {
            k: TensorSpec.from_tensor_info(k, v) for k, v in signature_def.outputs.items()
        }
        self._function = function

    @property
    def batchable(self) -> bool:
        """Whether requests may be concatenated along their first dimension.

        Every input must have an open batch dimension, or an unknown rank: a parameter
        that is one value per row or one per request (`int32[*]`). Whether a request
        really has rows to stack is decided per request (`batching.batch_rows`).
        """
        return bool(self.inputs) and all(
            spec.has_batch_dim or spec.shape is None for spec in self.inputs.values()
        )

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Raise InvalidArgument unless `inputs` has every key with a compatible shape."""
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown input(s) {', '.join(unknown)}")
            raise InvalidArgument(
                f"Signature '{self.name}' takes inputs {', '.join(sorted(self.inputs))}: "
                + "; ".join(parts)
            )
        for key, spec in self.inputs.items():
            shape = np.shape(inputs[key])
            if spec.shape is None:
                continue
            if len(shape) != len(spec.shape) or any(
                want is not None and want != got
                for want, got in zip(spec.shape, shape, strict=True)
            ):
                raise InvalidArgument(
                    f"Input '{key}' of signature '{self.name}' must have shape "
                    f"{spec.describe()}, got {list(shape)}"
                )

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature; TF failures become ServingErrors with TF's status code."""
        self.check_inputs(inputs)
        try:
            tensors = {
                key: tf.constant(inputs[key], dtype=spec.dtype) for key, spec in self.inputs.items()
            }
            outputs = self._function(**tensors)
            return {key: value.numpy() for key, value in outputs.items()}
        except ServingError:
            raise
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise from_tf_error(exc) from exc

    def warm_up_inputs(self) -> dict[str, np.ndarray]:
        """One row per input built from the declared dtype and shape (unknown dims are 1).

        A scalar input stays a scalar; an input of unknown rank gets one row.
        """
        inputs = {}
        for key, spec in self.inputs.items():
            declared = (1,) if spec.shape is None else spec.shape
            shape = tuple(1 if d is None else d for d in declared)
            if spec.dtype == tf.string:
                value, dtype = WARM_UP_VALUES["string"], object
            elif spec.dtype.is_bool:
                value, dtype = WARM_UP_VALUES["bool"], spec.dtype.as_numpy_dtype
            elif spec.dtype.is_integer:
                value, dtype = WARM_UP_VALUES["int"], spec.dtype.as_numpy_dtype
            else:
                value, dtype = WARM_UP_VALUES["float"], spec.dtype.as_numpy_dtype
            array = np.empty(shape, dtype=dtype)
            array.fill(value)
            inputs[key] = array
        return inputs
