from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "judges"
    verbose_name = "LLM judges"

    def ready(self) -> None:
        from generation.runner.recovery import recovery_register
        from judges.services import judge_runs_resume_orphaned

        # A worker that (re)connects sends again the judge runs a dead worker left.
        recovery_register(judge_runs_resume_orphaned)
