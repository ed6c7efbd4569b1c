"""FSDD speech benchmark: isolated and connected digits, the keras.io CTC recipe as a peer,
and the real-time factor of batched SavedModel transcription.

Everything the recogniser sees comes from the app's own options, so the commands below
reproduce it without this script:

    apps speech train --config bench/configs/speech_fsdd.yaml --data FSDD/train.csv
    apps speech evaluate RUN --data FSDD/test.csv
    apps speech evaluate RUN --data FSDD/test.csv --join-recordings 1000 --join-min 3 \
        --join-max 7 --join-seed 2026

Training holds 10 % of train.csv out for validation (it picks the best epoch; test.csv
never does) and joins connected sequences from the training recordings every pass
(`join_recordings` in the config); the second evaluation scores 1,000 connected-digit
sequences of 3-7 test recordings. The real-time factor is the SavedModel's on those
sequences. The peer (`--peer`) cannot join recordings itself: it trains on manifests that
bench/speech_data.py writes (the same held-out split, 1,200 sequences joined once) for
the same wall time.

    python bench/speech_fsdd.py [--output-md docs/bench_sections/speech.md] [--peer]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, LoadMonitor, apps, machine
from speech_data import prepare

FSDD = SHARED / "speech" / "fsdd"
CONNECTED = ("--join-recordings", "1000", "--join-min", "3", "--join-max", "7",
             "--join-seed", "2026")
CONFIG = ROOT / "bench" / "configs" / "speech_fsdd.yaml"
PEER = ROOT / "bench" / "peers" / "keras_ctc_recipe.py"


def connected_wavs(manifest: Path) -> tuple[list[bytes], float]:
    """The connected-digit test sequences (the app's draw for CONNECTED) as WAV bytes,
    and their seconds of audio."""
    sys.path.insert(0, str(ROOT))
    from apps.speech import joining
    from apps.speech.task import TASK
    from pipelines.audio import AudioInputter, wav_bytes

    examples = TASK.read_evaluation_data(str(manifest))
    options = dict(zip(CONNECTED[::2], CONNECTED[1::2]))
    sequences = joining.joined(examples, int(options["--join-recordings"]),
                               int(options["--join-min"]), int(options["--join-max"]),
                               [int(options["--join-seed"]), 2])
    audio = AudioInputter(8000)
    waves = [audio.read(joined) for joined in sequences["audio"]]
    return [wav_bytes(w, 8000) for w in waves], sum(len(w) for w in waves) / 8000


def recorded_wavs(manifest: Path, sample_rate: int) -> tuple[list[bytes], float]:
    """A manifest's recordings (any format the app reads) as WAV bytes at the model's
    rate, as a client would send them, and their seconds of audio."""
    sys.path.insert(0, str(ROOT))
    from apps.speech.task import TASK
    from pipelines.audio import AudioInputter, wav_bytes

    audio = AudioInputter(sample_rate)
    waves = [audio.read(path) for path in TASK.read_evaluation_data(str(manifest))["audio"]]
    return [wav_bytes(w, sample_rate) for w in waves], sum(len(w) for w in waves) / sample_rate


def real_time_factor(saved_model: Path, audio: list[bytes], seconds: float,
                     batch_size: int = 64) -> dict:
    """Seconds of computation per second of audio, batched by length, warm model."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
    batches = [tf.constant([audio[i] for i in order[s : s + batch_size]])
               for s in range(0, len(order), batch_size)]
    serve(audio=batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        serve(audio=batch)["transcript"].numpy()
    spent = time.perf_counter() - start
    return {"audio_seconds": round(seconds, 1), "compute_seconds": round(spent, 2),
            "rtf": spent / seconds, "batch_size": batch_size}


def reach_time(history: Path, target: float) -> float | None:
    """Training seconds until the validation WER first reached `target`."""
    spent = 0.0
    for row in csv.DictReader(history.open()):
        spent += float(row["seconds"])
        if float(row["val_wer"]) <= target:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--workdir", type=Path, help="Keep the runs (and peer data) here.")
    parser.add_argument("--peer", action="store_true",
                        help="Also train the keras.io recipe for the same time.")
    parser.add_argument("--output-md", type=Path)
    args = parser.parse_args()
    where = machine()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="speech-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = workdir / "run"
    test = FSDD / "test.csv"
    with LoadMonitor() as load:
        start = time.perf_counter()
        apps("speech", "train", "--config", args.config, "--data", FSDD / "train.csv",
             "--output", run, "--overwrite", "--quiet")
        train_wall = time.perf_counter() - start
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())["valid"]
        scores = {name: json.loads(apps("speech", "evaluate", run, "--data", test, "--json",
                                        "--batch-size", "64", *extra).stdout)
                  for name, extra in (("test", ()), ("connected", CONNECTED))}
        exported = apps("speech", "export", run, "--model-base-path", workdir / "saved_models")
        saved_model = Path(exported.stdout.split()[1])
        rtf = real_time_factor(saved_model, *connected_wavs(test))
        peer = None
        if args.peer:
            data = prepare(FSDD, workdir / "peer", config["join_recordings"])
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            done = subprocess.run(
                [sys.executable, str(PEER), "--train", str(data["train"]), "--valid",
                 str(data["valid"]), "--test", str(data["test"]), "--connected",
                 str(data["connected"]), "--seconds", str(metrics["train_seconds"])],
                capture_output=True, text=True, env=env)
            if done.returncode:
                sys.exit(f"peer failed:\n{done.stderr[-3000:]}")
            peer = json.loads(done.stdout.strip().splitlines()[-1])
    history = run / "history.csv"
    rows = list(csv.DictReader(history.open()))
    result = {
        "bench": "speech_fsdd", "train_wall_seconds": round(train_wall, 1),
        "train_seconds": metrics["train_seconds"], "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"], "valid_wer": metrics["wer"],
        "test_wer": scores["test"]["wer"], "test_cer": scores["test"]["cer"],
        "connected_wer": scores["connected"]["wer"], "connected_cer": scores["connected"]["cer"],
        **{f"rtf_{k}": v for k, v in rtf.items()}, "load": load.summary(),
    }
    if peer:
        final = peer["curve"][-1]["val_wer"] if peer["curve"] else 1.0
        result.update(peer=peer, time_to_peer_final_wer=reach_time(history, final))
    print(json.dumps(result))
    lines = [
        f"Config `{os.path.relpath(args.config, ROOT)}`; {where} at the start; load while "
        f"running: {load.summary()}.",
        "",
        "Training data: FSDD's train.csv less a seeded 10 %, plus "
        f"{config['join_recordings']} connected sequences of {config['join_min']}-"
        f"{config['join_max']} of its recordings joined with 100-300 ms of silence, drawn "
        "anew every pass; validation (picks the epoch): the held-out recordings plus "
        f"sequences joined from them in proportion ({metrics['utterances']} utterances). "
        "test.csv is never seen before the end.",
        "",
        "| measure | apps speech | target |",
        "| --- | --- | --- |",
        f"| training time (s, `train` command wall) | {train_wall:.0f} "
        f"({metrics['epochs_run']} epochs, best {metrics['best_epoch']}) | <= 600 |",
        f"| test WER, isolated digits (test.csv, 250) | {scores['test']['wer']:.2%} | "
        "<= 1.5 % |",
        f"| connected-digit WER (1,000 sequences of 3-7 test recordings) | "
        f"{scores['connected']['wer']:.2%} | <= 5 % |",
        f"| real-time factor, SavedModel, batches of {rtf['batch_size']} | {rtf['rtf']:.4f} "
        f"({rtf['audio_seconds']} s of audio in {rtf['compute_seconds']} s) | <= 0.01 |",
    ]
    if peer:
        reach = result["time_to_peer_final_wer"]
        lines += [
            "",
            f"Peer (`bench/peers/keras_ctc_recipe.py`, the keras.io CTC recipe's shape) on the "
            f"same manifests for the same training time ({peer['train_seconds']} s, "
            f"{peer['epochs']} epochs): validation WER {final:.2%}, test WER "
            f"{peer['test_wer']:.2%}, connected WER {peer['connected_wer']:.2%}. "
            f"apps speech reached the peer's final validation WER after "
            + (f"{reach:.0f} s of training ({reach / peer['train_seconds']:.2f}x the peer's "
               "time; target <= 0.5x)." if reach is not None else "never (target missed)."),
        ]
    lines += ["", "Validation WER by epoch (apps speech): " + ", ".join(
        f"{float(r['val_wer']):.3f}" for r in rows) + ".", "",
        f"Command: `python bench/speech_fsdd.py {' '.join(sys.argv[1:])}`"]
    print("\n".join(lines))
    if args.output_md:
        args.output_md.parent.mkdir(parents=True, exist_ok=True)
        args.output_md.write_text("## Speech to text (FSDD)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
