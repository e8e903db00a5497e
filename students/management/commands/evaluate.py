"""`evaluate --dataset D --split test --endpoint E --campaign C [--pipeline direct|miko] ...`"""

import json
import math

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.commands import found, progress_bar, refusals
from generation.models import Dataset, Endpoint
from students.evaluating import (
    accept_parse,
    evaluation_campaign,
    evaluation_run,
    evaluation_run_create,
)
from students.models import EvaluationRun
from students.scoring import OVERALL, BertScoreModel


class Command(BaseCommand):
    help = (
        "Ask an endpoint the split's posts (with the student's prompt, or through the teacher's "
        "staged pipeline) and score the answers against the campaign's accepted items "
        "(ROUGE-L, BLEU, BERTScore, failures, distinct-n)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", required=True)
        parser.add_argument("--endpoint", required=True)
        parser.add_argument(
            "--campaign", help="whose ratings accept the references (default: the dataset's only)"
        )
        parser.add_argument("--pipeline", default="direct", choices=EvaluationRun.Pipeline.values)
        parser.add_argument(
            "--accept",
            action="append",
            default=[],
            metavar="QUESTION=X",
            help="a reference's minimum mean rating (repeatable; default plausibility=4)",
        )
        parser.add_argument("--bertscore-model", metavar="PATH", help="local model for BERTScore")
        parser.add_argument(
            "--bertscore-layers",
            type=int,
            default=None,
            metavar="N",
            help="its layer (default: last)",
        )
        parser.add_argument(
            "--price", metavar="IN,OUT", help="price per million prompt and completion tokens"
        )
        parser.add_argument("--json", action="store_true", help="print the scores as JSON")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="record the run and leave it to a worker (the gpu queue for a transformers "
            "endpoint) instead of running it here",
        )

    def handle(self, *args, **options) -> None:
        dataset = found(
            Dataset.objects, f"no dataset named {options['dataset']!r}", name=options["dataset"]
        )
        with refusals():
            campaign = evaluation_campaign(dataset=dataset, name=options["campaign"])
        endpoint = found(
            Endpoint.objects, f"no endpoint named {options['endpoint']!r}", name=options["endpoint"]
        )
        with refusals("--accept: "):
            accept = accept_parse(options["accept"])
        request = {
            "campaign": campaign,
            "split": options["split"],
            "endpoint": endpoint,
            "pipeline": options["pipeline"],
            "accept": accept,
            "bertscore": _bertscore(options),
            "price_per_million": _price(options["price"]),
        }
        if options["queue"]:
            with refusals():
                run = evaluation_run_create(**request)
            queue = "gpu" if endpoint.backend == Endpoint.Backend.TRANSFORMERS else "default"
            self.stdout.write(f"Evaluation run {run.pk} queued on the {queue} queue")
            return
        quiet = options["verbosity"] == 0
        with refusals(), progress_bar(self, unit="answer", desc="evaluate", quiet=quiet) as bar:
            run = evaluation_run(**request, progress=bar)
        if run.status != EvaluationRun.Status.DONE:
            raise CommandError(f"evaluation run {run.pk} failed: {run.error}")
        if options["json"]:
            self.stdout.write(json.dumps({"run": run.pk, "scores": run.scores}, indent=2))
            return
        overall = run.scores[OVERALL]
        self.stdout.write(
            f"Evaluation run {run.pk}: {endpoint.name} on {run.split} of {run.dataset.name}, "
            f"{overall['answers']} answers: ROUGE-L {overall['rouge_l']:.4f}, "
            f"BLEU {overall['bleu']:.2f}"
            + ("" if overall["bertscore"] is None else f", BERTScore {overall['bertscore']:.4f}")
            + f", failures {overall['failure_rate']:.1%}, distinct-2 {overall['distinct_2']:.3f}, "
            f"tokens {run.prompt_tokens}+{run.completion_tokens}"
        )


def _bertscore(options: dict) -> BertScoreModel | None:
    path = options["bertscore_model"]
    if path is None:
        return None
    layers = options["bertscore_layers"]
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise CommandError(f"--bertscore-model {path}: not a model folder ({error})") from None
    most = getattr(config, "num_hidden_layers", None) or 1
    if layers is None:
        layers = most
    if not 1 <= layers <= most:
        raise CommandError(f"--bertscore-layers must be 1 to {most}, not {layers}")
    return BertScoreModel(path=path, num_layers=layers)


def _price(spec: str | None) -> tuple[float, float] | None:
    if spec is None:
        return None
    try:
        prompt, completion = (float(part) for part in spec.split(","))
        if not (math.isfinite(prompt) and math.isfinite(completion)) or min(prompt, completion) < 0:
            raise ValueError(spec)
    except ValueError:
        raise CommandError(f"--price wants IN,OUT (two numbers ≥ 0), not {spec!r}") from None
    return prompt, completion
