"""`apps info`, the model summary at training start, and the resolved `auto` settings."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli

from apps import precision, runner
from apps.sentiment import task


def test_config_and_export_record_what_auto_became(tiny_run, tiny_export):
    run_dir, _ = tiny_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["precision"] == "auto" and config["implementation"] == "auto"
    expected = precision.resolve("auto", task.TASK.bfloat16_cpus)
    assert config["resolved"] == {"precision": expected, "implementation": "fused",
                                  "strategy": "one-device", "replicas": 1}  # CPU host
    metadata = json.loads((tiny_export / "assets" / "metadata.json").read_text())
    assert metadata["resolved"] == {"training": config["resolved"],
                                    "serving": {"precision": "float32",
                                                "recurrence": "fused"}}


def test_training_prints_the_model_summary(tiny_run_printed):
    (run_dir, _), out = tiny_run_printed  # the session's run, trained with verbose=1
    first = next(line for line in out.splitlines() if line.startswith("Model: "))
    model = runner.load(task.TASK, run_dir).model
    assert first == f"Model: {model.count_params():,} parameters ({model.count_params():,} " \
                    "trainable)"
    vocabulary = model.weights[0].shape[0]
    row = next(line for line in out.splitlines() if line.strip().startswith("member_0/embedding"))
    assert row.split()[1:] == [f"{vocabulary * 32:,}", f"{vocabulary}x32"]  # 32: --embedding-dim


def test_training_traces_each_step_once(tiny_run_logged):
    """400 training lines in batches of 32 (a last one of 16) padded to each batch's
    longest line, and 100 validation lines: many batch shapes, one graph per step (the
    loop once traced each step three times here, 2-3 s a tracing)."""
    *_, records = tiny_run_logged
    traced = [record.getMessage() for record in records
              if record.getMessage().startswith("Tracing the")]
    assert [message.split(" for ")[0] for message in traced] == \
        ["Tracing the train step", "Tracing the test step"], traced
    assert "shape=(None, None)" in traced[0]  # batch and time unknown: every batch fits


def test_info_on_a_run_and_its_export(tiny_run, tiny_export):
    run_dir, _ = tiny_run
    run = json.loads(run_cli("info", run_dir, "--json").stdout)
    export = json.loads(run_cli("info", tiny_export, "--json").stdout)
    model = runner.load(task.TASK, run_dir).model
    assert run["kind"] == "run" and export["kind"] == "saved_model"
    for found in (run, export):
        assert found["task"] == "sentiment" and found["settings"]["units"] == 32
        assert found["inputters"]["text"]["file"] == "tokenizer.model"
        assert found["inputters"]["label"]["labels"] == ["negative", "positive"]
        assert found["model"]["parameters"] == model.count_params()
        assert found["signatures"]["serving_default"]["inputs"] == {
            "text": {"dtype": "string", "shape": [-1]}}
        outputs = found["signatures"]["serving_default"]["outputs"]
        assert outputs["scores"] == {"dtype": "float32", "shape": [-1, 2]}
        assert outputs["label"]["dtype"] == "string"
    assert run["metrics"]["accuracy"] == pytest.approx(export["metrics"]["accuracy"])
    assert run["resolved"]["implementation"] == "fused"
    assert export["resolved"]["serving"]["recurrence"] == "fused"
    assert sum(layer["parameters"] for layer in run["model"]["layers"]) == \
        run["model"]["parameters"]
    text = run_cli("info", tiny_export).stdout
    assert "export (version 1) of task sentiment" in text
    assert "input  text: string [?]" in text and "Validation metrics" in text
    missing = run_cli("info", run_dir / "nowhere")
    assert missing.exit_code == 1 and "does not exist" in missing.output
