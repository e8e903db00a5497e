from django.apps import AppConfig


class CriticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "critics"
