"""Agreement and export at MIKO's scale on PostgreSQL; prints wall times and peak memory.

Builds a synthetic campaign from a fixed seed: 137,287 posts with an image description each,
1,372,870 items (ten MIKO kinds a post), three annotators a post (of 30) rating every item on
plausibility and typicality (8,237,220 ratings), loaded with COPY into its own database
(`distillery_bench_evaluation`, created here and dropped at the end). Then it runs, each as a
child process so its peak resident memory is its own:

1. `manage.py agreement --campaign miko-bench --json` (computed: nothing cached yet), then again
   (cached: only the fingerprint query runs);
2. `manage.py export_dataset --format jsonl --min-plausibility 4 --min-typicality 3
   --min-ratings 3` of the filtered set.

Targets: agreement ≤ 10 s and ≤ 2 GB; export ≤ 60 s and ≤ 300 MB. PostgreSQL's own memory is
not counted (it is another process). Run:

    .venv/bin/python benchmarks/bench_evaluation.py [--database-url postgres://postgres@127.0.0.1:5432/postgres]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "distillery_bench_evaluation"
MIKO_POSTS = 137_287
KINDS = ["xWant", "oEffect", "xAttr", "xIntent", "xReact", "oReact", "oWant", "xEffect", "xNeed",
         "open"]  # fmt: skip
ANNOTATORS = 30
CHUNK_POSTS = 10_000
NOW = "2026-01-01 00:00:00+00"
WORDS = np.array(
    "sun beach coffee city night friends game team win lose rain happy tired love new old music "
    "show school work home dog cat food party trip photo morning weekend vote news".split()
)


def database_url(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def peak_rss_kib(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM), reset at exec, so it is the command's
    own; ru_maxrss of a forked child would carry the parent's size over."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the benchmark database (same host)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if f"{BENCH_DB} ".encode() not in cmdline.read().replace(b"\0", b" "):
                    continue
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return found


def run_measured(args: list[str], env: dict) -> dict:
    """Run a manage.py command as a child: its wall time, peak RSS (MiB), CPU seconds, the CPU
    seconds of the PostgreSQL backends it used, the machine's load, and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        before = backend_cpu_seconds()
        spent = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        peak, backends, polls = 0, dict(before), 0
        while child.poll() is None:
            peak = max(peak, peak_rss_kib(child.pid))
            if polls % 5 == 0:
                backends.update(backend_cpu_seconds())
            polls += 1
            time.sleep(0.02)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            sys.exit(f"{' '.join(args)} failed:\n{err.read()}")
        return {
            "wall": wall,
            "peak_mib": peak / 1024,
            "cpu": usage.ru_utime + usage.ru_stime - spent.ru_utime - spent.ru_stime,
            "db_cpu": sum(cpu - before.get(pid, 0.0) for pid, cpu in backends.items()),
            "load": os.getloadavg()[0],
            "stdout": out.read(),
        }


def describe(name: str, run: dict, wall_target: float, mib_target: float) -> str:
    verdict = "ok" if run["wall"] <= wall_target and run["peak_mib"] <= mib_target else "OVER"
    return (
        f"{name}: {run['wall']:.2f} s wall [target {wall_target:.0f} s: {verdict}], "
        f"{run['peak_mib']:.0f} MiB peak RSS [target {mib_target:.0f} MiB]; CPU {run['cpu']:.2f} s "
        f"in the command + {run['db_cpu']:.2f} s in PostgreSQL; load average {run['load']:.1f}"
    )


def copy_rows(cursor, table: str, columns: str, lines) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for block in lines:
            copy.write(block)


def finish_load(conn, cur, rating_lines) -> None:
    """The ratings from COPY lines, the sequences moved past the ids the load chose, committed
    and vacuumed: the database as a run of the benchmark finds it."""
    copy_rows(cur, "annotation_rating", "campaign_id, item_id, question_id, annotator_id, value,"
              " seconds, created_at, updated_at", rating_lines)  # fmt: skip
    for table in ("generation_post", "generation_knowledgeitem", "generation_stageresult"):
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}")
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")


def copy_items(cur, lines) -> None:
    """Knowledge items from COPY lines (id, post, batch, kind, position, text, description
    result, provenance, created at), each linked to its own batch as imports link theirs."""
    copy_rows(cur, "generation_knowledgeitem", "id, post_id, batch_id, kind, position, text,"
              " description_result_id, provenance, created_at", lines)  # fmt: skip
    cur.execute(
        "INSERT INTO generation_batchitem (batch_id, item_id) "
        "SELECT batch_id, id FROM generation_knowledgeitem"
    )


def load(seed: int, posts: int) -> dict:
    """Dataset, batch, campaign, questions and annotators with the ORM; the bulk with COPY."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Campaign, Question
    from generation.models import Batch, Dataset

    rng = np.random.default_rng(seed)
    dataset = Dataset.objects.create(name="miko-bench")
    batch = Batch.objects.create(
        dataset=dataset, pipeline="miko", imported=True, status=Batch.Status.DONE
    )
    campaign = Campaign.objects.create(name="miko-bench", dataset=dataset)
    campaign.batches.add(batch)
    question_ids = [
        Question.objects.create(
            campaign=campaign, name=name, prompt=f"{name}?", scale="1-5", position=position
        ).id
        for position, name in enumerate(["plausibility", "typicality"])
    ]
    users = get_user_model().objects
    user_ids = np.array([users.create(username=f"annotator{n:02d}").id for n in range(ANNOTATORS)])
    dataset_id, batch_id, campaign_id = dataset.id, batch.id, campaign.id
    connection.ensure_connection()
    conn = connection.connection
    conn.autocommit = False
    cur = conn.cursor()
    # The synthetic rows are consistent by construction: skip the deferred foreign-key checks
    # (33 million look-ups at COMMIT) for this session; needs a superuser, as `postgres` is.
    cur.execute("SET session_replication_role = replica")

    def post_lines():
        for start in range(0, posts, CHUNK_POSTS):
            ids = range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            words = WORDS[rng.integers(0, len(WORDS), (len(ids), 12))]
            yield "".join(
                f"{pid}\t{dataset_id}\t{pid}\t{' '.join(w)}\t{pid}.jpg\t{{}}\t{NOW}\n"
                for pid, w in zip(ids, words, strict=True)
            ).encode()

    copy_rows(cur, "generation_post", "id, dataset_id, external_id, text, image, metadata,"
              " created_at", post_lines())  # fmt: skip

    def description_lines():
        for start in range(0, posts, CHUNK_POSTS):
            ids = range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            yield "".join(
                f"{pid}\t{pid}\tdescribe_image\tbench-hash\tllava-bench\tp\timported\t{{}}\t"
                f"{batch_id}\tok\t{{}}\t"
                f'\t{{"description": "A photo of a {WORDS[pid % len(WORDS)]} for post {pid}."}}'
                f"\t\t0\t0\t0\t1\t{NOW}\t{NOW}\n"
                for pid in ids
            ).encode()

    copy_rows(cur, "generation_stageresult", "id, post_id, stage, template_hash, model,"
              " params_hash, endpoint_key, parameters, batch_id, status, request, raw_answer,"
              " parsed, error, prompt_tokens, completion_tokens, latency_ms, attempts,"
              " created_at, updated_at",
              description_lines())  # fmt: skip

    def item_lines():
        for start in range(0, posts, CHUNK_POSTS):
            ids = range(start + 1, min(posts, start + CHUNK_POSTS) + 1)
            yield "".join(
                f"{(pid - 1) * 10 + k + 1}\t{pid}\t{batch_id}\t{kind}\t{k + 1}\t"
                f"The user posts this because of {kind} in post {pid}.\t{pid}\t{{}}\t{NOW}\n"
                for pid in ids
                for k, kind in enumerate(KINDS)
            ).encode()

    # Each post's description result has the post's id; its items name it.
    copy_items(cur, item_lines())

    def rating_lines():
        for start in range(0, posts, CHUNK_POSTS):
            n_posts = min(posts, start + CHUNK_POSTS) - start
            # Three distinct annotators a post: a base and two offsets in disjoint ranges.
            base = rng.integers(0, ANNOTATORS, n_posts)
            offsets = np.stack(
                [
                    np.zeros(n_posts, int),
                    rng.integers(1, 15, n_posts),
                    rng.integers(15, 30, n_posts),
                ],
                axis=1,
            )
            raters = user_ids[(base[:, None] + offsets) % ANNOTATORS]  # posts × 3
            item_ids = (start + np.arange(n_posts))[:, None] * 10 + np.arange(10)[None, :] + 1
            blocks = []
            for question_id, centre in zip(question_ids, (3.6, 3.0), strict=True):
                quality = rng.normal(centre, 1.0, item_ids.shape)  # posts × 10
                values = np.clip(
                    np.rint(quality[:, :, None] + rng.normal(0, 0.9, (*item_ids.shape, 3))), 1, 5
                ).astype(int)
                seconds = rng.gamma(2.0, 2.0, values.shape).round(1)
                items = np.broadcast_to(item_ids[:, :, None], values.shape).ravel()
                who = np.broadcast_to(raters[:, None, :], values.shape).ravel()
                blocks.append(
                    "".join(
                        f"{campaign_id}\t{i}\t{question_id}\t{a}\t{v}\t{s}\t{NOW}\t{NOW}\n"
                        for i, a, v, s in zip(
                            items.tolist(),
                            who.tolist(),
                            values.ravel().tolist(),
                            seconds.ravel().tolist(),
                            strict=True,
                        )
                    )
                )
            yield "".join(blocks).encode()

    finish_load(conn, cur, rating_lines())
    counts = {}
    for table in ("generation_post", "generation_knowledgeitem", "annotation_rating"):
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        counts[table] = cur.fetchone()[0]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--posts", type=int, default=MIKO_POSTS)
    parser.add_argument("--seed", type=int, default=20240121)
    parser.add_argument("--keep-database", action="store_true", help="leave it for profiling")
    parser.add_argument(
        "--reuse-database", action="store_true", help="measure a kept database again, no load"
    )
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres", "psql")):
        sys.exit("bench_evaluation measures PostgreSQL: pass --database-url postgres://...")

    import psycopg

    admin_url = database_url(args.database_url, "postgres")
    bench_url = database_url(args.database_url, BENCH_DB)
    env = {**os.environ, "DATABASE_URL": bench_url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    if not args.reuse_database:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {BENCH_DB}")
    try:
        if not args.reuse_database:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env,
                check=True,
            )  # fmt: skip
            os.environ.update(env)
            sys.path.insert(0, str(ROOT))
            import django

            django.setup()
            started = time.perf_counter()
            counts = load(args.seed, args.posts)
            from django.db import connections

            connections.close_all()
            print(
                f"loaded {counts['generation_post']:,} posts, "
                f"{counts['generation_knowledgeitem']:,} items, "
                f"{counts['annotation_rating']:,} ratings with COPY in "
                f"{time.perf_counter() - started:.1f} s"
            )
        with psycopg.connect(bench_url, autocommit=True) as conn:
            conn.execute("DELETE FROM evaluation_agreementresult")  # measure a computation

        run = run_measured(["agreement", "--campaign", "miko-bench", "--json"], env)
        print(describe("agreement, computed", run, 10, 2048))
        for name, figures in json.loads(run["stdout"])["questions"].items():
            low, high = figures["ci95"]
            print(
                f"  {name}: alpha {figures['alpha']:.4f} (95% CI {low:.4f}–{high:.4f}), "
                f"{figures['n_items']:,} items, {figures['n_ratings']:,} ratings, "
                f"{len(figures['kinds'])} kinds"
            )
        run = run_measured(["agreement", "--campaign", "miko-bench", "--json"], env)
        print(describe("agreement, cached", run, 10, 2048))

        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / "miko-bench.jsonl"
            run = run_measured(
                ["export_dataset", "--campaign", "miko-bench", "--format", "jsonl",
                 "--min-plausibility", "4", "--min-typicality", "3", "--min-ratings", "3",
                 "--output", str(output), "--no-progress"],
                env,
            )  # fmt: skip
            manifest = json.loads(output.with_name(output.name + ".manifest.json").read_text())
            size = output.stat().st_size / 2**20
        print(
            f"export jsonl (plausibility ≥ 4, typicality ≥ 3, ≥ 3 ratings): "
            f"{manifest['counts']['items']:,} items of {manifest['counts']['posts']:,} posts, "
            f"{size:.0f} MiB"
        )
        print(describe("export", run, 60, 300))
    finally:
        if not args.keep_database:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
