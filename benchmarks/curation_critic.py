"""The critic part of the curation benchmark (issue 15): train the default critic on 50,000 rated
items (target <= 60 s) and score the 1,372,870 items of a MIKO-scale dataset (target <= 120 s,
<= 2 GB), on PostgreSQL; prints wall times, peak memory and the critic's held-out figures.

Builds a synthetic dataset from a fixed seed in its own database (`distillery_bench_critic`,
created here and dropped at the end) with COPY: `--items` items, ten a post (MIKO's kinds), each
post with an image description; three annotators (of 30) rate every item of the first
`--rated` items' posts on plausibility, high when the item's sentence holds one of a few "good"
words, low otherwise, with noise. Then, each as a child process so its peak resident memory is its
own (`bench_evaluation.run_measured`):

1. `manage.py train_critic --no-score` (cross-validation by post, then the final fit);
2. `manage.py score_critic` (every item of the dataset, chunked, COPY).

    .venv/bin/python benchmarks/curation_critic.py [--items 1372870] [--rated 50000]

`bench_curation.py --part critic` runs the same.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_evaluation  # noqa: E402
from benchmarks.bench_evaluation import (  # noqa: E402
    KINDS,
    NOW,
    copy_items,
    copy_rows,
    database_url,
    describe,
    finish_load,
    run_measured,
)

BENCH_DB = "distillery_bench_critic"
MIKO_ITEMS = 1_372_870
RATED_ITEMS = 50_000
ANNOTATORS = 30
CHUNK_POSTS = 10_000
GOOD = np.array(["sunny", "celebrate", "together", "proud", "grateful"])
VOCABULARY = np.array([f"w{n}" for n in range(3000)])
STARTS = np.array(["wants to", "feels", "needs to", "intends to", "is seen as", "will"])


def sentences(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """`n` intention-like sentences of 10-14 words and whether each holds a good word."""
    words = VOCABULARY[rng.integers(0, len(VOCABULARY), (n, 12))]
    good = rng.random(n) < 0.4
    words[good, rng.integers(0, 12, good.sum())] = GOOD[rng.integers(0, len(GOOD), good.sum())]
    starts = STARTS[rng.integers(0, len(STARTS), n)]
    return [f"The user {s} {' '.join(w)}." for s, w in zip(starts, words, strict=True)], good


def load(seed: int, items: int, rated: int) -> None:
    """Dataset, batch, campaign and annotators with the ORM; posts, descriptions, items and
    ratings with COPY."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Campaign, Question
    from generation.models import Batch, Dataset

    rng = np.random.default_rng(seed)
    posts = -(-items // len(KINDS))
    rated_posts = -(-rated // len(KINDS))
    dataset = Dataset.objects.create(name="critic-bench")
    batch = Batch.objects.create(
        dataset=dataset, pipeline="miko", imported=True, status=Batch.Status.DONE
    )
    campaign = Campaign.objects.create(name="critic-bench", dataset=dataset)
    campaign.batches.add(batch)
    question = Question.objects.create(
        campaign=campaign, name="plausibility", prompt="plausible?", scale="1-5"
    )
    users = get_user_model().objects
    user_ids = np.array([users.create(username=f"rater{n:02d}").id for n in range(ANNOTATORS)])
    connection.ensure_connection()
    conn = connection.connection
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")
    post_words = VOCABULARY[rng.integers(0, len(VOCABULARY), (posts, 12))]

    def post_lines():
        for start in range(0, posts, CHUNK_POSTS):
            yield "".join(
                f"{pid}\t{dataset.id}\t{pid}\t{' '.join(post_words[pid - 1])}\t{pid}.jpg\t{{}}\t"
                f"{NOW}\n"
                for pid in range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            ).encode()

    copy_rows(cur, "generation_post", "id, dataset_id, external_id, text, image, metadata,"
              " created_at", post_lines())  # fmt: skip

    def description_lines():
        for start in range(0, posts, CHUNK_POSTS):
            yield "".join(
                f"{pid}\t{pid}\tdescribe_image\tbench-hash\tllava-bench\tp\timported\t{{}}\t"
                f"{batch.id}\tok\t{{}}\t"
                f'\t{{"description": "A photo of {post_words[pid - 1][0]} and more."}}'
                f"\t\t0\t0\t0\t1\t{NOW}\t{NOW}\n"
                for pid in range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            ).encode()

    copy_rows(cur, "generation_stageresult", "id, post_id, stage, template_hash, model,"
              " params_hash, endpoint_key, parameters, batch_id, status, request, raw_answer,"
              " parsed, error, prompt_tokens, completion_tokens, latency_ms, attempts,"
              " created_at, updated_at", description_lines())  # fmt: skip
    good_of_rated = []

    def item_lines():
        for start in range(0, posts, CHUNK_POSTS):
            ids = range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            texts, good = sentences(rng, len(ids) * len(KINDS))
            if start < rated_posts:
                good_of_rated.append(good)
            yield "".join(
                f"{(pid - 1) * 10 + k + 1}\t{pid}\t{batch.id}\t{kind}\t{k + 1}\t"
                f"{texts[n * 10 + k]}\t{pid}\t{{}}\t{NOW}\n"
                for n, pid in enumerate(ids)
                for k, kind in enumerate(KINDS)
                if (pid - 1) * 10 + k < items
            ).encode()

    copy_items(cur, item_lines())
    good = np.concatenate(good_of_rated)[: rated_posts * len(KINDS)]
    item_ids = np.arange(1, rated_posts * len(KINDS) + 1)
    keep = item_ids <= items
    item_ids, good = item_ids[keep], good[keep]
    # Three distinct annotators a post: a base and the next two.
    base = rng.integers(0, ANNOTATORS - 2, len(item_ids) // len(KINDS) + 1)
    post_of = (item_ids - 1) // len(KINDS)

    def rating_lines():
        for offset in range(3):
            flipped = rng.random(len(item_ids)) < 0.15
            high = good ^ flipped
            n = len(item_ids)
            values = np.where(high, rng.integers(4, 6, n), rng.integers(1, 3, n))
            who = user_ids[base[post_of] + offset]
            yield "".join(
                f"{campaign.id}\t{i}\t{question.id}\t{a}\t{v}\t3.0\t{NOW}\t{NOW}\n"
                for i, a, v in zip(item_ids.tolist(), who.tolist(), values.tolist(), strict=True)
            ).encode()

    finish_load(conn, cur, rating_lines())


def part_critic(args: argparse.Namespace) -> None:
    import psycopg

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    admin_url, bench_url = database_url(base, "postgres"), database_url(base, BENCH_DB)
    media = tempfile.mkdtemp(prefix="bench-critic-")
    # run_measured counts the CPU of the PostgreSQL backends serving this database.
    bench_evaluation.BENCH_DB = BENCH_DB
    env = {**os.environ, "DATABASE_URL": bench_url, "MEDIA_ROOT": media,
           "DJANGO_SETTINGS_MODULE": "config.settings"}  # fmt: skip
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT,
                       env=env, check=True)  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        started = time.perf_counter()
        load(args.seed, args.items, args.rated)
        from django.db import connections

        connections.close_all()
        print(
            f"loaded {args.items:,} items ({-(-args.items // 10):,} posts), {args.rated:,} rated "
            f"by 3 annotators, with COPY in {time.perf_counter() - started:.1f} s; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        train = run_measured(
            ["train_critic", "--campaign", "critic-bench", "--question", "plausibility",
             "--threshold", "3.5", "--name", "bench", "--no-score", "--no-progress"], env,
        )  # fmt: skip
        print(describe("train (5-fold CV by post + final fit)", train, 60, 2048))
        print("  " + train["stdout"].strip().replace("\n", "\n  "))
        score = run_measured(["score_critic", "bench", "--no-progress"], env)
        print(describe(f"score {args.items:,} items", score, 120, 2048))
        scored = re.search(r"(\d+) items scored", score["stdout"])
        print(f"  {scored.group(1) if scored else '?'} items scored")
    finally:
        if not args.keep_database:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=MIKO_ITEMS, help="items in the dataset")
    parser.add_argument("--rated", type=int, default=RATED_ITEMS, help="items people rated")
    parser.add_argument("--seed", type=int, default=20240121)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if args.rated > args.items:
        sys.exit("--rated cannot exceed --items")
    part_critic(args)


if __name__ == "__main__":
    main()
