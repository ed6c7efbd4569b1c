"""CTC prefix beam search with shallow fusion of an `apps lm` language model.

`apps speech transcribe / evaluate --lm RUN --lm-weight W --word-bonus B` ranks every
prefix by

    log P_ctc(prefix | audio) + W * log P_lm(prefix) + B * words(prefix)

(Hannun et al., 2014: the prefix beam search; the language model read character by
character, so it scores words it never saw). A finished transcript also pays
W * log P_lm(end of line | transcript): the LM was trained on transcripts one per line.

The language model is any `apps lm` run (a character LM trained on the training
transcripts is the intended one: `apps lm train --data transcripts.txt`). Each of the
recogniser's pieces is mapped once to the LM's ids of its text; pieces of more than one
LM id are scored exactly once stepped, by their first id while they are new. The LM reads
a transcript as a line of its corpus: after "\\n".

This needs the recogniser's frame scores, so it runs from a run directory (a SavedModel
answers transcripts only); it decodes in Python, one utterance at a time, with one
batched LM step per frame for the prefixes that survive.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.errors import ConfigError
from apps.graphs import graph_function
from apps.task import Trained
from pipelines.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer

NEG_INF = -np.inf
PRUNE = np.log(1e-4)  # pieces less likely than this in a frame are not tried there
END_OF_LINE = "\n"
DEFAULT_LM_WEIGHT = 0.5
DEFAULT_WORD_BONUS = 2.0  # both chosen on AN4 validation (docs/benchmarks.md)


@dataclass
class Prefix:
    """What the language model knows of one prefix: its text, log P_lm so far, the LM's
    state after reading it and its log-probabilities for the next id (None until
    stepped), and the LM ids still to step through (a piece of several LM ids)."""

    text: str
    lm: float
    state: list | None = None
    next: np.ndarray | None = None
    pending: tuple = ()

    @property
    def words(self) -> int:
        return len(self.text.split())


class LanguageModelScorer:
    """An `apps lm` run's model, read as the recogniser's pieces arrive."""

    def __init__(self, lm: Trained, speech_tokenizer: Tokenizer):
        self.model = lm.model
        lm_tokenizer = lm.inputters["text"].tokenizer
        texts = [speech_tokenizer.id_to_piece(i).replace("\u2581", " ")
                 if i not in (PAD_ID, UNK_ID, BOS_ID, EOS_ID) else ""
                 for i in range(speech_tokenizer.vocab_size)]

        def lm_ids(text):
            return tuple(lm_tokenizer.encode([text])[0]) if text else ()

        self.chunks = [lm_ids(text) for text in texts]  # speech id -> LM ids
        self.first_chunks = [lm_ids(text.lstrip()) for text in texts]  # at the start
        self.texts = texts
        end = lm_tokenizer.encode([END_OF_LINE])[0]
        if len(end) != 1 or UNK_ID in end:
            raise ConfigError("The --lm model has no piece for the end of a line: train it "
                              "with `apps lm train` on transcripts one per line.")
        self.end_id = end[0]
        self._run = graph_function(lambda ids, states: self.model.run(ids, states, training=False),
                                   reduce_retracing=True)

    def start(self) -> Prefix:
        """The empty transcript: the LM after the begin id and a line end."""
        root = Prefix("", 0.0, pending=(BOS_ID, self.end_id))
        self.step([root], initial=True)
        return root

    def child(self, parent: Prefix, piece: int) -> Prefix:
        """`parent` followed by the recogniser's `piece`, scored by its first LM id."""
        text = self.texts[piece]
        ids = (self.first_chunks if not parent.text.strip() else self.chunks)[piece]
        if not parent.text.strip():
            text = text.lstrip()
        if not ids:
            return Prefix(parent.text + text, parent.lm, parent.state, parent.next)
        return Prefix(parent.text + text, parent.lm + float(parent.next[ids[0]]),
                      parent.state, parent.next, pending=ids)

    def step(self, prefixes: list[Prefix], initial: bool = False) -> None:
        """Read the pending LM ids of `prefixes` (batched by how many): their state, next
        distribution, and the score of every pending id after the first."""
        groups = defaultdict(list)
        for prefix in prefixes:
            if prefix.pending:
                groups[len(prefix.pending)].append(prefix)
        for group in groups.values():
            ids = tf.constant([p.pending for p in group], tf.int32)
            if initial:
                states = self.model.zero_states(len(group))
            else:
                # each state is [directions, rows, units]
                states = [tf.constant(np.stack(parts, axis=1))
                          for parts in zip(*(p.state for p in group))]
                states = tf.nest.pack_sequence_as(self.model.zero_states(1), states)
            logits, states = self._run(ids, states)
            log_probs = tf.nn.log_softmax(logits, axis=-1).numpy()
            flat = [s.numpy() for s in tf.nest.flatten(states)]
            rows = [[s[:, i] for s in flat] for i in range(len(group))]
            for i, prefix in enumerate(group):
                later = prefix.pending[1:] if not initial else ()
                prefix.lm += float(sum(log_probs[i, j, token] for j, token in enumerate(later)))
                prefix.state, prefix.next, prefix.pending = rows[i], log_probs[i, -1], ()

    def end(self, prefix: Prefix) -> float:
        return float(prefix.next[self.end_id])


def prefix_beam_search(log_probs: np.ndarray, scorer: LanguageModelScorer, beam_size: int,
                       lm_weight: float, word_bonus: float) -> tuple[list[int], float]:
    """log_probs [T, V] (class 0 the blank) -> (the best labelling's ids, its fused score)."""
    root = scorer.start()
    known = {(): root}
    beams = {(): (0.0, NEG_INF)}  # prefix -> (log P ending in blank, ... in a piece)

    def fused(prefix, scores):
        info = known[prefix]
        return np.logaddexp(*scores) + lm_weight * info.lm + word_bonus * info.words

    for frame in log_probs:
        tried = [int(c) for c in np.flatnonzero(frame >= PRUNE) if c != 0]
        following = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (blank, piece) in beams.items():
            total = np.logaddexp(blank, piece)
            same = following[prefix]
            same[0] = np.logaddexp(same[0], total + frame[0])
            last = prefix[-1] if prefix else None
            for c in tried:
                longer = following[prefix + (c,)]
                if c == last:  # a repeat merges unless a blank came between
                    longer[1] = np.logaddexp(longer[1], blank + frame[c])
                    same[1] = np.logaddexp(same[1], piece + frame[c])
                else:
                    longer[1] = np.logaddexp(longer[1], total + frame[c])
        for prefix in following:
            if prefix not in known:
                known[prefix] = scorer.child(known[prefix[:-1]], prefix[-1])
        ranked = sorted(following, key=lambda p: fused(p, following[p]), reverse=True)
        beams = {p: tuple(following[p]) for p in ranked[:beam_size]}
        scorer.step([known[p] for p in beams])
    best = max(beams, key=lambda p: fused(p, beams[p]) + lm_weight * scorer.end(known[p]))
    return list(best), float(fused(best, beams[best]) + lm_weight * scorer.end(known[best]))


@dataclass
class Fusion:
    """The language model and its weights, as `transcribe` takes them."""

    scorer: LanguageModelScorer
    lm_weight: float
    word_bonus: float

    def runner(self, trained: Trained, beam_size: int):
        """audio (WAV bytes [N]) -> {"transcript", "score"}, called as the task's serving
        functions are (`apps.speech.task.transcribe`)."""
        inputter, model = trained.inputters["audio"], trained.model
        text = trained.inputters["text"].tokenizer

        @graph_function(input_signature=[inputter.input_spec()])
        def frame_scores(wav):
            logits, steps = model(inputter.preprocess(wav), training=False)
            return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1), steps

        def run(audio):
            log_probs, steps = (t.numpy() for t in frame_scores(audio))
            words, scores = [], []
            for row, count in zip(log_probs, steps):
                ids, score = prefix_beam_search(row[:count], self.scorer, beam_size,
                                                self.lm_weight, self.word_bonus)
                words.append(text.decode(ids).encode("utf-8"))
                scores.append(score)
            return {"transcript": tf.constant(words, tf.string),
                    "score": tf.constant(scores, tf.float32)}

        return run


def from_options(trained: Trained, lm: Path | str | None, lm_weight: float | None,
                 word_bonus: float | None, beam_size: int) -> Fusion | None:
    """The fusion `--lm / --lm-weight / --word-bonus` ask for, or None without --lm."""
    if lm is None:
        if lm_weight is not None or word_bonus is not None:
            raise ConfigError("--lm-weight and --word-bonus need --lm (a language model run).")
        return None
    if trained.is_saved_model:
        raise ConfigError(f"--lm needs a run directory: '{trained.path}' is an exported model, "
                          "which answers transcripts, not the frame scores that fusion reads.")
    if beam_size < 2:
        raise ConfigError("--lm needs a beam: pass --beam-size 2 or more (8-32 is usual).")
    from apps import runner
    from apps.lm.task import TASK as LM_TASK

    language_model = runner.load(LM_TASK, Path(lm))
    if language_model.is_saved_model:
        raise ConfigError(f"--lm needs a language model run directory, not the export "
                          f"'{lm}'.")
    return Fusion(LanguageModelScorer(language_model, trained.inputters["text"].tokenizer),
                  DEFAULT_LM_WEIGHT if lm_weight is None else lm_weight,
                  DEFAULT_WORD_BONUS if word_bonus is None else word_bonus)

