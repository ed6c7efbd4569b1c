"""AN4 speech benchmark: the recogniser, and its beam search fused with a character LM.

Every step is an `apps` command (printed with the results):

    apps speech train --config bench/configs/speech_an4.yaml --data AN4/train.csv
    apps lm train --config bench/configs/speech_an4_lm.yaml --data WORK/lm.txt
    apps speech evaluate RUN --data WORK/valid.csv [--beam-size 16 [--lm LM ...]]

The speech run holds 10 % of train.csv out (its --seed); this script writes those same
recordings as `valid.csv` (the task's own hold-out, so the split is the run's) and the
transcripts of the rest as `lm.txt`, one per line: the LM never reads a validation
transcript. The LM weight and word bonus are chosen on validation (a small grid); test.csv
is scored once at the end, greedy, beam and fused.

    python bench/speech_an4.py [--workdir DIR] [--skip-training] [--output-md FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, apps, machine

AN4 = SHARED / "speech" / "an4"
CONFIG = ROOT / "bench" / "configs" / "speech_an4.yaml"
LM_CONFIG = ROOT / "bench" / "configs" / "speech_an4_lm.yaml"
BEAM = 16
WEIGHTS = (0.3, 0.5, 0.8)
BONUSES = (0.0, 1.0, 2.0, 3.0)


def write_splits(workdir: Path, valid_fraction: float, seed: int) -> dict[str, Path]:
    """valid.csv (the recordings the speech run holds out) and lm.txt (the transcripts
    of the ones it trains on)."""
    sys.path.insert(0, str(ROOT))
    from apps.speech.task import TASK

    train = TASK.read(str(AN4 / "train.csv"), "train")
    kept, held = TASK.split_off(train, valid_fraction, seed, str(AN4 / "train.csv"))
    valid = workdir / "valid.csv"
    with open(valid, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["wav_filename", "wav_filesize", "transcript"])
        for path, text in zip(held["audio"], held["text"]):
            writer.writerow([path, Path(path).stat().st_size, text])
    lm_text = workdir / "lm.txt"
    lm_text.write_text("".join(text + "\n" for text in kept["text"]))
    return {"valid": valid, "lm": lm_text, "train_count": len(kept["text"]),
            "valid_count": len(held["text"])}


def evaluate(run: Path, data: Path, *extra) -> tuple[dict, float]:
    start = time.perf_counter()
    report = json.loads(apps("speech", "evaluate", run, "--data", data, "--json",
                             *map(str, extra)).stdout)
    return report, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="Keep the runs and splits here.")
    parser.add_argument("--skip-training", action="store_true",
                        help="Reuse WORKDIR/speech and WORKDIR/lm.")
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    where = machine()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="speech-an4-"))
    workdir.mkdir(parents=True, exist_ok=True)
    splits = write_splits(workdir, 0.1, 1)
    speech, lm = workdir / "speech", workdir / "lm"
    with LoadMonitor() as load:
        if not args.skip_training:
            apps("lm", "train", "--config", LM_CONFIG, "--data", splits["lm"], "--output", lm,
                 "--overwrite", "--quiet")
            apps("speech", "train", "--config", CONFIG, "--data", AN4 / "train.csv",
                 "--output", speech, "--overwrite", "--quiet")
        metrics = json.loads((speech / "metrics.json").read_text())["valid"]
        lm_metrics = json.loads((lm / "metrics.json").read_text())["valid"]
        rows = {"greedy": evaluate(speech, splits["valid"]),
                f"beam {BEAM}": evaluate(speech, splits["valid"], "--beam-size", BEAM)}
        for weight in WEIGHTS:
            for bonus in BONUSES:
                rows[f"beam {BEAM} + LM {weight} bonus {bonus}"] = evaluate(
                    speech, splits["valid"], "--beam-size", BEAM, "--lm", lm, "--lm-weight",
                    weight, "--word-bonus", bonus)
        fused = [k for k in rows if "LM" in k]
        chosen = min(fused, key=lambda k: (rows[k][0]["wer"], rows[k][0]["cer"]))
        weight, bonus = chosen.split("LM ")[1].split(" bonus ")
        test = {"greedy": evaluate(speech, AN4 / "test.csv"),
                f"beam {BEAM}": evaluate(speech, AN4 / "test.csv", "--beam-size", BEAM),
                chosen: evaluate(speech, AN4 / "test.csv", "--beam-size", BEAM, "--lm", lm,
                                 "--lm-weight", weight, "--word-bonus", bonus)}
    result = {"bench": "speech_an4", "valid_utterances": splits["valid_count"],
              "train_seconds": metrics["train_seconds"], "epochs_run": metrics["epochs_run"],
              "best_epoch": metrics["best_epoch"], "lm_nats_per_char":
              lm_metrics.get("nats_per_char"), "chosen": chosen,
              "valid": {k: {"wer": r["wer"], "cer": r["cer"], "seconds": round(s, 1)}
                        for k, (r, s) in rows.items()},
              "test": {k: {"wer": r["wer"], "cer": r["cer"], "seconds": round(s, 1)}
                       for k, (r, s) in test.items()},
              "load": load.summary()}
    print(json.dumps(result))
    lines = [f"{where} at the start; load while running: {load.summary()}.", "",
             f"Speech run: {metrics['epochs_run']} epochs (best {metrics['best_epoch']}) in "
             f"{metrics['train_seconds']:.0f} s on {splits['train_count']} recordings; LM: "
             f"{lm_metrics.get('nats_per_char')} nats/char on its held-out text.", "",
             "| decoding | valid WER | valid CER | seconds |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k} | {r['wer']:.2%} | {r['cer']:.2%} | {s:.0f} |"
              for k, (r, s) in rows.items()]
    lines += ["", "| decoding (test.csv, once) | test WER | test CER |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {r['wer']:.2%} | {r['cer']:.2%} |" for k, (r, _) in test.items()]
    lines += ["", f"Command: `python bench/speech_an4.py {' '.join(sys.argv[1:])}`"]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("## Speech to text (AN4)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
