"""`endpoint_add NAME --backend openai|transformers (--base-url URL | --model-path PATH) ...`

The connection is tested before the endpoint is saved (a models list or a one-token call; a model
folder with a config); a failure stops it with the reason, unless `--no-check`.
"""

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
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="save without testing the connection (by default a failed test refuses it)",
        )

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
                test_connection=not options["no_check"],
            )
        except ValidationError as error:
            if "connection" in getattr(error, "error_dict", {}):
                raise CommandError(
                    f"connection test failed: {' '.join(error.message_dict['connection'])} "
                    "Nothing was saved; pass --no-check to save it anyway."
                ) from error
            raise CommandError(validation_message(error)) from error
        where = endpoint.base_url or endpoint.model_path
        if endpoint.connection_check:
            self.stdout.write(endpoint.connection_check.message)
        self.stdout.write(
            f"Endpoint {endpoint.name} ({endpoint.backend}, {endpoint.model} at {where}) added"
            + ("." if endpoint.connection_check else " without testing its connection.")
        )
