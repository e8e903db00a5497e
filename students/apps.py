from django.apps import AppConfig


class StudentsConfig(AppConfig):
    name = "students"
    verbose_name = "Splits, benchmarks and students"
