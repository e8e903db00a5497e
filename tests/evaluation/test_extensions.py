"""Evaluation imports nothing from the apps above it: students' split rule and critics' export by
critic reach its exports through `evaluation.extensions`, registered in their `ready()`; without
them, an export that asks for a split or a critic is refused and one that does not is unchanged."""

import ast
from pathlib import Path

import pytest

from config.errors import ApplicationError
from critics.exporting import critic_selection
from evaluation import extensions
from evaluation.selectors.filters import ItemFilters
from students.selectors import export_split_filters, split_conditions, splits_manifest

ROOT = Path(__file__).resolve().parents[2]
ABOVE_EVALUATION = ("students", "critics", "judges")


def test_the_lower_apps_import_nothing_from_the_apps_above_them() -> None:
    found = []
    for folder in ("evaluation", "annotation", "generation/runner"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                found += [
                    f"{path.relative_to(ROOT)}: {name}"
                    for name in names
                    if name.split(".")[0] in ABOVE_EVALUATION
                ]
    assert found == []


def test_students_and_critics_register_with_evaluations_exports() -> None:
    rule = extensions._registered.split_rule
    assert (rule.filters, rule.conditions, rule.manifest) == (
        export_split_filters,
        split_conditions,
        splits_manifest,
    )
    assert extensions._registered.critic_picker is critic_selection


@pytest.fixture
def nothing_registered(monkeypatch) -> None:
    monkeypatch.setattr(extensions, "_registered", extensions._Registered())


@pytest.mark.usefixtures("nothing_registered")
def test_without_a_split_rule_an_export_asking_for_a_split_is_refused() -> None:
    filters = ItemFilters(min_mean={})
    assert extensions.export_split_filters(dataset=None, training=True, filters=filters) is filters
    assert extensions.split_conditions(post_column="i.post_id", splits=(), held_out=()) == ([], [])
    assert extensions.splits_manifest(dataset=None, filters=filters) is None
    with pytest.raises(ApplicationError, match="no split rule is installed") as refused:
        extensions.export_split_filters(
            dataset=None, training=False, filters=ItemFilters(min_mean={}, splits=("train",))
        )
    assert refused.value.field == "split"


@pytest.mark.usefixtures("nothing_registered")
def test_without_critics_an_export_by_critic_is_refused() -> None:
    with pytest.raises(ApplicationError, match="no critics are installed") as refused:
        extensions.export_critic(name="sunny", campaign=None, min_precision=0.8)
    assert refused.value.field == "critic"
    with pytest.raises(ApplicationError, match="no critics are installed"):
        extensions.export_critic_from_options(
            options={"name": "sunny:v1", "min_precision": None, "threshold": 0.5}, campaign=None
        )
