"""SentencePiece tokenisation: trained from the data, used in Python and inside TF graphs.

The same model file drives both paths: `encode` (the `sentencepiece` package) while
training, and `graph_tokenizer` (tensorflow-text's `SentencepieceTokenizer`) inside
exported SavedModels, so training and serving cannot drift apart. Ids are fixed:
0 is padding (what masks look for), 1 unknown, 2 begin, 3 end of sequence.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm
from tqdm.auto import tqdm

from apps.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe", "char", "word")
MAX_SENTENCE_BYTES = 1 << 16
_progress_bars = {"shown": True}


@contextlib.contextmanager
def no_progress_bars():
    """Tokenizer training without its progress bar (`train --quiet`)."""
    shown, _progress_bars["shown"] = _progress_bars["shown"], False
    try:
        yield
    finally:
        _progress_bars["shown"] = shown


@contextlib.contextmanager
def quiet_native_logs():
    """Hide C++ lines on stderr, such as SentencePiece's "precompiled_charsmap is empty".

    An exact-text tokenizer has no normalisation table, and SentencePiece says so
    each time TensorFlow loads it; Python errors still propagate. Off with --debug
    (when the root logger shows DEBUG).
    """
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Tokenizer:
    """A SentencePiece model held as its serialized bytes (what graphs embed)."""

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._processor = spm.SentencePieceProcessor(model_proto=self.model_proto)

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        model_type: str = "unigram",
        vocab_size: int = 8000,
        total: int | None = None,
        exact_text: bool = False,
        **options,
    ) -> Tokenizer:
        """Train on `texts`, streamed (one sentence at a time) with a progress bar.

        `exact_text=True` keeps whitespace and case as they are (identity
        normalisation, no whitespace folding, no dummy leading space, every character
        of the training text kept), and makes the newline a piece of its own (SentencePiece
        otherwise maps it to unknown), so `decode(encode(t)) == t` for a language
        model whenever `t` holds only characters seen in training (except U+2581,
        SentencePiece's own space mark). No piece crosses a newline, so encoding a
        text line by line gives the same ids as encoding it whole.
        `vocab_size` is an upper bound: small corpora get the vocabulary they hold.
        """
        if model_type not in MODEL_TYPES:
            raise ConfigError(
                f"--tokenizer must be one of {', '.join(MODEL_TYPES)}, got '{model_type}'."
            )
        if vocab_size < 8:
            raise ConfigError(f"--vocab-size must be at least 8, got {vocab_size}.")
        seen = {"sentences": 0}

        def sentences():
            for text in tqdm(texts, total=total, desc="tokenizer", unit=" texts",
                             leave=False, mininterval=1.0,
                             disable=not _progress_bars["shown"]):
                if text:
                    seen["sentences"] += 1
                    yield text[:MAX_SENTENCE_BYTES]

        model = io.BytesIO()
        settings = dict(
            model_type=model_type,
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            character_coverage=1.0 if model_type == "char" else 0.9995,
            input_sentence_size=2_000_000,
            shuffle_input_sentence=True,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=2,
            minloglevel=2,
        )
        if exact_text:
            settings.update(
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                split_by_whitespace=model_type != "char",
                allow_whitespace_only_pieces=True,
                add_dummy_prefix=False,
                character_coverage=1.0,
                user_defined_symbols=["\n"],
            )
        settings.update(options)
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=sentences(), model_writer=model,
                                           **settings)
        except RuntimeError as error:
            if seen["sentences"] == 0:
                raise DataError("The training data holds no text to train a tokenizer on.") \
                    from None
            needed = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(error))
            if needed:
                raise ConfigError(
                    f"--vocab-size {vocab_size} is too small for the {needed.group(2)} pieces "
                    f"this data needs at least (its characters and the 4 special ids): "
                    f"use --vocab-size {int(needed.group(2)) + 1} or more."
                ) from None
            raise DataError(f"SentencePiece could not train on this data: {error}") from None
        tokenizer = cls(model.getvalue())
        log.info("Trained a %s tokenizer with %d pieces on %d texts.", model_type,
                 tokenizer.vocab_size, seen["sentences"])
        return tokenizer

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        path = Path(path)
        try:
            return cls(path.read_bytes())
        except (OSError, RuntimeError):
            raise DataError(f"'{path}' is not a SentencePiece model.") from None

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.model_proto)

    # -- Python path (training) -------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._processor.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self._processor.decode([int(i) for i in ids])

    def id_to_piece(self, token_id: int) -> str:
        return self._processor.id_to_piece(int(token_id))

    # -- graph path (export and serving) ----------------------------------------------

    def graph_tokenizer(self):
        """tensorflow-text's tokenizer for this model, its resource pinned to the CPU.

        `SentencepieceOp` has no GPU kernel: TF Serving on a GPU host fails or falls
        back unless the op is placed on the CPU explicitly (docs/serving.md). Call the
        returned tokenizer under `tf.device("/CPU:0")` too.
        """
        import tensorflow as tf
        import tensorflow_text as tf_text

        with quiet_native_logs(), tf.device("/CPU:0"):
            return tf_text.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
