"""`manage.py demo`: set up the demo (database, users, sample data) and serve it with a worker."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.services import user_create_admin, user_create_annotator
from annotation.models import Campaign
from demo.images import draw_sample_images
from generation.models import Dataset, Endpoint

ADMIN = ("admin", "distillery-admin")
ANNOTATORS = [("annotator1", "distillery-rate-1"), ("annotator2", "distillery-rate-2")]
FAKE_LLM_PORT = 8100

SAMPLES = [
    # (dataset, file under sample_data/, format)
    ("miko-sample", "miko/pipeline_outputs_sample.jsonl", "miko-pipeline"),
    ("miko-release-sample", "miko/release_sample.json", "miko-release"),
    ("twitter2015-sample", "cotpd/twitter2015_sample.txt", "twitter-conll"),
]


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Set up the demo (SQLite, users, MIKO samples, a campaign) and serve it with a worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, no_serve: bool, port: int, **options) -> None:
        # The fake LLM listens on 127.0.0.1: allow private endpoints here and in the children.
        os.environ["DISTILLERY_ALLOW_PRIVATE_ENDPOINTS"] = "true"
        settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = True
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.create_users()
        self.import_samples()
        self.create_campaign()
        self.import_release_labels()
        self.create_endpoint()
        self.print_logins(port)
        if not no_serve:
            self.serve(port)

    def create_users(self) -> None:
        user_create_admin(username=ADMIN[0], password=ADMIN[1])
        for username, password in ANNOTATORS:
            user_create_annotator(username=username, password=password)

    def import_samples(self) -> None:
        sample_dir = Path(settings.BASE_DIR) / "sample_data"
        with tempfile.TemporaryDirectory() as images:
            draw_sample_images(sample_dir, Path(images))
            for dataset, path, fmt in SAMPLES:
                if Dataset.objects.filter(name=dataset).exists():
                    continue
                self.stdout.write(f"Importing {path} into {dataset}")
                call_command(
                    "import_posts",
                    str(sample_dir / path),
                    dataset=dataset,
                    format=fmt,
                    images=images,
                    stdout=self.stdout,
                )

    def create_campaign(self) -> None:
        if Campaign.objects.filter(name="miko-demo").exists():
            return
        batch = Dataset.objects.get(name="miko-sample").batches.first()
        call_command(
            "create_campaign",
            "miko-demo",
            dataset="miko-sample",
            batch=[str(batch.pk)],
            overlap=2,
            annotators=",".join(name for name, _ in ANNOTATORS),
            stdout=self.stdout,
        )

    def import_release_labels(self) -> None:
        """MIKO's released human labels, so the agreement dashboard has ratings to show."""
        if Campaign.objects.filter(name="miko-release-labels").exists():
            return
        call_command(
            "import_ratings",
            str(Path(settings.BASE_DIR) / "sample_data" / "miko" / "release_sample.json"),
            dataset="miko-release-sample",
            campaign="miko-release-labels",
            format="miko-release",
            stdout=self.stdout,
        )

    def create_endpoint(self) -> None:
        if not Endpoint.objects.filter(name="fake-llm").exists():
            call_command(
                "endpoint_add",
                "fake-llm",
                backend="openai",
                base_url=f"http://127.0.0.1:{FAKE_LLM_PORT}/v1",
                model="fake-gpt",
                no_check=True,  # the fake server starts after the setup
                stdout=self.stdout,
            )

    def print_logins(self, port: int) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nDistillery demo: http://127.0.0.1:{port}/"))
        self.stdout.write(f"  admin       {ADMIN[0]} / {ADMIN[1]}")
        for username, password in ANNOTATORS:
            self.stdout.write(f"  annotator   {username} / {password}")
        self.stdout.write(
            f"  a fake OpenAI-compatible LLM answers on http://127.0.0.1:{FAKE_LLM_PORT}/v1 "
            "(endpoint 'fake-llm'): launch a batch from the Batches page.\n"
        )

    def serve(self, port: int) -> None:
        """Web, worker and fake LLM as child processes; Ctrl-C (or one of them dying) stops all."""
        python = sys.executable
        commands = [
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            [python, "-m", "celery", "-A", "config", "worker", "-P", "threads", "-c", "4",
             "-Q", "default,gpu", "-l", "warning"],
            [python, "-m", "generation.fake_openai", "--port", str(FAKE_LLM_PORT),
             "--latency", "0.2"],
        ]  # fmt: skip
        children = [subprocess.Popen(command, cwd=settings.BASE_DIR) for command in commands]
        signal.signal(signal.SIGTERM, _stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("A demo process stopped; stopping the others.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo.")
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
