"""`import_posts PATH --dataset NAME [--format F] [--images DIR] [--match-by id|text]
[--split NAME]`: all or nothing, with progress."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import ApplicationError
from generation.extensions import import_split, split_keeper
from generation.importers import FORMAT_CHOICES
from generation.importers.matching import MATCH_BY
from generation.services.imports import posts_import


class Command(BaseCommand):
    help = "Import posts (and their items) from a file into a dataset, all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--dataset", required=True, help="dataset name (created when new)")
        parser.add_argument("--format", default="auto", choices=FORMAT_CHOICES)
        parser.add_argument("--images", type=Path, help="folder holding the images the file names")
        parser.add_argument(
            "--match-by",
            default="id",
            choices=MATCH_BY,
            help="how a record is recognised as a post already in the dataset: by its id "
            "(default) or by its text (the same post under another id in another file)",
        )
        split = import_split()  # registered by the students app
        if split is not None:
            parser.add_argument("--split", metavar="NAME", help=split.help)

    def handle(
        self,
        *args,
        path: Path,
        dataset: str,
        format: str,
        images: Path | None,
        match_by: str,
        split: str | None = None,
        **options,
    ):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            keeper = split_keeper(name=split, origin=str(path)) if split is not None else None
        except ApplicationError as exc:
            raise CommandError(f"--split: {exc}") from None
        bar = tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"import {path.name}",
            file=self.stderr._out,
            disable=options["verbosity"] == 0,
        )

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            report = posts_import(
                path=path,
                dataset_name=dataset,
                format=format,
                images_dir=images,
                progress=progress,
                match_by=match_by,
                on_posts=keeper,
            )
        except ApplicationError as exc:  # ImportFileError among them
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if report.warnings_total > len(report.warnings):
            self.stderr.write(f"... and {report.warnings_total - len(report.warnings)} more")
        summary = report.summary()
        if keeper is not None:
            summary += f"; its posts are in split {keeper.name!r}"
        self.stdout.write(self.style.SUCCESS(summary))
