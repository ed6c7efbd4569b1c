"""Peer: the same BiLSTM in PyTorch over packed sequences, the second speed baseline.

- Tokens: MR is already tokenised (punctuation split off), so the text is lower-cased
  and split on whitespace; the vocabulary is the 7,998 most frequent training words
  plus padding (0) and unknown (1): 8,000 ids, the project's `--vocab-size`. With
  `--tokens pieces`, the project's default tokens instead: a SentencePiece unigram model
  of 8,000 pieces trained on the training texts (the `sentencepiece` package).
- Model: nn.Embedding(8000, 128, padding_idx=0) -> bidirectional nn.LSTM(128) over
  `pack_padded_sequence` (padded steps are never computed) -> max over the valid steps
  -> nn.Linear(256, 2).
- Training: shuffled batches of 64, each padded to its own longest text, Adam(1e-3),
  cross-entropy, 4 epochs; the best dev epoch is kept and scored on test.
- `torch.set_num_threads` gets the machine's core count.

Prints one JSON line: {"peer": "torch_packed", "wall_seconds": ..., "test_accuracy": ...,
"epoch_seconds": [...]}; `wall_seconds` runs from the first line of this script, imports
included; `epoch_seconds` times each epoch, its dev evaluation included.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import copy  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared/data/sentiment/mr"
PAD, UNK = 0, 1


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels (positive = 1) of a `text<TAB>label` file with a header."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], [int(r["label"] == "positive") for r in rows]


def build_vocabulary(texts: list[list[str]], size: int) -> dict[str, int]:
    counts = Counter(word for words in texts for word in words)
    return {word: i + 2 for i, (word, _) in enumerate(counts.most_common(size - 2))}


def encode(texts: list[list[str]], vocabulary: dict[str, int]) -> list[torch.Tensor]:
    return [torch.tensor([vocabulary.get(w, UNK) for w in words] or [UNK]) for words in texts]


def encode_pieces(train_texts: list[str], parts) -> list[list[torch.Tensor]]:
    """SentencePiece unigram ids (8,000 pieces, trained as the project trains it)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train_texts), model_writer=model, model_type="unigram",
        vocab_size=8000, hard_vocab_limit=False, pad_id=PAD, unk_id=UNK, bos_id=2, eos_id=3,
        character_coverage=0.9995, num_threads=2, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [[torch.tensor(ids or [UNK]) for ids in processor.encode(list(texts))]
            for texts in parts]


def batches(ids: list[torch.Tensor], labels: list[int], batch_size: int, shuffle: bool):
    """(padded ids [B, T], lengths [B], labels [B]), each batch padded to its longest text."""
    order = torch.randperm(len(ids)).tolist() if shuffle else range(len(ids))
    order = list(order)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        padded = nn.utils.rnn.pad_sequence([ids[i] for i in rows], batch_first=True,
                                           padding_value=PAD)
        lengths = torch.tensor([len(ids[i]) for i in rows])
        yield padded, lengths, torch.tensor([labels[i] for i in rows])


class BiLSTMClassifier(nn.Module):
    """Embedding -> packed bidirectional LSTM -> max over valid steps -> linear logits."""

    def __init__(self, vocab_size: int, embedding_dim: int = 128, units: int = 128,
                 num_classes: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embedding_dim, units, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * units, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        outputs, _ = self.lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
        return self.classifier(outputs.max(dim=1).values)


def accuracy(model: nn.Module, ids, labels, batch_size: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for padded, lengths, targets in batches(ids, labels, batch_size, shuffle=False):
            correct += int((model(padded, lengths).argmax(-1) == targets).sum())
    return correct / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with {train,dev,test}.tsv")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--tokens", choices=["words", "pieces"], default="words",
                        help="lower-cased words, or SentencePiece unigram pieces")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)

    train_x, train_y = read_tsv(args.data / "train.tsv")
    dev_x, dev_y = read_tsv(args.data / "dev.tsv")
    test_x, test_y = read_tsv(args.data / "test.tsv")
    if args.tokens == "pieces":
        train_ids, dev_ids, test_ids = encode_pieces(train_x, (train_x, dev_x, test_x))
    else:
        words = [[text.lower().split() for text in x] for x in (train_x, dev_x, test_x)]
        vocabulary = build_vocabulary(words[0], args.vocab_size)
        train_ids, dev_ids, test_ids = (encode(x, vocabulary) for x in words)

    model = BiLSTMClassifier(args.vocab_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.CrossEntropyLoss()
    best, best_epoch, best_state = -1.0, -1, None
    epoch_seconds = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        model.train()
        for padded, lengths, targets in batches(train_ids, train_y, args.batch_size, True):
            optimizer.zero_grad()
            loss_function(model(padded, lengths), targets).backward()
            optimizer.step()
        dev_accuracy = accuracy(model, dev_ids, dev_y, args.batch_size)
        epoch_seconds.append(round(time.perf_counter() - started, 3))
        if dev_accuracy > best:
            best, best_epoch, best_state = dev_accuracy, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    test_accuracy = accuracy(model, test_ids, test_y, args.batch_size)
    print(json.dumps({"peer": "torch_packed", "tokens": args.tokens,
                      "wall_seconds": round(time.perf_counter() - START, 3),
                      "test_accuracy": round(test_accuracy, 4), "best_epoch": best_epoch,
                      "train_examples": len(train_x), "epoch_seconds": epoch_seconds,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
