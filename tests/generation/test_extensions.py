"""Generation and annotation import nothing from the apps above them: students keep an import's
split through `generation.extensions` (registered in their `ready()`), comparisons add
`create_campaign --compare-runs` through `annotation.extensions`. Without the split app the import
names no split: no `--split`, no Split field, and a split asked for is refused."""

import ast
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from config.errors import ApplicationError
from generation import extensions
from generation.models import ImportJob, Post
from generation.services.import_jobs import import_job_create
from students.selectors import split_counts
from students.services import SplitKeeper

ROOT = Path(__file__).resolve().parents[2]
# Each lower app, and every app above it (docs/architecture.md).
ABOVE = {
    "generation": ("annotation", "evaluation", "judges", "critics", "students", "comparisons"),
    "annotation": ("evaluation", "judges", "critics", "students", "comparisons"),
}


def imported_names(path: Path) -> list[str]:
    """Every module `path` imports, at its top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


@pytest.mark.parametrize("app", ABOVE)
def test_generation_and_annotation_import_nothing_from_the_apps_above_them(app) -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / app).rglob("*.py"))
        for name in imported_names(path)
        if name.split(".")[0] in ABOVE[app] + ("demo",)
    ]
    assert found == []


def test_the_check_sees_an_import_inside_a_function(tmp_path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from students.services import SplitKeeper\n")
    assert imported_names(module) == ["students.services"]


def test_students_register_the_import_split() -> None:
    split = extensions.import_split()
    assert (split.keeper, split.names) == (SplitKeeper, split_counts)
    assert "--split NAME" in call_command_help()


def call_command_help() -> str:
    from generation.management.commands.import_posts import Command

    return Command().create_parser("manage.py", "import_posts").format_help()


@pytest.fixture
def nothing_registered(monkeypatch) -> None:
    monkeypatch.setattr(extensions, "_registered", extensions._Registered())


@pytest.mark.django_db
@pytest.mark.usefixtures("nothing_registered")
def test_without_a_split_app_an_import_names_no_split(tmp_path, admin_client) -> None:
    assert "--split" not in call_command_help()
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "t"}) + "\n")
    with pytest.raises(CommandError, match="unrecognized arguments: --split train"):
        call_command("import_posts", str(path), "--dataset", "d", "--split", "train")
    with pytest.raises(ApplicationError, match="no splits are installed") as refused:
        import_job_create(
            file=SimpleUploadedFile("p.jsonl", path.read_bytes()), dataset_name="d", split="train"
        )
    assert refused.value.field == "split"
    assert extensions.split_names(dataset=None) == []
    page = admin_client.get("/imports/new/")
    assert "split" not in page.context["form"].fields
    assert 'list="split-names"' not in page.content.decode()
    assert not ImportJob.objects.exists() and not Post.objects.exists()
    # An import that names none is unchanged.
    call_command("import_posts", str(path), "--dataset", "d", stdout=io.StringIO(), verbosity=0)
    assert Post.objects.count() == 1
