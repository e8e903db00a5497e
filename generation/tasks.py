"""Celery tasks of the generation app: thin wrappers that load by id and call one service."""
