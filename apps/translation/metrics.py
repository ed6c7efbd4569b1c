"""The scores the field reports: sacreBLEU's corpus BLEU and chrF, with their signatures.

Both read detokenized, cased text (BLEU with its own 13a tokenizer), so numbers compare
with published sacreBLEU results; the signature says exactly how they were computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sacrebleu


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of one reference per sentence."""
    return float(sacrebleu.BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def report(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """bleu, chrf, their signatures, and how many sentences were scored."""
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    refs = [list(references)]
    bleu_score = bleu_metric.corpus_score(list(hypotheses), refs)
    chrf_score = chrf_metric.corpus_score(list(hypotheses), refs)
    return {"bleu": round(float(bleu_score.score), 4),
            "chrf": round(float(chrf_score.score), 4),
            "signature": str(bleu_metric.get_signature()),
            "chrf_signature": str(chrf_metric.get_signature()),
            "sentences": len(hypotheses)}
