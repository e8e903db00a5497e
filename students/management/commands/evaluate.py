"""`evaluate --dataset D --split test --endpoint E --campaign C [--pipeline direct] ...`"""

import json
import math

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.models import Campaign
from config.errors import ApplicationError
from generation.models import Dataset, Endpoint
from students.evaluating import DEFAULT_ACCEPT, evaluation_run
from students.models import EvaluationRun
from students.scoring import OVERALL, BertScoreModel


class Command(BaseCommand):
    help = (
        "Ask an endpoint the split's posts with the student's prompt and score the answers "
        "against the campaign's accepted items (ROUGE-L, BLEU, BERTScore, failures, distinct-n)."
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

    def handle(self, *args, **options) -> None:
        campaign = self._campaign(options)
        try:
            endpoint = Endpoint.objects.get(name=options["endpoint"])
        except Endpoint.DoesNotExist:
            raise CommandError(f"no endpoint named {options['endpoint']!r}") from None
        bar = tqdm(
            unit="answer", desc="evaluate", file=self.stderr._out, disable=options["verbosity"] == 0
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            run = evaluation_run(
                campaign=campaign,
                split=options["split"],
                endpoint=endpoint,
                pipeline=options["pipeline"],
                accept=_accept(options["accept"]),
                bertscore=_bertscore(options),
                price_per_million=_price(options["price"]),
                progress=progress,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        finally:
            bar.close()
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

    def _campaign(self, options: dict) -> Campaign:
        if not Dataset.objects.filter(name=options["dataset"]).exists():
            raise CommandError(f"no dataset named {options['dataset']!r}")
        campaigns = Campaign.objects.filter(dataset__name=options["dataset"])
        if options["campaign"]:
            try:
                return campaigns.get(name=options["campaign"])
            except Campaign.DoesNotExist:
                raise CommandError(
                    f"dataset {options['dataset']!r} has no campaign {options['campaign']!r}"
                ) from None
        found = list(campaigns[:2])
        if len(found) != 1:
            raise CommandError(
                f"dataset {options['dataset']!r} has {'no' if not found else 'several'} "
                f"campaigns: name the one whose ratings accept the references with --campaign"
            )
        return found[0]


def _accept(specs: list[str]) -> dict[str, float]:
    if not specs:
        return dict(DEFAULT_ACCEPT)
    accept = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            number = float(value)
            if not sep or not name.strip() or not math.isfinite(number):
                raise ValueError(spec)
        except ValueError:
            raise CommandError(f"--accept wants QUESTION=NUMBER, not {spec!r}") from None
        accept[name.strip()] = number
    return accept


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
