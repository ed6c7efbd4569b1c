"""A run directory and its SavedModel answer through the same serving function, so the
CLI gives the same output for both; metadata.json has one schema; options are named."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import run_cli

from apps import metadata, runner
from apps.errors import DataError
from apps.sentiment import task

TEXTS = ["a wonderful, moving film", "", "dull and far too long", "not bad at all"]


def test_predict_and_evaluate_give_the_same_output_for_a_run_and_its_export(
        tiny_run, tiny_export, sentiment_sample):
    answers = {}
    for model in (tiny_run[0], tiny_export):
        predicted = run_cli("sentiment", "predict", model, *TEXTS, "--json")
        evaluated = run_cli("sentiment", "evaluate", model, "--data",
                            sentiment_sample / "valid.tsv", "--json", "--batch-size", "7")
        assert predicted.exit_code == evaluated.exit_code == 0, predicted.output
        answers[model] = (predicted.stdout, evaluated.stdout)
    assert answers[tiny_run[0]] == answers[tiny_export]  # the same bytes: scores included
    rows = [json.loads(line) for line in answers[tiny_export][0].splitlines()]
    assert [row["text"] for row in rows] == TEXTS


def test_a_run_describes_itself_as_its_export_does(tiny_run, tiny_export):
    in_memory = runner.load(task.TASK, tiny_run[0]).metadata.to_json()
    written = json.loads((tiny_export / metadata.FILE).read_text())
    assert written["schema"] == metadata.SCHEMA and written["labels"] == ["negative", "positive"]
    stamped = ("signatures", "exported_at", "environment")
    assert {k: v for k, v in written.items() if k not in stamped} == \
        {k: v for k, v in in_memory.items() if k not in stamped}
    assert written["signatures"] == ["serving_default"] and written["exported_at"]


def test_an_export_from_a_newer_version_is_refused_in_one_sentence(tiny_export, tmp_path):
    newer = tmp_path / "newer" / "1"
    shutil.copytree(tiny_export, newer)
    content = json.loads((newer / metadata.FILE).read_text())
    (newer / metadata.FILE).write_text(json.dumps({**content, "schema": metadata.SCHEMA + 1}))
    result = run_cli("sentiment", "predict", newer, "fine")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: '{newer}' was exported by a newer apps (metadata schema {metadata.SCHEMA + 1}; "
        f"this apps reads schema {metadata.SCHEMA} and older): upgrade apps to use it.")
    with pytest.raises(DataError, match="newer apps"):
        runner.load(task.TASK, newer)


def test_an_export_from_before_the_schema_still_loads(tiny_export, tmp_path):
    older = tmp_path / "older" / "1"
    shutil.copytree(tiny_export, older)
    content = json.loads((older / metadata.FILE).read_text())
    del content["schema"]
    (older / metadata.FILE).write_text(json.dumps(content))
    loaded = runner.load(task.TASK, older)
    assert loaded.metadata.schema == 0 and loaded.metadata["labels"] == ["negative", "positive"]
    assert task.predict(loaded, ["fine"]) == task.predict(tiny_export, ["fine"])


def test_a_misspelt_option_is_an_error_not_ignored(tiny_run, sentiment_sample, tmp_path):
    data = str(sentiment_sample / "valid.tsv")
    with pytest.raises(TypeError, match="batch_sise"):
        runner.evaluate(task.TASK, tiny_run[0], data, batch_sise=8)
    with pytest.raises(TypeError, match="beam_size"):  # a translator's option, not a classifier's
        runner.export(task.TASK, tiny_run[0], tmp_path, beam_size=3)
    assert not (tmp_path / "sentiment").exists()
    result = run_cli("sentiment", "evaluate", tiny_run[0], "--data", data, "--beam-size", "3")
    assert result.exit_code == 2 and "No such option '--beam-size'" in result.output


def test_a_misspelt_export_option_is_an_error_for_an_export_too(tiny_export):
    with pytest.raises(TypeError, match="beam_size"):
        runner.load(task.TASK, tiny_export, beam_size=3)
