"""AN4 speech benchmark: the recogniser, and its beam search fused with a character LM.

Only `apps` commands, printed with the results; the settings are the configs':

    apps speech train --config bench/configs/speech_an4.yaml --data AN4/train.csv --output RUN
    apps lm train --config bench/configs/speech_an4_lm.yaml --data RUN/kept.csv \\
        --text-column transcript --output LM
    apps speech evaluate RUN --data RUN/heldout.csv [--beam-size 16 [--lm LM ...]]
    apps speech evaluate RUN --data AN4/test.csv ...          (the chosen decoding, once)

The speech run holds 10 % of train.csv out for validation (--valid-fraction, --seed) and
writes that split into its directory: `heldout.csv` (validation) and `kept.csv` (the
recordings it trains on, whose transcripts the LM reads, so the LM never reads a
validation transcript). The decoding (greedy, beam, or beam fused with the LM at a weight
and word bonus of a small grid) is chosen on validation; test.csv is scored once, with
the chosen one.

    python bench/speech_an4.py [--workdir DIR] [--skip-training] [--output-md FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, apps, machine
from speech_fsdd import real_time_factor, recorded_wavs

AN4 = SHARED / "speech" / "an4"
CONFIG = ROOT / "bench" / "configs" / "speech_an4.yaml"
LM_CONFIG = ROOT / "bench" / "configs" / "speech_an4_lm.yaml"
BEAM = 16
WEIGHTS = (0.3, 0.5)  # 0.8 was last on validation at every bonus (docs/benchmarks.md)
BONUSES = (0.0, 1.0, 2.0, 3.0)


def evaluate(run: Path, data: Path, *extra) -> tuple[dict, float]:
    start = time.perf_counter()
    report = json.loads(apps("speech", "evaluate", run, "--data", data, "--json",
                             *map(str, extra)).stdout)
    return report, time.perf_counter() - start


def decodings(lm: Path) -> dict[str, tuple]:
    """The `evaluate` flags of every decoding tried on validation, by name."""
    found = {"greedy": (), f"beam {BEAM}": ("--beam-size", BEAM)}
    for weight in WEIGHTS:
        for bonus in BONUSES:
            found[f"beam {BEAM} + LM {weight} bonus {bonus}"] = (
                "--beam-size", BEAM, "--lm", lm, "--lm-weight", weight, "--word-bonus", bonus)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="Keep the runs here.")
    parser.add_argument("--skip-training", action="store_true",
                        help="Reuse WORKDIR/speech and WORKDIR/lm.")
    parser.add_argument("--output-md", type=Path)
    parser.add_argument("--config", type=Path, default=CONFIG,
                        help="The speech run's settings (to compare a variant on validation).")
    args = parser.parse_args()
    where = machine()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="speech-an4-"))
    workdir.mkdir(parents=True, exist_ok=True)
    speech, lm = workdir / "speech", workdir / "lm"
    with LoadMonitor() as load:
        if not args.skip_training:
            apps("speech", "train", "--config", args.config, "--data", AN4 / "train.csv",
                 "--output", speech, "--overwrite", "--quiet")
            apps("lm", "train", "--config", LM_CONFIG, "--data", speech / "kept.csv",
                 "--text-column", "transcript", "--output", lm, "--overwrite", "--quiet")
        metrics = json.loads((speech / "metrics.json").read_text())["valid"]
        lm_metrics = json.loads((lm / "metrics.json").read_text())["valid"]
        tried = decodings(lm)
        rows = {name: evaluate(speech, speech / "heldout.csv", *flags)
                for name, flags in tried.items()}
        chosen = min(rows, key=lambda k: (rows[k][0]["wer"], rows[k][0]["cer"]))
        test, test_seconds = evaluate(speech, AN4 / "test.csv", *tried[chosen])
        exported = apps("speech", "export", speech, "--model-base-path", workdir / "saved_models")
        rate = json.loads((speech / "audio.json").read_text())["sample_rate"]
        test_audio, audio_seconds = recorded_wavs(AN4 / "test.csv", rate)
        rtf = real_time_factor(Path(exported.stdout.split()[1]), test_audio, audio_seconds)
    kept = len((speech / "kept.csv").read_text().splitlines()) - 1
    result = {"bench": "speech_an4", "valid_utterances": metrics["utterances"],
              "train_recordings": kept, "train_seconds": metrics["train_seconds"],
              "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
              "lm_nats_per_char": lm_metrics.get("nats_per_char"), "chosen": chosen,
              "valid": {k: {"wer": r["wer"], "cer": r["cer"], "seconds": round(s, 1)}
                        for k, (r, s) in rows.items()},
              "test": {chosen: {"wer": test["wer"], "cer": test["cer"],
                                "seconds": round(test_seconds, 1)}},
              "rtf": rtf, "test_audio_seconds": round(audio_seconds, 1),
              "load": load.summary()}
    print(json.dumps(result))
    lines = [f"{where} at the start; load while running: {load.summary()}.", "",
             f"Speech run: {metrics['epochs_run']} epochs (best {metrics['best_epoch']}) in "
             f"{metrics['train_seconds']:.0f} s on {kept} recordings; LM: "
             f"{lm_metrics.get('nats_per_char')} nats/char on its held-out text.", "",
             f"| decoding (RUN/heldout.csv, {metrics['utterances']} utterances) | valid WER | "
             "valid CER | seconds |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {k}{' (chosen)' if k == chosen else ''} | {r['wer']:.2%} | {r['cer']:.2%} | "
              f"{s:.0f} |" for k, (r, s) in rows.items()]
    lines += ["", "| decoding (test.csv, once) | test WER | test CER | seconds |",
              "| --- | ---: | ---: | ---: |",
              f"| {chosen} | {test['wer']:.2%} | {test['cer']:.2%} | {test_seconds:.0f} |"]
    lines += ["", f"Real-time factor of the SavedModel's `serving_default` (its graph decoding, "
              f"batches of {rtf['batch_size']} sorted by length, warm): {rtf['rtf']:.4f} "
              f"({rtf['audio_seconds']} s of test audio in {rtf['compute_seconds']} s); the "
              f"chosen decoding's whole `evaluate` command (process start, model load, "
              f"decoding in Python when fused): {test_seconds / audio_seconds:.4f}."]
    lines += ["", f"Command: `python bench/speech_an4.py {' '.join(sys.argv[1:])}`"]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("## Speech to text (AN4)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
