"""`create_campaign NAME --dataset D --compare-runs 3,4[,5]`: the option this app adds to
annotation's command (registered in `ComparisonsConfig.ready()` through `annotation.extensions`),
which makes the campaign through `comparisons.services.comparison_create`."""

import re
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError

from annotation.services import question_specs
from comparisons.services import comparison_create, evaluation_runs_named
from config.errors import ApplicationError
from generation.models import Dataset


def compare_runs_create(
    run_ids: str,
    *,
    dataset: Dataset,
    name: str,
    questions: Sequence[str],
    scale: str,
    overlap: int,
    lease_minutes: int,
    instructions: str,
    members: Sequence[AbstractBaseUser],
) -> str:
    """Create the comparison's campaign; the line the command prints, or a `CommandError`."""
    ids = [part.strip() for part in run_ids.split(",") if part.strip()]
    if not all(re.fullmatch(r"[0-9]{1,19}", part) for part in ids):
        raise CommandError(f"run ids must be numbers, separated by commas: {run_ids}")
    try:
        runs = evaluation_runs_named(run_ids=[int(part) for part in ids])
        elsewhere = [run for run in runs if run.dataset_id != dataset.pk]
        if elsewhere:
            numbers = ", ".join(str(run.pk) for run in elsewhere)
            runs_are = f"runs {numbers} are" if len(elsewhere) > 1 else f"run {numbers} is"
            raise CommandError(
                f"{runs_are} of dataset {elsewhere[0].dataset.name!r}, not {dataset.name!r}"
            )
        comparison = comparison_create(
            runs=runs,
            name=name,
            questions=question_specs(names=questions, scale=scale),
            overlap=overlap,
            lease_minutes=lease_minutes,
            instructions=instructions,
            members=members,
        )
    except ApplicationError as error:
        raise CommandError(str(error)) from None
    campaign = comparison.campaign
    return (
        f"campaign {campaign.name} (id {campaign.pk}): comparison {comparison.pk} of runs "
        f"{', '.join(str(run.pk) for run in runs)}: {comparison.posts_compared} posts compared, "
        f"{comparison.posts_left_out} left out; k = {campaign.overlap}, "
        f"{len(members)} annotator(s)"
    )
