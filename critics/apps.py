from django.apps import AppConfig


class CriticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "critics"

    def ready(self) -> None:
        from critics.exporting import critic_selection
        from evaluation.extensions import critic_picker_register

        # Export by critic: evaluation's export form, API and command pick the critic through
        # the registered picker, never by importing critics.
        critic_picker_register(critic_selection)
