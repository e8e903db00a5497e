"""Import MIKO's full scale into PostgreSQL and print the wall time and peak memory.

Generates 137,287 posts with ten intentions each (MIKO's size) from a fixed seed as a generic
`jsonl` file in a temporary folder, creates its own database (`distillery_bench_import`, dropped
again at the end, so it never touches anyone else's), migrates it, and imports the file through the
same service `import_posts` calls. Peak memory is the largest resident set size sampled every
20 ms while the import runs.

    .venv/bin/python benchmarks/bench_import.py [--database-url postgres://postgres@127.0.0.1:5432/x]
"""

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "distillery_bench_import"
MIKO_POSTS = 137_287
WORDS = (
    "sun beach coffee city night friends game team win lose rain happy tired love new old "
    "music show school work home dog cat food party trip photo morning weekend vote news "
    "sale store road car train storm snow fire garden book movie dream family baby smile"
).split()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            self.peak = max(self.peak, rss_bytes())


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time of a PostgreSQL backend process, when the server runs on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def generate(path: Path, posts: int, seed: int) -> None:
    from generation.pipelines.miko import MIKO_SLOTS

    rng = random.Random(seed)
    with path.open("w") as out:
        for n in range(posts):
            record = {
                "id": str(n),
                "text": " ".join(rng.choices(WORDS, k=rng.randint(8, 30))),
                "image": f"{n}.jpg",
                "metadata": {"source": "bench", "likes": rng.randint(0, 500)},
                "items": [
                    {"kind": kind, "text": f"{start} {' '.join(rng.choices(WORDS, k=12))}."}
                    for kind, start in MIKO_SLOTS
                ],
            }
            out.write(json.dumps(record) + "\n")


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--posts", type=int, default=MIKO_POSTS)
    parser.add_argument("--seed", type=int, default=20240120)
    parser.add_argument(
        "--reimport", action="store_true", help="also time importing the same file again"
    )
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres", "psql")):
        sys.exit("bench_import measures PostgreSQL: pass --database-url postgres://...")

    import psycopg

    admin_url = database_url(args.database_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    try:
        os.environ["DATABASE_URL"] = database_url(args.database_url, BENCH_DB)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        # As measured since the COPY writer: the import skips the per-row foreign key checks,
        # which an operator opts into (a third of the time); set it to false to measure without.
        os.environ.setdefault("DISTILLERY_IMPORT_SKIP_FK_CHECKS", "true")
        os.environ.setdefault("SECRET_KEY", "benchmark-only-key")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from generation.models import KnowledgeItem, Post
        from generation.services.imports import posts_import

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "miko_full.jsonl"
            started = time.perf_counter()
            generate(path, args.posts, args.seed)
            size_mb = path.stat().st_size / 1e6
            print(
                f"generated {args.posts} posts ({size_mb:.0f} MB) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
            server_before = backend_cpu_seconds(backend)
            load_before = f"{os.getloadavg()[0]:.2f}"
            sampler = PeakRss()
            baseline = sampler.peak
            sampler.start()
            started, cpu_started = time.perf_counter(), time.process_time()
            report = posts_import(path=path, dataset_name="bench", format="jsonl")
            wall = time.perf_counter() - started
            client_cpu = time.process_time() - cpu_started
            server_after = backend_cpu_seconds(backend)
            sampler.stopped.set()
            sampler.join()
            again = None
            if args.reimport:
                started = time.perf_counter()
                second = posts_import(path=path, dataset_name="bench", format="jsonl")
                again = time.perf_counter() - started
                assert second.posts_created == 0 and second.posts_skipped == args.posts
        posts, items = Post.objects.count(), KnowledgeItem.objects.count()
        assert (posts, items) == (args.posts, 10 * args.posts), (posts, items)
        print(report.summary())
        print(
            f"import wall time: {wall:.1f} s ({posts / wall:,.0f} posts/s, "
            f"{items / wall:,.0f} items/s)"
        )
        print(
            f"peak memory (RSS) during import: {sampler.peak / 2**20:.0f} MiB "
            f"(before: {baseline / 2**20:.0f} MiB; process max "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
        )
        server_cpu = (
            f"{server_after - server_before:.1f} s"
            if server_before is not None and server_after is not None
            else "n/a (server not on this machine)"
        )
        print(
            f"CPU time: {client_cpu:.1f} s in this process, {server_cpu} in its PostgreSQL "
            f"backend; load average before/after: {load_before} / {os.getloadavg()[0]:.2f}"
        )
        if again is not None:
            print(f"importing the same file again: {again:.1f} s, nothing added")
        from django.db import connections

        connections.close_all()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
