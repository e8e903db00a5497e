"""The format examples shown on the upload page (generation/importers/examples.py) are files the
importers read, each recognised by `auto` as its own format."""

import pytest

from generation.importers import FORMATS
from generation.importers.examples import EXAMPLES
from generation.services.imports import posts_import

pytestmark = pytest.mark.django_db


def test_every_format_has_an_example() -> None:
    assert sorted(example.format for example in EXAMPLES) == sorted(FORMATS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.format)
def test_each_example_imports_as_its_format(example, tmp_path) -> None:
    path = tmp_path / "example"
    path.write_text(example.sample)
    report = posts_import(path=path, dataset_name=example.format)
    assert report.format == example.format
    assert report.posts_created >= 1
