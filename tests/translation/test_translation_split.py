"""The validation pairs a translation run holds out of --data, named in the run directory.

`RUN/heldout.tsv` and `RUN/kept.tsv` are what the Tatoeba benchmark trains its peer on
and validates it with (bench/translate_tatoeba.py), so they must be exactly the run's
split: seeded, the whole of --data between them, and readable by `evaluate`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cli_helpers import run_cli

from apps import runner
from apps.translation import task


def tsv_pairs(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "source\ttarget"
    return [tuple(line.split("\t")) for line in lines[1:]]


def test_the_split_is_written_whole_seeded_and_evaluable(translation_settings, digits,
                                                         tmp_path):
    settings = translation_settings(valid=None, epochs=1, valid_fraction=0.1)
    run_dir, report = runner.train(task.TASK, settings, tmp_path / "run", verbose=0)
    held, kept = tsv_pairs(run_dir / "heldout.tsv"), tsv_pairs(run_dir / "kept.tsv")
    source = list(zip(*(Path(f"{digits['train']}.{lang}").read_text().splitlines()
                        for lang in ("src", "tgt"))))
    assert len(held) == 80 and len(kept) == 720
    assert Counter(held) + Counter(kept) == Counter(source)
    _, valid = task.TASK.read_training_data(settings)  # the split the run validated on
    assert held == list(zip(valid["source"], valid["target"]))
    _, other_seed = task.TASK.read_training_data(translation_settings(valid=None, seed=2))
    assert held != list(zip(other_seed["source"], other_seed["target"]))
    result = run_cli("translation", "evaluate", run_dir, "--data", run_dir / "heldout.tsv",
                     "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert scored["sentences"] == report["sentences"] == 80
    assert scored["bleu"] == report["bleu"]


def test_pairs_a_tsv_cannot_hold_are_not_written(tmp_path):
    assert task.TASK.write_examples({"source": ["a b"], "target": ["b a"]}, tmp_path / "ok.tsv")
    assert (tmp_path / "ok.tsv").read_text() == "source\ttarget\na b\tb a\n"
    for source in ("a\tb", "a\u2028b"):
        assert not task.TASK.write_examples({"source": [source], "target": ["x"]},
                                            tmp_path / "no.tsv")
    from pipelines.records import Streamed  # a streamed corpus stays in its files

    assert not task.TASK.write_examples(Streamed.__new__(Streamed), tmp_path / "no.tsv")
    assert not (tmp_path / "no.tsv").exists()


def test_the_tatoeba_bench_config_validates_on_train_within_its_budget():
    """bench/configs/translate_tatoeba.yaml alone: validation held out of --data (issue
    20: settings chosen on data carved from train) and training within 30 minutes."""
    from apps.config import resolve

    config = Path(__file__).resolve().parents[2] / "bench" / "configs" / "translate_tatoeba.yaml"
    settings = resolve(task.TranslationSettings, config, {"data": "tatoeba/train"})
    assert settings.valid is None and 0 < settings.valid_fraction <= 0.05
    assert settings.time_budget_seconds <= 30 * 60
    assert (settings.source_lang, settings.target_lang) == ("de", "en")
