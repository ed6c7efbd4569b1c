"""Tatoeba German->English (issue 20): the project against the plain Keras recipe.

Trains `apps translation train --config bench/configs/translate_tatoeba.yaml` on
Tatoeba's `train` alone: the config holds 2 % of it out for validation (drawn by
`--seed`, written to RUN/heldout.tsv, the rest to RUN/kept.tsv), which picks the best
epoch; `dev` is not read. Then trains the peer (bench/peers/keras_translation_recipe.py)
for the same wall time on exactly the same split (kept.tsv to train, heldout.tsv to
keep its best epoch), with the project's joint SentencePiece model and the config's
--max-length, and scores `test` once for each: sacreBLEU BLEU and chrF with their
signatures, the project greedy and with beam 5, the recipe greedy.

    python bench/translate_tatoeba.py [--time-budget 26m] [--output-md FILE]
    python bench/translate_tatoeba.py --smoke        # 3,000 pairs, 2 minutes: a check

`--train-lines N` trains on the first N pairs only and `--test-lines N` scores the first
N test pairs (a smoke run of the script, not a result).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import (
    ROOT,
    SHARED,
    LoadMonitor,
    apps,
    first_reaching,
    machine,
    reach_ratio,
    run_translation_peer,
    translation_scores,
)

TATOEBA = SHARED / "translate" / "tatoeba"
CONFIG = ROOT / "bench" / "configs" / "translate_tatoeba.yaml"
LANGUAGES = ("de", "en")


def cut_copy(workdir: Path, name: str, lines: int | None) -> Path:
    """The prefix of Tatoeba's `name` pairs, or a copy of its first `lines` pairs in
    `workdir` (never in the project)."""
    if not lines:
        return TATOEBA / name
    (workdir / "data").mkdir(exist_ok=True)
    for lang in LANGUAGES:
        with open(TATOEBA / f"{name}.{lang}", encoding="utf-8") as handle:
            kept = [line for _, line in zip(range(lines), handle)]
        (workdir / "data" / f"{name}.{lang}").write_text("".join(kept), encoding="utf-8")
    return workdir / "data" / name


def tsv_to_prefix(table: Path, prefix: Path) -> Path:
    """A run's `source<TAB>target` split file as the pair of files the peer reads."""
    rows = table.read_text(encoding="utf-8").splitlines()[1:]
    sides = list(zip(*(row.split("\t") for row in rows)))
    for lang, side in zip(LANGUAGES, sides):
        Path(f"{prefix}.{lang}").write_text("".join(s + "\n" for s in side), encoding="utf-8")
    return prefix


def markdown(args, where: str, load: str, wall: float, epochs: int, best: dict,
             scores: dict, peer: dict | None) -> str:
    """The docs section: command, machine, load, scores with their signatures."""
    config = os.path.relpath(args.config, ROOT)
    cut = ", ".join(part for part in (
        args.train_lines and f"first {args.train_lines} training pairs",
        args.test_lines and f"first {args.test_lines} test pairs") if part)
    lines = [
        f"Config `{config}`, `--time-budget {args.time_budget}`"
        f"{f' ({cut}: a smoke run, not a result)' if cut else ''}; {where} at the start; "
        f"load while it ran: {load}.",
        "",
        f"Command: `apps translation train --config {config} --data tatoeba/train "
        f"--time-budget {args.time_budget}{'' if args.seed is None else f' --seed {args.seed}'}`"
        f" (validation: {best['sentences']} pairs held out of train)",
        "",
        "| system | train wall (s) | epochs | val BLEU (best) | test BLEU | test chrF |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| project, greedy | {wall:.0f} | {epochs} | {best['bleu']:.2f} | "
        f"{scores[1]['bleu']:.2f} | {scores[1]['chrf']:.2f} |",
        f"| project, beam 5 | | | | {scores[5]['bleu']:.2f} | {scores[5]['chrf']:.2f} |",
    ]
    if peer:
        lines.append(f"| Keras recipe, greedy | {peer['train_seconds']:.0f} | {peer['epochs']} "
                     f"| {peer['val_bleu']:.2f} (final) | {peer['test_bleu']:.2f} | "
                     f"{peer['test_chrf']:.2f} |")
    lines += ["", f"Test: {scores[1]['sentences']} pairs. BLEU signature: "
              f"`{scores[1]['signature']}`; chrF signature: `{scores[1]['chrf_signature']}`"
              + (f" (the recipe's: `{peer['bleu_signature']}`, `{peer['chrf_signature']}`)."
                 if peer else ".")]
    if peer:
        margin = scores[1]["bleu"] - peer["test_bleu"]
        lines += ["", f"Project greedy minus recipe: {margin:+.2f} test BLEU (beam 5: "
                  f"{scores[5]['bleu'] - peer['test_bleu']:+.2f}; target +3). The project "
                  "reached the recipe's final validation BLEU "
                  f"({peer['val_bleu']:.2f}) after {peer['project_seconds_to_peer_val_bleu']} s "
                  f"of training (history.csv); the recipe trained "
                  f"{peer['train_seconds']:.0f} s{reach_ratio(peer)}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", help="The project's --time-budget [default: the "
                        "config's]; the peer gets its `train` wall time.")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--train-lines", type=int, help="Train on the first N pairs only.")
    parser.add_argument("--test-lines", type=int, help="Score the first N test pairs only.")
    parser.add_argument("--smoke", action="store_true", help="A quick check of the script: "
                        "--train-lines 3000 --test-lines 300 --time-budget 2m unless given.")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--seed", type=int, help="The project's --seed [default: the config's].")
    parser.add_argument("--output-md", type=Path)
    parser.add_argument("--keep-run", type=Path, metavar="DIR",
                        help="Copy the trained run directory to DIR.")
    args = parser.parse_args()
    if args.smoke:
        args.train_lines = args.train_lines or 3000
        args.test_lines = args.test_lines or 300
        args.time_budget = args.time_budget or "2m"
    args.time_budget = args.time_budget or str(
        yaml.safe_load(args.config.read_text())["time_budget"])
    where = machine()
    with tempfile.TemporaryDirectory() as workdir, LoadMonitor() as load:
        workdir = Path(workdir)
        train = cut_copy(workdir, "train", args.train_lines)
        test = cut_copy(workdir, "test", args.test_lines)
        run = workdir / "run"
        start = time.perf_counter()
        apps("translation", "train", "--config", args.config, "--data", train,
             "--time-budget", args.time_budget, "--output", run, "--quiet",
             *(["--seed", args.seed] if args.seed is not None else []))
        wall = time.perf_counter() - start
        epochs = len(list(csv.DictReader((run / "history.csv").open())))
        print(json.dumps({"train_wall_seconds": round(wall, 1), "epochs": epochs}),
              file=sys.stderr, flush=True)
        scores = translation_scores(run, test)
        print(json.dumps(scores), file=sys.stderr, flush=True)
        peer = None
        if not args.skip_peer:
            max_length = json.loads((run / "config.json").read_text())["max_length"]
            peer = run_translation_peer(run / "tokenizer.model", wall, [
                "--train", tsv_to_prefix(run / "kept.tsv", workdir / "kept"),
                "--valid", tsv_to_prefix(run / "heldout.tsv", workdir / "heldout"),
                "--test", test, "--max-length", max_length])
            peer["project_seconds_to_peer_val_bleu"] = first_reaching(run / "history.csv",
                                                                      peer["val_bleu"])
            print(json.dumps(peer), file=sys.stderr, flush=True)
        best = json.loads((run / "metrics.json").read_text())["valid"]
        if args.keep_run:
            shutil.copytree(run, args.keep_run)
    text = markdown(args, where, load.summary(), wall, epochs, best, scores, peer)
    print(text)
    if args.output_md:
        args.output_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
