"""The Celery app. Without CELERY_BROKER_URL it runs on an embedded SQLite-backed broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("distillery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Recover batches and import jobs left by a dead worker at every (re)connection to the broker
# (see the step's docstring).
app.steps["consumer"].add("generation.tasks:OrphanedWorkRecover")
