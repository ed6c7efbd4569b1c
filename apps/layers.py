"""Keras RNN building blocks shared by every task.

`RecurrentEncoder` stacks SimpleRNN / LSTM / GRU layers (optionally bidirectional,
with dropout and residual connections between layers) and honours masks of
right-padded batches. Its weights live in stock Keras recurrent layers whose
arguments stay cuDNN-eligible, so on a GPU Keras runs them with cuDNN. On a CPU
it runs `apps.recurrence` over the same weights instead: the input projection
for all time steps is one matrix product, the two directions of a bidirectional
layer are two independent loops, and the gradient is written by hand.
`step` runs one time step with explicit state, which is what generation and beam
search need.

Which of the two a graph holds is decided when it is traced. Training follows
`implementation` ("auto": cuDNN with a GPU, the fused loop without). An export
decides for itself with `traced_recurrence`: "fused" (the default) holds only ops
that every host has, so a model exported on a GPU machine still serves on a CPU
host; "cudnn" holds Keras' `CudnnRNNV3`, which has no CPU kernel (GPU hosts only).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib

import keras
import tensorflow as tf

from apps import recurrence
from apps.settings import CELLS as CELL_NAMES
from apps.settings import DROPOUT_KINDS, IMPLEMENTATIONS

# The names are the --cell choices (apps.settings); this gives each its Keras layer.
CELLS = dict(zip(CELL_NAMES, (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU),
                 strict=True))
POOLINGS = ("last", "mean", "max", "attention", "concat")
RECURRENCES = ("fused", "cudnn")  # what an exported graph holds

_traced = contextvars.ContextVar("traced_recurrence", default=None)


class CudnnUnavailable(ValueError):
    """A GPU-only (cuDNN) graph was asked for where it cannot be traced."""


def gpu_available() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


@contextlib.contextmanager
def traced_recurrence(kind: str):
    """Trace every `RecurrentEncoder` in this block with the recurrence `kind`.

    "fused": `apps.recurrence`'s loop, portable to any host. "cudnn": Keras' cuDNN
    kernels. Keras takes its cuDNN branch only when it sees a GPU, so without one
    its check is answered yes for the tracing (the graph is not run here): a
    GPU-only export can be made on a CPU machine for a GPU server.
    """
    if kind not in RECURRENCES:
        raise ValueError(f"recurrence must be one of {RECURRENCES}, received {kind!r}")
    token = _traced.set(kind)
    try:
        if kind == "cudnn" and not gpu_available():
            keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
            if not hasattr(keras_rnn, "_is_gpu_available"):
                raise CudnnUnavailable(
                    f"Keras {keras.__version__} has no switch to trace cuDNN kernels "
                    "without a GPU: make the --gpu-only export on a machine with a GPU.")
            answer = keras_rnn._is_gpu_available
            keras_rnn._is_gpu_available = lambda: True
            try:
                yield
            finally:
                keras_rnn._is_gpu_available = answer
        else:
            yield
    finally:
        _traced.reset(token)


def cudnn_eligible_arguments(cell: str) -> dict:
    """The layer arguments Keras needs to pick cuDNN on a GPU.

    Users lose cuDNN silently through `recurrent_dropout`, `unroll` or custom
    activations, so these are fixed here and asserted by a test.
    """
    arguments = dict(activation="tanh", recurrent_dropout=0.0, unroll=False, use_bias=True)
    if cell in ("lstm", "gru"):
        arguments["recurrent_activation"] = "sigmoid"
    if cell == "gru":
        arguments["reset_after"] = True
    return arguments


def num_states(cell: str) -> int:
    return 2 if cell == "lstm" else 1


# --------------------------------------------------------------------------- dropout


def sequence_dropout(rate: float, kind: str = "standard") -> keras.layers.Dropout:
    """Dropout on [B, T, D] sequences: "standard" draws a new mask at every time step;
    "locked" (variational dropout, Gal and Ghahramani 2016) one mask per sequence,
    shared by all its time steps, so a unit is either gone for the whole sequence or
    there at every step (the recurrence cannot average the noise away)."""
    if kind not in DROPOUT_KINDS:
        raise ValueError(f"dropout_kind must be one of {DROPOUT_KINDS}, received {kind!r}")
    return keras.layers.Dropout(rate, noise_shape=(None, 1, None) if kind == "locked" else None)


@keras.saving.register_keras_serializable(package="apps")
class EmbeddingDropout(keras.layers.Layer):
    """Drops whole rows of an embedding matrix while training (Gal and Ghahramani 2016;
    AWD-LSTM): a dropped token reads zeros wherever it occurs in the batch, the kept
    rows are scaled by 1 / (1 - rate). The identity at inference.

    Call with the token ids [B, T] and their embeddings [B, T, D]: masking the rows
    looked up is the same as masking the matrix, without a copy of it per batch.
    """

    def __init__(self, rate: float, vocab_size: int, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), received {rate!r}")
        self.rate, self.vocab_size = float(rate), int(vocab_size)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, embedded, training=None):
        if not training or not self.rate:
            return embedded
        kept = keras.random.uniform([self.vocab_size], seed=self.seed_generator) >= self.rate
        scale = tf.cast(kept, embedded.dtype) / tf.cast(1.0 - self.rate, embedded.dtype)
        return embedded * tf.gather(scale, ids)[..., None]

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "vocab_size": self.vocab_size}


# --------------------------------------------------------------------------- encoder


@keras.saving.register_keras_serializable(package="apps")
class RecurrentEncoder(keras.layers.Layer):
    """Stacked, optionally bidirectional SimpleRNN / LSTM / GRU over right-padded batches.

    Args:
        cell: "rnn" (SimpleRNN), "lstm" or "gru".
        units: hidden size of each direction.
        num_layers: how many recurrent layers are stacked.
        bidirectional: also read each sequence right to left and concatenate.
        dropout: dropout rate on the inputs of every layer after the first.
        dropout_kind: "standard" (a new mask every time step) or "locked" (one mask
            per sequence, shared over time: variational dropout).
        weight_drop: DropConnect rate on the recurrent kernels while training
            (AWD-LSTM's weight drop): one mask per kernel and batch, drawn in `call`;
            training with it always runs the fused recurrence (the stock Keras
            layers read their own variables). `step` and inference never drop.
        residual: add each layer's input to its output where the sizes match.
        implementation: "keras" (stock layers: cuDNN on a GPU), "fused" (the CPU
            recurrence of `apps.recurrence`), or "auto": "keras" when a GPU is
            visible, else "fused".

    Call with `inputs` [B, T, D] and `mask` [B, T] (True for real tokens, right
    padded; None when nothing is padded); returns (sequence [B, T, units * directions],
    states), where the states are one tuple per layer of [directions, B, units]
    tensors (h, and c for an LSTM): the form `initial_states`, `zero_states` and
    `step` use too. `last_output(states)` gives the top layer's final h of every
    direction side by side.
    """

    def __init__(self, cell="lstm", units=128, num_layers=1, bidirectional=True, dropout=0.0,
                 residual=False, implementation="auto", dropout_kind="standard",
                 weight_drop=0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, received cell={cell!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, "
                             f"received implementation={implementation!r}")
        self.cell, self.units, self.num_layers = cell, int(units), int(num_layers)
        self.bidirectional, self.dropout_rate = bool(bidirectional), float(dropout)
        self.residual, self.implementation = bool(residual), implementation
        if not 0.0 <= float(weight_drop) < 1.0:
            raise ValueError(f"weight_drop must be in [0, 1), received {weight_drop!r}")
        self.dropout_kind, self.weight_drop = dropout_kind, float(weight_drop)
        if self.weight_drop:  # only then: a model without it keeps the same variables
            self.weight_drop_seed = keras.random.SeedGenerator()
        self.directions = 2 if self.bidirectional else 1
        self.rnns = [
            [
                CELLS[cell](units, return_sequences=True, return_state=True,
                            go_backwards=direction == 1, name=f"{cell}_{layer}_{'fb'[direction]}",
                            **cudnn_eligible_arguments(cell))
                for direction in range(self.directions)
            ]
            for layer in range(self.num_layers)
        ]
        self.dropouts = [sequence_dropout(dropout, dropout_kind) for _ in range(self.num_layers)]
        self.supports_masking = True

    @property
    def output_size(self) -> int:
        return self.units * self.directions

    def build(self, input_shape):
        size = input_shape[-1]
        for layer_rnns in self.rnns:
            for rnn in layer_rnns:
                rnn.build((None, None, size))
            size = self.output_size
        self.built = True

    def _use_fused(self, training=None) -> bool:
        traced = _traced.get()
        if traced == "cudnn" and self.cell == "rnn":
            raise CudnnUnavailable("SimpleRNN has no cuDNN kernel: a --gpu-only export needs "
                                   "a model trained with --cell lstm or gru.")
        if traced is not None:
            return traced == "fused"
        if training and self.weight_drop:
            return True
        if self.implementation == "auto":
            return not gpu_available()
        return self.implementation == "fused"

    def _weights(self, layer: int, direction: int, training=None):
        """(kernel, input bias, recurrent kernel, recurrent bias or None) of one direction.

        Read as tensors at the compute precision: under a distribution strategy a
        variable's value is still a (mirrored) variable, which the hand-written
        gradients must not see. Training with `weight_drop`, the recurrent kernel is
        masked here (the gradient reaches the variable through the mask).
        """
        cell = self.rnns[layer][direction].cell
        kernel, recurrent, bias = (tf.cast(tf.convert_to_tensor(v.value), self.compute_dtype)
                                   for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
        if training and self.weight_drop:
            kept = keras.random.uniform(recurrent.shape, seed=self.weight_drop_seed) \
                >= self.weight_drop
            recurrent = recurrent * (tf.cast(kept, recurrent.dtype)
                                     / tf.cast(1.0 - self.weight_drop, recurrent.dtype))
        if self.cell == "gru":  # reset_after=True: separate input and recurrent biases
            return kernel, bias[0], recurrent, bias[1]
        return kernel, bias, recurrent, None

    def _fused_layer(self, layer, inputs, mask, initial_states, training=None):
        """One layer through `apps.recurrence`; `mask` None means nothing is padded.

        Each direction runs its own loop: the two loops share no ops, so TensorFlow
        runs them side by side, which on CPUs beat one loop with a batched product
        over both directions (docs/benchmarks.md).
        """
        time_major = tf.transpose(inputs, [1, 0, 2])
        time_mask = None if mask is None else tf.transpose(mask)
        lengths = None if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        keep = None if mask is None else tf.cast(time_mask, inputs.dtype)[:, :, None]

        def reverse(sequence):  # each row's real tokens, last first; padding stays at the end
            if lengths is None:
                return tf.reverse(sequence, axis=[0])
            return tf.reverse_sequence(sequence, lengths, seq_axis=0, batch_axis=1)

        sequences, finals = [], []
        for direction in range(self.directions):
            kernel, input_bias, recurrent, recurrent_bias = self._weights(layer, direction,
                                                                          training)
            source = reverse(time_major) if direction else time_major
            projected = tf.matmul(source, kernel) + input_bias
            states = tuple(state[direction] for state in initial_states)
            outputs, final = recurrence.run(self.cell, projected, time_mask, recurrent,
                                            recurrent_bias, states)
            if keep is not None:
                outputs = outputs * keep
            sequences.append(reverse(outputs) if direction else outputs)
            finals.append(final)
        final = tuple(tf.stack(states) for states in zip(*finals))
        return tf.transpose(tf.concat(sequences, axis=-1), [1, 0, 2]), final

    def _keras_layer(self, layer, inputs, mask, initial_states, training):
        """One layer through the stock Keras layers (cuDNN on a GPU).

        cuDNN refuses a row with no real step at all (an empty text), which would
        fail the whole batch: such rows run one padding step, and their outputs and
        final states are then set back to what the fused loop gives (zeros and the
        initial states).
        """
        empty = tf.logical_not(tf.reduce_any(mask, axis=1))
        first = tf.equal(tf.range(tf.shape(mask)[1]), 0)[None, :]
        runnable = tf.logical_or(mask, tf.logical_and(first, empty[:, None]))
        sequences, finals = [], []
        for direction, rnn in enumerate(self.rnns[layer]):
            initial = [state[direction] for state in initial_states]
            sequence, *states = rnn(inputs, mask=runnable, initial_state=initial,
                                    training=training)
            if direction == 1:
                sequence = tf.reverse(sequence, axis=[1])
            sequences.append(sequence)
            finals.append([tf.where(empty[:, None], start, end)
                           for start, end in zip(initial, states)])
        sequence = tf.concat(sequences, axis=-1) * tf.cast(mask[:, :, None], inputs.dtype)
        final = tuple(tf.stack([f[i] for f in finals]) for i in range(num_states(self.cell)))
        return sequence, final

    def last_output(self, states):
        """The top layer's final h, directions side by side: [B, units * directions]."""
        return tf.concat(tf.unstack(states[-1][0], self.directions), axis=-1)

    def zero_states(self, batch_size, dtype=None):
        """Initial states: per layer, a tuple of [directions, B, units] zeros."""
        zeros = tf.zeros([self.directions, batch_size, self.units],
                         dtype=dtype or self.compute_dtype)
        return [tuple(zeros for _ in range(num_states(self.cell))) for _ in range(self.num_layers)]

    def call(self, inputs, mask=None, training=None, initial_states=None):
        inputs = tf.convert_to_tensor(inputs)
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
        if initial_states is None:
            initial_states = self.zero_states(tf.shape(inputs)[0], inputs.dtype)
        else:  # carried states may be float32 while mixed precision computes in bfloat16
            initial_states = tf.nest.map_structure(lambda s: tf.cast(s, inputs.dtype),
                                                   initial_states)
        fused = self._use_fused(training)
        if mask is None and not fused:
            mask = tf.ones(tf.shape(inputs)[:2], dtype=tf.bool)
        x, finals = inputs, []
        for layer in range(self.num_layers):
            layer_input = self.dropouts[layer](x, training=training) if layer else x
            if fused:
                out, final = self._fused_layer(layer, layer_input, mask, initial_states[layer],
                                               training)
            else:
                out, final = self._keras_layer(layer, layer_input, mask, initial_states[layer],
                                               training)
            if self.residual and layer and out.shape[-1] == x.shape[-1]:
                out = out + x
            x = out
            finals.append(final)
        return x, finals

    def input_weights(self, layer: int = 0):
        """(kernel, bias) of a layer's input projection (forward direction): its input
        reaches the cell only as input @ kernel + bias."""
        return self._weights(layer, 0)[:2]

    def step_weights(self) -> list:
        """Per layer, the weights `step` reads (forward direction), read once: a search
        passes them to every step of its loop, which then reads no variable."""
        return [self._weights(layer, 0) for layer in range(self.num_layers)]

    def step(self, inputs, states, projected=None, weights=None):
        """One time step for a unidirectional encoder: inputs [B, D] -> (output, states).

        `states` is what `zero_states` or a previous `step` returned; generation
        calls this once per new token instead of re-reading the whole sequence.
        `projected`: the first layer's input projection already computed (inputs @
        kernel + bias, `input_weights`; `inputs` is then not read), for a caller that
        can compute it more cheaply. `weights`: `step_weights()`, read before a loop.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional encoder (bidirectional=False).")
        x, new_states, given = inputs, [], projected
        cell_step = recurrence.STEPS[self.cell]
        weights = self.step_weights() if weights is None else weights
        for layer in range(self.num_layers):
            kernel, input_bias, recurrent, recurrent_bias = weights[layer]
            projected = given if layer == 0 and given is not None else \
                tf.matmul(x, kernel) + input_bias
            state, _ = cell_step(projected, tuple(s[0] for s in states[layer]), recurrent,
                                 recurrent_bias)
            out, state = state[0], tuple(s[None] for s in state)
            if self.residual and layer and out.shape[-1] == x.shape[-1]:
                out = out + x
            x = out
            new_states.append(state)
        return x, new_states

    def compute_output_spec(self, inputs, mask=None, training=None, initial_states=None):
        batch, steps = inputs.shape[0], inputs.shape[1]
        sequence = keras.KerasTensor((batch, steps, self.output_size), dtype=inputs.dtype)
        final = [tuple(keras.KerasTensor((self.directions, batch, self.units), dtype=inputs.dtype)
                       for _ in range(num_states(self.cell))) for _ in range(self.num_layers)]
        return sequence, final

    def get_config(self):
        return {**super().get_config(), "cell": self.cell, "units": self.units,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional,
                "dropout": self.dropout_rate, "residual": self.residual,
                "implementation": self.implementation, "dropout_kind": self.dropout_kind,
                "weight_drop": self.weight_drop}


# --------------------------------------------------------------------------- pooling


@keras.saving.register_keras_serializable(package="apps")
class SequencePooling(keras.layers.Layer):
    """Reduce a masked sequence [B, T, H] to one vector [B, H].

    Args:
        mode: "last" (the encoder's final state, passed as `last`), "mean" or "max"
            over real tokens, "attention" (a learned query scores every token), or
            "concat": last, max and mean side by side (ULMFiT's concat pooling, [B, 3H]).
        attention_units: size of the attention scorer's hidden layer.
    """

    def __init__(self, mode="max", attention_units=64, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"mode must be one of {POOLINGS}, received mode={mode!r}")
        self.mode, self.attention_units = mode, int(attention_units)
        self.supports_masking = True  # it consumes the mask: nothing is masked after it

    def build(self, input_shape):
        if self.mode == "attention":
            size = input_shape[-1]
            self.score_kernel = self.add_weight(name="score_kernel",
                                                shape=(size, self.attention_units))
            self.score_bias = self.add_weight(name="score_bias", shape=(self.attention_units,),
                                              initializer="zeros")
            self.query = self.add_weight(name="query", shape=(self.attention_units,))
        self.built = True

    def call(self, sequence, mask, last=None):
        keep = tf.cast(mask, sequence.dtype)[:, :, None]
        if self.mode == "last":
            return last
        if self.mode == "mean":
            return self._mean(sequence, keep)
        if self.mode == "max":
            return self._max(sequence, keep)
        if self.mode == "concat":
            return tf.concat([tf.cast(last, sequence.dtype), self._max(sequence, keep),
                              self._mean(sequence, keep)], axis=-1)
        hidden = tf.tanh(tf.matmul(sequence, self.score_kernel) + self.score_bias)
        scores = tf.reduce_sum(hidden * self.query, axis=-1)
        scores = tf.where(tf.cast(mask, tf.bool), scores, -1e9)
        weights = tf.nn.softmax(scores, axis=1)[:, :, None]
        return tf.reduce_sum(weights * sequence, axis=1)

    @staticmethod
    def _mean(sequence, keep):
        return tf.reduce_sum(sequence * keep, 1) / tf.maximum(tf.reduce_sum(keep, 1), 1.0)

    @staticmethod
    def _max(sequence, keep):  # zeros for a row with no real token, not -1e9
        pooled = tf.reduce_max(tf.where(keep > 0, sequence, -1e9), axis=1)
        return tf.where(tf.reduce_any(keep > 0, axis=1), pooled, tf.zeros_like(pooled))

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_spec(self, sequence, mask, last=None):
        size = sequence.shape[-1] * (3 if self.mode == "concat" else 1)
        return keras.KerasTensor((sequence.shape[0], size), dtype=sequence.dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode,
                "attention_units": self.attention_units}
