"""What the apps above annotation add to `create_campaign`, registered in their
`AppConfig.ready()`: annotation imports none of them (docs/architecture.md).

A `CampaignSource` is an option of the command that makes the campaign from something other than
batches, through its own app's service: `comparisons` adds `--compare-runs 3,4`, a campaign over
the answers of evaluation runs, rated blind.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CampaignSource:
    """`option` (e.g. `--compare-runs`) takes one value; `create(value, dataset=, name=,
    questions=, scale=, overlap=, lease_minutes=, instructions=, members=)` makes the campaign and
    returns the line the command prints, or raises `CommandError`."""

    option: str
    help: str
    create: Callable[..., str]

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


_sources: dict[str, CampaignSource] = {}


def campaign_source_register(source: CampaignSource) -> None:
    _sources[source.option] = source


def campaign_sources() -> list[CampaignSource]:
    return list(_sources.values())
