"""Scoring of an evaluation run at scale: ROUGE-L and BLEU of 10,000 generated items against
their references; prints wall and CPU time.

Builds, from a fixed seed, 10,000 answers over MIKO's ten kinds, each a sentence of 12–30 words
that starts the way its kind's answers start, with three references each (the same start, then a
varying share of the answer's words and of words of the real MIKO sample outputs, as generated
and accepted sentences overlap). Then it scores them as `evaluate` does
(`students.scoring.scores_of`: ROUGE-L of every answer, BLEU of every kind and overall, failure
rate and distinct-n; no BERTScore, which needs a model) and prints the time. No database.

Target: ≤ 60 s on 2 cores. Run:

    .venv/bin/python benchmarks/bench_evaluation_runs.py [--items 10000] [--references 3]

`--generation` measures instead the student's generation as `evaluate` asks a `transformers`
endpoint (`students.answering.answers_generate`: `sft-chat` prompts, greedy, 96 new tokens), with
the tiny random Llama of `tests/generation/tiny_models.py` built in a temporary folder: tokens per
second batched (16 a generate call) and one at a time. It measures the batching, not a real
model's speed; `--model PATH` measures a real model folder instead, `--device cuda` on a GPU.

    .venv/bin/python benchmarks/bench_evaluation_runs.py --generation [--prompts 64]
"""

import argparse
import json
import os
import random
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STARTS = {
    "xWant": "After posting this Tweet, the user wants to",
    "oEffect": "After viewing this Tweet, others will",
    "xAttr": "The user posts this Tweet because the user is",
    "xIntent": "The user posts this Tweet because the user intended to",
    "xReact": "After posting this Tweet, the user feels",
    "oReact": "After viewing this Tweet, others feel",
    "oWant": "After viewing this Tweet, others want to",
    "xEffect": "After posting this Tweet, the user will",
    "xNeed": "Before posting this Tweet, the user needs to",
    "open": "The user post this tweet because",
}


def vocabulary() -> list[str]:
    words: list[str] = []
    path = ROOT / "sample_data" / "miko" / "pipeline_outputs_sample.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        words += re.findall(r"[a-z']+", str(record.get("intention", "")).lower())
    return sorted(set(words))


def build(items: int, references: int, seed: int):
    from students.scoring import ScoredAnswer

    rng = random.Random(seed)
    words = vocabulary()
    kinds = list(STARTS)
    answers = []
    for n in range(items):
        kind = kinds[n % len(kinds)]
        body = [rng.choice(words) for _ in range(rng.randint(12, 30))]
        refs = []
        for _ in range(references):
            keep = rng.random()
            ref = [w if rng.random() < keep else rng.choice(words) for w in body]
            refs.append(f"{STARTS[kind]} {' '.join(ref)}.")
        failed = rng.random() < 0.01
        text = "" if failed else f"{STARTS[kind]} {' '.join(body)}."
        answers.append(ScoredAnswer(kind, text, tuple(refs), failed))
    return answers


def generation(prompts: int, model_path: str | None, device: str) -> None:
    """Tokens per second of the student's answers through the transformers backend."""
    import tempfile

    import django

    django.setup()
    from evaluation.exports.export import post_prompt
    from evaluation.exports.training import chat_prompt
    from generation.models import Endpoint
    from students.answering import Prompt, answers_generate
    from students.evaluating import DEFAULT_PARAMETERS

    texts = [
        json.loads(line)["text"]
        for line in (ROOT / "sample_data/miko/pipeline_outputs_sample.jsonl")
        .read_text()
        .split("\n")
        if line
    ]
    kinds = list(STARTS)
    questions = [
        Prompt(str(n), n, kinds[n % len(kinds)],
               chat_prompt(post_prompt(texts[n % len(texts)], ""), kinds[n % len(kinds)]), ())
        for n in range(prompts)
    ]  # fmt: skip
    parameters = DEFAULT_PARAMETERS["direct"]
    with tempfile.TemporaryDirectory() as folder:
        if model_path is None:
            from tests.generation.tiny_models import build_tiny_models

            model_path = str(build_tiny_models(Path(folder)) / "llama")
        for batch_size in (16, 1):
            endpoint = Endpoint(
                name="bench", backend=Endpoint.Backend.TRANSFORMERS, model="bench",
                model_path=model_path, parameters={"batch_size": batch_size, "device": device},
            )  # fmt: skip
            answers_generate(  # loads the model once, outside the timing
                endpoint=endpoint, questions=questions[:1], parameters=parameters, progress=None
            )
            wall = time.perf_counter()
            answers = answers_generate(
                endpoint=endpoint, questions=questions, parameters=parameters, progress=None
            )
            wall = time.perf_counter() - wall
            failed = [a for a in answers if not hasattr(a, "completion_tokens")]
            tokens = sum(a.completion_tokens for a in answers if a not in failed)
            print(
                f"batch size {batch_size:>2}: {len(answers)} answers, {tokens:,} tokens in "
                f"{wall:.1f} s: {tokens / wall:,.0f} tokens/s"
                + (f" ({len(failed)} failed: {failed[0]})" if failed else "")
            )
    print(f"device {device}, load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--generation", action="store_true", help="measure the student's generation instead"
    )
    parser.add_argument("--prompts", type=int, default=64, help="with --generation")
    parser.add_argument("--model", help="with --generation: a model folder (default: tiny)")
    parser.add_argument("--device", default="cpu", help="with --generation: cpu or cuda")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if args.generation:
        generation(args.prompts, args.model, args.device)
        return
    from students.scoring import scores_of

    answers = build(args.items, args.references, args.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    scores = scores_of(answers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    overall = scores["overall"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"scored {len(answers):,} answers against {overall['references']:,} references "
        f"({len(scores['kinds'])} kinds): wall {wall:.1f} s, CPU {cpu:.1f} s, "
        f"{len(answers) / wall:,.0f} answers/s, peak RSS {peak:.0f} MiB"
    )
    print(
        f"overall ROUGE-L {overall['rouge_l']:.4f}, BLEU {overall['bleu']:.2f}, "
        f"failures {overall['failure_rate']:.2%}, distinct-2 {overall['distinct_2']:.3f}"
    )
    print(f"target ≤ 60 s: {'met' if wall <= 60 else 'NOT met'}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
