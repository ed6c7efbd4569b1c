"""`apps lm`: bad input gets one clear sentence; resume after kill -9; JSON outputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli
from resume_helpers import history_epochs, train_killed_after

ROOT = Path(__file__).resolve().parents[2]


def apps_command(*args):
    return [sys.executable, "-m", "apps", *map(str, args)]


TINY_FLAGS = ["--units", 16, "--embedding-dim", 8, "--batch-size", 8, "--sequence-length", 32,
              "--quiet"]


@pytest.mark.parametrize("content, args, message, code", [
    (b"", [], "is empty", 1),
    (b"   \n\n \t\n", [], "holds no text", 1),
    (os.urandom(2000) + b"\x00", [], "looks like a binary file", 1),
    (b"\xff\xfe" * 500, [], "does not look like UTF-8 text", 1),
    (b"short text\n" * 3, [], "too few for one batch", 1),
    (b"fine text\n" * 400, ["--tokenizer", "word"], "'word' is not one of 'char', 'bpe'", 2),
    (b"fine text\n" * 400, ["--config", "{tmp}/word.yaml"], "--tokenizer must be one of char",
     2),
    (b"fine text\n" * 400, ["--time-budget", "0"], "--time-budget must be longer than zero",
     2),
    (b"fine text\n" * 400, ["--sequence-length", "0"], "--sequence-length must be a positive",
     2),
])
def test_train_errors_are_one_sentence_and_leave_nothing(tmp_path, content, args, message,
                                                         code):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    (tmp_path / "word.yaml").write_text("tokenizer: word\n")
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_cli("lm", "train", "--data", corpus, "--output", tmp_path / "run",
                     *TINY_FLAGS, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 3  # the error (click adds usage lines, tqdm may add one)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--max-tokens", "0"], "--max-tokens must be a positive whole number, got 0"),
    (["--max-tokens", "-5"], "--max-tokens must be a positive whole number, got -5"),
    (["--temperature", "-1"], "--temperature must be zero (greedy) or more"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--num-samples", "0"], "--num-samples must be a positive"),
])
def test_generate_flag_errors(tiny_run, args, message):
    result = run_cli("lm", "generate", tiny_run[0], "--prompt", "To be", *args)
    assert result.exit_code == 2 and message in result.output


def test_model_path_errors(tmp_path):
    result = run_cli("lm", "generate", tmp_path, "--prompt", "x")
    assert result.exit_code == 1 and "neither a training run" in result.output
    result = run_cli("lm", "evaluate", tmp_path / "nothing", "--data", tmp_path)
    assert result.exit_code == 1 and "does not exist" in result.output


def test_generate_evaluate_and_export_from_the_command_line(tiny_run, tiny_export, corpus,
                                                            tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("lm", "generate", run_dir, "--prompt", "ROMEO:", "--max-tokens", 30,
                     "--temperature", 0, "--json")
    sample = json.loads(result.output)
    assert result.exit_code == 0 and sample["text"].startswith("ROMEO:")
    assert sample["tokens"] == 30 and sample["tokens_per_second"] > 0
    result = run_cli("lm", "generate", tiny_export, "--prompt", "ROMEO:", "--max-tokens", 30,
                     "--temperature", 0, "--num-samples", 2, "--json")
    served = [json.loads(line) for line in result.output.splitlines()]
    assert [s["text"] for s in served] == [sample["text"]] * 2
    result = run_cli("lm", "generate", run_dir, "--prompt", "To be", "--max-tokens", 20,
                     "--seed", 3, "--num-samples", 2, "--top-k", 5)
    assert result.exit_code == 0 and result.output.count("To be") == 2
    result = run_cli("lm", "evaluate", run_dir, "--data", corpus[1], "--json")
    report = json.loads(result.output)
    assert {"nats_per_char", "bits_per_char", "perplexity", "tokens", "chars"} <= set(report)
    result = run_cli("lm", "export", run_dir, "--model-base-path", tmp_path, "--name", "poet")
    assert result.exit_code == 0 and (tmp_path / "poet" / "1" / "saved_model.pb").is_file()
    assert "poet" in (tmp_path / "models.config").read_text()


def test_resume_after_kill_9(tmp_path, corpus):
    output = tmp_path / "run"
    command = apps_command("lm", "train", "--data", corpus[0], "--valid", corpus[1],
                           "--output", output, "--epochs", 4, *TINY_FLAGS)
    done = train_killed_after(command, output)
    assert 2 <= len(done) < 4 and (output / "backup" / "state.json").is_file()
    finished = run_cli(*command[3:])  # the same command resumes, in this process
    assert finished.exit_code == 0, finished.output[-2000:]
    assert history_epochs(output / "history.csv") == list(range(1, 5))
    assert not (output / "backup").exists()


def test_a_command_of_another_task_says_so_in_one_sentence(tiny_run, tiny_export):
    for model in (tiny_run[0], tiny_export):
        result = run_cli("sentiment", "predict", model, "some text")
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert "of task 'lm', not a sentiment classifier: use `apps lm ...`" in result.output
        result = run_cli("sentiment", "evaluate", model, "--data", "x.tsv")
        assert result.exit_code == 1 and "not a sentiment classifier" in result.output
    result = run_cli("sentiment", "export", tiny_run[0])
    assert result.exit_code == 1 and "not a sentiment classifier" in result.output
