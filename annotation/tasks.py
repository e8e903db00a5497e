"""Celery tasks of the annotation app."""

from celery import shared_task

from annotation.services import leases_expire


@shared_task
def leases_expire_task() -> int:
    """Return expired leases to the pool; claims also do this lazily, so missing a run is fine."""
    return leases_expire()
