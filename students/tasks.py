from celery import shared_task

from students.evaluating import evaluation_run_execute
from students.training import student_train


@shared_task(name="students.tasks.gpu_student_train", acks_late=True)
def gpu_student_train(training_id: int) -> None:
    """On the `gpu` queue (the name starts with gpu_): one model trains per GPU worker."""
    student_train(training_id=training_id)


@shared_task(name="students.tasks.gpu_evaluation_run_execute", acks_late=True)
def gpu_evaluation_run_execute(run_id: int) -> None:
    """An evaluation run of a `transformers` endpoint, on the `gpu` queue: the model answers (or
    runs the staged pipeline's stages) in this worker."""
    evaluation_run_execute(run_id=run_id)


@shared_task(name="students.tasks.evaluation_run_execute", acks_late=True)
def evaluation_run_execute_task(run_id: int) -> None:
    """An evaluation run of an API endpoint, on the default queue."""
    evaluation_run_execute(run_id=run_id)
