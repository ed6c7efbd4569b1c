"""The default run directory resumes (issue 17 item 5): the same command names the same
directory, a finished run is kept, Ctrl-C prints the command that resumes."""

from __future__ import annotations

import csv
import json
import shlex

from cli_helpers import run_cli
from resume_helpers import history_epochs, interrupt_after_backup

from apps import runner
from apps.sentiment.task import TASK, SentimentSettings


def settings(**changes):
    return SentimentSettings(data="data/reviews.tsv", **changes)


def fake_run(path, finished: bool) -> None:
    """What a finished (metrics.json) or interrupted (backup/state.json) run leaves."""
    (path / "backup").mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if finished:
        (path / "metrics.json").write_text("{}")
        (path / "backup").rmdir()
    else:
        (path / "backup" / "state.json").write_text(json.dumps({"epoch": 1}))


def test_the_same_settings_name_the_same_directory_and_others_another(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = runner.default_output(TASK, settings())
    assert first == runner.default_output(TASK, settings())
    assert first.parent.name == "runs" and first.name.startswith("sentiment-reviews-")
    # what may change on resuming (epochs, time budget) keeps the directory
    assert runner.default_output(TASK, settings(epochs=30, time_budget="1h")) == first
    assert runner.default_output(TASK, settings(units=64)) != first


def test_a_finished_run_is_kept_and_the_latest_interrupted_one_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = runner.default_output(TASK, settings())
    fake_run(first, finished=True)
    second = runner.default_output(TASK, settings())
    assert second.name == first.name + "-2"
    fake_run(second, finished=False)  # interrupted: the same command resumes it
    assert runner.default_output(TASK, settings()) == second
    assert runner.run_directory(TASK, settings(), tmp_path / "mine") == tmp_path / "mine"


def test_ctrl_c_says_the_command_that_resumes_and_it_does(tmp_path, monkeypatch,
                                                          sentiment_sample):
    monkeypatch.chdir(tmp_path)
    command = ["sentiment", "train", "--data", str(sentiment_sample / "train.tsv"),
               "--valid", str(sentiment_sample / "valid.tsv"), "--epochs", "3",
               "--units", "8", "--embedding-dim", "8", "--vocab-size", "200",
               "--no-bidirectional", "--quiet"]
    with monkeypatch.context() as patch:
        interrupt_after_backup(patch, 1)
        result = run_cli(*command)
    assert result.exit_code == 130, result.output
    run_dir = runner.default_output(TASK, SentimentSettings(
        data=str(sentiment_sample / "train.tsv"), valid=str(sentiment_sample / "valid.tsv"),
        epochs=3, units=8, embedding_dim=8, vocab_size=200, bidirectional=False))
    assert f"Run directory: {run_dir}" in result.output
    assert "the last backup holds 1 epoch(s)" in result.output
    resume = result.output.split("Resume with: ")[1].strip()
    words = shlex.split(resume)
    assert words[:3] == ["apps", "sentiment", "train"] and "--no-bidirectional" in words
    assert words[-2:] == ["--output", str(run_dir)]
    assert json.loads((run_dir / "backup" / "state.json").read_text())["epoch"] == 1
    result = run_cli(*words[1:])  # exactly as printed
    assert result.exit_code == 0, result.output
    assert history_epochs(run_dir / "history.csv") == [1, 2, 3]
    assert (run_dir / "metrics.json").is_file()
    chosen = result.output.split("Chosen by val_accuracy: ")[1]
    value, epoch = float(chosen.split()[0]), int(chosen.split("at epoch ")[1].split()[0])
    rows = {int(r["epoch"]): r for r in csv.DictReader((run_dir / "history.csv").open())}
    assert f"{float(rows[epoch]['val_accuracy']):.4f}" == f"{value:.4f}"
    assert max(float(r["val_accuracy"]) for r in rows.values()) == \
        float(rows[epoch]["val_accuracy"])
    assert "tokenizer" not in result.output  # --quiet hides the tokenizer's bar too
