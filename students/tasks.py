from celery import shared_task

from generation.runner.lease import REDELIVERED_TASK_OPTIONS, RUNNER_TASK_OPTIONS
from students.evaluating import evaluation_run_execute
from students.training import student_train, student_training_fail_orphaned

# A training is delivered again when its worker dies: trained if it was still queued; one that
# had started is no longer queued and is left to the recovery, which fails it
# (`student_training_check`): it is never trained twice.
TRAINING_TASK_OPTIONS = REDELIVERED_TASK_OPTIONS


@shared_task(name="students.tasks.gpu_student_train", **TRAINING_TASK_OPTIONS)
def gpu_student_train(training_id: int) -> None:
    """On the `gpu` queue (the name starts with gpu_): one model trains per GPU worker."""
    student_train(training_id=training_id)


@shared_task(name="students.tasks.student_training_check", **TRAINING_TASK_OPTIONS)
def student_training_check(training_id: int) -> None:
    """On the default queue: fail a running training whose worker died (its lease run out)."""
    student_training_fail_orphaned(training_id=training_id)


@shared_task(name="students.tasks.gpu_evaluation_run_execute", **RUNNER_TASK_OPTIONS)
def gpu_evaluation_run_execute(run_id: int) -> None:
    """An evaluation run of a `transformers` endpoint, on the `gpu` queue: the model answers (or
    runs the staged pipeline's stages) in this worker. Delivered again when its worker dies: it
    takes the run over once the dead worker's lease has run out."""
    evaluation_run_execute(run_id=run_id, wait_for_lease=True)


@shared_task(name="students.tasks.evaluation_run_execute", **RUNNER_TASK_OPTIONS)
def evaluation_run_execute_task(run_id: int) -> None:
    """An evaluation run of an API endpoint, on the default queue (delivered again, as above)."""
    evaluation_run_execute(run_id=run_id, wait_for_lease=True)
