"""Work a dead worker left behind, sent again whenever a worker (re)connects to the broker.

`generation.tasks.OrphanedWorkRecover` calls generation's own recoveries (batches, import jobs)
and then every function registered here. An app above generation registers how it sends its own
runs again in its `AppConfig.ready()` (judges: `judge_runs_resume_orphaned`), so generation
imports none of them. A recovery takes no argument; what it returns is ignored.
"""

from collections.abc import Callable

_recoveries: list[Callable[[], object]] = []


def recovery_register(recover: Callable[[], object]) -> None:
    """Have `recover` called at every (re)connection of a worker; registering twice is once."""
    if recover not in _recoveries:
        _recoveries.append(recover)


def recoveries() -> list[Callable[[], object]]:
    """The registered recoveries, in the order they were registered."""
    return list(_recoveries)
