"""Signature parameters that TF Serving clients may send per row or once per request.

TF Serving's row form (`"instances"`) gives every input a leading batch dimension, so a
parameter such as `max_tokens` arrives as one value per row ([N]); the columnar form
(`"inputs"`) lets a client send it once, as a scalar. A parameter declared with an
unknown rank accepts both, and `per_row` turns either into one value per row.
"""

from __future__ import annotations

import tensorflow as tf


def parameter_spec(dtype: tf.DType, name: str) -> tf.TensorSpec:
    """A signature input that may be a scalar or one value per row (shown as `int32[*]`)."""
    return tf.TensorSpec(None, dtype, name=name)


def per_row(value: tf.Tensor, rows: tf.Tensor, name: str) -> tf.Tensor:
    """`value` ([], [1] or [rows]) as a vector of `rows` values; any other size is refused."""
    flat = tf.reshape(value, [-1])
    size = tf.size(flat)
    valid = tf.logical_or(tf.equal(size, 1), tf.equal(size, rows))
    with tf.control_dependencies([tf.debugging.Assert(
            valid, [f"{name} must be one value, or one value per row"])]):
        return tf.cond(tf.equal(size, rows), lambda: tf.identity(flat),
                       lambda: tf.broadcast_to(flat[:1], [rows]))
