"""`apps lm score` and `generate --n-best`: a run and its export answer alike."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli


def json_lines(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_score_and_n_best_of_a_run_equal_its_export(tiny_run, tiny_export):
    texts = ["ROMEO:\nWhat say you?\n", "xq zz", "a"]
    scored = {path: json_lines(run_cli("lm", "score", path, *texts, "--json"))
              for path in (tiny_run[0], tiny_export)}
    run, export = scored.values()
    assert [r["tokens"] for r in run] == [r["tokens"] for r in export] == [len(t) for t in texts]
    for a, b in zip(run, export):
        assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], abs=1e-3)
        assert a["nats_per_char"] == pytest.approx(-a["log_likelihood"] / a["chars"])
    assert run[0]["nats_per_char"] < run[1]["nats_per_char"]  # real text is likelier
    lists = {path: json_lines(run_cli("lm", "generate", path, "--prompt", "ROMEO:",
                                      "--max-tokens", "6", "--n-best", "3", "--json"))
             for path in (tiny_run[0], tiny_export)}
    run, export = lists.values()
    assert [r["text"] for r in run] == [r["text"] for r in export]
    assert len({r["text"] for r in run}) == 3 and all(r["tokens"] == 6 for r in run)
    assert [r["score"] for r in run] == sorted((r["score"] for r in run), reverse=True)
    assert [r["score"] for r in run] == pytest.approx([r["score"] for r in export], abs=1e-3)
    # a continuation's score is what the scorer adds to the prompt's
    whole, prompt = json_lines(run_cli("lm", "score", tiny_run[0], run[0]["text"], "ROMEO:",
                                       "--json"))
    assert whole["log_likelihood"] - prompt["log_likelihood"] == pytest.approx(
        run[0]["score"], abs=1e-3)
