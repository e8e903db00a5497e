from celery import shared_task

from evaluation import services


@shared_task(acks_late=True)
def agreement_refresh_task(campaign_id: int, level: str = "") -> None:
    services.agreement_run(campaign_id=campaign_id, level=level)


@shared_task(acks_late=True)
def export_run_task(job_id: int) -> None:
    services.export_run(job_id=job_id)
