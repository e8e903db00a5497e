from django.core.management.base import BaseCommand

from config.commands import refusals
from critics.selectors import critic_named
from critics.services import critic_order_tasks


class Command(BaseCommand):
    help = (
        "Order a campaign's unclaimed posts by a critic's uncertainty (most uncertain first), so "
        "the next round of ratings teaches the critic most."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--critic", required=True, help="NAME or NAME:vN")

    def handle(self, *args, **options) -> None:
        with refusals():
            critic = critic_named(options["critic"])
            ordered = critic_order_tasks(critic=critic)
        self.stdout.write(
            f"Ordered {ordered} unclaimed posts of campaign {critic.campaign.name!r} by the "
            f"uncertainty of {critic}."
        )
