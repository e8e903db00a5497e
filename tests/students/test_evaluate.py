"""`evaluate`: an endpoint answers a split's posts in the sft-chat format, scored against the
accepted items; scores checked against an independent computation on a small fixed case."""

import io
import json
import math
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from students.models import EvaluationRun
from tests.factories import fake_endpoint
from tests.students.data import ANSWERS


def lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased words (the references here need no stemming)."""
    p, r = prediction.lower().split(), reference.lower().split()
    common = lcs(p, r)
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def bleu(predictions: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU-4 with brevity penalty, the closest reference length, no smoothing."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for prediction, refs in zip(predictions, references, strict=True):
        words = prediction.split()
        hyp_len += len(words)
        ref_len += min((abs(len(r.split()) - len(words)), len(r.split())) for r in refs)[1]
        for n in range(1, 5):
            grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
            most = Counter()
            for ref in refs:
                r = ref.split()
                most |= Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(count, most[g]) for g, count in grams.items())
            totals[n - 1] += max(0, len(words) - n + 1)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * penalty * math.exp(log_precision)


def evaluate(*args: str) -> str:
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_scores_equal_an_independent_computation(campaign, server):
    fake_endpoint(server, name="teacher")
    answer = json.loads(
        evaluate("--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--json")
    )
    run = EvaluationRun.objects.get(pk=answer["run"])
    items = campaign.items
    # Accepted references on the test posts: xWant of both, xIntent of post 2, open of both.
    cases = {
        "xWant": [(ANSWERS["xWant"], [items[6].text]), (ANSWERS["xWant"], [items[9].text])],
        "xIntent": [(ANSWERS["xIntent"], [items[7].text])],
        "open": [("", [items[8].text]), ("", [items[11].text])],
    }
    kinds = run.scores["kinds"]
    assert set(kinds) == set(cases)
    for kind, pairs in cases.items():
        figures = kinds[kind]
        assert figures["answers"] == len(pairs)
        expected_rouge = sum(rouge_l(p, refs[0]) for p, refs in pairs) / len(pairs)
        assert figures["rouge_l"] == pytest.approx(expected_rouge)
        if kind != "open":
            assert figures["bleu"] == pytest.approx(
                bleu([p for p, _ in pairs], [refs for _, refs in pairs])
            )
    assert kinds["open"]["failure_rate"] == 1.0 and kinds["xWant"]["failure_rate"] == 0.0
    overall = run.scores["overall"]
    assert overall["failure_rate"] == pytest.approx(2 / 5)
    # distinct-n over the three non-empty answers (two of them the same xWant sentence).
    words = [ANSWERS["xWant"].split()] * 2 + [ANSWERS["xIntent"].split()]
    unigrams = [w for ws in words for w in ws]
    assert overall["distinct_1"] == pytest.approx(len(set(unigrams)) / len(unigrams))
    assert run.prompt_tokens > 0 and run.completion_tokens > 0
    assert [a["post"] for a in run.answers] == sorted(a["post"] for a in run.answers)
    assert run.manifest["references"] == {
        "campaign": "c", "accept_min_mean": {"plausibility": 4.0},
        "posts": 2, "questions": 5, "items": 5,
    }  # fmt: skip
    assert run.status == "done" and run.endpoint_name == "teacher"


def test_the_prompt_is_the_sft_chat_record_without_its_answer(campaign, server, tmp_path):
    seen = []
    server.answers = lambda stage, body: seen.append(body["messages"]) or "an answer"
    fake_endpoint(server, name="teacher")
    evaluate("--dataset", "c-data", "--split", "test", "--endpoint", "teacher")
    output = tmp_path / "train.jsonl"
    call_command(
        "export_dataset", "--campaign", "c", "--format", "sft-chat", "--output", str(output),
        "--split", "test", "--force-split", "--min-ratings", "0", "--no-progress",
        stdout=io.StringIO(),
    )  # fmt: skip
    exported = [json.loads(line)["messages"][:2] for line in output.read_text().splitlines()]
    assert all(messages in exported for messages in seen) and len(seen) == 5


def test_a_tiny_bertscore_model_scores_as_computed_by_hand(campaign, server, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoTokenizer

    path = tiny_bert(tmp_path / "bert")
    fake_endpoint(server, name="teacher")
    run = EvaluationRun.objects.get(
        pk=json.loads(
            evaluate(
                "--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--json",
                "--bertscore-model", str(path), "--bertscore-layers", "2",
            )
        )["run"]
    )  # fmt: skip
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)

    def embed(text: str):
        encoded = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            states = model(**encoded, output_hidden_states=True).hidden_states[2][0]
        return states / states.norm(dim=-1, keepdim=True)

    def f1(candidate: str, reference: str) -> float:
        # Every token is matched, [CLS] and [SEP] too, but they weigh nothing in the means.
        similarity = embed(candidate) @ embed(reference).T
        precision = similarity.max(dim=1).values[1:-1].mean()
        recall = similarity.max(dim=0).values[1:-1].mean()
        return float(2 * precision * recall / (precision + recall))

    items = campaign.items
    expected = (f1(ANSWERS["xWant"], items[6].text) + f1(ANSWERS["xWant"], items[9].text)) / 2
    assert run.scores["kinds"]["xWant"]["bertscore"] == pytest.approx(expected, abs=1e-4)
    assert run.manifest["metrics"]["bertscore"] == {"model_path": str(path), "num_layers": 2}


def tiny_bert(root: Path) -> Path:
    """A randomly initialised two-layer BERT with a vocabulary of the test's words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({w for text in [*ANSWERS.values(), *TEST_WORDS] for w in text.split()})
    root.mkdir(parents=True)
    (root / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    )
    BertTokenizer(str(root / "vocab.txt"), model_max_length=64).save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(root)
    return root


TEST_WORDS = [
    "after posting this tweet the user wants to go home now sleep",
    "the user posts this because the user is sad happy",
]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope", "--split", "test", "--endpoint", "teacher"], "no dataset named"),
        (["--dataset", "c-data", "--split", "test", "--endpoint", "nope"], "no endpoint named"),
        (
            ["--dataset", "c-data", "--split", "valid", "--endpoint", "teacher"],
            "has no split 'valid'",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--campaign", "x"],
            "has no campaign 'x'",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--accept",
             "fun=3"],
            "has no question fun",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--accept", "p"],
            "--accept: acceptance bounds are QUESTION=NUMBER",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--accept",
             "plausibility=6"],
            "no accepted items",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--price", "1"],
            "--price wants IN,OUT",
        ),
        (
            ["--dataset", "c-data", "--split", "test", "--endpoint", "teacher",
             "--bertscore-model", "/no/such/model"],
            "not a model folder",
        ),
    ],
)  # fmt: skip
def test_broken_input_is_refused_and_nothing_is_stored(campaign, server, args, message):
    fake_endpoint(server, name="teacher")
    with pytest.raises(CommandError, match=message):
        evaluate(*args)
    assert not EvaluationRun.objects.exists()
    assert server.requests == 0


def test_cost_from_prices(campaign, server):
    fake_endpoint(server, name="teacher")
    evaluate("--dataset", "c-data", "--split", "test", "--endpoint", "teacher", "--price", "2,10")
    run = EvaluationRun.objects.get()
    assert run.cost == pytest.approx((run.prompt_tokens * 2 + run.completion_tokens * 10) / 1e6)
