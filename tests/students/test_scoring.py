"""students.scoring: its fast paths give the libraries' own figures."""

import sacrebleu
from rouge_score import rouge_scorer

from students.scoring import ScoredAnswer, distinct_n, rouge_l, scores_of

ANSWERS = [
    ScoredAnswer(
        "xWant",
        "After posting this, the user wants to go running",
        ("the user wanted to run", "the user wants rest"),
    ),
    ScoredAnswer("xWant", "the user wants to sleep", ("the user is sleeping",)),
    ScoredAnswer(
        "open",
        "The user posts this because the weather is lovely",
        ("because of the lovely weathers", "a sunny day", "the user loves weather"),
    ),
    ScoredAnswer("open", "", ("because",), failed=True),
]


def test_rouge_l_with_the_cached_stemmer_equals_rouge_score_with_its_own():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [scorer.score_multi(list(a.references), a.text)["rougeL"].fmeasure for a in ANSWERS]
    assert rouge_l([a.text for a in ANSWERS], [a.references for a in ANSWERS]) == expected


def test_overall_bleu_from_the_kinds_counts_equals_sacrebleu_on_the_whole_corpus():
    scores = scores_of(ANSWERS)
    refs = [[a.references[i] if i < len(a.references) else None for a in ANSWERS] for i in range(3)]
    whole = sacrebleu.corpus_bleu([a.text for a in ANSWERS], refs).score
    assert scores["overall"]["bleu"] == whole
    xwant = [a for a in ANSWERS if a.kind == "xWant"]
    refs = [[a.references[i] if i < len(a.references) else None for a in xwant] for i in range(2)]
    assert (
        scores["kinds"]["xWant"]["bleu"]
        == sacrebleu.corpus_bleu([a.text for a in xwant], refs).score
    )


def test_failures_and_distinct_n():
    scores = scores_of(ANSWERS)
    assert (
        scores["overall"]["failure_rate"] == 0.25 and scores["kinds"]["open"]["failure_rate"] == 0.5
    )
    assert distinct_n(["a b a b", "a b"], 2) == len({("a", "b"), ("b", "a")}) / 4
    assert distinct_n([], 1) == 0.0 and scores_of([])["overall"]["answers"] == 0
