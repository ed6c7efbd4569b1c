"""The worked example of docs/architecture.md runs as written: a new task, no glue."""

from __future__ import annotations

import json
import random
import re
import sys
import types
from pathlib import Path

import tensorflow as tf

from apps import runner

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def example_module() -> types.ModuleType:
    """The example's code block, run as a module of its own."""
    section = DOC.read_text(encoding="utf-8").split("## Adding a task: a worked example")[1]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    module = types.ModuleType("worked_example")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


def pairs_file(path: Path, count: int, seed: int) -> Path:
    """Same: the second text is the first with its words shuffled; different: another text."""
    rng = random.Random(seed)
    words = "red blue green cat dog bird runs sleeps jumps big small old".split()
    rows = ["first\tsecond\tlabel"]
    for _ in range(count):
        first = rng.sample(words, 4)
        if rng.random() < 0.5:
            rows.append(f"{' '.join(first)}\t{' '.join(rng.sample(first, 4))}\tsame")
        else:
            rows.append(f"{' '.join(first)}\t{' '.join(rng.sample(words, 4))}\tdifferent")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_documented_task_trains_exports_and_answers_from_both(tmp_path):
    example = example_module()
    task = example.ParaphraseTask()
    settings = example.ParaphraseSettings(
        data=str(pairs_file(tmp_path / "train.tsv", 600, 1)),
        valid=str(pairs_file(tmp_path / "valid.tsv", 100, 2)), tokenizer="word",
        vocab_size=40, units=16, epochs=6, learning_rate=0.01)
    run_dir, report = runner.train(task, settings, tmp_path / "run", verbose=0)
    assert report["accuracy"] > 0.7  # chance is 0.5
    assert (run_dir / "tokenizer.model").is_file() and (run_dir / "labels.json").is_file()

    version = runner.export(task, run_dir, tmp_path / "saved_models")
    metadata = json.loads((version / "assets" / "metadata.json").read_text())
    assert metadata["inputters"]["first"] == metadata["inputters"]["second"]
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    labels = serve(first=tf.constant(["red cat runs big", ""]),
                   second=tf.constant(["big runs cat red", "old dog"]))["label"]
    assert labels.shape == (2,)
    again = runner.evaluate(task, run_dir, str(tmp_path / "valid.tsv"))
    assert again["accuracy"] == report["accuracy"]
    exported = runner.evaluate(task, version, str(tmp_path / "valid.tsv"))
    assert exported == again  # the SavedModel scores as its run: the same serving function
    pairs = [("red cat runs big", "big runs cat red"), ("", "old dog"),
             ("old bird sleeps", "green dog jumps small")]
    from_export = example.predict(runner.load(task, version), pairs)
    assert from_export == example.predict(runner.load(task, run_dir), pairs)
    assert set(from_export) <= {"same", "different"} and len(from_export) == 3
