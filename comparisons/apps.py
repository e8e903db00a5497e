from django.apps import AppConfig


class ComparisonsConfig(AppConfig):
    name = "comparisons"
    verbose_name = "Blind comparison of runs"

    def ready(self) -> None:
        from annotation.extensions import CampaignSource, campaign_source_register
        from comparisons.cli import compare_runs_create

        # `create_campaign --compare-runs 3,4`: annotation calls it, it never imports it.
        campaign_source_register(
            CampaignSource(
                option="--compare-runs",
                help="evaluation run ids, e.g. 3,4: a campaign rating their answers blind",
                create=compare_runs_create,
            )
        )
