"""The CLI: train, evaluate, translate, export, serve; resume after kill -9; bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli
from resume_helpers import history_epochs, train_killed_after

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_translate_and_plot_from_the_command_line(tiny_run, digits, tmp_path):
    run_dir, _ = tiny_run
    output = tmp_path / "hypotheses.txt"
    result = run_cli("translation", "evaluate", run_dir, "--data", digits["test"], "--json",
                     "--output", output)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"bleu", "chrf", "signature", "sentences"} <= set(report)
    assert report["sentences"] == 60 and report["bleu"] > 70
    assert len(output.read_text().splitlines()) == 60
    plain = run_cli("translation", "evaluate", run_dir, "--data", digits["test"],
                    "--beam-size", "2")
    assert "BLEU" in plain.output and "tok:13a" in plain.output
    result = run_cli("translation", "translate", run_dir, "--input", "-", "--json",
                     "--plot-attention", tmp_path / "attention.png", input="1 2 3\n\n4 5\n")
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [row["source"] for row in rows] == ["1 2 3", "", "4 5"]
    assert rows[0]["translation"] == "3 2 1" and rows[1]["translation"] == ""
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    result = run_cli("translation", "translate", run_dir, "7 8 9", "--beam-size", "3")
    assert result.output.strip() == "9 8 7"


def test_export_command_and_serving_over_loopback(tiny_run, tiny_export, tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("translation", "export", run_dir, "--model-base-path", tmp_path,
                     "--beam-size", "2")
    assert result.exit_code == 0 and "translation/1" in result.output
    assert json.loads((tmp_path / "translation" / "1" / "assets" / "metadata.json")
                      .read_text())["beam_size"] == 2
    sys.path.insert(0, str(ROOT / "tests" / "serve"))
    from serve_helpers import ServerThread, http, options

    base, version = tiny_export
    cli_rows = run_cli("translation", "translate", version, "1 2 3", "", "--json").output
    expected = [json.loads(line) for line in cli_rows.splitlines()]
    with ServerThread(options(base)) as server:
        status, body = http(f"{server.url}/v1/models/translation:predict",
                            {"instances": [{"text": "1 2 3"}, {"text": ""}]})
    assert status == 200, body
    assert [p["translation"] for p in body["predictions"]] == \
        [row["translation"] for row in expected]
    assert body["predictions"][0]["score"] == pytest.approx(expected[0]["score"], abs=1e-4)


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path, digits):
    """The killed run is a process of its own (kill -9 is the point); the same command
    resumes it in this process (no second TensorFlow import)."""
    output = tmp_path / "run"
    flags = ["translation", "train", "--data", digits["valid"], "--source-lang", "src",
             "--target-lang", "tgt", "--valid-fraction", "0.2", "--tokenizer", "word",
             "--units", 8, "--embedding-dim", 8, "--batch-size", 8, "--epochs", 4,
             "--output", output, "--quiet"]
    done = train_killed_after([sys.executable, "-m", "apps", *flags], output, wait=120)
    assert 2 <= len(done) < 4 and (output / "backup" / "state.json").is_file()
    finished = run_cli(*flags)
    assert finished.exit_code == 0, finished.output[-2000:]
    assert history_epochs(output / "history.csv") == [1, 2, 3, 4]
    assert "validation BLEU" in finished.output


@pytest.mark.parametrize("args, message, code", [
    (["--data", "{tmp}/bad", "--source-lang", "de", "--target-lang", "en"],
     "bad.de' has 2 lines but", 1),
    (["--data", "{tmp}/bad", "--source-lang", "de", "--target-lang", "fr"],
     "Missing language file(s)", 1),
    (["--data", "{tmp}/bad"], "pass --source-lang and --target-lang", 1),
    (["--data", "{tmp}/junk.tsv"], "looks like a binary file", 1),
    (["--data", "{tmp}/empty.tsv"], "is empty", 1),
    (["--data", "{tmp}/ok.tsv", "--attention", "dot"], "--attention", 2),
    (["--data", "{tmp}/ok.tsv", "--label-smoothing", "1.5"], "--label-smoothing", 2),
])
def test_train_errors_are_one_sentence_and_leave_nothing(tmp_path, args, message, code):
    (tmp_path / "bad.de").write_text("a\nb\n")
    (tmp_path / "bad.en").write_text("x\n")
    (tmp_path / "junk.tsv").write_bytes(os.urandom(256) + b"\x00")
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "ok.tsv").write_text("a b\tb a\n" * 20)
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_cli("translation", "train", *args, "--output", tmp_path / "run")
    assert result.exit_code == code, result.output
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert sum(line.startswith("Error") for line in lines) == 1
    assert len(lines) <= (2 if code == 1 else 4)  # click's usage lines on bad flags
    assert not (tmp_path / "run").exists()


def test_model_path_and_input_errors(tmp_path, tiny_export):
    result = run_cli("translation", "translate", tmp_path, "ein Satz")
    assert result.exit_code == 1 and "neither a training run" in result.output
    _, version = tiny_export
    result = run_cli("translation", "translate", version)
    assert result.exit_code == 2 and "Give sentences to translate" in result.output
    result = run_cli("translation", "translate", version, "1 2", "--plot-attention",
                     tmp_path / "a.png")
    assert result.exit_code == 1 and "needs the run directory" in result.output
    help_text = run_cli("translation", "train", "--help").output
    for flag in ("--source-lang", "--attention", "--beam-size", "--label-smoothing",
                 "--separate-vocab", "--max-length", "--length-penalty"):
        assert flag in help_text


@pytest.mark.parametrize("from_stdin", [False, True])
def test_translate_keeps_lines_aligned_past_undecodable_input(tiny_export, tmp_path,
                                                              from_stdin):
    _, version = tiny_export
    data = b"1 2 3\n" + "\xe9 \xe8\n".encode("latin-1") + b"4 5\n"
    path = tmp_path / "sentences.txt"
    path.write_bytes(data)
    source = ["--input", "-" if from_stdin else path]
    stdin = data if from_stdin else None
    plain = run_cli("translation", "translate", version, *source, input=stdin)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines() == ["3 2 1", "", "5 4"]
    assert "1 input line(s) have no answer (line 2" in plain.stderr
    rows = [json.loads(line) for line in
            run_cli("translation", "translate", version, *source, "--json",
                    input=stdin).stdout.splitlines()]
    assert [row.get("source") for row in rows] == ["1 2 3", None, "4 5"]
    assert rows[1]["line"] == 2 and "not valid UTF-8" in rows[1]["error"]


def test_evaluate_a_saved_model_as_its_run(tiny_run, tiny_export, digits):
    """`translation evaluate` on a SavedModel: its languages and beam from the export, the
    same report as the run decoded with the export's beam size (3): one path."""
    run_dir, _ = tiny_run
    _, version = tiny_export
    exported = run_cli("translation", "evaluate", version, "--data", digits["test"], "--json")
    assert exported.exit_code == 0, exported.output
    from_run = run_cli("translation", "evaluate", run_dir, "--data", digits["test"],
                       "--beam-size", "3", "--json")
    exported, from_run = json.loads(exported.stdout), json.loads(from_run.stdout)
    assert exported["sentences"] == from_run["sentences"] == 60
    assert exported["beam_size"] == from_run["beam_size"] == 3
    assert exported == from_run
    assert exported["bleu"] > 70


def test_info_lists_both_signatures_of_a_run_and_its_export(tiny_run, tiny_export):
    run_dir, _ = tiny_run
    _, version = tiny_export
    for path in (run_dir, version):
        info = json.loads(run_cli("info", path, "--json").stdout)
        assert info["task"] == "translation" and info["settings"]["source_lang"] == "src"
        assert set(info["signatures"]) >= {"serving_default", "translate"}
        translate_inputs = info["signatures"]["translate"]["inputs"]
        assert set(translate_inputs) == {"text", "beam_size", "max_length"}
        assert info["signatures"]["serving_default"]["outputs"]["translation"]["dtype"] == \
            "string"
        assert info["model"]["parameters"] > 0
    assert info["export"]["beam_size"] == 3 and info["resolved"]["serving"]["recurrence"] == \
        "fused"
