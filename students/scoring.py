"""Scores of generated knowledge against references, per kind and overall.

ROUGE-L (`rouge-score`: the F-measure against the closest reference, stemmed, averaged over the
answers), BLEU (`sacrebleu`'s corpus BLEU, every reference of an answer as a reference stream),
BERTScore (`bert-score`'s F1 against the closest reference, with a model from a local path, when
one is given), the share of answers that failed (an error or an empty answer; a failed answer is
scored as an empty one, 0 in BERTScore), and distinct-n (distinct n-grams over all n-grams of the
answers, in lower-cased words). Pure functions: no database, no network. The metric packages
are imported when a score is computed: the web and worker processes that only read runs never load
them (nltk alone takes seconds to import).
"""

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

OVERALL = "overall"


@dataclass(frozen=True)
class ScoredAnswer:
    kind: str
    text: str  # "" for a failed answer
    references: tuple[str, ...]
    failed: bool = False


@dataclass(frozen=True)
class BertScoreModel:
    """A local model for BERTScore: its folder and the layer whose embeddings are compared."""

    path: str
    num_layers: int
    batch_size: int = 64


class _CachedStemmer:
    """nltk's Porter stemmer (the one rouge-score stems with), each word stemmed once: stemming
    is most of ROUGE-L's time, and answers and references repeat their words."""

    def __init__(self) -> None:
        from nltk.stem import porter

        self.stem = functools.lru_cache(maxsize=2**17)(porter.PorterStemmer().stem)


class _StemmingTokenizer:
    """rouge-score's default tokenizer with `use_stemmer=True` (a `rouge_score.tokenizers.Tokenizer`
    by its one method), with the cached stemmer."""

    def __init__(self) -> None:
        from rouge_score import tokenize

        self.stemmer = _CachedStemmer()
        self._tokenize = tokenize.tokenize

    def tokenize(self, text: str) -> list[str]:
        return self._tokenize(text, self.stemmer)


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its closest reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_StemmingTokenizer())
    return [
        scorer.score_multi(list(refs), prediction)["rougeL"].fmeasure if refs else 0.0
        for prediction, refs in zip(predictions, references, strict=True)
    ]


def bleu_statistics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple:
    """The n-gram counts corpus BLEU is computed from: (matches, totals, system length, reference
    length). Answers with fewer references pad their streams with None."""
    import sacrebleu

    if not predictions:
        return [0] * 4, [0] * 4, 0, 0
    streams = max(len(refs) for refs in references)
    padded = [[refs[i] if i < len(refs) else None for refs in references] for i in range(streams)]
    result = sacrebleu.corpus_bleu(list(predictions), padded)
    return list(result.counts), list(result.totals), result.sys_len, result.ref_len


def bleu_of(statistics: tuple) -> float:
    """Corpus BLEU (0–100) from `bleu_statistics` (summed over parts of a corpus, if need be)."""
    from sacrebleu.metrics.bleu import BLEU

    counts, totals, sys_len, ref_len = statistics
    if not sys_len:
        return 0.0
    # sacrebleu's corpus_bleu smooths with "exp" by default: the same here.
    return float(BLEU.compute_bleu(counts, totals, sys_len, ref_len, smooth_method="exp").score)


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0–100), sacrebleu's defaults."""
    return bleu_of(bleu_statistics(predictions, references))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (lower-cased words); 0 without n-grams."""
    grams = [
        tuple(words[i : i + n])
        for words in (text.lower().split() for text in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def bert_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]], model: BertScoreModel
) -> list[float]:
    """BERTScore F1 of each prediction against its closest reference; 0 for an empty prediction
    (or one without a non-empty reference), which bert-score cannot encode."""
    from bert_score import score  # torch and transformers: loaded only when asked for

    scores = [0.0] * len(predictions)
    scored = [
        (i, p, [r for r in refs if r.strip()])
        for i, (p, refs) in enumerate(zip(predictions, references, strict=True))
        if p.strip() and any(r.strip() for r in refs)
    ]
    if not scored:
        return scores
    _, _, f1 = score(
        [p for _, p, _ in scored],
        [refs for _, _, refs in scored],
        model_type=model.path,
        num_layers=model.num_layers,
        batch_size=model.batch_size,
        device="cpu",
    )
    for (i, _, _), value in zip(scored, f1, strict=True):
        scores[i] = float(value)
    return scores


def _figures(
    answers: list[ScoredAnswer], rouge: list[float], bert: list[float] | None, bleu_stats: tuple
) -> dict:
    predictions = [a.text for a in answers]
    return {
        "answers": len(answers),
        "references": sum(len(a.references) for a in answers),
        "rouge_l": _mean(rouge),
        "bleu": bleu_of(bleu_stats),
        "bertscore": None if bert is None else _mean(bert),
        "failure_rate": _mean([1.0 if a.failed else 0.0 for a in answers]),
        "distinct_1": distinct_n([p for p in predictions if p], 1),
        "distinct_2": distinct_n([p for p in predictions if p], 2),
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def scores_of(answers: Sequence[ScoredAnswer], bertscore: BertScoreModel | None = None) -> dict:
    """{"overall": figures, "kinds": {kind: figures}} (see the module's docstring)."""
    answers = list(answers)
    # Per answer once; the figures of each kind and overall are means (and BLEU) over them.
    rouge = rouge_l([a.text for a in answers], [a.references for a in answers])
    bert = None
    if bertscore is not None:
        bert = bert_scores([a.text for a in answers], [a.references for a in answers], bertscore)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for index, answer in enumerate(answers):
        by_kind[answer.kind].append(index)
    # BLEU's n-gram counts per kind, summed for the overall figure (one pass over the corpus).
    stats = {
        kind: bleu_statistics(
            [answers[i].text for i in indexes], [answers[i].references for i in indexes]
        )
        for kind, indexes in by_kind.items()
    }
    kinds = {
        kind: _figures(
            [answers[i] for i in indexes],
            [rouge[i] for i in indexes],
            None if bert is None else [bert[i] for i in indexes],
            stats[kind],
        )
        for kind, indexes in by_kind.items()
    }
    overall_stats = (
        [sum(s[0][n] for s in stats.values()) for n in range(4)],
        [sum(s[1][n] for s in stats.values()) for n in range(4)],
        sum(s[2] for s in stats.values()),
        sum(s[3] for s in stats.values()),
    )
    return {OVERALL: _figures(answers, rouge, bert, overall_stats), "kinds": kinds}
