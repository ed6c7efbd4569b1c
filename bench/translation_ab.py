"""Two translation SavedModels' decoding, A/B in one process, by CPU time.

On a shared machine wall-clock speeds drift with the load within minutes; the CPU time
a process spends on the same work drifts far less. This loads two exports (say, the
same run exported before and after a change to the search), pins TensorFlow to one
thread, and decodes the same batches with each in turns, `--rounds` times: greedy
through `translate` (beam 1, max_length 48) and beam search through
`serving_default` (the export's beam size), as `translate_multi30k.py --decode-only`
times them. It reports the median CPU seconds (`time.process_time`) per pass over the
sentences, OLD / NEW, and whether the two gave the same translations and scores
(else both BLEU).

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONPATH=. \
        .venv/bin/python bench/translation_ab.py OLD_VERSION NEW_VERSION \
        [--sources test_2016_flickr.de --references test_2016_flickr.en] [--rounds 3]

OLD_VERSION / NEW_VERSION: SavedModel version folders (`.../translation/1`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import SHARED, machine  # noqa: E402

TEST = SHARED / "translate" / "multi30k" / "test_2016_flickr"


def batches_by_length(sources: list[str], size: int) -> tuple[list[int], list[list[str]]]:
    """The file order sorted by source word count (stable) and its batches."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i].split()))
    return order, [[sources[j] for j in order[i : i + size]]
                   for i in range(0, len(order), size)]


def decoders(version: Path, max_length: int) -> dict:
    """{kind: batch of texts -> (translations, scores)} of one SavedModel."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - registers the tokenizer ops

    loaded = tf.saved_model.load(str(version))
    greedy, beam = loaded.signatures["translate"], loaded.signatures["serving_default"]

    def answer(out):
        return ([t.decode("utf-8") for t in out["translation"].numpy()],
                out["score"].numpy().tolist())

    return {"greedy": lambda texts: answer(greedy(text=tf.constant(texts),
                                                  beam_size=tf.constant(1),
                                                  max_length=tf.constant(max_length))),
            "beam": lambda texts: answer(beam(text=tf.constant(texts)))}


def one_pass(decode, batches) -> tuple[float, list[str], list[float]]:
    """CPU seconds of decoding every batch, and the outputs in batch order."""
    translations, scores = [], []
    start = time.process_time()
    for batch in batches:
        found, score = decode(batch)
        translations += found
        scores += score
    return time.process_time() - start, translations, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--sources", type=Path, default=TEST.with_suffix(".de"))
    parser.add_argument("--references", type=Path, default=TEST.with_suffix(".en"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="greedy,beam",
                        help="greedy (`translate`, beam 1), beam (`serving_default`).")
    args = parser.parse_args()
    import sacrebleu
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sources = args.sources.read_text(encoding="utf-8").splitlines()
    references = args.references.read_text(encoding="utf-8").splitlines()
    order, batches = batches_by_length(sources, args.batch_size)
    kinds = args.kinds.split(",")
    models = {"old": decoders(args.old, args.max_length),
              "new": decoders(args.new, args.max_length)}
    print(f"{machine()} at the start; {len(sources)} sentences in batches of "
          f"{args.batch_size} sorted by length; one TensorFlow thread", flush=True)
    seconds: dict = {}
    outputs: dict = {}
    for round_ in range(args.rounds):
        for kind in kinds:
            for name in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
                decode = models[name][kind]
                decode(batches[0])  # warm-up: the first call builds what it caches
                spent, found, scores = one_pass(decode, batches)
                seconds.setdefault((name, kind), []).append(spent)
                outputs[name, kind] = (found, scores)
                print(f"round {round_ + 1} {kind} {name}: {spent:.2f} CPU s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("\n| search | OLD CPU s | NEW CPU s | OLD / NEW | same output | BLEU OLD / NEW |\n"
          "| --- | ---: | ---: | ---: | --- | --- |")
    for kind in kinds:
        old, new = (statistics.median(seconds[name, kind]) for name in ("old", "new"))
        same_text = outputs["old", kind][0] == outputs["new", kind][0]
        same_scores = outputs["old", kind][1] == outputs["new", kind][1]
        bleu = []
        for name in ("old", "new"):
            hypotheses = [""] * len(sources)
            for position, text in zip(order, outputs[name, kind][0]):
                hypotheses[position] = text
            bleu.append(sacrebleu.corpus_bleu(hypotheses, [references]).score)
        same = "yes" if same_text and same_scores else \
            "texts, not scores" if same_text else "no"
        print(f"| {kind} | {old:.2f} | {new:.2f} | {old / new:.3f} | {same} | "
              f"{bleu[0]:.2f} / {bleu[1]:.2f} |")
    print(f"\nload at the end {os.getloadavg()[0]:.1f}; every round's CPU s above")


if __name__ == "__main__":
    main()
