from django.apps import AppConfig


class StudentsConfig(AppConfig):
    name = "students"
    verbose_name = "Splits, benchmarks and students"

    def ready(self) -> None:
        from evaluation.extensions import SplitRule, split_rule_register
        from students.selectors import export_split_filters, split_conditions, splits_manifest

        # Exports keep to the splits asked for and leave the held-out split out of training
        # formats: evaluation calls the rule, it never imports it.
        split_rule_register(
            SplitRule(
                filters=export_split_filters,
                conditions=split_conditions,
                manifest=splits_manifest,
            )
        )
