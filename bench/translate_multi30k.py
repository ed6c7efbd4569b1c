"""Multi30k German->English: the project against the plain Keras recipe, same run.

Trains `apps translation train` with bench/configs/translate_multi30k.yaml on `train`
(the best epoch chosen by BLEU on `val`), reports sacreBLEU / chrF on
`test_2016_flickr` (never used to choose anything), exports it with beam 1 and beam 5
three times (the full vocabulary, the vocabulary shortlist, the shortlist with bfloat16
products) and times the SavedModels' decoding over the 1,000 test sentences in batches,
in turns in one process (greedy through the beam-1 export's `serving_default` and the
beam-5 export's `translate`, beam 5 through its `serving_default`). Then runs the peer
(bench/peers/keras_translation_recipe.py) with the project's joint SentencePiece model
for the same wall time as the project's `train` command.

    python bench/translate_multi30k.py --time-budget 28m --sort-by-length \
        [--output-md docs/bench_sections/translation.md]

`--train-lines N` trains on the first N pairs only (a smoke run of the script).

`--decode-only RUN` measures decoding speed alone from an existing run directory: it
exports RUN with beam 5 (with and without the shortlist; a run trained before shortlist
tables gets its table computed from the training data its config names), times the
SavedModels, and trains the peer for only
`--peer-time-budget` seconds before timing its greedy decoding (its loop's cost depends on how
long its outputs are, which is reported, not on its weights as such).

    python bench/translate_multi30k.py --decode-only runs/de-en --batch-size 64 \
        [--output-md FILE] [--peer-dir DIR]

`--peer-dir DIR` keeps the peer: trained (for `--peer-time-budget`) and saved in DIR
when DIR holds none, loaded from DIR otherwise, so one long training serves many
timings (a briefly trained peer emits longer outputs, so its loop runs longer).

`--choose-shortlist RUN` compares shortlist sizes on `val` (never test), in memory:

    python bench/translate_multi30k.py --choose-shortlist runs/de-en \
        --sizes 3:100,5:250,10:250 --beams 1,5
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

MULTI30K = SHARED / "translate" / "multi30k"
CONFIG = ROOT / "bench" / "configs" / "translate_multi30k.yaml"


def data_folder(workdir: Path, train_lines: int | None) -> Path:
    """Multi30k itself, or a copy whose training part is cut to `train_lines` pairs."""
    if not train_lines:
        return MULTI30K
    folder = workdir / "multi30k"
    folder.mkdir()
    for path in MULTI30K.iterdir():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = train_lines if path.stem == "train" else max(50, train_lines // 10)
        (folder / path.name).write_text("".join(lines[:keep]), encoding="utf-8")
    return folder


# (name, `apps translation export` flags, label): the vocabularies and the products
VOCABULARIES = (("full", ["--no-shortlist"], "full vocabulary"),
                ("shortlist", ["--shortlist"], "shortlist"),
                ("shortlist_bf16", ["--shortlist", "--precision", "mixed_bfloat16"],
                 "shortlist, bfloat16 products"))
BEAMS = (1, 5)  # each vocabulary is exported with both beam sizes


def export_both(run: Path, base: Path) -> dict[str, dict[int, Path]]:
    """The run exported with and without the vocabulary shortlist (and with the shortlist
    and bfloat16 products), each twice: with beam 5 and with beam 1 (whose
    `serving_default` is what a server of greedy translations runs: translations and
    scores, no alignments)."""
    versions = {}
    for name, flags, _ in VOCABULARIES:
        for beam in BEAMS:
            apps("translation", "export", str(run), "--model-base-path",
                 str(base / f"{name}{beam}"), "--beam-size", str(beam), *flags)
        versions[name] = {beam: base / f"{name}{beam}" / "translation" / "1" for beam in BEAMS}
    return versions


def decoding_speed(run: Path, versions: dict[str, dict[int, Path]], sources: list[str],
                   references: list[str], batch_size: int = 64, by_length: bool = False,
                   rounds: int = 2) -> dict:
    """Sentences per second of each SavedModel in batches (of similar source word counts
    with `by_length`, the peer's order too), in one process: greedy through the beam-1
    export's `serving_default` and, with alignments, through the beam-5 export's
    `translate` (beam_size 1); beam 5 through its `serving_default`. The calls take
    turns, `rounds` times, and each keeps its best round (the load of a shared machine
    only slows a round down)."""
    import sacrebleu
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    order = sorted(range(len(sources)), key=lambda i: len(sources[i].split())) \
        if by_length else list(range(len(sources)))
    calls = {}
    for name, exports in versions.items():
        greedy, beam = (tf.saved_model.load(str(exports[size])) for size in BEAMS)
        calls[name, "greedy"] = lambda text, m=greedy: m.signatures["serving_default"](
            text=text)
        calls[name, "greedy_aligned"] = lambda text, m=beam: m.signatures["translate"](
            text=text, beam_size=tf.constant(1), max_length=tf.constant(48))
        calls[name, "beam5"] = lambda text, m=beam: m.signatures["serving_default"](text=text)
    out: dict = {name: {} for name in versions}
    for _ in range(rounds):
        for (name, kind), call in calls.items():
            call(tf.constant(sources[:batch_size]))  # warm-up
            start, found = time.perf_counter(), []
            for i in range(0, len(sources), batch_size):
                result = call(tf.constant([sources[j] for j in order[i : i + batch_size]]))
                found += [t.decode("utf-8") for t in result["translation"].numpy()]
            speed = round(len(sources) / (time.perf_counter() - start), 1)
            if speed <= out[name].get(kind, {}).get("sentences_per_second", 0):
                continue
            hypotheses = [""] * len(sources)
            for position, translation in zip(order, found):
                hypotheses[position] = translation
            out[name][kind] = {
                "sentences_per_second": speed,
                "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
                "mean_output_pieces": mean_pieces(run, hypotheses)}
    return out


def speed_rows(speed: dict) -> list[tuple[str, dict]]:
    """(decoder, figures) for the decoding table: greedy and beam 5, each vocabulary."""
    return [(f"SavedModel {label} ({signature}), {vocabulary}", speed[name][kind])
            for kind, label, signature in (
                ("greedy", "greedy", "`serving_default` of a beam-1 export"),
                ("greedy_aligned", "greedy with alignments", "`translate`, beam 1"),
                ("beam5", "beam 5", "`serving_default`"))
            for name, _, vocabulary in VOCABULARIES]


def mean_pieces(run: Path, sentences: list[str]) -> float:
    """Mean length of `sentences` in the run's (joint) tokenizer's pieces."""
    import sentencepiece as spm

    pieces = spm.SentencePieceProcessor(model_file=str(run / "tokenizer.model")).encode(
        sentences)
    return round(sum(map(len, pieces)) / max(len(pieces), 1), 1)


def run_peer(data: Path, tokenizer: Path, seconds: float, batch_size: int = 64,
             by_length: bool = False, peer_dir: Path | None = None) -> dict:
    """The Keras recipe trained for `seconds` on Multi30k's folder, its last line of JSON;
    `peer_dir`: kept there after training, or loaded from there if it holds one."""
    kept = ["--model-dir", peer_dir] if peer_dir else []
    return run_translation_peer(tokenizer, seconds, ["--data", data, *kept], batch_size,
                                by_length)


def decode_only(args) -> None:
    """Decoding speed of an existing run's SavedModel against the peer's, same run."""
    where = machine()
    test = MULTI30K / "test_2016_flickr"
    sources = test.with_suffix(".de").read_text(encoding="utf-8").splitlines()
    references = test.with_suffix(".en").read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory() as workdir, LoadMonitor() as load:
        versions = export_both(args.decode_only, Path(workdir))
        speed = decoding_speed(args.decode_only, versions, sources, references,
                               args.batch_size, args.sort_by_length)
        print(json.dumps(speed), file=sys.stderr, flush=True)
        peer = run_peer(MULTI30K, args.decode_only / "tokenizer.model", args.peer_time_budget,
                        args.batch_size, args.sort_by_length, args.peer_dir)
        print(json.dumps(peer), file=sys.stderr, flush=True)
    greedy = peer["greedy_sentences_per_second"]
    rows = [*speed_rows(speed),
            ("Keras recipe greedy (`predict_on_batch` loop)",
             {"sentences_per_second": greedy, "bleu": peer["test_bleu"],
              "mean_output_pieces": peer["mean_output_pieces"]})]
    lines = [
        f"Decoding speed only, {where} at the start; load while it ran: {load.summary()}.",
        "",
        f"Command: `python bench/translate_multi30k.py --decode-only RUN --batch-size "
        f"{args.batch_size} --peer-time-budget {args.peer_time_budget:g}"
        f"{' --sort-by-length' * args.sort_by_length}"
        f"{' --peer-dir DIR' * bool(args.peer_dir)}`",
        "",
        f"RUN: a run of `bench/configs/translate_multi30k.yaml` (validation BLEU "
        f"{json.loads((args.decode_only / 'metrics.json').read_text())['valid']['bleu']:.2f})"
        f". The peer trained {peer['train_seconds']:.0f} s ({peer['epochs']} epoch(s)"
        f"{', loaded from DIR' if peer.get('loaded_from') else ''}) with "
        "its joint SentencePiece model. Its greedy loop's cost depends on the batch and on "
        "how many steps it runs (the longest output of each batch, at most 48), not on "
        "its weights as such, but a briefly trained peer's outputs are not a trained one's "
        "length: read its speed with its mean output length (a trained model's outputs "
        "are about as long as the project's); its BLEU here says nothing about the "
        "recipe's quality.",
        "",
        f"The 1,000 `test_2016_flickr` sentences in batches of {args.batch_size}, "
        + ("sorted by source word count (a stable sort, the same batches for both; BLEU on "
           "the output put back in file order):" if args.sort_by_length else
           "in file order, the same batches for both:"),
        "",
        "| decoder | sentences/s | x recipe greedy | test BLEU | mean output pieces |",
        "| --- | --- | --- | --- | --- |",
    ] + [f"| {name} | {r['sentences_per_second']} | "
         f"{r['sentences_per_second'] / greedy:.2f} | {r['bleu']} | "
         f"{r['mean_output_pieces']} |" for name, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output_md:
        args.output_md.write_text(text, encoding="utf-8")


def choose_shortlist(args) -> None:
    """Val BLEU and speed of shortlist sizes (M candidates per source piece, F frequent
    pieces) against the full vocabulary, on a run in memory, one process; the sizes
    are chosen here, on `val`, never on test."""
    import sacrebleu
    import tensorflow as tf

    from apps import layers, runner
    from apps.translation import serving, shortlist, task

    val = MULTI30K / "val"
    sources = val.with_suffix(".de").read_text(encoding="utf-8").splitlines()
    references = val.with_suffix(".en").read_text(encoding="utf-8").splitlines()
    trained = runner.load(task.TASK, args.choose_shortlist)
    table = shortlist.table_for_run(trained.path, trained.settings, trained.inputters,
                                    task.TASK.read_training_data)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i].split()))
    batches = [[sources[j] for j in order[i : i + args.batch_size]]
               for i in range(0, len(sources), args.batch_size)]
    source_ids = trained.inputters["source"].tokenizer.encode(sources)
    sizes = [None] + [tuple(map(int, pair.split(":"))) for pair in args.sizes.split(",")]
    print(f"{machine()}; val, {len(sources)} sentences, batches of {args.batch_size} "
          "sorted by source word count\n")
    print("| M | F | beam | mean shortlist | sentences/s | val BLEU |\n| --- | --- | --- | "
          "--- | --- | --- |")
    runs = {}
    with layers.traced_recurrence("fused"):
        for beam in map(int, args.beams.split(",")):
            for size in sizes:
                cut = None if size is None else table.cut(*size)
                runs[beam, size] = (cut, serving.signatures(trained, beam, cut)["translate"])
        best: dict = {}
        for _ in range(args.rounds):  # taking turns, the best round of each: a shared machine
            for (beam, size), (_, signature) in runs.items():
                signature(tf.constant(batches[0]), tf.constant(beam), tf.constant(48))
                start, found = time.perf_counter(), []
                for batch in batches:
                    out = signature(tf.constant(batch), tf.constant(beam), tf.constant(48))
                    found += [t.decode("utf-8") for t in out["translation"].numpy()]
                speed = len(sources) / (time.perf_counter() - start)
                best[beam, size] = (max(speed, best.get((beam, size), (0, None))[0]), found)
    for (beam, size), (cut, _) in runs.items():
        speed, found = best[beam, size]
        hypotheses = [""] * len(sources)
        for position, translation in zip(order, found):
            hypotheses[position] = translation
        bleu = sacrebleu.corpus_bleu(hypotheses, [references]).score
        listed = "-" if cut is None else \
            f"{mean_shortlist(cut, source_ids, order, args.batch_size):.0f}"
        m, f = size or ("full", "full")
        print(f"| {m} | {f} | {beam} | {listed} | {speed:.1f} | {bleu:.2f} |", flush=True)


def mean_shortlist(cut, source_ids, order, batch_size) -> float:
    """Mean shortlist size of the batches (as `shortlist.shortlist_ids` builds them)."""
    import numpy as np

    candidates, frequent = cut
    sizes = []
    for i in range(0, len(order), batch_size):
        ids = [piece for j in order[i : i + batch_size] for piece in source_ids[j]]
        union = set(candidates[ids].ravel()) | set(frequent) | set(range(4))
        sizes.append(len(union))
    return float(np.mean(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", default="28m",
                        help="The project's --time-budget; the peer gets its `train` wall time.")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--train-lines", type=int)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--seed", type=int, help="The project's --seed [default: the config's].")
    parser.add_argument("--output-md", type=Path)
    parser.add_argument("--keep-run", type=Path, metavar="DIR",
                        help="Copy the trained run directory to DIR (for --decode-only later).")
    parser.add_argument("--decode-only", type=Path, metavar="RUN",
                        help="Only time decoding, from this run directory.")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="Sentences per batch when timing decoding (both systems).")
    parser.add_argument("--peer-time-budget", type=float, default=120.0,
                        help="Seconds the peer trains with --decode-only.")
    parser.add_argument("--peer-dir", type=Path, metavar="DIR",
                        help="Keep the trained peer in DIR, or load it from DIR if it holds "
                             "one (with --decode-only, a peer trained --peer-time-budget).")
    parser.add_argument("--sort-by-length", action="store_true",
                        help="Time decoding on batches of similar source length (both).")
    parser.add_argument("--choose-shortlist", type=Path, metavar="RUN",
                        help="Only compare shortlist sizes (--sizes) on val, from RUN.")
    parser.add_argument("--sizes", default="10:250,20:500,40:500,20:1000",
                        help="With --choose-shortlist: M:F pairs (candidates per source "
                             "piece, frequent pieces).")
    parser.add_argument("--beams", default="1",
                        help="With --choose-shortlist: beam sizes, comma-separated.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="With --choose-shortlist: timed passes over val of each.")
    args = parser.parse_args()
    if args.choose_shortlist:
        return choose_shortlist(args)
    if args.decode_only:
        return decode_only(args)
    where = machine()
    with tempfile.TemporaryDirectory() as workdir, LoadMonitor() as load:
        workdir = Path(workdir)
        data = data_folder(workdir, args.train_lines)
        run = workdir / "run"
        train_command = ["translation", "train", "--config", str(args.config), "--data",
                         str(data / "train"), "--valid", str(data / "val"), "--time-budget",
                         args.time_budget, "--output", str(run), "--quiet"] + \
            (["--seed", str(args.seed)] if args.seed is not None else [])
        start = time.perf_counter()
        apps(*train_command)
        wall = time.perf_counter() - start
        history = list(csv.DictReader((run / "history.csv").open()))
        print(json.dumps({"train_wall_seconds": round(wall, 1), "epochs": len(history)}),
              file=sys.stderr, flush=True)
        test = data / "test_2016_flickr"
        scores = translation_scores(run, test)
        print(json.dumps(scores), file=sys.stderr, flush=True)
        versions = export_both(run, workdir / "sm")
        sources = (test.with_suffix(".de")).read_text(encoding="utf-8").splitlines()
        references = (test.with_suffix(".en")).read_text(encoding="utf-8").splitlines()
        speed = decoding_speed(run, versions, sources, references, args.batch_size,
                               args.sort_by_length)
        print(json.dumps(speed), file=sys.stderr, flush=True)
        peer = None
        if not args.skip_peer:
            peer = run_peer(data, run / "tokenizer.model", wall, args.batch_size,
                            args.sort_by_length, args.peer_dir)
            peer["project_seconds_to_peer_val_bleu"] = first_reaching(run / "history.csv",
                                                                      peer["val_bleu"])
            print(json.dumps(peer), file=sys.stderr, flush=True)
        best = json.loads((run / "metrics.json").read_text())["valid"]
        if args.keep_run:
            shutil.copytree(run, args.keep_run)
    lines = [
        f"Config `{os.path.relpath(args.config, ROOT)}`, `--time-budget {args.time_budget}`"
        f"{f', first {args.train_lines} training pairs' if args.train_lines else ''}; "
        f"{where} at the start; load while it ran: {load.summary()}.",
        "",
        f"Command: `apps translation train --config {os.path.relpath(args.config, ROOT)} "
        f"--data multi30k/train --valid multi30k/val --time-budget {args.time_budget}"
        f"{'' if args.seed is None else f' --seed {args.seed}'}`",
        "",
        "| system | train wall (s) | epochs | val BLEU (best) | test BLEU | test chrF |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| project, greedy | {wall:.0f} | {len(history)} | {best['bleu']:.2f} | "
        f"{scores[1]['bleu']:.2f} | {scores[1]['chrf']:.2f} |",
        f"| project, beam 5 | | | | {scores[5]['bleu']:.2f} | {scores[5]['chrf']:.2f} |",
    ]
    if peer:
        lines.append(f"| Keras recipe, greedy | {peer['train_seconds']:.0f} | {peer['epochs']} | "
                     f"{peer['val_bleu']:.2f} (final) | {peer['test_bleu']:.2f} | "
                     f"{peer['test_chrf']:.2f} |")
    lines += [
        "",
        f"BLEU signature: `{scores[1]['signature']}`.",
        "",
        f"Decoding the 1,000 test sentences in batches of {args.batch_size}:",
        "",
        "| decoder | sentences/s | x recipe greedy | BLEU | mean output pieces |",
        "| --- | --- | --- | --- | --- |",
    ]
    recipe_speed = peer["greedy_sentences_per_second"] if peer else None
    for name, row in speed_rows(speed):
        ratio = f"{row['sentences_per_second'] / recipe_speed:.2f}" if peer else "-"
        lines.append(f"| {name} | {row['sentences_per_second']} | {ratio} | "
                     f"{row['bleu']} | {row['mean_output_pieces']} |")
    if peer:
        lines += [f"| Keras recipe greedy (`predict_on_batch` loop) | {recipe_speed} | 1.00 | "
                  f"{peer['test_bleu']} | {peer['mean_output_pieces']} |", "",
                  "The project reached the recipe's final validation BLEU "
                  f"({peer['val_bleu']:.2f}) after "
                  f"{peer['project_seconds_to_peer_val_bleu']} s of training "
                  f"(history.csv); the recipe trained {peer['train_seconds']:.0f} s"
                  f"{reach_ratio(peer)}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output_md:
        args.output_md.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
