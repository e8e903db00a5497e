"""Generation throughput: Distillery's runner against the bare openai client, in the same run.

1,000 posts go through the three MIKO stages (3,000 calls) against the fake OpenAI-compatible
server (in its own process) at 200 ms latency with concurrency 64, every stage persisted into a
PostgreSQL database of its own (created and dropped here). The baseline is `AsyncOpenAI` alone
with a semaphore of 64 making the same 3,000 calls (each post's three in order) and storing
nothing. Then both run again against a zero-latency server to measure CPU time per call.

    .venv/bin/python benchmarks/bench_generation.py [--posts 1000] [--latency 0.2]

Prints wall time, calls/s and efficiency = (calls x latency / concurrency) / wall for both, the
throughput ratio, and Distillery's CPU per call beyond the bare client's.
"""

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "distillery_bench_generation"
SERVER_DB = "postgres://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServerProcess:
    """The fake server in a process of its own, so its CPU is not counted as ours."""

    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "generation.fake_openai",
                "--port",
                str(self.port),
                "--latency",
                str(latency),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the fake server did not start")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def create_database(name: str = DB_NAME) -> None:
    """A fresh database `name` (dropped first if a run left it); also for bench_curation."""
    import psycopg

    with psycopg.connect(SERVER_DB, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str = DB_NAME) -> None:
    import psycopg

    with psycopg.connect(SERVER_DB, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(media_root: str, name: str = DB_NAME) -> None:
    """Django on database `name`, migrated, with media in `media_root`."""
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ["MEDIA_ROOT"] = media_root
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_dataset(name: str, count: int, media_root: str):
    from PIL import Image

    from generation.models import Dataset, Post

    records = [
        json.loads(line)
        for line in (ROOT / "sample_data/miko/pipeline_outputs_sample.jsonl").open()
        if line.strip()
    ]
    dataset = Dataset.objects.create(name=name)
    folder = Path(media_root) / "posts" / str(dataset.pk)
    folder.mkdir(parents=True, exist_ok=True)
    posts = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), color=(index % 256, 90, 200)).save(buffer, format="PNG")
        (folder / f"{index}.png").write_bytes(buffer.getvalue())
        # Distinct texts (every call its own key) that the fake still answers from real records.
        text = records[index % len(records)]["text"] + f" #{index}"
        posts.append(
            Post(
                dataset=dataset,
                external_id=str(index),
                text=text,
                image=f"posts/{dataset.pk}/{index}.png",
            )
        )
    Post.objects.bulk_create(posts)
    return dataset


def bare_requests(dataset) -> list[list[dict]]:
    """Each post's three requests as Distillery sends them, built before the clock starts."""
    from generation.pipelines.base import StageInput, get_pipeline
    from generation.runner.executor import image_data_url

    pipeline = get_pipeline("miko")
    describe, key_info, intentions = pipeline.stages
    upstream = {
        "describe_image": {"description": "A person standing in front of a crowded street."},
        "key_info": {
            "concept": "daily life",
            "action": "posting",
            "object": "street",
            "emotion": "joy",
            "keywords": ["street", "crowd", "city"],
        },
    }
    calls = []
    for post in dataset.posts.order_by("id"):
        stage_input = StageInput(
            text=post.text,
            image_data_url=image_data_url(post),
            metadata={},
            upstream=upstream,
        )
        calls.append(
            [
                pipeline.build_request(stage, stage_input, {}).messages
                for stage in (describe, key_info, intentions)
            ]
        )
    return calls


def run_bare(base_url: str, calls: list[list[dict]], concurrency: int) -> tuple[float, float]:
    from openai import AsyncOpenAI

    async def main() -> None:
        client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
        semaphore = asyncio.Semaphore(concurrency)

        async def one_post(messages_list: list) -> None:
            for messages in messages_list:
                async with semaphore:
                    await client.chat.completions.create(model="fake-model", messages=messages)

        await asyncio.gather(*(one_post(m) for m in calls))
        await client.close()

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - wall, time.process_time() - cpu


def run_distillery(dataset, endpoint, seed: int) -> tuple[float, float, object]:
    from generation.runner.run import batch_execute
    from generation.services.batches import batch_launch

    # A seed of its own makes every call a new key: nothing comes from the cache.
    batch = batch_launch(
        dataset=dataset,
        pipeline="miko",
        endpoint=endpoint,
        parameters={"seed": seed},
        enqueue=False,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    batch = batch_execute(batch_id=batch.pk)
    return time.perf_counter() - wall, time.process_time() - cpu, batch


def report(name: str, calls: int, wall: float, latency: float, concurrency: int) -> float:
    efficiency = (calls * latency / concurrency) / wall
    rate = calls / wall
    print(f"{name:<30} wall {wall:6.2f} s  {rate:6.1f} calls/s  efficiency {efficiency:.3f}")
    return calls / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()

    create_database()
    media_root = tempfile.mkdtemp(prefix="bench-generation-")
    slow = FakeServerProcess(latency=args.latency)
    fast = FakeServerProcess(latency=0.0)
    try:
        setup_django(media_root)
        from generation.models import StageResult
        from generation.services.endpoints import endpoint_create

        dataset = make_dataset("bench", args.posts, media_root)
        calls = bare_requests(dataset)
        n_calls = 3 * args.posts
        slow_endpoint = endpoint_create(
            name="fake-slow",
            backend="openai",
            base_url=slow.base_url,
            model="fake-model",
            concurrency=args.concurrency,
        )
        fast_endpoint = endpoint_create(
            name="fake-fast",
            backend="openai",
            base_url=fast.base_url,
            model="fake-model",
            concurrency=args.concurrency,
        )
        print(
            f"{args.posts} posts x 3 MIKO stages = {n_calls} calls, latency "
            f"{args.latency * 1000:.0f} ms, concurrency {args.concurrency}; "
            f"{os.cpu_count()} CPUs (shared)"
        )
        run_bare(fast.base_url, calls[:50], args.concurrency)  # warm imports and connections

        # The machine is shared: alternate the two, --repeat times, and compare the best runs.
        def alternate(base_url: str, endpoint, first_seed: int) -> tuple[list, list]:
            bare, ours = [], []
            for seed in range(first_seed, first_seed + args.repeat):
                bare.append(run_bare(base_url, calls, args.concurrency))
                wall, cpu, batch = run_distillery(dataset, endpoint, seed=seed)
                ours.append((wall, cpu))
                assert batch.status == "done" and batch.posts_done == args.posts, batch.error
                stored = StageResult.objects.filter(batch=batch, status="ok").count()
                assert stored == n_calls and batch.calls == n_calls, (stored, batch.calls)
            return bare, ours

        bare_runs, ours_runs = alternate(slow.base_url, slow_endpoint, first_seed=1)
        bare_walls = [wall for wall, _ in bare_runs]
        ours_walls = [wall for wall, _ in ours_runs]
        print("runs (s): bare " + ", ".join(f"{w:.2f}" for w in bare_walls))
        print("    Distillery " + ", ".join(f"{w:.2f}" for w in ours_walls))
        bare_rate = report(
            "bare AsyncOpenAI (best)", n_calls, min(bare_walls), args.latency, args.concurrency
        )
        ours_rate = report(
            "Distillery, persisting (best)",
            n_calls,
            min(ours_walls),
            args.latency,
            args.concurrency,
        )
        print(f"throughput ratio Distillery / bare: {ours_rate / bare_rate:.3f} (target >= 0.95)")

        bare_runs, ours_runs = alternate(fast.base_url, fast_endpoint, first_seed=100)
        bare_cpus = [cpu for _, cpu in bare_runs]
        ours_cpus = [cpu for _, cpu in ours_runs]
        bare_cpu, ours_cpu = min(bare_cpus), min(ours_cpus)
        print(
            f"zero latency, CPU per call (best): bare {1000 * bare_cpu / n_calls:.2f} ms, "
            f"Distillery {1000 * ours_cpu / n_calls:.2f} ms"
        )
        extra = 1000 * (ours_cpu - bare_cpu) / n_calls
        print(f"Distillery CPU per call beyond the bare client: {extra:.2f} ms (target <= 2 ms)")
    finally:
        slow.close()
        fast.close()
        from django.db import connections

        connections.close_all()
        if not args.keep_database:
            drop_database()


if __name__ == "__main__":
    main()
