"""Annotation at MIKO scale over real HTTP: many annotators claim the next post and submit it.

    .venv/bin/python benchmarks/bench_annotation.py [--duration 60] [--annotators 32] [--think 0.5]
        [--trace calls.csv]

Creates its own PostgreSQL database (`distillery_bench_annotation`, dropped at the end unless
--keep), builds a campaign of 137,287 posts x 10 items with k = 3, starts gunicorn on 127.0.0.1,
and runs simulated annotators (asyncio tasks on aiohttp, one keep-alive connection each, token
auth) against the REST API:
`POST /api/campaigns/<id>/next/` then `POST /api/assignments/<id>/submit/` with every item rated
on both questions, after `--think` seconds. A second phase runs with no thinking time for the top
throughput. It prints latency percentiles of both calls, throughput, the server's CPU per post
(gunicorn's processes and the PostgreSQL backends of its database, read from /proc: unlike the
latencies, a figure other work on the machine hardly moves), and checks the database for
duplicate assignments, posts over quota, items with more than k ratings and lost ratings.
"""

import argparse
import asyncio
import csv
import gc
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = "xWant oEffect xAttr xIntent xReact oReact oWant xEffect xNeed open".split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--database", default="distillery_bench_annotation")
    parser.add_argument("--posts", type=int, default=137_287)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--think", type=float, default=0.5, help="seconds between claim and submit")
    parser.add_argument("--duration", type=float, default=60, help="seconds of the paced phase")
    parser.add_argument("--burst", type=float, default=20, help="seconds of the no-think phase")
    parser.add_argument("--single", type=float, default=10, help="seconds of the one-client phase")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="run on the database a --keep run left (no build)"
    )
    parser.add_argument(
        "--trace", type=Path, help="write every call (phase, started at, call, ms, status) as CSV"
    )
    return parser.parse_args()


def admin_sql(args, sql: str) -> None:
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def timed(label: str):
    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()
            print(f"{label} ...", end=" ", flush=True)

        def __exit__(self, *exc):
            print(f"{time.perf_counter() - self.start:.1f} s", flush=True)

    return Timer()


def insert_select(model, values: dict[str, str], from_sql: str, params: list) -> int:
    """INSERT INTO model SELECT ...: every column not given gets the field's default.

    `values` are SQL expressions without parameters; `params` belong to `from_sql`.
    """
    from django.db import connection

    columns, exprs, defaults = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.name in values:
            exprs.append(values[field.name])
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            exprs.append("now()")
        elif field.null and not field.has_default():
            exprs.append("NULL")
        else:
            exprs.append("%s")
            defaults.append(field.get_db_prep_save(field.get_default(), connection))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} {from_sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*defaults, *params])
        return cursor.rowcount


def build(args):
    """The dataset, an imported batch, posts, ten items each, descriptions, users, the campaign."""
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from accounts.services import user_create_annotator
    from annotation.services import campaign_create
    from generation.models import Batch, BatchItem, Dataset, KnowledgeItem, Post, StageResult

    with timed("migrate"):
        call_command("migrate", verbosity=0)
    dataset = Dataset.objects.create(name="miko-bench")
    batch = Batch.objects.create(dataset=dataset, pipeline="miko", imported=True, status="done")
    with timed(f"{args.posts:,} posts"):
        insert_select(
            Post,
            {
                "dataset": str(dataset.pk),
                "external_id": "g::text",
                "text": "'Post ' || g || ' about a sunny day at the beach #weekend'",
            },
            "FROM generate_series(1, %s) AS g",
            [args.posts],
        )
    with timed("image descriptions"):
        insert_select(
            StageResult,
            {
                "post": "p.id",
                "stage": "'describe_image'",
                "template_hash": "'bench'",
                "model": "'llava'",
                "params_hash": "'bench'",
                "endpoint_key": "'imported'",
                "batch": str(batch.pk),
                "status": "'ok'",
                "parsed": "jsonb_build_object('description', 'A beach at noon, post ' || p.id)",
            },
            "FROM generation_post AS p WHERE p.dataset_id = %s",
            [dataset.pk],
        )
    with timed(f"{args.posts * args.items:,} items"):
        insert_select(
            KnowledgeItem,
            {
                "post": "p.id",
                "batch": str(batch.pk),
                "kind": "(ARRAY[" + ", ".join(f"'{k}'" for k in KINDS) + "])[g]",
                "position": "g",
                "text": "'After posting this Tweet, the user wants to relax (' || p.id || ')'",
                "description_result": "s.id",
            },
            "FROM generation_post AS p JOIN generation_stageresult AS s ON s.post_id = p.id, "
            "generate_series(1, %s) AS g WHERE p.dataset_id = %s",
            [args.items, dataset.pk],
        )
        insert_select(
            BatchItem,
            {"batch": str(batch.pk), "item": "i.id"},
            "FROM generation_knowledgeitem AS i WHERE i.batch_id = %s",
            [batch.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    users = [
        user_create_annotator(username=f"bench{i:02d}", password=None)
        for i in range(args.annotators * 2 + 1)
    ]
    tokens = [Token.objects.get_or_create(user=user)[0].key for user in users]
    with timed("campaign (one task per post)"):
        campaign = campaign_create(
            name="bench", dataset=dataset, batches=[batch], overlap=args.overlap, members=users
        )
    # Measure a database in its steady state, not one just bulk-loaded: VACUUM sets the hint bits
    # and visibility map (else autovacuum does it during the run) and the checkpoint writes the
    # load's WAL out before the clock starts.
    with timed("vacuum, analyze, checkpoint"), connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("CHECKPOINT")
    return campaign, tokens


def reuse(args):
    """The campaign and tokens of a database kept by an earlier run (--keep)."""
    from rest_framework.authtoken.models import Token

    from annotation.models import Campaign

    campaign = Campaign.objects.get(name="bench")
    tokens = [
        Token.objects.get(user__username=f"bench{i:02d}").key
        for i in range(args.annotators * 2 + 1)
    ]
    return campaign, tokens


def note_autovacuum() -> None:
    """Say so when the server does not vacuum: dead row versions then pile up during a run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] != "on":
            print(
                "note: autovacuum is off on this server; in runs longer than a minute or two "
                "the calls slow down as dead row versions pile up (PostgreSQL's default is on)"
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, env) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi",
        "--bind", f"127.0.0.1:{args.port}",
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--worker-class", "gthread",
        "--keep-alive", "30",
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("gunicorn did not come up")


class Stats:
    def __init__(self) -> None:
        self.next_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.errors: list[str] = []
        self.submitted: dict[int, int] = {}  # assignment id -> ratings sent and acknowledged
        self.empty = 0
        self.calls: list[tuple[float, str, float, int]] = []  # started at, call, ms, status


async def annotator(
    base: str, token: str, campaign_id: int, think: float, stop: float, stats: Stats, delay: float
):
    """One simulated annotator: next task, `think` seconds, submit; until `stop` or the end."""
    rng = random.Random(token)
    headers = {"Authorization": f"Token {token}"}
    # One keep-alive connection per annotator, as a browser tab would hold.
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as client:
        # Warm the connection so the first measured call does not pay the TCP handshake.
        async with client.get("/healthz") as response:
            await response.read()
        # People do not all click at the same instant: each annotator starts at a random
        # moment within the first thinking time.
        await asyncio.sleep(delay)
        while time.time() < stop:
            start = time.perf_counter()
            async with client.post(f"/api/campaigns/{campaign_id}/next/") as response:
                status, body = response.status, await response.read()
            elapsed = (time.perf_counter() - start) * 1000
            stats.calls.append((start, "next", elapsed, status))
            if status == 204:
                stats.empty += 1
                return
            if status != 200:
                stats.errors.append(f"next {status} {body[:200]!r}")
                await asyncio.sleep(0.2)
                continue
            task = json.loads(body)
            ratings = [
                {"item": item["id"], "question": q["id"], "value": rng.randint(1, 5)}
                for item in task["items"]
                for q in task["questions"]
            ]
            if think:
                await asyncio.sleep(think)
            start = time.perf_counter()
            async with client.post(
                f"/api/assignments/{task['assignment']}/submit/",
                json={"ratings": ratings, "seconds": think},
            ) as response:
                status, body = response.status, await response.read()
            stats.next_ms.append(elapsed)
            stats.submit_ms.append((time.perf_counter() - start) * 1000)
            stats.calls.append((start, "submit", stats.submit_ms[-1], status))
            if status == 200:
                stats.submitted[task["assignment"]] = len(ratings)
            else:
                stats.errors.append(f"submit {status} {body[:200]!r}")


async def run_annotators(base, campaign_id, tokens, think, stop, stats, label) -> None:
    rng = random.Random(label)
    await asyncio.gather(
        *(
            annotator(base, token, campaign_id, think, stop, stats, rng.uniform(0, think))
            for token in tokens
        )
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _cpu_seconds(pid: int) -> tuple[int, float] | None:
    """(process group, user + system CPU seconds) of a process, from /proc; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(server_group: int, database: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far of gunicorn's processes and of the PostgreSQL backends serving the
    benchmark's database, by pid: what the server spent, whatever else the machine is doing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        backends = [pid for (pid,) in cursor.fetchall()]
    gunicorn = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (cpu := _cpu_seconds(int(entry.name))):
            if cpu[0] == server_group:
                gunicorn[int(entry.name)] = cpu[1]
    postgresql = {pid: cpu[1] for pid in backends if (cpu := _cpu_seconds(pid))}
    return {"gunicorn": gunicorn, "postgresql": postgresql}


def cpu_spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict:
    return {
        part: sum(cpu - before[part].get(pid, 0.0) for pid, cpu in after[part].items())
        for part in after
    }


def run_phase(args, base, campaign_id, tokens, think, duration, label) -> Stats:
    stats = Stats()
    stop = time.time() + duration
    cpu_before = server_cpu(args.server_group, args.database)
    began = time.perf_counter()
    asyncio.run(run_annotators(base, campaign_id, tokens, think, stop, stats, label))
    wall = time.perf_counter() - began
    cpu = cpu_spent(cpu_before, server_cpu(args.server_group, args.database))
    print(f"\n== {label}: {len(tokens)} annotators, think {think} s, {wall:.1f} s ==")
    for name, values in (("next task", stats.next_ms), ("submit", stats.submit_ms)):
        print(
            f"{name:>10}: n={len(values):6d}  p50={percentile(values, 50):6.1f} ms  "
            f"p95={percentile(values, 95):6.1f} ms  p99={percentile(values, 99):6.1f} ms  "
            f"max={max(values, default=float('nan')):6.1f} ms  "
            f"mean={statistics.fmean(values) if values else float('nan'):6.1f} ms"
        )
    print(
        f"throughput: {len(stats.submitted) / wall:.1f} posts/s submitted, "
        f"{(len(stats.next_ms) + len(stats.submit_ms)) / wall:.1f} requests/s; "
        f"errors: {len(stats.errors)}"
    )
    posts = max(1, len(stats.submitted))
    print(
        f"server CPU: {1000 * sum(cpu.values()) / posts:.2f} ms per post "
        f"(gunicorn {1000 * cpu['gunicorn'] / posts:.2f} + PostgreSQL backends "
        f"{1000 * cpu['postgresql'] / posts:.2f})"
    )
    for error in stats.errors[:5]:
        print("  error:", error)
    return stats


def write_trace(path: Path, phases: dict[str, Stats]) -> None:
    """Every call as a CSV row, to see when the slow ones happened (together, or spread out)."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["phase", "started_s", "call", "ms", "status"])
        for phase, stats in phases.items():
            began = min((call[0] for call in stats.calls), default=0.0)
            for started, call, ms, status in sorted(stats.calls):
                writer.writerow([phase, f"{started - began:.4f}", call, f"{ms:.2f}", status])
    print(f"calls written to {path}")


def check(campaign_id: int, overlap: int, phases: list[Stats]) -> int:
    """Count what must be zero: duplicate assignments, posts over quota, lost ratings."""
    from django.db import connection

    sent = {}
    for stats in phases:
        sent.update(stats.submitted)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT task_id, annotator_id FROM annotation_assignment "
            "WHERE campaign_id = %s GROUP BY 1, 2 HAVING count(*) > 1) d",
            [campaign_id],
        )
        duplicates = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM (SELECT task_id FROM annotation_assignment "
            "WHERE campaign_id = %s AND status IN ('leased', 'done') "
            "GROUP BY 1 HAVING count(*) > %s) o",
            [campaign_id, overlap],
        )
        over_quota = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM annotation_task t LEFT JOIN (SELECT task_id, count(*) AS n"
            " FROM annotation_assignment WHERE campaign_id = %s AND status IN ('leased', 'done')"
            " GROUP BY task_id) a ON a.task_id = t.id"
            " WHERE t.campaign_id = %s AND (t.taken > %s OR t.taken <> COALESCE(a.n, 0))",
            [campaign_id, campaign_id, overlap],
        )
        bad_counters = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM (SELECT item_id, question_id FROM annotation_rating "
            "WHERE campaign_id = %s GROUP BY 1, 2 HAVING count(*) > %s) r",
            [campaign_id, overlap],
        )
        over_rated = cursor.fetchone()[0]
        cursor.execute(
            "SELECT assignment_id, count(*) FROM annotation_rating WHERE campaign_id = %s "
            "GROUP BY 1",
            [campaign_id],
        )
        stored = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*) FROM annotation_assignment WHERE campaign_id = %s AND "
            "id = ANY(%s) AND status <> 'done'",
            [campaign_id, list(sent)],
        )
        not_done = cursor.fetchone()[0]
    lost = sum(max(0, n - stored.get(assignment, 0)) for assignment, n in sent.items())
    print("\n== integrity ==")
    print(f"acknowledged submissions: {len(sent)}, ratings acknowledged: {sum(sent.values())}")
    print(f"duplicate assignments (same post twice to one annotator): {duplicates}")
    print(f"posts over quota (more than k leased or done): {over_quota}")
    print(f"task counters out of step with assignments: {bad_counters}")
    print(f"items with more than k ratings on a question: {over_rated}")
    print(
        f"lost ratings (acknowledged, not stored): {lost}; acknowledged posts not done: {not_done}"
    )
    return duplicates + over_quota + bad_counters + over_rated + lost + not_done


def explain_claim(campaign) -> None:
    """The claim query's plan and its time inside PostgreSQL, for a fresh annotator."""
    from django.db import connection, transaction

    from accounts.services import user_create_annotator
    from annotation.hot_path import claimable

    user = user_create_annotator(username="bench-explain", password=None)
    query = (
        claimable(campaign=campaign, annotator=user, gold=False)
        .select_for_update(skip_locked=True, of=("self",))
        .only("id")[:1]
    )
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params)
        plan = [row[0] for row in cursor.fetchall()]
    print("\n== the claim query in PostgreSQL ==")
    print("\n".join(plan))


def main() -> int:
    args = parse_args()
    args.port = args.port or free_port()
    url = f"{args.pg}/{args.database}"
    if not args.reuse:
        admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin_sql(args, f'CREATE DATABASE "{args.database}"')
    env = os.environ | {
        "DATABASE_URL": url,
        "CONN_MAX_AGE": "600",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)
    import django

    django.setup()
    server = None
    try:
        campaign, tokens = reuse(args) if args.reuse else build(args)
        print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
        note_autovacuum()
        # The load generator's own pauses would count as the server's latency: keep its garbage
        # collector off what is loaded already, as config/wsgi.py does for gunicorn's workers.
        gc.collect()
        gc.freeze()
        server = start_gunicorn(args, env)
        args.server_group = server.pid
        base = f"http://127.0.0.1:{args.port}"
        single = run_phase(
            args, base, campaign.pk, tokens[-1:], 0.0, args.single, "one annotator, no thinking"
        )
        paced = run_phase(
            args, base, campaign.pk, tokens[: args.annotators], args.think, args.duration, "paced"
        )
        burst = run_phase(
            args,
            base,
            campaign.pk,
            tokens[args.annotators : -1],
            0.0,
            args.burst,
            "top throughput (no thinking time)",
        )
        failures = check(campaign.pk, args.overlap, [single, paced, burst])
        if args.trace:
            write_trace(args.trace, {"single": single, "paced": paced, "burst": burst})
        explain_claim(campaign)
        p99 = max(percentile(paced.next_ms, 99), percentile(paced.submit_ms, 99))
        print(f"\npaced p99 of both calls: {p99:.1f} ms (target <= 50 ms)")
        return 1 if failures else 0
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
