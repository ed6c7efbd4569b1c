"""`apps speech`: transcribe and evaluate from the terminal; bad input gets one sentence."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli
from speech_helpers import sound, write_wav


@pytest.fixture(scope="module")
def wavs(tmp_path_factory, corpus):
    folder = tmp_path_factory.mktemp("cli")
    good = sorted((corpus["test"].parent / "wavs").glob("2_*.wav"))[:3]
    import numpy as np

    clip = sound(["low"], np.random.default_rng(3))
    (folder / "random.wav").write_bytes(np.random.default_rng(4).bytes(3000))
    (folder / "zero.wav").write_bytes(b"")
    return {"good": [str(p) for p in good],
            "random": folder / "random.wav", "zero": folder / "zero.wav",
            "header": write_wav(folder / "header.wav", clip[:0]),
            "junk": (folder / "junk.wav"), "folder": folder}


def test_transcribe_arguments_input_file_and_stdin_agree(tiny_run, wavs, tmp_path):
    run_dir = tiny_run[0]
    by_args = run_cli("speech", "transcribe", run_dir, *wavs["good"], "--json")
    assert by_args.exit_code == 0, by_args.output
    rows = [json.loads(line) for line in by_args.output.splitlines()]
    assert [r["path"] for r in rows] == wavs["good"]
    assert all(set(r) == {"path", "transcript", "score"} for r in rows)
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(wavs["good"]) + "\n")
    by_file = run_cli("speech", "transcribe", run_dir, "--input", listing, "--json")
    by_stdin = run_cli("speech", "transcribe", run_dir, "--input", "-", "--json",
                       input=listing.read_text())
    assert by_file.output == by_args.output == by_stdin.output
    plain = run_cli("speech", "transcribe", run_dir, wavs["good"][0])
    assert plain.output == f"{rows[0]['path']}\t{rows[0]['transcript']}\n"


@pytest.mark.parametrize("which, message", [
    ("random", "cannot be transcribed: it is not a WAV, FLAC, OGG/Vorbis or NIST SPHERE file."),
    ("zero", "cannot be transcribed: the file is empty (0 bytes)."),
    ("header", "cannot be transcribed: it holds no samples."),
    ("junk", "Cannot read"),
])
def test_transcribe_refuses_a_bad_file_by_name(tiny_run, wavs, which, message):
    result = run_cli("speech", "transcribe", tiny_run[0], wavs["good"][0], wavs[which])
    assert result.exit_code == 1
    assert message in result.output and str(wavs[which]) in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_transcribe_usage_errors(tiny_run, tmp_path):
    assert run_cli("speech", "transcribe", tiny_run[0]).exit_code == 2
    result = run_cli("speech", "transcribe", tmp_path, "x.wav")
    assert result.exit_code == 1 and str(tmp_path) in result.output


def test_evaluate_json_has_the_report(tiny_run, corpus):
    result = run_cli("speech", "evaluate", tiny_run[0], "--data", corpus["test"], "--json",
                     "--beam-size", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"wer", "cer", "utterances", "best", "median", "worst"} <= set(report)
    assert set(report["worst"][0]) == {"path", "reference", "transcript", "wer"}


def test_train_refuses_bad_settings_and_data_without_a_run_directory(tmp_path, corpus):
    output = tmp_path / "run"
    result = run_cli("speech", "train", "--data", corpus["train"], "--output", output,
                     "--tokenizer", "bpe")
    assert result.exit_code == 2 and "--tokenizer" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("wav_filename,wav_filesize,transcript\nmissing.wav,0,hello\n")
    result = run_cli("speech", "train", "--data", empty, "--output", output)
    assert result.exit_code == 1 and "holds no usable recording" in result.output
    assert not output.exists()


def test_help_teaches_with_examples():
    result = run_cli("speech", "--help")
    assert "apps speech transcribe" in result.output
    assert "--beam-size" in run_cli("speech", "transcribe", "--help").output
