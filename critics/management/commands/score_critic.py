from django.core.management.base import BaseCommand

from config.commands import progress_bar, refusals
from critics.selectors import critic_named
from critics.services import critic_score


class Command(BaseCommand):
    help = "Score every item of a critic's dataset (resumes after the last stored chunk)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("critic", help="NAME (latest trained version) or NAME:vN")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        with refusals():
            critic = critic_named(options["critic"])
            with progress_bar(self, unit="item", quiet=options["no_progress"]) as scored:
                critic = critic_score(critic_id=critic.pk, progress=scored)
        self.stdout.write(f"{critic}: {critic.scored} items scored.")
