"""`generate --dataset NAME --pipeline miko|cotpd --endpoint NAME [--stage-endpoint STAGE=NAME ...]
[--limit N] [--wait]`

Without `--wait` the batch goes to the Celery workers and the command prints its id. With `--wait`
the command runs the batch itself, in the foreground, with a progress bar (GPU stages still go to
the `gpu` queue).
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation.management.commands.endpoint_add import validation_message
from generation.models import Batch, Dataset, Endpoint
from generation.runner.run import Progress, batch_execute
from generation.services.batches import batch_launch
from generation.tasks import gpu_chunk_send


def _endpoint(name: str) -> Endpoint:
    try:
        return Endpoint.objects.get(name=name)
    except Endpoint.DoesNotExist:
        raise CommandError(f"No endpoint named {name!r} (add one with endpoint_add).") from None


class Command(BaseCommand):
    help = "Generate knowledge for a dataset with a pipeline (a new batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--pipeline", required=True)
        parser.add_argument("--endpoint", required=True)
        parser.add_argument(
            "--stage-endpoint",
            action="append",
            default=[],
            metavar="STAGE=NAME",
            help="run one stage on another endpoint (repeatable)",
        )
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--token-budget", type=int, default=None)
        parser.add_argument(
            "--template-variant",
            default="",
            help="prompt wording: 'default' (for MIKO, the paper's) or a variant such as "
            "'distillery'",
        )
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="[STAGE.]KEY=VALUE",
            help="a sampling parameter for every stage (temperature=0.2) or one stage "
            "(key_info.temperature=0.5); VALUE is read as JSON when it parses",
        )
        parser.add_argument("--wait", action="store_true", help="run here with a progress bar")

    def handle(self, *args, **options) -> None:
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"No dataset named {options['dataset']!r}.") from None
        stage_endpoints = {}
        for value in options["stage_endpoint"]:
            stage, sep, name = value.partition("=")
            if not sep or not stage or not name:
                raise CommandError(f"--stage-endpoint wants STAGE=NAME, not {value!r}.")
            stage_endpoints[stage.strip()] = _endpoint(name.strip())
        parameters = _parameters(options["param"])
        if options["template_variant"]:
            parameters["template_variant"] = options["template_variant"]
        try:
            batch = batch_launch(
                dataset=dataset,
                pipeline=options["pipeline"],
                endpoint=_endpoint(options["endpoint"]),
                stage_endpoints=stage_endpoints,
                limit=options["limit"],
                token_budget=options["token_budget"],
                parameters=parameters,
                enqueue=not options["wait"],
            )
        except ValidationError as error:
            raise CommandError(validation_message(error)) from error
        if not options["wait"]:
            self.stdout.write(f"Batch {batch.pk} queued: {batch.posts_total} posts.")
            return
        with tqdm(total=batch.posts_total, unit="post", desc=f"batch {batch.pk}") as bar:

            def show(progress: Progress) -> None:
                bar.n = progress.posts_done + progress.posts_failed
                postfix = {"failed": progress.posts_failed, "calls": progress.calls}
                if retrying := progress.retrying():
                    postfix["retrying"] = f"{retrying['calls']} (attempt {retrying['attempt']})"
                bar.set_postfix(postfix, refresh=False)
                bar.refresh()

            batch = batch_execute(
                batch_id=batch.pk, on_progress=show, dispatch_gpu_chunk=gpu_chunk_send
            )
        # The status in the words the pages and the API use: "done with 2 failed posts", ...
        if batch.status == Batch.Status.FAILED:
            raise CommandError(
                f"Batch {batch.pk} {batch.status_text} ({batch.posts_done} posts done, "
                f"{batch.posts_failed} failed)."
            )
        self.stdout.write(
            f"Batch {batch.pk} {batch.status_text}: {batch.posts_done} posts done, "
            f"{batch.posts_failed} failed, {batch.prompt_tokens + batch.completion_tokens} tokens."
        )


def _parameters(values: list[str]) -> dict:
    """`--param` values as batch parameters: `KEY=VALUE` for all stages, `STAGE.KEY=VALUE`."""
    parameters: dict = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param wants [STAGE.]KEY=VALUE, not {value!r}.")
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw
        stage, dot, name = key.strip().rpartition(".")
        target = parameters.setdefault("stages", {}).setdefault(stage, {}) if dot else parameters
        target[name] = parsed
    return parameters
