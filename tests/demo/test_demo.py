"""`make demo` on a fresh SQLite file: users, the MIKO samples, a campaign, an endpoint; a served
demo prints the logins last, puts its fake model server on a free port and keeps a password the
admin changed (issue 14)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password, make_password

ROOT = Path(__file__).resolve().parents[2]
LOGINS = [
    "  admin       admin / distillery-admin",
    "  annotator   annotator1 / distillery-rate-1",
    "  annotator   annotator2 / distillery-rate-2",
]


def demo_env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        # Its own broker folder: the checkout's may hold other runs' messages.
        "BROKER_FOLDER": str(tmp_path / "broker"),
    }


def run_demo_setup(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", *args],
        cwd=ROOT,
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_setup_on_a_fresh_sqlite_file(tmp_path):
    result = run_demo_setup(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8000/" in result.stdout
    assert "admin / distillery-admin" in result.stdout
    assert "annotator1 / distillery-rate-1" in result.stdout

    db = sqlite3.connect(tmp_path / "demo.sqlite3")
    users = dict(db.execute("select username, is_staff from auth_user"))
    # "miko-release" is the inactive external annotator of the released labels.
    assert users == {"admin": 1, "annotator1": 0, "annotator2": 0, "miko-release": 0}
    datasets = dict(
        db.execute(
            "select d.name, count(p.id) from generation_dataset d"
            " join generation_post p on p.dataset_id = d.id group by d.name"
        )
    )
    assert datasets == {"miko-sample": 40, "miko-release-sample": 60, "twitter2015-sample": 12}
    items = db.execute("select count(*) from generation_knowledgeitem").fetchone()[0]
    assert items == 400 + 598  # two release posts lack their tenth intention
    images = db.execute("select count(*) from generation_post where image != ''").fetchone()[0]
    assert images == 112
    campaigns = {name for (name,) in db.execute("select name from annotation_campaign")}
    assert campaigns == {"miko-demo", "miko-release-labels"}
    assert db.execute("select count(*) from annotation_rating").fetchone()[0] == 598
    assert db.execute("select name from generation_endpoint").fetchall() == [("fake-llm",)]

    # The admin changes their password; a second `make demo` reuses what is there and keeps it.
    mine = make_password("mine")
    db.execute("update auth_user set password = ? where username = 'admin'", [mine])
    db.commit()
    again = run_demo_setup(tmp_path)
    assert again.returncode == 0, again.stderr
    assert db.execute("select count(*) from generation_post").fetchone()[0] == 112
    passwords = dict(db.execute("select username, password from auth_user"))
    assert check_password("mine", passwords["admin"])
    assert check_password("distillery-rate-1", passwords["annotator1"])
    assert "admin / (the password you set: the demo keeps it)" in again.stdout
    assert "distillery-admin" not in again.stdout


@pytest.mark.browser
def test_served_demo_prints_the_logins_last(tmp_path, page):
    """Port 8100 taken (as by another demo): the fake model server goes to a free port and the
    demo endpoint points there; after the logins nothing is printed until Ctrl-C."""
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8100))
        blocker.listen()
    except OSError:
        pass  # taken already, which is the point
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and demo.poll() is None:
            lines.append(demo.stdout.readline().rstrip("\n"))
            if lines[-1].startswith("  logs in "):
                break
        assert lines[-1].startswith("  logs in "), "\n".join(lines)
        assert lines[-5:-2] == LOGINS and lines[-6] == f"Distillery demo: http://127.0.0.1:{port}/"
        fake_llm = lines[-2].split(" answers on ")[1].split(" ")[0]
        assert fake_llm != "http://127.0.0.1:8100/v1"
        with urllib.request.urlopen(f"{fake_llm}/models", timeout=10) as answer:
            assert answer.status == 200

        # A second demo on the same port stops at once, saying why.
        second = run_demo_setup(tmp_path, "--port", str(port))
        assert second.returncode == 0  # --no-serve needs no port
        taken = subprocess.run(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT, env=demo_env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert taken.returncode != 0 and f"port {port} is taken" in taken.stderr

        page.goto(f"http://127.0.0.1:{port}/accounts/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "distillery-admin")
        page.click("button[type=submit]")
        page.goto(f"http://127.0.0.1:{port}/endpoints/")
        assert page.get_by_text(fake_llm).is_visible()
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        blocker.close()
    assert rest.strip() == "Stopping the demo.", rest
