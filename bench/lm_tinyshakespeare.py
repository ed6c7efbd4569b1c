"""Tiny Shakespeare benchmark: validation nats per character, training time, generation speed.

Trains with bench/configs/lm_tinyshakespeare.yaml on train.txt (the first 90 %, as
nanoGPT's shakespeare_char), reports valid.txt read as one continuous stream (the
target: <= 1.55 nats per character with training <= 15 minutes on this 2-core
machine), then times generation of one stream (target: >= 500 tokens/s) from the
CLI on the run directory and on the exported SavedModel, beside the naive approach
that re-runs the model over the whole sequence for every new token.

    python bench/lm_tinyshakespeare.py [--output-md docs/bench_sections/lm.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, apps, machine

DATA = SHARED / "lm" / "tinyshakespeare"
CONFIG = ROOT / "bench" / "configs" / "lm_tinyshakespeare.yaml"
PROMPT = "ROMEO:"


def generation_speed(model: Path, tokens: int, repeats: int) -> dict:
    """Median tokens/s of `apps lm generate MODEL --json` over `repeats` single samples."""
    rates = []
    for seed in range(1, repeats + 1):
        out = apps("lm", "generate", str(model), "--prompt", PROMPT, "--max-tokens",
                   str(tokens), "--temperature", "0.8", "--seed", str(seed), "--json")
        rates.append(json.loads(out.stdout)["tokens_per_second"])
    return {"tokens": tokens, "median_tokens_per_second": statistics.median(rates),
            "runs": [round(r, 1) for r in rates]}


def naive_speed(run: Path, tokens: int) -> dict:
    """Re-run the whole sequence for each new token (no carried state), for comparison."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import tensorflow as tf

    from apps import decoding as search
    from apps import runner
    from apps.lm.task import TASK
    from pipelines.tokenizer import BOS_ID

    trained = runner.load(TASK, run)
    model = trained.model
    one = lambda value, dtype: tf.constant([value], dtype)  # noqa: E731

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32),
                                  tf.TensorSpec([], tf.int32)])
    def next_token(ids, position):
        logits, _ = model.run(ids)
        return search.next_tokens(logits[:, -1], one(0.8, tf.float32), one(0, tf.int32),
                                  one(1.0, tf.float32), one(1, tf.int64), position)

    ids = [BOS_ID] + trained.inputters["text"].tokenizer.encode([PROMPT])[0]
    next_token(tf.constant([ids]), 0)  # trace once
    start = time.perf_counter()
    for _ in range(tokens):
        ids.append(int(next_token(tf.constant([ids]), len(ids) - 1)[0]))
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "tokens_per_second": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--workdir", type=Path, help="Keep the run here [default: a temp dir].")
    parser.add_argument("--tokens", type=int, default=500, help="Tokens per generation sample.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lm-bench-"))
    run, models = workdir / "run", workdir / "saved_models"
    train_command = ["lm", "train", "--config", str(args.config), "--data",
                     str(DATA / "train.txt"), "--valid", str(DATA / "valid.txt"), "--output",
                     str(run), "--overwrite", "--quiet"]
    with LoadMonitor() as training_load:
        start = time.perf_counter()
        apps(*train_command)
        wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())["valid"]
    evaluated = json.loads(apps("lm", "evaluate", str(run), "--data", str(DATA / "valid.txt"),
                                "--json").stdout)
    apps("lm", "export", str(run), "--model-base-path", str(models))
    with LoadMonitor() as generation_load:
        cli = generation_speed(run, args.tokens, args.repeats)
        served = generation_speed(models / "lm", args.tokens, args.repeats)
        naive = naive_speed(run, args.tokens)
    result = {
        "bench": "lm_tinyshakespeare", "config": str(args.config.resolve().relative_to(ROOT)),
        "train_wall_seconds": round(wall, 1), "train_seconds_in_fit": metrics["train_seconds"],
        "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
        "stopped_by_time_budget": metrics["stopped_by_time_budget"],
        "valid_nats_per_char": evaluated["nats_per_char"],
        "valid_bits_per_char": evaluated["bits_per_char"], "valid_chars": evaluated["chars"],
        "generate_cli": cli, "generate_saved_model": served, "generate_naive": naive,
        "load_during_training": training_load.summary(),
        "load_during_generation": generation_load.summary(),
        "machine": machine(),
    }
    lines = [
        f"Config `{result['config']}`; {result['machine']}, shared with other jobs "
        f"(1-minute load average during training: {result['load_during_training']}; "
        f"during generation: {result['load_during_generation']}).",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| validation nats/char (valid.txt, {result['valid_chars']:,} chars, one stream) | "
        f"{result['valid_nats_per_char']:.4f} ({result['valid_bits_per_char']:.4f} bits) "
        "| <= 1.55 (issue 4); <= 1.45 (issue 20, the regularised config) |",
        f"| whole `train` command, wall clock | {wall / 60:.1f} min ({result['epochs_run']} "
        f"epochs, best {result['best_epoch']}) | <= 15 min |",
        f"| generate, CLI on the run directory (one stream, {args.tokens} tokens) | "
        f"{cli['median_tokens_per_second']:.0f} tokens/s | >= 500 |",
        f"| generate, CLI on the SavedModel (`generate` signature, loop in the graph) | "
        f"{served['median_tokens_per_second']:.0f} tokens/s | >= 500 |",
        f"| naive: re-run the whole sequence for every token ({args.tokens} tokens) | "
        f"{naive['tokens_per_second']:.0f} tokens/s | (comparison) |",
        "",
        f"Command: `python bench/lm_tinyshakespeare.py --config {result['config']} "
        "--output-md docs/bench_sections/lm.md`, "
        f"which runs `apps lm train --config {result['config']} --data "
        "../shared/data/lm/tinyshakespeare/train.txt --valid "
        "../shared/data/lm/tinyshakespeare/valid.txt --output RUN --overwrite --quiet`, then "
        "`apps lm evaluate RUN --data .../valid.txt --json`, `apps lm export RUN` and "
        f"`apps lm generate MODEL --prompt {PROMPT!r} --max-tokens {args.tokens} "
        f"--temperature 0.8 --seed N --json` (median of {args.repeats} seeds) on RUN and on "
        "the SavedModel.",
    ]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("\n".join(lines) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
