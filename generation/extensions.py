"""What the apps above generation add to its imports, registered in their `AppConfig.ready()`:
generation imports none of them (docs/architecture.md).

The split a source file gives its posts (`students`, `ImportSplit`): `import_posts --split train`,
the Split field of the upload form and `split` of `POST /api/imports/` name it; the name is checked
before the file is read, and a keeper records each chunk's posts in it inside the import's
transaction (`posts_import(on_posts=...)`), refusing a post already in another split. Without the
app, the command has no `--split`, the form no Split field, and an import naming a split is
refused.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from config.errors import ApplicationError
from generation.models import Dataset


class SplitKeeper(Protocol):
    """Keeps an import's posts in split `name` (`students.services.SplitKeeper`)."""

    name: str

    def __call__(self, dataset: Dataset, external_ids: list[str]) -> None: ...


@dataclass(frozen=True)
class ImportSplit:
    """`keeper(name=, origin=, created_by=)`: a `SplitKeeper` for split `name` of posts read from
    `origin` (a file's name), or an `ApplicationError` (field `split`) for a name refused;
    `names(dataset=)`: the dataset's split names, for the upload form to offer; `help`: the
    command's `--split` help."""

    keeper: Callable[..., SplitKeeper]
    names: Callable[..., Iterable[str]]
    help: str


@dataclass
class _Registered:
    import_split: ImportSplit | None = None


_registered = _Registered()


def import_split_register(split: ImportSplit) -> None:
    _registered.import_split = split


def import_split() -> ImportSplit | None:
    """The registered `ImportSplit`, or None when no app offers splits."""
    return _registered.import_split


def split_keeper(*, name: str, origin: str, created_by=None) -> SplitKeeper:
    """The keeper of split `name` for an import of `origin`; refused (field `split`) when the name
    is, or when no app offers splits."""
    split = _registered.import_split
    if split is None:
        raise ApplicationError("no splits are installed: import without one", field="split")
    return split.keeper(name=name, origin=origin, created_by=created_by)


def split_names(*, dataset: Dataset | None) -> list[str]:
    """The split names the upload form offers: the usual ones and `dataset`'s (none without a
    split app)."""
    split = _registered.import_split
    if split is None:
        return []
    usual = ["train", "dev", "test"]
    own = split.names(dataset=dataset) if dataset is not None else []
    return usual + sorted(set(own) - set(usual))
