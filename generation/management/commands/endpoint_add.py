"""`endpoint_add NAME --backend openai|transformers (--base-url URL | --model-path PATH) ...`"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.models import Endpoint
from generation.services.endpoints import endpoint_create


def validation_message(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "Add a model endpoint (an OpenAI-compatible server or a local transformers model)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--backend", required=True, choices=Endpoint.Backend.values)
        location = parser.add_mutually_exclusive_group(required=True)
        location.add_argument("--base-url", default="")
        location.add_argument("--model-path", default="")
        parser.add_argument("--model", required=True)
        parser.add_argument(
            "--api-key-env",
            default="",
            help="the name of the environment variable holding the API key (never the key)",
        )
        parser.add_argument("--concurrency", type=int, default=32)
        parser.add_argument("--requests-per-minute", type=int, default=None)

    def handle(self, *args, **options) -> None:
        try:
            endpoint = endpoint_create(
                name=options["name"],
                backend=options["backend"],
                model=options["model"],
                base_url=options["base_url"],
                model_path=options["model_path"],
                api_key_env=options["api_key_env"],
                concurrency=options["concurrency"],
                requests_per_minute=options["requests_per_minute"],
            )
        except ValidationError as error:
            raise CommandError(validation_message(error)) from error
        where = endpoint.base_url or endpoint.model_path
        self.stdout.write(
            f"Endpoint {endpoint.name} ({endpoint.backend}, {endpoint.model} at {where}) added."
        )
