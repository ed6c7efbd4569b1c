"""Inputters: one data side each, from raw values to tensors, in training and in serving.

An inputter learns what its side needs from the training data (a SentencePiece
model, the label names), keeps it in the run directory, turns raw values into what
the model reads, and gives the exported graph the same preprocessing, so training
and serving cannot drift apart. A task names its sides ("text" and "label" for a
classifier, "source" and "target" for a translator) and the runner fits, saves,
loads and exports every inputter the same way.

Text is tokenised by one definition, `TextInputter.tokenize`: tensorflow-text's
SentencePiece op on the CPU. In-memory training calls it eagerly over the whole data
set (in chunks); streamed training (`pipelines.records`) calls it inside the tf.data
pipeline; the exported serving function calls it inside the graph.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from apps.errors import DataError
from pipelines.batching import Ragged
from pipelines.tokenizer import PAD_ID, Tokenizer, quiet_native_logs

ENCODE_CHUNK = 4096  # texts per eager tokenizer call
STREAM_CHUNK_CHARS = 1 << 20  # characters per call when a whole corpus is one stream


class Inputter:
    """One data side: `fit` on training values or `load` from a run, then encode.

    Subclasses set `filename` (what they keep in the run directory) and implement
    `fit`, `save`, `load` and `metadata`; `trackables` lists the TF resources an
    exported graph needs (tokenizer models).
    """

    filename: str

    def fit(self, values: Iterable) -> None:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def trackables(self) -> list:
        return []


# ------------------------------------------------------------------------------ text


LONG_TEXT = ("head", "tail", "head+tail")


class TextInputter(Inputter):
    """Text through a SentencePiece model trained on the training texts.

    Args:
        model_type: "unigram", "bpe", "char" or "word".
        vocab_size: upper bound on the number of pieces.
        max_length: tokens kept per text (None: all).
        exact_text: keep whitespace and case exactly (language models).
        filename: the model file in the run directory.
        long_text: which `max_length` tokens a longer text keeps (`LONG_TEXT`): its
            head, its tail, or head+tail (the first quarter and the last three
            quarters of the budget: Sun et al. 2019 keep 128 + 382 of 510).
    """

    def __init__(self, model_type: str = "unigram", vocab_size: int = 8000,
                 max_length: int | None = None, exact_text: bool = False,
                 filename: str = "tokenizer.model", long_text: str = "head"):
        if long_text not in LONG_TEXT:
            raise ValueError(f"long_text must be one of {LONG_TEXT}, received {long_text!r}")
        self.model_type, self.vocab_size_limit = model_type, vocab_size
        self.max_length, self.exact_text, self.filename = max_length, exact_text, filename
        self.long_text = long_text
        self.tokenizer: Tokenizer | None = None
        self._graph_tokenizer = None
        self.taken_over = False

    # -- vocabulary ----------------------------------------------------------------------

    def fit(self, texts: Iterable[str], total: int | None = None) -> None:
        if self.taken_over:  # another run's tokenizer: its ids are what the weights mean
            return
        self.use(Tokenizer.train(texts, self.model_type, self.vocab_size_limit, total=total,
                                 exact_text=self.exact_text))

    def use(self, tokenizer: Tokenizer) -> None:
        """Take an already trained tokenizer (one shared by two sides, say)."""
        self.tokenizer, self._graph_tokenizer = tokenizer, None

    def take_over(self, directory: Path) -> None:
        """Use the tokenizer of another run (`--init-from`): `fit` then keeps it."""
        self.load(directory)
        self.taken_over = True

    def save(self, directory: Path) -> None:
        self.tokenizer.save(Path(directory) / self.filename)

    def load(self, directory: Path) -> None:
        self.use(Tokenizer.load(Path(directory) / self.filename))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def metadata(self) -> dict[str, Any]:
        return {"file": self.filename, "type": self.model_type, "vocab_size": self.vocab_size,
                "max_length": self.max_length, **({"long_text": self.long_text}
                                                  if self.long_text != "head" else {})}

    # -- the one tokenisation: graph op on the CPU ---------------------------------------

    @property
    def graph_tokenizer(self):
        if self._graph_tokenizer is None:
            with tf.init_scope():  # made eagerly even when first asked inside a trace
                self._graph_tokenizer = self.tokenizer.graph_tokenizer()
        return self._graph_tokenizer

    def trackables(self) -> list:
        return [self.graph_tokenizer]

    def tokenize(self, text: tf.Tensor, cut: bool = True) -> tf.RaggedTensor:
        """Strings [N] -> ids [N, None], cut at `max_length` (unless not `cut`); on the
        CPU (no GPU kernel). Streamed training data goes through this same op."""
        with tf.device("/CPU:0"):
            ids = self.graph_tokenizer.tokenize(text)
            if self.max_length is None or not cut:
                return ids
            if self.long_text == "head":
                return ids[:, : self.max_length]
            return keep_ends(ids, self.head_length, self.max_length - self.head_length)

    @property
    def head_length(self) -> int:
        """Tokens a text longer than `max_length` keeps from its start."""
        return {"head": self.max_length, "tail": 0}.get(self.long_text, self.max_length // 4)

    def preprocess(self, text: tf.Tensor) -> tf.Tensor:
        """Strings [N] -> right-padded ids [N, T] with T >= 1 (what the models read)."""
        ids = self.tokenize(text).to_tensor(default_value=PAD_ID)
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])

    def detokenize(self, ids) -> tf.Tensor:
        """Ids (ragged or dense with padding removed by the caller) -> strings, on the CPU."""
        with tf.device("/CPU:0"):
            return self.graph_tokenizer.detokenize(ids)

    @staticmethod
    def input_spec(name: str = "text") -> tf.TensorSpec:
        return tf.TensorSpec([None], tf.string, name=name)

    # -- training data: the same op, run eagerly -----------------------------------------

    def encode(self, texts: Sequence[str]) -> Ragged:
        """Every text's ids (cut at `max_length`), as one flat array plus lengths."""
        with quiet_native_logs():
            parts = [Ragged.from_tensor(self.tokenize(tf.constant(list(texts[i : i + ENCODE_CHUNK]),
                                                                  tf.string)))
                     for i in range(0, len(texts), ENCODE_CHUNK)]
        return Ragged.concat(parts)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many texts are longer than `max_length` tokens (they are cut)."""
        if self.max_length is None:
            return 0
        return int(sum(len(ids) > self.max_length for ids in self.tokenizer.encode(texts)))

    def encode_stream(self, text: str) -> np.ndarray:
        """A whole corpus as one int32 array, tokenised in newline-aligned chunks.

        With an `exact_text` tokenizer no piece crosses a newline, so this equals
        tokenising the text at once, without holding every piece of it in memory.
        """
        chunks = list(text_chunks(text))
        if not chunks:
            return np.zeros([0], np.int32)
        return self.encode(chunks).values.astype(np.int32)


def keep_ends(ids: tf.RaggedTensor, head: int, tail: int) -> tf.RaggedTensor:
    """Each row's first `head` and last `tail` ids (a row no longer than both: whole)."""
    lengths = ids.row_lengths()
    positions = tf.ragged.range(lengths)
    keep = (positions < head) | (positions >= tf.expand_dims(lengths, 1) - tail)
    return tf.ragged.boolean_mask(ids, keep)


def text_chunks(text: str, size: int = STREAM_CHUNK_CHARS):
    """Pieces of about `size` characters that end at a newline (or the text's end)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


# ---------------------------------------------------------------------------- labels


class LabelsInputter(Inputter):
    """Label names <-> ids, and how often each label was seen in training.

    The counts give `priors`: the answer for an input that carries no evidence (an
    empty text), the label distribution of the training data.
    """

    filename = "labels.json"

    def __init__(self):
        self.names: list[str] = []
        self.counts: list[int] = []

    @classmethod
    def with_names(cls, names: Sequence[str]) -> LabelsInputter:
        """An inputter that knows these labels (read from an export's metadata, say)."""
        inputter = cls()
        inputter.names, inputter.counts = list(names), [1] * len(names)
        return inputter

    def fit(self, labels: Iterable[str]) -> None:
        self.fit_counts(Counter(labels))

    def fit_counts(self, counts: Counter) -> None:
        """From label counts (one counting pass over a streamed source)."""
        self.names = sorted(counts)
        self.counts = [counts[name] for name in self.names]
        if len(self.names) < 2:
            raise DataError(f"The training data has a single label ({self.names[0]!r}): a "
                            "classifier needs at least two classes.")

    def save(self, directory: Path) -> None:
        (Path(directory) / self.filename).write_text(
            json.dumps({"labels": self.names, "counts": self.counts}, ensure_ascii=False,
                       indent=2) + "\n", encoding="utf-8")

    def load(self, directory: Path) -> None:
        saved = json.loads((Path(directory) / self.filename).read_text(encoding="utf-8"))
        if isinstance(saved, list):  # runs written before the counts were kept
            saved = {"labels": saved, "counts": [1] * len(saved)}
        self.names, self.counts = list(saved["labels"]), list(saved["counts"])

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def priors(self) -> list[float]:
        total = sum(self.counts)
        return [count / total for count in self.counts]

    def metadata(self) -> dict[str, Any]:
        return {"file": self.filename, "labels": self.names}

    def encode(self, labels: Sequence[str], source: str) -> np.ndarray:
        """Label ids; a label the model does not know is named with the source."""
        index = {name: i for i, name in enumerate(self.names)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DataError(f"'{source}' has label(s) the model does not know: "
                            f"{', '.join(map(repr, unknown[:5]))} (it knows "
                            f"{', '.join(self.names)}).")
        return np.array([index[label] for label in labels], dtype=np.int32)

    def lookup(self):
        """Label names -> ids inside a tf.data pipeline (streamed training data)."""
        return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.names), tf.range(len(self.names), dtype=tf.int32)), -1)

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """Label ids -> names, inside a graph."""
        return tf.gather(tf.constant(self.names), ids)
