from django.core.management.base import BaseCommand, CommandError

from annotation.models import Campaign
from config.commands import found, progress_bar, refusals
from critics.models import Critic
from critics.services import critic_create, critic_score, critic_train
from evaluation.management.exclusion_options import add_exclusion_arguments, exclusion_options


class Command(BaseCommand):
    help = (
        "Train a critic on a campaign's ratings (people would rate an item ≥ X on a question), "
        "report its cross-validated metrics, then score every item of the dataset."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--question", required=True)
        parser.add_argument("--threshold", required=True, type=float, help="mean rating ≥ X")
        parser.add_argument("--name", default="", help="critic name (default campaign-question-X)")
        parser.add_argument("--encoder", default="", help="local transformers model folder")
        parser.add_argument(
            "--order-tasks",
            action="store_true",
            help="then order the campaign's unclaimed posts by the critic's uncertainty",
        )
        parser.add_argument("--no-score", action="store_true", help="train only")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
        add_exclusion_arguments(parser, gold_help="learn from gold items too (left out by default)")

    def handle(self, *args, **options) -> None:
        campaign = found(
            Campaign.objects, f"no campaign named {options['campaign']!r}", name=options["campaign"]
        )
        with refusals():
            critic = critic_create(
                campaign=campaign,
                question=options["question"],
                threshold=options["threshold"],
                name=options["name"],
                encoder=options["encoder"],
                exclusions=exclusion_options(options),
                order_tasks=options["order_tasks"],
            )
        quiet = options["no_progress"]
        with progress_bar(self, unit="fold", quiet=quiet, leave=False) as folds:
            critic = critic_train(critic_id=critic.pk, progress=folds)
        if critic.status != Critic.Status.DONE:
            raise CommandError(f"training {critic} failed: {critic.error}")
        self.stdout.write(metrics_lines(critic))
        if options["no_score"]:
            return
        with refusals(), progress_bar(self, unit="item", quiet=quiet, leave=False) as scored:
            critic = critic_score(critic_id=critic.pk, progress=scored)
        self.stdout.write(f"Scored {critic.scored} items in {critic.scoring_seconds:.1f} s.")


def metrics_lines(critic: Critic) -> str:
    m = critic.metrics
    base = m["baseline"]
    return "\n".join(
        [
            f"Critic {critic} ({critic.label}), trained in {critic.seconds:.1f} s on "
            f"{m['n_items']} items of {m['n_posts']} posts, {m['positive_rate']:.1%} positive; "
            f"{m['folds']}-fold cross-validation by post:",
            f"  ROC-AUC {m['roc_auc']:.3f} (majority baseline {base['roc_auc']:.3f})",
            f"  average precision {m['average_precision']:.3f} "
            f"(baseline {base['average_precision']:.3f})",
            f"  Brier {m['brier']:.4f} (baseline {base['brier']:.4f}), accuracy "
            f"{m['accuracy']:.3f} (baseline {base['accuracy']:.3f})",
        ]
    )
