"""Classification metrics computed from label ids: accuracy, macro-F1, per class, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(true_ids: Sequence[int], predicted_ids: Sequence[int], classes: int):
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_ids), np.asarray(predicted_ids)), 1)
    return matrix


def classification_report(true_ids: Sequence[int], predicted_ids: Sequence[int],
                          labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support, confusion matrix."""
    matrix = confusion_matrix(true_ids, predicted_ids, len(labels))
    hits = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(hits),
                   where=denominator > 0)
    present = actual > 0
    total = max(int(matrix.sum()), 1)
    return {
        "accuracy": float(hits.sum() / total),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "examples": int(matrix.sum()),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(actual[i])}
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }
