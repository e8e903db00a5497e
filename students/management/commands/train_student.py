"""`train_student --export ID --base-model PATH [--method lora] [--max-steps N] [--wait]`"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.commands import found, refusals
from evaluation.models import ExportJob
from students.models import StudentTraining
from students.training import student_train, student_training_create


class Command(BaseCommand):
    help = (
        "Fine-tune a LoRA student on an sft-chat export (TRL SFTTrainer, loss on the completion "
        "only) on the gpu queue; it is registered as a transformers endpoint once trained."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--export", required=True, type=int, help="id of a done sft-chat export"
        )
        parser.add_argument("--base-model", required=True, metavar="PATH", help="model folder")
        parser.add_argument("--method", default="lora", choices=StudentTraining.Method.values)
        parser.add_argument("--max-steps", type=int, default=100)
        parser.add_argument(
            "--wait", action="store_true", help="train in this process instead of the gpu queue"
        )

    def handle(self, *args, **options) -> None:
        export = found(ExportJob.objects, f"no export {options['export']}", pk=options["export"])
        with refusals():
            training = student_training_create(
                export=export,
                base_model=options["base_model"],
                method=options["method"],
                max_steps=options["max_steps"],
                enqueue=not options["wait"],
            )
        if not options["wait"]:
            self.stdout.write(f"Student training {training.pk} queued on the gpu queue")
            return
        training = student_train(training_id=training.pk)
        if training.status != StudentTraining.Status.DONE:
            raise CommandError(f"student training {training.pk} failed: {training.error}")
        last = training.losses[-1][1] if training.losses else None
        self.stdout.write(
            f"Student training {training.pk} done: endpoint {training.endpoint.name!r} "
            f"(adapter {training.adapter_path}), last loss {last}"
        )
