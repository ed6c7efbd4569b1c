"""N-best lists, forced decoding (score) and alignments: a run and its export agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli

from apps import runner
from apps.translation import task, translate

TEXTS = ["1 2 3 4", "", "7 7 0 1 2"]


def ranked(hypothesis, alpha):
    """The beam's ranking: score / GNMT penalty of the pieces and the end id."""
    pieces = len(hypothesis["translation"].split()) + 1
    return hypothesis["score"] / ((5 + pieces) / 6) ** alpha


def test_n_best_scores_and_alignments_of_a_run_equal_its_export(tiny_run, tiny_export):
    run = runner.load(task.TASK, tiny_run[0])
    exported = runner.load(task.TASK, tiny_export[1])
    alpha = run.settings.length_penalty
    one_best = translate.translate(run, TEXTS, beam_size=3, alignments=True)
    lists = {}
    for name, trained in (("run", run), ("export", exported)):
        rows = translate.translate(trained, TEXTS, beam_size=3, n_best=3, alignments=True)
        lists[name] = rows
        for row, best in zip(rows, one_best):
            hypotheses = row["n_best"]
            assert len(hypotheses) == 3
            assert len({h["translation"] for h in hypotheses}) == 3
            order = [ranked(h, alpha) for h in hypotheses]
            assert order == sorted(order, reverse=True)
            assert hypotheses[0]["translation"] == best["translation"]
            assert hypotheses[0]["score"] == pytest.approx(best["score"], abs=1e-4)
            assert hypotheses[0]["alignment"] == best["alignment"]
    for a, b in zip(lists["run"], lists["export"]):
        assert [h["translation"] for h in a["n_best"]] == [h["translation"] for h in b["n_best"]]
        assert np.allclose([h["score"] for h in a["n_best"]], [h["score"] for h in b["n_best"]],
                           atol=1e-4)
        assert [h["alignment"] for h in a["n_best"]] == [h["alignment"] for h in b["n_best"]]
    # one source piece index per target piece, inside the source
    for text, row in zip(TEXTS, one_best):
        assert len(row["alignment"]) == len(row["translation"].split())
        assert all(0 <= i < max(len(text.split()), 1) for i in row["alignment"])
    # forced decoding of the greedy output gives the search's own score, on both kinds
    greedy = translate.translate(run, TEXTS, beam_size=1)
    outputs = [row["translation"] for row in greedy]
    scored = {name: translate.score_pairs(trained, TEXTS, outputs)
              for name, trained in (("run", run), ("export", exported))}
    for name, rows in scored.items():
        assert np.allclose([r["score"] for r in rows], [g["score"] for g in greedy],
                           atol=1e-4), name
        for row in rows:
            assert row["tokens"] == len(row["target"].split()) + 1 == len(row["pieces"])
            assert row["pieces"][-1] == "</s>"
            assert sum(row["token_scores"]) == pytest.approx(row["score"], abs=1e-4)
    assert [r["pieces"] for r in scored["run"]] == [r["pieces"] for r in scored["export"]]


def test_score_and_n_best_from_the_command_line(tiny_export, tmp_path):
    version = tiny_export[1]
    good = run_cli("translation", "score", version, "--source", "1 2 3", "--target", "3 2 1",
                   "--source", "1 2 3", "--target", "1 2 3", "--json")
    assert good.exit_code == 0, good.output
    right, wrong = (json.loads(line) for line in good.stdout.splitlines())
    assert right["score"] > wrong["score"] and len(right["token_scores"]) == 4
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("1 2 3\t3 2 1\nno tab here\n")
    plain = run_cli("translation", "score", version, "--input", pairs)
    lines = plain.stdout.splitlines()
    assert float(lines[0]) == pytest.approx(right["score"], abs=1e-4) and lines[1] == ""
    assert "not one source<TAB>target pair" in plain.output
    uneven = run_cli("translation", "score", version, "--source", "1", "--target", "1",
                     "--source", "2")
    assert uneven.exit_code == 2 and "one --target per --source" in uneven.output
    listed = run_cli("translation", "translate", version, "7 8 9", "--n-best", "2")
    assert listed.exit_code == 0 and listed.stdout.startswith("9 8 7 ||| ")
