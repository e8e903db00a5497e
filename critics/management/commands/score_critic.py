from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.errors import ApplicationError
from critics.selectors import critic_named
from critics.services import critic_score


class Command(BaseCommand):
    help = "Score every item of a critic's dataset (resumes after the last stored chunk)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("critic", help="NAME (latest trained version) or NAME:vN")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        try:
            critic = critic_named(options["critic"])
            with tqdm(
                total=0, unit="item", disable=options["no_progress"], file=self.stderr._out
            ) as bar:

                def scored(done: int, total: int) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                critic = critic_score(critic_id=critic.pk, progress=scored)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"{critic}: {critic.scored} items scored.")
