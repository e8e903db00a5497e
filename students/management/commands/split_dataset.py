"""`split_dataset --dataset D [--fractions train=0.8,dev=0.1,test=0.1] [--seed 13] [--replace]`."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from config.errors import ApplicationError
from generation.models import Dataset
from students.selectors import split_counts
from students.services import splits_draw
from students.splits import DEFAULT_FRACTIONS, fractions_parsed, fractions_text


class Command(BaseCommand):
    help = "Split a dataset's posts (those without a split yet) from a seed, by fractions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument(
            "--fractions",
            default=fractions_text(DEFAULT_FRACTIONS),
            help="NAME=FRACTION,... summing to 1 (default %(default)s)",
        )
        parser.add_argument("--seed", type=int, default=13, help="default %(default)s")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="draw again with another seed or fractions, moving posts between splits "
            "(splits kept from source files never move)",
        )

    def handle(self, *args, **options) -> None:
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        bar = tqdm(
            unit="post",
            desc=f"split {dataset.name}",
            file=self.stderr._out,
            disable=options["verbosity"] == 0,
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            assignment = splits_draw(
                dataset=dataset,
                fractions=fractions_parsed(options["fractions"]),
                seed=options["seed"],
                replace=options["replace"],
                progress=progress,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        finally:
            bar.close()
        counts = split_counts(dataset=dataset)
        self.stdout.write(
            f"Dataset {dataset.name!r} split with seed {assignment.seed} "
            f"({fractions_text(assignment.fraction_map)}): "
            + (", ".join(f"{name} {posts}" for name, posts in counts.items()) or "no posts")
        )
