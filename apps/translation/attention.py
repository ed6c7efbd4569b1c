"""Where the model looked: attention weights of a translation, as a PNG heatmap.

The translation is read back through the model with teacher forcing, so the weights
are those of the very decoder steps that produced it (source pieces across, target
pieces down, the end id included). A run directory only: a SavedModel serves text.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.errors import AppError
from apps.task import Trained
from pipelines.tokenizer import EOS_ID


def attention_weights(trained: Trained, source: str, translation: str):
    """(source pieces, target pieces, weights [target pieces, source pieces])."""
    if trained.is_saved_model:
        raise AppError(f"'{trained.path}' is an exported model: --plot-attention needs the "
                       "run directory it was exported from.")
    source_inputter, target_inputter = trained.inputters["source"], trained.inputters["target"]
    source_ids = source_inputter.encode([source]).rows()[0]
    target_ids = target_inputter.tokenizer.encode([translation])[0] + [EOS_ID]
    if not source_ids:
        raise AppError("The sentence is empty: there is no attention to plot.")
    _, weights = trained.model((tf.constant([source_ids]), tf.constant([target_ids])),
                               training=False, return_attention=True)
    pieces = lambda tokenizer, ids: [tokenizer.id_to_piece(i) for i in ids]  # noqa: E731
    return (pieces(source_inputter.tokenizer, source_ids),
            pieces(target_inputter.tokenizer, target_ids), np.asarray(weights[0]))
