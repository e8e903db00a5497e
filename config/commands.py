"""What the management commands share: a service's refusal as the command's error, a record
looked up or refused, and a progress bar on stderr that a service's progress moves."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Model, QuerySet
from tqdm import tqdm

from config.errors import ApplicationError


@contextmanager
def refusals(prefix: str = "") -> Iterator[None]:
    """An `ApplicationError` raised inside ends the command with its message (after `prefix`)."""
    try:
        yield
    except ApplicationError as error:
        raise CommandError(f"{prefix}{error.message}") from None


def found(rows: QuerySet, refusal: str, **lookup) -> Model:
    """The row of `rows` that `lookup` names, or the command's error `refusal`."""
    row = rows.filter(**lookup).first()
    if row is None:
        raise CommandError(refusal)
    return row


@contextmanager
def progress_bar(
    command: BaseCommand, *, unit: str, quiet: bool, desc: str | None = None, leave: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """A bar on the command's stderr (none when `quiet`), and the `(done, total)` callback a
    service reports its progress to; the bar closes with the block."""
    with tqdm(
        total=0, unit=unit, desc=desc, disable=quiet, file=command.stderr._out, leave=leave
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        yield progress
