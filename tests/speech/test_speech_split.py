"""The validation split a speech run holds out of --data, named in the run directory.

`RUN/heldout.csv` and `RUN/kept.csv` are what the AN4 benchmark evaluates on and trains
its fusion LM on (bench/speech_an4.py), so they must be exactly the run's split: seeded,
disjoint, the whole of --data between them, and readable by `evaluate` and `apps lm`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from speech_helpers import TINY


def manifest_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def tiny_flags(**changes) -> list[str]:
    settings = {**TINY, **changes}
    return [part for key, value in settings.items()
            for part in (f"--{key.replace('_', '-')}", str(value))]


def test_the_split_is_written_disjoint_whole_and_evaluable(tiny_run, corpus):
    run_dir, report = tiny_run
    held, kept = manifest_rows(run_dir / "heldout.csv"), manifest_rows(run_dir / "kept.csv")
    source = manifest_rows(corpus["train"])
    assert len(held) == round(0.1 * len(source)) and len(kept) == len(source) - len(held)
    held_files = {row["wav_filename"] for row in held}
    kept_files = {row["wav_filename"] for row in kept}
    assert not held_files & kept_files
    by_file = {str((corpus["train"].parent / row["wav_filename"]).resolve()): row
               for row in source}
    assert held_files | kept_files == set(by_file)
    for row in held + kept:  # absolute paths, the sizes and transcripts of the source
        original = by_file[row["wav_filename"]]
        assert row["transcript"] == original["transcript"]
        assert int(row["wav_filesize"]) == Path(row["wav_filename"]).stat().st_size
    # the held-out manifest is the validation data the best epoch was scored on
    result = run_cli("speech", "evaluate", run_dir, "--data", run_dir / "heldout.csv",
                     "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert scored["utterances"] == report["utterances"] == len(held)
    assert scored["wer"] == pytest.approx(report["wer"])
    assert scored["cer"] == pytest.approx(report["cer"])


def test_the_split_follows_the_seed(tiny_run, corpus, tmp_path, speech_settings):
    again = tmp_path / "again"
    result = run_cli("speech", "train", "--data", corpus["train"], "--output", again,
                     "--quiet", *tiny_flags(epochs=1, steps_per_epoch=1))
    assert result.exit_code == 0, result.output
    for part in ("heldout.csv", "kept.csv"):
        assert (again / part).read_bytes() == (tiny_run[0] / part).read_bytes()
    from apps.speech.task import TASK

    _, other_seed = TASK.read_training_data(speech_settings(seed=2))
    held = [row["wav_filename"] for row in manifest_rows(again / "heldout.csv")]
    assert len(other_seed["audio"]) == len(held)
    assert [str(Path(a).resolve()) for a in other_seed["audio"]] != held


def test_a_language_model_trains_on_the_kept_transcripts(tiny_run, tmp_path):
    from pipelines.sources import read_corpus

    kept = tiny_run[0] / "kept.csv"
    text = read_corpus(str(kept), "transcript")
    assert text == "".join(row["transcript"] + "\n" for row in manifest_rows(kept))
    lm = tmp_path / "lm"
    result = run_cli("lm", "train", "--data", kept, "--text-column", "transcript",
                     "--tokenizer", "char", "--units", "16", "--embedding-dim", "8",
                     "--batch-size", "4", "--sequence-length", "16", "--epochs", "1",
                     "--output", lm, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((lm / "config.json").read_text())["text_column"] == "transcript"
    fused = run_cli("speech", "evaluate", tiny_run[0], "--data", tiny_run[0] / "heldout.csv",
                    "--beam-size", "4", "--lm", lm, "--json")
    assert fused.exit_code == 0, fused.output
    assert json.loads(fused.output)["utterances"] == tiny_run[1]["utterances"]


def test_joined_and_in_memory_recordings_are_not_written(tmp_path, corpus):
    from apps.speech import joining
    from apps.speech.task import TASK

    examples = TASK.read(str(corpus["test"]), "test")
    with_joined = joining.concat(examples, joining.joined(examples, 3, 2, 3, 0))
    assert TASK.write_examples(with_joined, tmp_path / "m.csv")
    assert len(manifest_rows(tmp_path / "m.csv")) == len(examples["audio"])
    in_memory = {**examples, "audio": [b"RIFF"] * len(examples["audio"])}
    assert not TASK.write_examples(in_memory, tmp_path / "none.csv")
    assert not (tmp_path / "none.csv").exists()


@pytest.mark.parametrize("flags, message", [
    (["--valid-fraction", "1.5"], "--valid-fraction must be in (0, 1), got 1.5."),
    (["--valid-fraction", "0"], "--valid-fraction must be in (0, 1), got 0.0."),
    (["--valid", "VALID", "--valid-fraction", "0.2"],
     "--valid-fraction holds validation data out of --data, and --valid gives it: pass one "
     "of them."),
])
def test_a_bad_fraction_is_one_sentence_and_no_run(tmp_path, corpus, flags, message):
    output = tmp_path / "run"
    flags = [str(corpus["test"]) if flag == "VALID" else flag for flag in flags]
    result = run_cli("speech", "train", "--data", corpus["train"], "--output", output, *flags)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: {message}"], result.output
    assert not output.exists()


def test_valid_with_a_fraction_from_a_config_file_is_refused(tmp_path, corpus):
    config = tmp_path / "speech.yaml"
    config.write_text("valid_fraction: 0.2\n")
    result = run_cli("speech", "train", "--config", config, "--data", corpus["train"],
                     "--valid", corpus["test"], "--output", tmp_path / "run")
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: --valid-fraction holds validation data out of --data, and --valid gives it: "
        "pass one of them."], result.output
    assert not (tmp_path / "run").exists()
