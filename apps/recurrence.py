"""The portable recurrence behind `RecurrentEncoder`, with a hand-written gradient.

Plain TensorFlow ops (a `tf.while_loop` of matrix products), so a graph holding it
runs on any host, CPU or GPU; on CPUs it is also the fast path. Each cell's step is
written once (`lstm_step`, `gru_step`, `simple_rnn_step`). The loops below run one
direction of one recurrent layer over time
(`RecurrentEncoder._fused_layer` calls it once per direction). Inputs arrive
already multiplied by the input kernel, for all time steps in one matrix product.

Left to automatic differentiation, the backward loop would also accumulate the
recurrent kernel's gradient at every time step: a [units, gates] product and sum
per step, the largest cost when batches are small. Here the backward loop only
carries the state's gradient; the kernel's gradient is one large matrix product
after the loop, over all time steps at once. Same weights, gate order and
arithmetic as Keras; the tests check values against the stock Keras layers and
gradients against automatic differentiation.

Shapes: `projected` [T, B, G] (time major), `kernel` [H, G], states [B, H],
`mask` [T, B] bool or None (no padding). Where the mask is False a
row keeps its previous state, so a right-padded batch ends each row on its own
last real token. Each function returns (states over time [T, B, H], final
states...): the h carried after every step, which the caller masks into outputs.
"""

from __future__ import annotations

import tensorflow as tf


def _unstack(tensor):
    return tf.TensorArray(tensor.dtype, size=tf.shape(tensor)[0]).unstack(tensor)


def _array(like, size):
    return tf.TensorArray(like.dtype, size=size, element_shape=like.shape)


def _unstack_mask(mask):
    return None if mask is None else _unstack(mask)


def _keep(masks, t):
    """The step's mask as [B, 1] for tf.where, or None where nothing is padded."""
    return None if masks is None else masks.read(t)[:, None]


def _carry(keep, new, old):
    return new if keep is None else tf.where(keep, new, old)


def _zero_padded(keep, value):
    return value if keep is None else tf.where(keep, value, tf.zeros_like(value))


def _previous(first, sequence):
    """[first, sequence[0], ..., sequence[T-2]]: the state each step started from."""
    return tf.concat([first[None], sequence[:-1]], axis=0)


def _kernel_gradient(previous, deltas):
    """Sum over t of previous[t]^T @ deltas[t], as one product over all steps.

    `previous` [T, B, H] and `deltas` [T, B, G] -> [H, G].
    """
    units, gates = tf.shape(previous)[-1], tf.shape(deltas)[-1]
    # An explicit transpose: MatMul with a transposed operand is far slower on CPUs here.
    previous = tf.transpose(tf.reshape(previous, [-1, units]))
    return tf.matmul(previous, tf.reshape(deltas, [-1, gates]))


def _loop(body, steps, carried):
    return tf.while_loop(lambda t, *_: t < steps, body, (0, *carried))[1:]


# ----------------------------------------------------------- one step: the arithmetic
# Each cell's step is written once, here: the loops below and `RecurrentEncoder.step`
# (generation, beam search) call it. `x` is the step's input already multiplied by the
# input kernel (plus the input bias), [B, G]; states are [B, H] each. Each returns
# (new states, what the hand-written gradient needs), in Keras' gate order.


def lstm_step(x, states, kernel, recurrent_bias=None):
    h, c = states
    i, f, g, o = tf.split(x + tf.matmul(h, kernel), 4, axis=-1)
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    return (o * tf.tanh(c), c), (i, f, g, o)


def gru_step(x, states, kernel, recurrent_bias):
    """GRU in Keras' reset_after=True form: the reset gate scales the recurrent term."""
    (h,) = states
    x_z, x_r, x_h = tf.split(x, 3, axis=-1)
    r_z, r_r, r_h = tf.split(tf.matmul(h, kernel) + recurrent_bias, 3, axis=-1)
    z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
    n = tf.tanh(x_h + r * r_h)
    return (z * h + (1.0 - z) * n,), (z, r, n, r_h)


def simple_rnn_step(x, states, kernel, recurrent_bias=None):
    (h,) = states
    return (tf.tanh(x + tf.matmul(h, kernel)),), ()


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": simple_rnn_step}


def lstm(projected, mask, kernel, h0, c0):
    """LSTM. Returns (h over time, h_T, c_T)."""

    @tf.custom_gradient
    def forward(projected, kernel, h0, c0):
        steps = tf.shape(projected)[0]
        inputs, masks = _unstack(projected), _unstack_mask(mask)

        def body(t, h, c, hs, cs, saved_gates):
            keep = _keep(masks, t)
            (new_h, new_c), gates = lstm_step(inputs.read(t), (h, c), kernel)
            h, c = _carry(keep, new_h, h), _carry(keep, new_c, c)
            return (t + 1, h, c, hs.write(t, h), cs.write(t, c),
                    saved_gates.write(t, tf.concat(gates, axis=-1)))

        h, c, hs, cs, saved_gates = _loop(body, steps, (
            h0, c0, _array(h0, steps), _array(c0, steps), _array(projected[0], steps)))
        hs, cs, saved_gates = hs.stack(), cs.stack(), saved_gates.stack()

        def backward(d_hs, d_h, d_c):
            kernel_t = tf.transpose(kernel)  # once, not per step
            masks = _unstack_mask(mask)  # a TensorArray element is read only once
            d_hs, all_gates, all_cells = _unstack(d_hs), _unstack(saved_gates), _unstack(cs)
            previous_cells = _unstack(_previous(c0, cs))

            def body(t, dh, dc, deltas):
                k = steps - 1 - t
                keep = _keep(masks, k)
                i, f, g, o = tf.split(all_gates.read(k), 4, axis=-1)
                dh = dh + d_hs.read(k)
                tanh_c = tf.tanh(all_cells.read(k))
                dc_step = dc + dh * o * (1.0 - tanh_c * tanh_c)
                delta = _zero_padded(keep, tf.concat([
                    dc_step * g * i * (1.0 - i),
                    dc_step * previous_cells.read(k) * f * (1.0 - f),
                    dc_step * i * (1.0 - g * g),
                    dh * tanh_c * o * (1.0 - o)], axis=-1))
                return (t + 1, _carry(keep, tf.matmul(delta, kernel_t), dh),
                        _carry(keep, dc_step * f, dc), deltas.write(k, delta))

            dh0, dc0, deltas = _loop(body, steps, (d_h, d_c, _array(projected[0], steps)))
            deltas = deltas.stack()
            return deltas, _kernel_gradient(_previous(h0, hs), deltas), dh0, dc0

        return (hs, h, c), backward

    return forward(projected, kernel, h0, c0)


def gru(projected, mask, kernel, recurrent_bias, h0):
    """GRU in Keras' reset_after=True form; `recurrent_bias` [G]. Returns (h over time, h_T)."""

    @tf.custom_gradient
    def forward(projected, kernel, recurrent_bias, h0):
        steps = tf.shape(projected)[0]
        inputs, masks = _unstack(projected), _unstack_mask(mask)

        def body(t, h, hs, saved):
            (new_h,), gates = gru_step(inputs.read(t), (h,), kernel, recurrent_bias)
            h = _carry(_keep(masks, t), new_h, h)
            return t + 1, h, hs.write(t, h), saved.write(t, tf.concat(gates, -1))

        h, hs, saved = _loop(body, steps, (
            h0, _array(h0, steps), _array(tf.concat([h0, projected[0]], -1), steps)))
        hs, saved = hs.stack(), saved.stack()

        def backward(d_hs, d_h):
            kernel_t = tf.transpose(kernel)  # once, not per step
            masks = _unstack_mask(mask)  # a TensorArray element is read only once
            d_hs, all_saved = _unstack(d_hs), _unstack(saved)
            previous = _unstack(_previous(h0, hs))

            def body(t, dh, input_deltas, recurrent_deltas):
                k = steps - 1 - t
                keep = _keep(masks, k)
                z, r, n, r_h = tf.split(all_saved.read(k), 4, axis=-1)
                dh = dh + d_hs.read(k)
                dn = _zero_padded(keep, dh * (1.0 - z) * (1.0 - n * n))
                dz = _zero_padded(keep, dh * (previous.read(k) - n) * z * (1.0 - z))
                dr = dn * r_h * r * (1.0 - r)
                recurrent_delta = tf.concat([dz, dr, dn * r], axis=-1)
                dh = _carry(keep, dh * z + tf.matmul(recurrent_delta, kernel_t), dh)
                return (t + 1, dh, input_deltas.write(k, tf.concat([dz, dr, dn], axis=-1)),
                        recurrent_deltas.write(k, recurrent_delta))

            dh0, input_deltas, recurrent_deltas = _loop(body, steps, (
                d_h, _array(projected[0], steps), _array(projected[0], steps)))
            recurrent_deltas = recurrent_deltas.stack()
            bias_gradient = tf.reduce_sum(recurrent_deltas, axis=[0, 1])
            return (input_deltas.stack(), _kernel_gradient(_previous(h0, hs), recurrent_deltas),
                    bias_gradient, dh0)

        return (hs, h), backward

    return forward(projected, kernel, recurrent_bias, h0)


def simple_rnn(projected, mask, kernel, h0):
    """SimpleRNN (tanh). Returns (h over time, h_T)."""

    @tf.custom_gradient
    def forward(projected, kernel, h0):
        steps = tf.shape(projected)[0]
        inputs, masks = _unstack(projected), _unstack_mask(mask)

        def body(t, h, hs):
            (new_h,), _ = simple_rnn_step(inputs.read(t), (h,), kernel)
            h = _carry(_keep(masks, t), new_h, h)
            return t + 1, h, hs.write(t, h)

        h, hs = _loop(body, steps, (h0, _array(h0, steps)))
        hs = hs.stack()

        def backward(d_hs, d_h):
            kernel_t = tf.transpose(kernel)  # once, not per step
            masks = _unstack_mask(mask)  # a TensorArray element is read only once
            d_hs, all_h = _unstack(d_hs), _unstack(hs)

            def body(t, dh, deltas):
                k = steps - 1 - t
                keep = _keep(masks, k)
                h = all_h.read(k)
                dh = dh + d_hs.read(k)
                delta = _zero_padded(keep, dh * (1.0 - h * h))
                return t + 1, _carry(keep, tf.matmul(delta, kernel_t), dh), deltas.write(k, delta)

            dh0, deltas = _loop(body, steps, (d_h, _array(h0, steps)))
            deltas = deltas.stack()
            return deltas, _kernel_gradient(_previous(h0, hs), deltas), dh0

        return (hs, h), backward

    return forward(projected, kernel, h0)


def run(cell, projected, mask, kernel, recurrent_bias, states):
    """Dispatch on `cell`: returns (h over time [T, B, H], final states tuple)."""
    if cell == "lstm":
        hs, h, c = lstm(projected, mask, kernel, *states)
        return hs, (h, c)
    if cell == "gru":
        hs, h = gru(projected, mask, kernel, recurrent_bias, *states)
    else:
        hs, h = simple_rnn(projected, mask, kernel, *states)
    return hs, (h,)
