"""The whole system under load: 100 annotators over HTTP while a generation batch runs.

    .venv/bin/python benchmarks/bench_load.py [--duration 300] [--annotators 100] [--think 2]

Creates its own PostgreSQL database (`distillery_bench_load`, dropped at the end unless --keep)
and uses Redis database 10 as the broker (emptied before and after). It starts gunicorn, two
Celery workers and the fake OpenAI-compatible server (its own process, ~200 ms per answer), then,
for `--duration` seconds at the same time:

- `--annotators` simulated annotators (threads with httpx, token auth) claim the next post and
  submit every item on both questions after `--think` seconds (the annotation benchmark's loop);
- an admin launches a MIKO batch over the REST API (`POST /api/batches/`), which one of the
  workers runs against the fake server, and polls its progress every second
  (`GET /api/batches/<id>/`), the way the batch page does.

When the annotators stop it waits for the batch to finish, prints the error rate (target 0) and
latency percentiles per call, then checks the database: every acknowledged rating stored exactly
once (no duplicate assignment, no post over quota, counters in step), and every stage result and
knowledge item stored exactly once with no model call repeated (the fake server's request count
equals the stored results). Exits non-zero when anything is off.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_annotation import (  # noqa: E402
    admin_sql,
    build,
    check,
    free_port,
    percentile,
    run_phase,
    start_gunicorn,
)
from benchmarks.bench_generation import FakeServerProcess, make_dataset  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--annotators", type=int, default=100)
    parser.add_argument("--think", type=float, default=2.0, help="seconds between claim and submit")
    parser.add_argument("--posts", type=int, default=20_000, help="posts in the rating campaign")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument(
        "--generate", type=int, default=0, help="posts in the batch (default: 15 per second)"
    )
    parser.add_argument("--latency", type=float, default=0.2, help="fake model seconds per call")
    parser.add_argument("--concurrency", type=int, default=16, help="the endpoint's window")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--celery-workers", type=int, default=2)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--database", default="distillery_bench_load")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10", help="the broker")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    args.generate = args.generate or max(50, int(args.duration * 15))
    args.items = 10  # what bench_annotation.build reads
    args.port = free_port()
    return args


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def start_celery_workers(args, env: dict) -> list[subprocess.Popen]:
    workers = []
    for index in range(args.celery_workers):
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default",
            "-c", "2", "-n", f"load{index}@%h", "--without-gossip", "--without-mingle",
            "-l", "warning",
        ]  # fmt: skip
        # Their banners would bury the figures; errors still reach stderr.
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL
            )
        )
    return workers


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class BatchWatch:
    """The admin: launches the batch over the API and polls it every second until it ends."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Token {token}"}, timeout=30
        )
        self.poll_ms: list[float] = []
        self.errors: list[str] = []
        self.batch: dict = {}
        self.launch_ms = 0.0
        self.finished = 0.0  # time.time() when the batch was seen to end

    def launch(self, dataset: str, endpoint: str) -> int:
        start = time.perf_counter()
        response = self.client.post(
            "/api/batches/", json={"dataset": dataset, "pipeline": "miko", "endpoint": endpoint}
        )
        self.launch_ms = (time.perf_counter() - start) * 1000
        if response.status_code != 201:
            raise SystemExit(f"launching the batch failed: {response.status_code} {response.text}")
        self.batch = response.json()
        return self.batch["id"]

    def watch(self, deadline: float) -> None:
        while time.time() < deadline:
            start = time.perf_counter()
            try:
                response = self.client.get(f"/api/batches/{self.batch['id']}/")
            except httpx.HTTPError as error:
                self.errors.append(f"batch progress {type(error).__name__}: {error}")
                time.sleep(1)
                continue
            self.poll_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                self.errors.append(f"batch progress {response.status_code} {response.text[:200]}")
            else:
                self.batch = response.json()
                if self.batch["status"] in ("done", "failed", "cancelled"):
                    self.finished = time.time()
                    return
            time.sleep(1)


def check_generation(batch_id: int, posts: int, fake_port: int) -> int:
    """What must be zero: missing or duplicate stage results and items, repeated model calls."""
    from django.db import connection

    from generation.models import Batch

    batch = Batch.objects.get(pk=batch_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (post_id, stage)), "
            "count(*) FILTER (WHERE status = 'ok') FROM generation_stageresult "
            "WHERE post_id IN (SELECT id FROM generation_post WHERE dataset_id = %s)",
            [batch.dataset_id],
        )
        results, distinct_results, ok_results = cursor.fetchone()
        cursor.execute(
            "SELECT count(*), count(DISTINCT (post_id, kind, position)) "
            "FROM generation_knowledgeitem WHERE batch_id = %s",
            [batch_id],
        )
        items, distinct_items = cursor.fetchone()
    served = httpx.get(f"http://127.0.0.1:{fake_port}/_fake/stats", timeout=10).json()
    expected = 3 * posts  # every post has an image: describe_image, key_info, intentions
    print("\n== generation integrity ==")
    print(
        f"batch {batch_id}: {batch.status}, posts done {batch.posts_done} of {posts}, "
        f"failed {batch.posts_failed}, calls {batch.calls}"
    )
    print(
        f"stage results: {results} stored, {distinct_results} distinct keys, {ok_results} ok "
        f"(expected {expected})"
    )
    print(f"knowledge items: {items} stored, {distinct_items} distinct (expected {10 * posts})")
    print(
        f"model calls answered by the fake server: {served['requests']} "
        f"(statuses {served['status_counts']}); repeated or lost: {served['requests'] - results}"
    )
    return sum(
        [
            batch.status != "done",
            batch.posts_done != posts,
            batch.posts_failed != 0,
            results != expected,
            distinct_results != results,
            ok_results != expected,
            items != 10 * posts,
            distinct_items != items,
            served["requests"] != results,
        ]
    )


def main() -> int:
    args = parse_args()
    url = f"{args.pg}/{args.database}"
    media_root = tempfile.mkdtemp(prefix="bench-load-")
    admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_sql(args, f'CREATE DATABASE "{args.database}"')
    flush_redis(args.redis)
    env = os.environ | {
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": args.redis,
        "MEDIA_ROOT": media_root,
        "CONN_MAX_AGE": "600",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)
    import django

    django.setup()
    from rest_framework.authtoken.models import Token

    from accounts.services import user_create_admin
    from generation.services.endpoints import endpoint_create

    fake = FakeServerProcess(latency=args.latency)
    processes: list[subprocess.Popen] = []
    crashed: list[str] = []
    try:
        campaign, tokens = build(args)
        dataset = make_dataset("miko-load", args.generate, media_root)
        endpoint = endpoint_create(
            name="fake",
            backend="openai",
            base_url=fake.base_url,
            model="fake-model",
            concurrency=args.concurrency,
        )
        admin = user_create_admin(username="bench-admin", password="bench-admin-password")
        admin_token = Token.objects.create(user=admin).key
        processes.append(start_gunicorn(args, env))
        processes.extend(start_celery_workers(args, env))
        base = f"http://127.0.0.1:{args.port}"
        print(
            f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}; "
            f"{args.annotators} annotators (think {args.think} s) for {args.duration:.0f} s; "
            f"batch of {args.generate} posts x 3 stages at {args.latency * 1000:.0f} ms, "
            f"concurrency {args.concurrency}; gunicorn {args.workers}x{args.threads}, "
            f"{args.celery_workers} Celery workers",
            flush=True,
        )

        # An annotator thread that dies of an exception (a dropped connection, a timeout) is an
        # error too, not a silently shorter run.
        def record_crash(hook_args) -> None:
            crashed.append(f"{hook_args.exc_type.__name__}: {hook_args.exc_value}")

        threading.excepthook = record_crash
        watch = BatchWatch(base, admin_token)
        began = time.time()
        batch_id = watch.launch(dataset.name, endpoint.name)
        poller = threading.Thread(
            target=watch.watch, args=(began + args.duration * 3 + 120,), daemon=True
        )
        poller.start()
        stats = run_phase(
            args,
            base,
            campaign.pk,
            tokens[: args.annotators],
            args.think,
            args.duration,
            "annotators while the batch runs",
        )
        print(f"batch status when the annotators stopped: {watch.batch.get('status')}")
        poller.join()
        print(
            f"batch launch: {watch.launch_ms:.1f} ms; the batch ended after "
            f"{(watch.finished or time.time()) - began:.0f} s"
        )
        print(
            f"batch progress: n={len(watch.poll_ms)}  p50={percentile(watch.poll_ms, 50):.1f} ms  "
            f"p99={percentile(watch.poll_ms, 99):.1f} ms  "
            f"max={max(watch.poll_ms, default=float('nan')):.1f} ms"
        )
        requests = len(stats.next_ms) + len(stats.submit_ms) + len(watch.poll_ms) + 1
        errors = stats.errors + watch.errors + crashed
        print(
            f"\nerror rate: {len(errors)} of {requests} requests = "
            f"{len(errors) / requests:.4%} (target 0)"
        )
        for error in errors[:10]:
            print("  error:", error)
        failures = check(campaign.pk, args.overlap, [stats])
        failures += check_generation(batch_id, args.generate, fake.port)
        failures += len(errors)
        print(f"\n{'OK' if not failures else 'FAILED'}: {failures} problem(s)")
        return 1 if failures else 0
    finally:
        for process in processes:
            stop(process)
        fake.close()
        from django.db import connections

        connections.close_all()
        flush_redis(args.redis)
        if not args.keep:
            admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
