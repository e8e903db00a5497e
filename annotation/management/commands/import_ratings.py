"""`import_ratings PATH --dataset NAME --campaign NAME [--format csv|label-studio|miko-release]
[--scale 1-5] [--annotator NAME] [--match-by id|text]`: all or nothing; a bad row is named as
`file:line: problem` (or, in a JSON array, `file: task 7 (element 3, line 120): problem`)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.importers import FORMATS
from annotation.scales import SCALES
from annotation.services import AnnotationError, ratings_import
from generation.importers.matching import MATCH_BY


class Command(BaseCommand):
    help = "Import ratings into a campaign (created when missing), all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--dataset", required=True, help="the dataset the posts are in")
        parser.add_argument("--campaign", required=True, help="campaign name (created when new)")
        parser.add_argument("--format", default="csv", choices=FORMATS)
        parser.add_argument(
            "--scale",
            choices=list(SCALES),
            help="scale of a new campaign (default: 1-5 for csv, miko-3 for label-studio, "
            "binary for miko-release)",
        )
        parser.add_argument(
            "--annotator",
            help="the annotator of every rating in the file (label-studio, miko-release); "
            "created as an annotator account when missing. Label Studio's default is "
            "label-studio-<completed_by>",
        )
        parser.add_argument(
            "--match-by",
            default="id",
            choices=MATCH_BY,
            help="find each rated post by its id in the file (default) or by its text (the same "
            "post under other ids in other annotators' files)",
        )

    def handle(
        self,
        *args,
        path: Path,
        dataset: str,
        campaign: str,
        format: str,
        scale,
        annotator: str | None,
        match_by: str,
        **options,
    ):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            report = ratings_import(
                path=path,
                dataset_name=dataset,
                campaign_name=campaign,
                format=format,
                scale=scale,
                annotator=annotator,
                match_by=match_by,
            )
        except AnnotationError as error:
            raise CommandError(str(error)) from None
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(self.style.SUCCESS(report.summary()))
