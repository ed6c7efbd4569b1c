"""A faster CPU recurrence for training on unmasked streams, with a hand-written gradient.

The shared fused recurrence (`apps.layers.fused_recurrence`) leaves the backward
pass to automatic differentiation, which adds the recurrent kernel's gradient
inside the loop at every time step: a [units, gates] product and sum per step, the
largest cost when batches are small. Here the backward loop only carries the
state's gradient; the kernel's gradient is one large matrix product after the
loop, over all time steps at once. Same weights, same gate order and arithmetic
as Keras (and as `apps.layers.cell_step`), checked against automatic
differentiation by the tests. Language-model batches are never padded, so there
is no mask here.
"""

from __future__ import annotations

import tensorflow as tf


def _unstack(tensor):
    return tf.TensorArray(tensor.dtype, size=tf.shape(tensor)[0]).unstack(tensor)


def _array(like, size):
    return tf.TensorArray(like.dtype, size=size, element_shape=like.shape)


def _kernel_gradient(previous, deltas):
    """sum over t of previous[t]^T @ deltas[t], as one product: [T, B, H] x [T, B, G]."""
    units, gates = tf.shape(previous)[-1], tf.shape(deltas)[-1]
    return tf.matmul(tf.reshape(previous, [-1, units]), tf.reshape(deltas, [-1, gates]),
                     transpose_a=True)


def _previous(first, sequence):
    """[first, sequence[0], ..., sequence[T-2]]: the state each step started from."""
    return tf.concat([first[None], sequence[:-1]], axis=0)


def lstm(projected, kernel, h0, c0):
    """LSTM over `projected` [T, B, 4H] (inputs times kernel, plus bias) from (h0, c0).

    Returns (outputs [T, B, H], h_T, c_T).
    """

    @tf.custom_gradient
    def forward(projected, kernel, h0, c0):
        steps = tf.shape(projected)[0]
        inputs = _unstack(projected)

        def body(t, h, c, hs, cs, gates):
            i, f, g, o = tf.split(inputs.read(t) + tf.matmul(h, kernel), 4, axis=-1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return (t + 1, h, c, hs.write(t, h), cs.write(t, c),
                    gates.write(t, tf.concat([i, f, g, o], axis=-1)))

        _, h, c, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < steps, body,
            (0, h0, c0, _array(h0, steps), _array(c0, steps), _array(projected[0], steps)))
        outputs, cells, gates = hs.stack(), cs.stack(), gates.stack()

        def backward(d_outputs, d_h, d_c):
            d_out, all_gates, all_cells = _unstack(d_outputs), _unstack(gates), _unstack(cells)
            previous_cells = _unstack(_previous(c0, cells))

            def body(t, dh, dc, deltas):
                k = steps - 1 - t
                i, f, g, o = tf.split(all_gates.read(k), 4, axis=-1)
                dh = dh + d_out.read(k)
                tanh_c = tf.tanh(all_cells.read(k))
                dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
                delta = tf.concat([dc * g * i * (1.0 - i),
                                   dc * previous_cells.read(k) * f * (1.0 - f),
                                   dc * i * (1.0 - g * g),
                                   dh * tanh_c * o * (1.0 - o)], axis=-1)
                dh = tf.matmul(delta, kernel, transpose_b=True)
                return t + 1, dh, dc * f, deltas.write(k, delta)

            _, dh0, dc0, deltas = tf.while_loop(
                lambda t, *_: t < steps, body,
                (0, d_h, d_c, _array(projected[0], steps)))
            deltas = deltas.stack()
            return deltas, _kernel_gradient(_previous(h0, outputs), deltas), dh0, dc0

        return (outputs, h, c), backward

    return forward(projected, kernel, h0, c0)


def gru(projected, kernel, recurrent_bias, h0):
    """GRU (Keras' reset_after=True form) over `projected` [T, B, 3H] from h0.

    Returns (outputs [T, B, H], h_T).
    """

    @tf.custom_gradient
    def forward(projected, kernel, recurrent_bias, h0):
        steps = tf.shape(projected)[0]
        inputs = _unstack(projected)

        def body(t, h, hs, saved):
            x_z, x_r, x_h = tf.split(inputs.read(t), 3, axis=-1)
            r_z, r_r, r_h = tf.split(tf.matmul(h, kernel) + recurrent_bias, 3, axis=-1)
            z, r = tf.sigmoid(x_z + r_z), tf.sigmoid(x_r + r_r)
            n = tf.tanh(x_h + r * r_h)
            h = z * h + (1.0 - z) * n
            return t + 1, h, hs.write(t, h), saved.write(t, tf.concat([z, r, n, r_h], -1))

        _, h, hs, saved = tf.while_loop(
            lambda t, *_: t < steps, body,
            (0, h0, _array(h0, steps), _array(tf.concat([h0, projected[0]], -1), steps)))
        outputs, saved = hs.stack(), saved.stack()

        def backward(d_outputs, d_h):
            d_out, all_saved = _unstack(d_outputs), _unstack(saved)
            previous = _unstack(_previous(h0, outputs))

            def body(t, dh, input_deltas, recurrent_deltas):
                k = steps - 1 - t
                z, r, n, r_h = tf.split(all_saved.read(k), 4, axis=-1)
                dh = dh + d_out.read(k)
                dn = dh * (1.0 - z) * (1.0 - n * n)
                dz = dh * (previous.read(k) - n) * z * (1.0 - z)
                dr = dn * r_h * r * (1.0 - r)
                recurrent_delta = tf.concat([dz, dr, dn * r], axis=-1)
                dh = dh * z + tf.matmul(recurrent_delta, kernel, transpose_b=True)
                return (t + 1, dh, input_deltas.write(k, tf.concat([dz, dr, dn], axis=-1)),
                        recurrent_deltas.write(k, recurrent_delta))

            _, dh0, input_deltas, recurrent_deltas = tf.while_loop(
                lambda t, *_: t < steps, body,
                (0, d_h, _array(projected[0], steps), _array(projected[0], steps)))
            recurrent_deltas = recurrent_deltas.stack()
            return (input_deltas.stack(),
                    _kernel_gradient(_previous(h0, outputs), recurrent_deltas),
                    tf.reduce_sum(recurrent_deltas, axis=[0, 1]), dh0)

        return (outputs, h), backward

    return forward(projected, kernel, recurrent_bias, h0)


def simple_rnn(projected, kernel, h0):
    """SimpleRNN (tanh) over `projected` [T, B, H] from h0. Returns (outputs, h_T)."""

    @tf.custom_gradient
    def forward(projected, kernel, h0):
        steps = tf.shape(projected)[0]
        inputs = _unstack(projected)

        def body(t, h, hs):
            h = tf.tanh(inputs.read(t) + tf.matmul(h, kernel))
            return t + 1, h, hs.write(t, h)

        _, h, hs = tf.while_loop(lambda t, *_: t < steps, body, (0, h0, _array(h0, steps)))
        outputs = hs.stack()

        def backward(d_outputs, d_h):
            d_out, all_h = _unstack(d_outputs), _unstack(outputs)

            def body(t, dh, deltas):
                k = steps - 1 - t
                h = all_h.read(k)
                delta = (dh + d_out.read(k)) * (1.0 - h * h)
                return t + 1, tf.matmul(delta, kernel, transpose_b=True), deltas.write(k, delta)

            _, dh0, deltas = tf.while_loop(lambda t, *_: t < steps, body,
                                           (0, d_h, _array(h0, steps)))
            deltas = deltas.stack()
            return deltas, _kernel_gradient(_previous(h0, outputs), deltas), dh0

        return (outputs, h), backward

    return forward(projected, kernel, h0)


def encode(encoder, inputs, states=None, training=None):
    """`encoder(inputs, initial_states=states)` for a unidirectional fused encoder, unmasked.

    Uses the encoder's own weights, dropout and residual rule; returns (sequence
    [B, T, units], states) in the encoder's state form (per layer, [1, B, units]).
    """
    if states is None:
        states = encoder.zero_states(tf.shape(inputs)[0], inputs.dtype)
    x, finals = tf.transpose(inputs, [1, 0, 2]), []  # time major
    for layer in range(encoder.num_layers):
        layer_input = encoder.dropouts[layer](x, training=training) if layer else x
        kernels, input_bias, recurrent, recurrent_bias = encoder._weights(layer)
        projected = tf.matmul(layer_input, kernels[0]) + input_bias[0]
        first = [state[0] for state in states[layer]]
        if encoder.cell == "lstm":
            out, h, c = lstm(projected, recurrent[0], *first)
            final = (h[None], c[None])
        elif encoder.cell == "gru":
            out, h = gru(projected, recurrent[0], recurrent_bias[0, 0], *first)
            final = (h[None],)
        else:
            out, h = simple_rnn(projected, recurrent[0], *first)
            final = (h[None],)
        if encoder.residual and layer and out.shape[-1] == x.shape[-1]:
            out = out + x
        x = out
        finals.append(final)
    return tf.transpose(x, [1, 0, 2]), finals
