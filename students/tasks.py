from celery import shared_task

from students.training import student_train


@shared_task(name="students.tasks.gpu_student_train", acks_late=True)
def gpu_student_train(training_id: int) -> None:
    """On the `gpu` queue (the name starts with gpu_): one model trains per GPU worker."""
    student_train(training_id=training_id)
