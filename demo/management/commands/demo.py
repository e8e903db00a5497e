"""`manage.py demo`: set up the demo (database, users, sample data) and serve it with a worker.

The logins are the last lines it prints: the web server, the worker and the fake model server
write to log files under `.demo/`, and the logins are printed once the web server answers.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_create_admin, user_create_annotator
from annotation.models import Campaign
from demo.images import draw_sample_images
from generation.models import Dataset, Endpoint
from generation.services.endpoints import endpoint_update

ADMIN = ("admin", "distillery-admin")
ANNOTATORS = [("annotator1", "distillery-rate-1"), ("annotator2", "distillery-rate-2")]
# Where the endpoint points until a served demo starts its fake model server on a free port.
FAKE_LLM_URL = "http://127.0.0.1:8100/v1"
FAKE_LLM_LINE = re.compile(r"fake OpenAI server on (http://\S+/v1)")
STARTUP_SECONDS = 120
# The worker runs as whoever runs the demo; as root Celery warns on every start.
WORKER_WARNINGS = "ignore:You're running the worker with superuser privileges"

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
        if not no_serve and not _port_free(port):
            raise CommandError(f"port {port} is taken (another demo?): pass --port with another")
        # The fake LLM listens on 127.0.0.1: allow private endpoints here and in the children.
        os.environ["DISTILLERY_ALLOW_PRIVATE_ENDPOINTS"] = "true"
        settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = True
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.changed_passwords = self.create_users()
        self.import_samples()
        self.create_campaign()
        self.import_release_labels()
        self.create_endpoint()
        if no_serve:
            self.print_logins(port, fake_llm=None)
        else:
            self.serve(port)

    def create_users(self) -> set[str]:
        """The demo's users, with the demo passwords. A user whose password was changed keeps it
        (and stays what it is); the names of those users are returned."""
        changed = set()
        existing = {u.username: u for u in get_user_model().objects.filter(
            username__in=[ADMIN[0], *(name for name, _ in ANNOTATORS)]
        )}  # fmt: skip
        for username, password in [ADMIN, *ANNOTATORS]:
            user = existing.get(username)
            if user is not None and not user.check_password(password):
                changed.add(username)
            elif username == ADMIN[0]:
                user_create_admin(username=username, password=password)
            else:
                user_create_annotator(username=username, password=password)
        return changed

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
                base_url=FAKE_LLM_URL,
                model="fake-gpt",
                no_check=True,  # the fake server starts after the setup
                stdout=self.stdout,
            )

    def print_logins(self, port: int, fake_llm: str | None) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nDistillery demo: http://127.0.0.1:{port}/"))
        for role, (username, password) in [("admin", ADMIN)] + [
            ("annotator", login) for login in ANNOTATORS
        ]:
            if username in self.changed_passwords:
                password = "(the password you set: the demo keeps it)"
            self.stdout.write(f"  {role:<11} {username} / {password}")
        if fake_llm:
            self.stdout.write(
                f"  a fake OpenAI-compatible LLM answers on {fake_llm} (endpoint 'fake-llm'): "
                "launch a batch from the Batches page."
            )
            self.stdout.write(f"  logs in {self.logs}/; Ctrl-C stops the demo.\n")

    def serve(self, port: int) -> None:
        """The fake LLM (on a free port, which the demo endpoint is pointed at), the web server and
        the worker as child processes writing to log files; the logins once the web server
        answers. Ctrl-C (or one of them stopping) stops all."""
        python = sys.executable
        self.logs = Path(settings.BASE_DIR) / ".demo"
        self.logs.mkdir(exist_ok=True)
        quiet = {**os.environ, "DJANGO_RUNSERVER_HIDE_WARNING": "true"}
        commands = {
            "fake-llm": [python, "-m", "generation.fake_openai", "--port", "0", "--latency", "0.2"],
            "web": [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [python, "-m", "celery", "--quiet", "-A", "config", "worker", "-P", "threads",
                       "-c", "4", "-Q", "default,gpu", "-l", "warning"],
        }  # fmt: skip
        signal.signal(signal.SIGTERM, _stop)
        children: dict[str, subprocess.Popen] = {}
        try:
            fake_llm = None
            for name, command in commands.items():
                env = {**quiet, "PYTHONWARNINGS": WORKER_WARNINGS} if name == "worker" else quiet
                with (self.logs / f"{name}.log").open("w") as log:
                    children[name] = subprocess.Popen(
                        command, cwd=settings.BASE_DIR, stdout=log, stderr=log, env=env
                    )
                if name == "fake-llm":
                    fake_llm = self.wait_for_fake_llm(children[name])
            self.wait_for_web(port, children)
            self.print_logins(port, fake_llm)
            while all(child.poll() is None for child in children.values()):
                time.sleep(0.5)
            stopped = next(name for name, child in children.items() if child.poll() is not None)
            raise CommandError(self.stopped(stopped))
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo.")
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()

    def wait_for_fake_llm(self, child: subprocess.Popen) -> str:
        """The fake model server's address, read from its log; the demo endpoint points at it."""
        log = self.logs / "fake-llm.log"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and child.poll() is None:
            found = FAKE_LLM_LINE.search(log.read_text())
            if found:
                endpoint_update(endpoint=Endpoint.objects.get(name="fake-llm"), base_url=found[1])
                return found[1]
            time.sleep(0.1)
        raise CommandError(self.stopped("fake-llm"))

    def wait_for_web(self, port: int, children: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            for name, child in children.items():
                if child.poll() is not None:
                    raise CommandError(self.stopped(name))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise CommandError(f"the web server did not answer on port {port}: see {self.logs}/")

    def stopped(self, name: str) -> str:
        log = self.logs / f"{name}.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        return f"the demo's {name} process stopped; the end of {log}:\n{tail}"


def _port_free(port: int) -> bool:
    """Whether the web server can listen on `port` (as runserver does, reusing the address)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
