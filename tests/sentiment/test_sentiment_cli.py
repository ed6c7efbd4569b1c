"""The CLI: resume after kill -9, and one clear sentence for every kind of bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli
from resume_helpers import assert_same_run, history_epochs, train_killed_after

ROOT = Path(__file__).resolve().parents[2]


def apps_command(*args):
    return [sys.executable, "-m", "apps", *map(str, args)]


@pytest.mark.long
def test_resume_after_kill_9_equals_the_uninterrupted_run(tmp_path, sentiment_sample):
    """kill -9 (within an epoch, after backups every 3 steps), rerun: the same history
    and weights, bit for bit, as a run never killed (issue 17 item 6). The killed run
    is a process of its own (kill -9 is the point); its resumption, the run never
    killed and the rerun of a finished run are the same command in this process."""
    def flags(output):
        return ["sentiment", "train", "--data", sentiment_sample / "train.tsv", "--valid",
                sentiment_sample / "valid.tsv", "--output", output, "--epochs", 4, "--units",
                8, "--embedding-dim", 8, "--vocab-size", 200, "--patience", 0,
                "--checkpoint-every", "3steps", "--quiet"]

    output = tmp_path / "run"
    done = train_killed_after(apps_command(*flags(output)), output, wait=120)
    assert 2 <= len(done) < 4 and (output / "backup" / "state.json").is_file()
    finished = run_cli(*flags(output))
    assert finished.exit_code == 0, finished.output[-2000:]
    assert history_epochs(output / "history.csv") == list(range(1, 5))
    assert not (output / "backup").exists()
    whole = run_cli(*flags(tmp_path / "whole"))
    assert whole.exit_code == 0, whole.output
    assert_same_run(tmp_path / "whole", output)
    again = run_cli(*flags(output))
    assert again.exit_code == 1 and "already holds a finished run" in again.output


def test_predict_evaluate_json_and_stdin(tiny_run, sentiment_sample):
    run_dir, _ = tiny_run
    result = run_cli("sentiment", "predict", run_dir, "--input", "-", "--json",
                     input="loved it, superb\n\nboring and awful\n")
    rows = [json.loads(line) for line in result.output.splitlines()]
    # One answer per input line, the blank one included, so line N answers line N.
    assert result.exit_code == 0 and [r["text"] for r in rows] == ["loved it, superb", "",
                                                                    "boring and awful"]
    assert set(rows[0]["scores"]) == {"negative", "positive"}
    labels = json.loads((run_dir / "labels.json").read_text())
    priors = {name: count / sum(labels["counts"])
              for name, count in zip(labels["labels"], labels["counts"])}
    assert rows[1]["scores"] == pytest.approx(priors)  # no evidence: the training frequencies
    texts_file = run_dir.parent / "texts.txt"
    texts_file.write_text("first\n\n\nlast\n")
    result = run_cli("sentiment", "predict", run_dir, "--input", texts_file)
    assert len(result.output.splitlines()) == 4
    result = run_cli("sentiment", "evaluate", run_dir, "--data", sentiment_sample / "valid.tsv",
                     "--json")
    report = json.loads(result.output)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(report)
    result = run_cli("sentiment", "evaluate", run_dir, "--data", sentiment_sample / "valid.tsv")
    assert "accuracy" in result.output and "confusion matrix" in result.output


@pytest.mark.parametrize("args, message, code", [
    (["--data", "missing.tsv"], "Data file 'missing.tsv' does not exist", 1),
    (["--data", "{sample}/train.tsv", "--units", "-3"], "--units must be a positive", 2),
    (["--data", "{sample}/train.tsv", "--config", "{tmp}/broken.yaml"], "is not valid YAML", 2),
    (["--data", "{tmp}/junk.tsv"], "looks like a binary file", 1),
    (["--data", "{tmp}/empty.tsv"], "is empty", 1),
    (["--data", "{tmp}/columns.tsv"], "pass --text-column", 1),
    (["--data", "{sample}/train.tsv", "--text-column", "body"], "has no column 'body'", 1),
])
def test_train_errors_are_one_sentence_and_leave_nothing(tmp_path, sentiment_sample, args,
                                                         message, code):
    (tmp_path / "broken.yaml").write_text("units: [1,\n")
    (tmp_path / "junk.tsv").write_bytes(os.urandom(512) + b"\x00")
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "columns.tsv").write_text("a\tb\nx\ty\n")
    args = [a.format(sample=sentiment_sample, tmp=tmp_path) for a in args]
    result = run_cli("sentiment", "train", *args, "--output", tmp_path / "run")
    assert result.exit_code == code
    assert message in result.output
    assert len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "run").exists()


def test_model_path_errors(tmp_path):
    result = run_cli("sentiment", "predict", tmp_path, "some text")
    assert result.exit_code == 1 and "neither a training run" in result.output
    result = run_cli("sentiment", "export", tmp_path / "nothing")
    assert result.exit_code == 1 and "does not exist" in result.output
    result = run_cli("sentiment", "predict", tmp_path)
    assert result.exit_code == 2 and "Give texts to classify" in result.output


def test_version_and_help():
    assert run_cli("--version").output.startswith("apps, version")
    help_text = run_cli("sentiment", "train", "--help").output
    for flag in ("--cell", "--units", "--layers", "--bidirectional", "--embedding-dim",
                 "--dropout", "--pooling", "--tokenizer", "--vocab-size", "--config",
                 "--epochs", "--batch-size", "--learning-rate", "--seed", "--output"):
        assert flag in help_text


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("from_stdin", [False, True])
def test_predict_keeps_lines_aligned_past_undecodable_input(tiny_run, tmp_path, from_stdin,
                                                            as_json):
    run_dir, _ = tiny_run
    data = b"loved it, superb\n" + "caf\xe9 cr\xe8me\n".encode("latin-1") + b"boring\n\nend\n"
    path = tmp_path / "texts.txt"
    path.write_bytes(data)
    args = ["sentiment", "predict", run_dir, "--input", "-" if from_stdin else path]
    result = run_cli(*args, *(["--json"] if as_json else []),
                     input=data if from_stdin else None)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5  # line N answers line N, the bad one included
    if as_json:
        rows = [json.loads(line) for line in lines]
        assert rows[1] == {"line": 2, "error": rows[1]["error"]}
        assert "not valid UTF-8" in rows[1]["error"]
        assert [row.get("text") for row in rows] == ["loved it, superb", None, "boring", "",
                                                     "end"]
    else:
        assert lines[1] == ""
        assert [line.split("\t")[-1] for line in lines[2:]] == ["boring", "", "end"]
    assert "1 input line(s) have no answer (line 2" in result.stderr
