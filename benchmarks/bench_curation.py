"""Curation at scale (issue 15): LLM judges and critics, each a `--part` of this script.

    .venv/bin/python benchmarks/bench_curation.py --part critic [--items 1372870] [--rated 50000]
    .venv/bin/python benchmarks/bench_curation.py --part judge [--posts 300] [--latency 0.2]

`--part critic` is `curation_critic.py` (its docstring says what it measures).

`--part judge`: a judge run keeps >= 0.9 of the efficiency the generation runner reaches in the
same run. Against the fake OpenAI-compatible server (in its own process, `latency` per call,
concurrency 64), a MIKO batch of `posts` posts (3 calls a post) runs first, persisted into a
PostgreSQL database of its own (created and dropped here); then a judge rates three of each post's
items on one question (3 calls a post, the same number of calls). Each runs `--repeat` times,
alternating, every run with a seed of its own so that nothing comes from the cache. Efficiency =
(calls x latency / concurrency) / wall, as `bench_generation.py` prints it; the best run of each
is compared.

Each part is a function in `PARTS`; a part sets up what it needs and prints its own figures.
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import curation_critic  # noqa: E402
from benchmarks.bench_generation import (  # noqa: E402
    FakeServerProcess,
    create_database,
    drop_database,
    make_dataset,
    report,
    run_distillery,
    setup_django,
)

DB_NAME = "distillery_bench_curation"
JUDGED_KINDS = ["xIntent", "xWant", "open"]


def run_judge_once(campaign, endpoint, seed: int) -> tuple[float, object]:
    from judges.runner import judge_run_execute
    from judges.services import judge_run_create

    run = judge_run_create(
        campaign=campaign,
        endpoint=endpoint,
        questions=["plausibility"],
        parameters={"seed": seed},
        enqueue=False,
    )
    wall = time.perf_counter()
    run = judge_run_execute(run_id=run.pk)
    return time.perf_counter() - wall, run


def part_judge(args: argparse.Namespace) -> None:
    create_database(DB_NAME)
    media_root = tempfile.mkdtemp(prefix="bench-curation-")
    server = FakeServerProcess(latency=args.latency)
    try:
        # The fake server listens on 127.0.0.1.
        os.environ["DISTILLERY_ALLOW_PRIVATE_ENDPOINTS"] = "true"
        setup_django(media_root, DB_NAME)
        from annotation.services import QuestionSpec, campaign_create
        from generation.services.endpoints import endpoint_create

        dataset = make_dataset("bench", args.posts, media_root)
        endpoint = endpoint_create(
            name="fake",
            backend="openai",
            base_url=server.base_url,
            model="fake-model",
            concurrency=args.concurrency,
        )
        calls = 3 * args.posts
        print(
            f"{args.posts} posts: generation {calls} calls (3 MIKO stages), judge {calls} calls "
            f"({len(JUDGED_KINDS)} items a post, one question); latency "
            f"{args.latency * 1000:.0f} ms, concurrency {args.concurrency}; "
            f"{os.cpu_count()} CPUs (shared)"
        )
        gen_walls, judge_walls, campaign = [], [], None
        for seed in range(1, args.repeat + 1):
            wall, _, batch = run_distillery(dataset, endpoint, seed=seed)
            assert batch.status == "done" and batch.calls == calls, batch.error
            gen_walls.append(wall)
            if campaign is None:
                campaign = campaign_create(
                    name="bench",
                    dataset=dataset,
                    batches=[batch],
                    kinds=JUDGED_KINDS,
                    questions=[QuestionSpec("plausibility", "Could this be why the user posted?")],
                    with_tasks=False,
                )
            wall, run = run_judge_once(campaign, endpoint, seed=seed)
            assert run.status == "done" and run.calls == calls and not run.ratings_cached, (
                run.status,
                run.calls,
                run.error,
            )
            judge_walls.append(wall)
        print("runs (s): generation " + ", ".join(f"{w:.2f}" for w in gen_walls))
        print("          judge      " + ", ".join(f"{w:.2f}" for w in judge_walls))
        gen_rate = report(
            "generation runner (best)", calls, min(gen_walls), args.latency, args.concurrency
        )
        judge_rate = report(
            "judge run (best)", calls, min(judge_walls), args.latency, args.concurrency
        )
        print(
            f"judge efficiency / generation efficiency: {judge_rate / gen_rate:.3f} (target >= 0.9)"
        )
    finally:
        server.close()
        from django.db import connections

        connections.close_all()
        if not args.keep_database:
            drop_database(DB_NAME)


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "critic": curation_critic.part_critic,
    "judge": part_judge,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    curation_critic.add_arguments(parser)  # --items, --rated, --seed (the critic part)
    parser.add_argument("--posts", type=int, default=300, help="posts of the judge part")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if args.rated > args.items:
        sys.exit("--rated cannot exceed --items")
    PARTS[args.part](args)


if __name__ == "__main__":
    main()
