from django.apps import AppConfig


class StudentsConfig(AppConfig):
    name = "students"
    verbose_name = "Splits, benchmarks and students"

    def ready(self) -> None:
        from evaluation.extensions import SplitRule, split_rule_register
        from generation.extensions import ImportSplit, import_split_register
        from generation.runner.recovery import recovery_register
        from students.evaluating import evaluation_runs_resume_orphaned
        from students.selectors import (
            export_split_filters,
            split_conditions,
            split_counts,
            splits_manifest,
        )
        from students.services import SplitKeeper
        from students.training import student_trainings_recover_orphaned

        # Exports keep to the splits asked for and leave the held-out split out of training
        # formats: evaluation calls the rule, it never imports it.
        split_rule_register(
            SplitRule(
                filters=export_split_filters,
                conditions=split_conditions,
                manifest=splits_manifest,
            )
        )
        # `import_posts --split` and the upload's Split keep a source file's split: generation
        # calls the keeper, it never imports it.
        import_split_register(
            ImportSplit(
                keeper=SplitKeeper,
                names=split_counts,
                help="the split the file's posts belong to (train, dev, test...), as the source "
                "ships them: kept, never drawn again",
            )
        )
        # A worker that (re)connects runs again the evaluation runs a dead worker left, and fails
        # its trainings (they may be started again from their page).
        recovery_register(evaluation_runs_resume_orphaned)
        recovery_register(student_trainings_recover_orphaned)
