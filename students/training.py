"""`train_student`: a LoRA student fine-tuned from an `sft-chat` export with TRL's SFTTrainer and
PEFT, on the `gpu` queue, registered as a `transformers` endpoint (base model plus adapter).

Each export record becomes a conversational prompt-completion example (the system and user
messages as the prompt, the assistant's answer as the completion), so the loss is computed on the
completion only. The trainer's logged losses are written to the training row as they come, for
its page; the adapter goes to `MEDIA_ROOT/students/<id>/adapter`.

Its worker holds the training's lease while it trains (`students.leases`: a heartbeat from a
thread of its own, through long steps too). A training whose worker died is failed, not trained
again from the start behind the user's back (`student_trainings_recover_orphaned`); it may be
started again (`student_training_restart`).
"""

import json
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce

from config.errors import ApplicationError, Conflict
from evaluation.models import ExportJob
from generation.models import Endpoint
from generation.runner.lease import SYSTEM_CLOCK, Clock, lease_claim
from generation.services.endpoints import endpoint_create
from students.leases import Heartbeat, claim_queued, job_restart, worker_stopped_error
from students.models import StudentTraining

MAX_STEPS = 100_000


def student_training_create(
    *,
    export: ExportJob,
    base_model: str,
    method: str = StudentTraining.Method.LORA,
    max_steps: int = 100,
    created_by=None,
    enqueue: bool = True,
) -> StudentTraining:
    """Check the request and record it; with `enqueue`, send it to the `gpu` queue after commit."""
    if method not in StudentTraining.Method.values:
        raise ApplicationError(
            f"unknown method {method!r}; methods: {', '.join(StudentTraining.Method.values)}",
            field="method",
        )
    if export.format != "sft-chat":
        raise ApplicationError(
            f"export {export.pk} is {export.format}; a student trains on an sft-chat export",
            field="export",
        )
    if export.status != ExportJob.Status.DONE or not export.file:
        raise Conflict(f"export {export.pk} is {export.status}, not done", field="export")
    if not (Path(base_model) / "config.json").is_file():
        raise ApplicationError(
            f"{base_model}: not a model folder (no config.json)", field="base_model"
        )
    if not 1 <= max_steps <= MAX_STEPS:
        raise ApplicationError(f"max_steps is 1 to {MAX_STEPS:,}", field="max_steps")
    training = StudentTraining.objects.create(
        export=export,
        base_model=str(base_model),
        method=method,
        max_steps=max_steps,
        created_by=created_by,
    )
    if enqueue:
        student_training_enqueue(training)
    return training


def student_training_enqueue(training: StudentTraining) -> None:
    """Send the training to the `gpu` queue once the transaction commits."""
    from students.tasks import gpu_student_train

    transaction.on_commit(lambda: gpu_student_train.delay(training.pk))


def student_training_restart(*, training: StudentTraining) -> StudentTraining:
    """A failed training queued again on the `gpu` queue, from its first step (its losses
    cleared); 409 unless it failed, or when its export was deleted."""
    if training.export_id is None:
        raise Conflict("its export was deleted: train a new student from another export")
    job_restart(training, what="student training", losses=[], adapter_path="")
    student_training_enqueue(training)
    return training


def student_train(*, training_id: int) -> StudentTraining:
    """Train once: queued → running → done (with its endpoint) or failed (with the error)."""
    token = uuid.uuid4().hex
    claimed = claim_queued(model=StudentTraining, pk=training_id, token=token)
    training = StudentTraining.objects.select_related("export").get(pk=training_id)
    if not claimed:
        return training
    with Heartbeat(model=StudentTraining, pk=training.pk, token=token) as heartbeat:
        try:
            adapter = _train(training)
            endpoint = endpoint_create(
                name=f"student-{training.pk}",
                backend=Endpoint.Backend.TRANSFORMERS,
                model=f"{Path(training.base_model).name}+student-{training.pk}",
                model_path=training.base_model,
                concurrency=1,
                parameters={"adapter": str(adapter)},
            )
        except Exception as error:  # recorded on the training for its page; the worker goes on
            ending = {"status": StudentTraining.Status.FAILED, "error": str(error)[:2000]}
        else:
            ending = {
                "status": StudentTraining.Status.DONE,
                "adapter_path": str(adapter),
                "endpoint": endpoint,
            }
    heartbeat.end(**ending)
    training.refresh_from_db()
    return training


def student_training_fail_orphaned(*, training_id: int, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Fail a running training whose worker died, once its lease has run out (a live worker's
    is left alone): its error says when the worker stopped, its `finished_at` is that time.
    True if it was failed."""
    if not StudentTraining.objects.filter(
        pk=training_id, status=StudentTraining.Status.RUNNING
    ).exists():
        return False
    token = uuid.uuid4().hex
    # The claim's update reads the old heartbeat: the last sign of the dead worker.
    taken = lease_claim(
        model=StudentTraining,
        pk=training_id,
        token=token,
        clock=clock,
        fields=lambda now: {"finished_at": Coalesce("heartbeat_at", "started_at", Value(now))},
    )
    if not taken:
        return False
    stopped_at = StudentTraining.objects.values_list("finished_at", flat=True).get(pk=training_id)
    StudentTraining.objects.filter(pk=training_id, runner=token).update(
        status=StudentTraining.Status.FAILED, error=worker_stopped_error(stopped_at), runner=""
    )
    return True


def student_trainings_recover_orphaned() -> list[int]:
    """Send the queued trainings to the `gpu` queue again (a message the broker lost), and have
    every running one checked (`students.tasks.student_training_check`, on the default queue):
    failed once its lease has run out, left alone while its worker renews it. Returns their ids.

    Registered with `generation.runner.recovery` (`StudentsConfig.ready`): called when a worker
    (re)connects to the broker. A training is not trained again behind the user's back: hours of
    GPU may be spent on it, and its page offers to start it again.
    """
    from students.tasks import student_training_check

    trainings = list(
        StudentTraining.objects.filter(
            status__in=[StudentTraining.Status.QUEUED, StudentTraining.Status.RUNNING]
        )
    )
    for training in trainings:
        if training.status == StudentTraining.Status.QUEUED:
            student_training_enqueue(training)
        else:
            transaction.on_commit(lambda pk=training.pk: student_training_check.delay(pk))
    return [training.pk for training in trainings]


def _examples(path: Path) -> list[dict]:
    examples = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            messages = json.loads(line)["messages"]
            if len(messages) < 2 or messages[-1]["role"] != "assistant":
                raise ApplicationError(f"{path.name}:{number}: not an sft-chat record")
            examples.append({"prompt": messages[:-1], "completion": messages[-1:]})
    if not examples:
        raise ApplicationError(f"export {path.name} holds no records to train on")
    return examples


def _train(training: StudentTraining) -> Path:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    folder = Path(settings.MEDIA_ROOT) / "students" / str(training.pk)
    if training.export is None:
        raise ApplicationError("its export was deleted before it trained")
    examples = _examples(Path(training.export.file.path))

    class LossToDatabase(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                training.losses.append([state.global_step, float(logs["loss"])])
                StudentTraining.objects.filter(pk=training.pk).update(losses=training.losses)

    config = SFTConfig(
        output_dir=str(folder / "checkpoints"),
        max_steps=training.max_steps,
        per_device_train_batch_size=8,
        learning_rate=2e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_length=1024,
        use_cpu=not _cuda(),
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=training.base_model,
        args=config,
        train_dataset=Dataset.from_list(examples),
        peft_config=LoraConfig(
            r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=[LossToDatabase()],
    )
    trainer.train()
    adapter = folder / "adapter"
    trainer.save_model(str(adapter))
    return adapter


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
