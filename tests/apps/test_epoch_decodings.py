"""The runner keeps one validation decoding, the best epoch's, for the final report."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

from apps.runner import EpochDecodings


class Decoded(list):
    """A decoding that can be watched for being freed."""


class Decoding:
    """A task's two validation hooks, scoring epoch i's decoding with values[i]."""

    monitor, monitor_mode = "val_bleu", "max"

    def __init__(self, values, decodes=True):
        self.values, self.decodes, self.made = list(values), decodes, []

    def validation_decoding(self, trained, valid):
        if not self.decodes:
            return None
        decoded = Decoded([f"epoch {len(self.made)}"])
        self.made.append(weakref.ref(decoded))
        return decoded

    def validation_metrics(self, trained, valid, decoded=None):
        return {"val_bleu": self.values.pop(0)}


def fitted(values, best_epoch):
    return SimpleNamespace(rows=[{"epoch": e, "val_bleu": v} for e, v in enumerate(values, 1)],
                           best_epoch=best_epoch)


def test_after_three_epochs_only_the_best_epochs_decoding_is_held():
    task = Decoding([0.5, 0.9, 0.7])
    decodings = EpochDecodings(task, None, None)
    assert [decodings.validation()["val_bleu"] for _ in range(3)] == [0.5, 0.9, 0.7]
    gc.collect()
    assert [ref() is not None for ref in task.made] == [False, True, False]
    assert decodings.of_best(fitted([0.5, 0.9, 0.7], best_epoch=2)) == ["epoch 1"]


def test_a_best_epoch_from_before_a_resume_or_no_decoding_gives_none():
    task = Decoding([0.4, 0.6])  # epochs 3 and 4, after a resume; epoch 1 scored 0.8
    decodings = EpochDecodings(task, None, None)
    decodings.validation(), decodings.validation()
    assert decodings.of_best(fitted([0.8, 0.3, 0.4, 0.6], best_epoch=1)) is None
    assert decodings.of_best(fitted([0.2, 0.3, 0.4, 0.6], best_epoch=4)) == ["epoch 1"]
    silent = EpochDecodings(Decoding([0.1], decodes=False), None, None)
    assert silent.validation() == {"val_bleu": 0.1}
    assert silent.of_best(fitted([0.1], best_epoch=1)) is None
