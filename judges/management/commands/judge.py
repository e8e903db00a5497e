"""`judge --campaign C --endpoint E [--questions Q,Q] [--template-version v1] [--batch ID]
[--token-budget N] [--json]`

Runs a judge run in the foreground with a progress bar, then prints how the judge agrees with the
people on the items both rated (`--json`: the agreement as one JSON object).
"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.models import Campaign
from config.errors import ApplicationError
from generation.models import Batch, Endpoint
from judges.agreement import figure_text, judge_agreement
from judges.models import JudgeRun
from judges.prompt import DEFAULT_VERSION
from judges.runner import judge_run_execute
from judges.services import judge_run_create


def _get(model, label: str, **lookup):
    try:
        return model.objects.get(**lookup)
    except (model.DoesNotExist, ValueError):
        value = next(iter(lookup.values()))
        raise CommandError(f"No {label} {value!r}.") from None


class Command(BaseCommand):
    help = "Ask an LLM endpoint to rate a campaign's items on its questions (a judge run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="campaign name")
        parser.add_argument("--endpoint", required=True, help="endpoint name")
        parser.add_argument(
            "--questions", default="", help="comma-separated question names (default: all)"
        )
        parser.add_argument("--template-version", default=DEFAULT_VERSION)
        parser.add_argument("--batch", type=int, default=None, help="only this batch's items")
        parser.add_argument("--token-budget", type=int, default=None)
        parser.add_argument("--json", action="store_true", help="print the agreement as JSON")

    def handle(self, *args, **options) -> None:
        campaign = _get(Campaign, "campaign named", name=options["campaign"])
        endpoint = _get(Endpoint, "endpoint named", name=options["endpoint"])
        batch = None
        if options["batch"] is not None:
            batch = _get(Batch, "batch", pk=options["batch"])
        questions = [q.strip() for q in options["questions"].split(",") if q.strip()]
        try:
            run = judge_run_create(
                campaign=campaign,
                endpoint=endpoint,
                questions=questions or None,
                template_version=options["template_version"],
                batch=batch,
                token_budget=options["token_budget"],
                enqueue=False,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        with tqdm(total=None, unit="rating", desc=f"judge run {run.pk}") as bar:

            def show(progress: JudgeRun) -> None:
                bar.total = progress.ratings_total
                bar.n = progress.ratings_done + progress.ratings_failed
                bar.set_postfix(
                    {"failed": progress.ratings_failed, "cached": progress.ratings_cached},
                    refresh=False,
                )
                bar.refresh()

            run = judge_run_execute(run_id=run.pk, on_progress=show)
        summary = (
            f"Judge run {run.pk} {run.status}: {run.ratings_done} ratings, "
            f"{run.ratings_failed} failed, {run.ratings_cached} from earlier runs, "
            f"{run.calls} calls, {run.prompt_tokens + run.completion_tokens} tokens."
        )
        if run.status == JudgeRun.Status.FAILED:
            raise CommandError(f"{summary} {run.error}")
        agreement = judge_agreement(run=run)
        if options["json"]:
            self.stdout.write(json.dumps(agreement, ensure_ascii=False))
            return
        self.stdout.write(summary)
        for name, figures in agreement["questions"].items():
            if figures.get("reason"):
                self.stdout.write(f"{name}: {figures['reason']}")
                continue
            self.stdout.write(
                f"{name} ({figures['n_items']} items rated by both): alpha people "
                f"{figure_text(figures['alpha_people'])}, with the judge "
                f"{figure_text(figures['alpha_with_judge'])}; Spearman "
                f"{figure_text(figures['spearman'])}; MAE {figure_text(figures['mae'])}"
            )
