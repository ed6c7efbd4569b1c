"""TF Serving's JSON request and response bodies <-> NumPy arrays.

Follows `tensorflow_serving/util/json_tensor.cc`: the row format (`instances` ->
`predictions`) and the columnar format (`inputs` -> `outputs`), binary strings as
`{"b64": "..."}`, and base64 output only for string outputs whose name ends in
`_bytes`. Values are converted to the dtypes the signature declares, so a client
that works against TF Serving works here unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from apps.serve.errors import InvalidArgument
from apps.serve.signatures import SERVING_DEFAULT, Signature, TensorSpec

ROW, COLUMNAR = "row", "columnar"
MAX_RANK = 32  # deeper lists are junk, not tensors


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object; anything else is an InvalidArgument (HTTP 400)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidArgument(f"JSON Parse error: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise InvalidArgument("JSON Value: the request body must be a JSON object")
    return document


def signature_name_of(document: Mapping[str, Any]) -> str:
    """The requested signature; missing or empty means `serving_default`."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidArgument("'signature_name' must be a string")
    return name or SERVING_DEFAULT


def request_format(document: Mapping[str, Any]) -> str:
    """ROW for `instances`, COLUMNAR for `inputs`; both or neither is an error."""
    has_rows, has_columns = "instances" in document, "inputs" in document
    if has_rows and has_columns:
        raise InvalidArgument("Not both 'instances' and 'inputs' can be specified in the request")
    if not (has_rows or has_columns):
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    return ROW if has_rows else COLUMNAR


def decode_request(
    document: Mapping[str, Any], signature: Signature
) -> tuple[str, dict[str, np.ndarray]]:
    """(format, {input key: array}) for a parsed predict body and its signature."""
    form = request_format(document)
    try:
        if form == ROW:
            return form, _decode_instances(document["instances"], signature.inputs)
        return form, _decode_inputs(document["inputs"], signature.inputs)
    except RecursionError:
        raise InvalidArgument("JSON value nested too deeply") from None


def encode_response(form: str, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """`{"predictions": [...]}` (row) or `{"outputs": ...}` (columnar), as TF Serving writes."""
    if form == COLUMNAR:
        if len(outputs) == 1:
            ((key, value),) = outputs.items()
            return {"outputs": to_json(key, value)}
        return {"outputs": {key: to_json(key, value) for key, value in sorted(outputs.items())}}
    sizes = {key: (value.shape[0] if np.ndim(value) else None) for key, value in outputs.items()}
    batch = {size for size in sizes.values()}
    if len(batch) != 1 or None in batch:
        raise InvalidArgument(
            "Tensors of the 'predictions' must all have the same batch size (0th dimension), "
            f"got {sizes}: use the columnar 'inputs' format"
        )
    if len(outputs) == 1:
        ((key, value),) = outputs.items()
        return {"predictions": to_json(key, value)}
    columns = {key: to_json(key, value) for key, value in sorted(outputs.items())}
    (rows,) = batch
    return {
        "predictions": [{key: column[i] for key, column in columns.items()} for i in range(rows)]
    }


# ------------------------------------------------------------------------------ inputs


def _decode_instances(instances: Any, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise InvalidArgument("'instances' must be a JSON list")
    if not instances:
        raise InvalidArgument("'instances' is an empty list: send at least one instance")
    named = [isinstance(item, dict) and not _is_b64(item) for item in instances]
    if all(named):
        columns: dict[str, list] = {key: [] for key in specs}
        for index, item in enumerate(instances):
            if set(item) != set(specs):
                missing = sorted(set(specs) - set(item))
                extra = sorted(set(item) - set(specs))
                raise InvalidArgument(
                    f"Failed to process element: {index} of 'instances' list. Expected the "
                    f"named inputs {sorted(specs)}"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; unknown {extra}" if extra else "")
                )
            for key in specs:
                columns[key].append(item[key])
        return {key: _stack(values, specs[key], key) for key, values in columns.items()}
    if any(named):
        raise InvalidArgument("'instances' mixes named (JSON object) and unnamed elements")
    if len(specs) != 1:
        raise InvalidArgument(
            f"The signature takes {len(specs)} inputs ({', '.join(sorted(specs))}): each "
            "instance must be a JSON object naming every input"
        )
    ((key, spec),) = specs.items()
    return {key: _stack(instances, spec, key)}


def _decode_inputs(inputs: Any, specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        unknown = sorted(set(inputs) - set(specs))
        missing = sorted(set(specs) - set(inputs))
        if unknown or missing:
            raise InvalidArgument(
                f"'inputs' must name the signature's inputs {sorted(specs)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        return {key: to_array(inputs[key], specs[key].dtype, key) for key in specs}
    if len(specs) != 1:
        raise InvalidArgument(
            f"The signature takes {len(specs)} inputs ({', '.join(sorted(specs))}): "
            "'inputs' must be a JSON object naming every input"
        )
    ((key, spec),) = specs.items()
    return {key: to_array(inputs, spec.dtype, key)}


def _stack(values: list, spec: TensorSpec, key: str) -> np.ndarray:
    """One array from per-instance values, which must all have the same shape."""
    try:
        return to_array(values, spec.dtype, key)
    except InvalidArgument as error:
        if "ragged" not in error.message:
            raise
        raise InvalidArgument(
            f"Expecting tensors of input '{key}' to have the same shape in every instance"
        ) from None


def to_array(value: Any, dtype: tf.DType, key: str) -> np.ndarray:
    """A (nested) JSON value as an array of `dtype`; ragged lists are errors."""
    shape = _shape_of(value)
    if len(shape) > MAX_RANK:
        raise InvalidArgument(f"Input '{key}' is nested more than {MAX_RANK} lists deep")
    flat: list = []
    _collect(value, shape, 0, flat, key)
    convert = _converter(dtype, key)
    values = [convert(item) for item in flat]
    if dtype == tf.string:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    try:
        return np.array(values, dtype=dtype.as_numpy_dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise InvalidArgument(f"Input '{key}' does not fit {dtype.name}: {exc}") from None


def _shape_of(value: Any) -> list[int]:
    """The shape implied by the first element at every depth (checked by `_collect`)."""
    shape = []
    while isinstance(value, list) and len(shape) <= MAX_RANK:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _collect(value: Any, shape: list[int], depth: int, flat: list, key: str) -> None:
    """Append the scalars of `value` to `flat`, raising InvalidArgument for ragged lists."""
    if depth == len(shape):
        if isinstance(value, list):
            raise InvalidArgument(f"Input '{key}' is a ragged list")
        flat.append(value)
        return
    if not isinstance(value, list) or len(value) != shape[depth]:
        raise InvalidArgument(
            f"Input '{key}' is a ragged list: every list at one depth must have the same length"
        )
    for item in value:
        _collect(item, shape, depth + 1, flat, key)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _converter(dtype: tf.DType, key: str):
    """A function turning one JSON scalar into a value of `dtype`, or raising InvalidArgument."""

    def fail(item: Any, wanted: str):
        shown = json.dumps(item)[:60] if not isinstance(item, bytes) else repr(item[:60])
        raise InvalidArgument(f"Input '{key}' expects {wanted} ({dtype.name}), got {shown}")

    if dtype == tf.string:

        def to_bytes(item: Any) -> bytes:
            if isinstance(item, str):
                try:
                    return item.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate escape: not text
                    return fail(item, 'valid Unicode text (send binary data as {"b64": ...})')
            if _is_b64(item) and isinstance(item["b64"], str):
                try:
                    return base64.b64decode(item["b64"], validate=True)
                except (binascii.Error, ValueError):
                    fail(item, 'valid base64 in {"b64": ...}')
            return fail(item, 'a string or {"b64": ...}')

        return to_bytes
    if dtype.is_bool:
        return lambda item: item if isinstance(item, bool) else fail(item, "true or false")
    if dtype.is_integer:

        def to_int(item: Any) -> int:
            if isinstance(item, bool) or not isinstance(item, int | float):
                return fail(item, "an integer")
            if isinstance(item, float) and not (math.isfinite(item) and item.is_integer()):
                return fail(item, "an integer")
            return int(item)

        return to_int
    if dtype.is_floating or dtype.is_complex:

        def to_float(item: Any) -> float:
            if isinstance(item, bool) or not isinstance(item, int | float):
                return fail(item, "a number")
            return float(item)

        return to_float
    raise InvalidArgument(f"Input '{key}' has dtype {dtype.name}, which JSON cannot carry")


# ----------------------------------------------------------------------------- outputs


def to_json(key: str, value: np.ndarray) -> Any:
    """An output array as JSON values: UTF-8 text, or base64 objects for `*_bytes` outputs."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "SU":
        if key.endswith("_bytes"):
            encode = lambda b: {"b64": base64.b64encode(_as_bytes(b)).decode("ascii")}  # noqa: E731
        else:
            encode = lambda b: _as_bytes(b).decode("utf-8", "replace")  # noqa: E731
        return _map(array.tolist(), encode)
    if array.dtype in (np.float32, np.float16):
        # The shortest text that reads back as the same float32 (what TF Serving prints).
        return _map(array.tolist(), lambda x: float(str(np.float32(x))) if math.isfinite(x) else x)
    return array.tolist()


def _as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode("utf-8")


def _map(tree: Any, function) -> Any:
    if isinstance(tree, list):
        return [_map(item, function) for item in tree]
    return function(tree)
