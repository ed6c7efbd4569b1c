"""CTC n-best lists: ordered, distinct, the first is the beam's 1-best, a run equals its export."""

from __future__ import annotations

import numpy as np

from apps import runner
from apps.speech import task
from apps.speech.task import TASK


def test_n_best_transcripts_of_a_run_equal_its_export(tiny_run, corpus, tmp_path):
    paths = sorted(str(p) for p in (corpus["test"].parent / "wavs").glob("3_*.wav"))[:4]
    version = runner.export(TASK, tiny_run[0], tmp_path, "speech", beam_size=4)
    one_best = task.transcribe_files(tiny_run[0], paths, beam_size=4)
    from_run = task.transcribe_files(tiny_run[0], paths, beam_size=4, n_best=3)
    from_export = task.transcribe_files(version, paths, n_best=3)
    for best, row, served in zip(one_best, from_run, from_export):
        hypotheses = row["n_best"]
        scores = [h["score"] for h in hypotheses]
        assert len(hypotheses) == 3 and scores == sorted(scores, reverse=True)
        assert len({h["transcript"] for h in hypotheses}) == 3
        assert hypotheses[0]["transcript"] == best["transcript"] == row["transcript"]
        assert np.isclose(scores[0], best["score"], atol=1e-4)
        assert [h["transcript"] for h in served["n_best"]] == [h["transcript"]
                                                               for h in hypotheses]
        assert np.allclose([h["score"] for h in served["n_best"]], scores, atol=1e-3)
