"""`make demo`'s setup on a fresh SQLite file: users, the MIKO samples, a campaign, an endpoint."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo_setup(tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


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

    again = run_demo_setup(tmp_path)  # a second `make demo` reuses what is there
    assert again.returncode == 0, again.stderr
    assert db.execute("select count(*) from generation_post").fetchone()[0] == 112
