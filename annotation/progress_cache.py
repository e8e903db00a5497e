"""The campaign progress the annotators' pages show: a snapshot a few seconds old, plus the posts
finished through the pages since.

Summing a campaign's tasks (137,287 rows at MIKO scale) for every page would cost more than the
rest of the page, so the figure is a snapshot kept in the cache for a few seconds. A snapshot alone
would still say "0 of 10 post ratings done" right after an annotator's first submission; so each
post the pages finish is counted against the snapshot it came after (an atomic cache counter), and
pages show the snapshot plus that count until the next snapshot replaces both. A post finished in
the instant a snapshot is taken may be counted twice for those few seconds: the figure is for
reading, never for deciding anything.
"""

from dataclasses import replace
from uuid import uuid4

from django.core.cache import cache

from annotation.models import Campaign
from annotation.selectors import Progress, campaign_progress

SNAPSHOT_SECONDS = 5


def _key(campaign: Campaign) -> str:
    # The creation time tells apart a campaign that reuses a deleted one's id.
    return f"annotation:progress:{campaign.pk}:{campaign.created_at.timestamp()}"


def progress_shown(*, campaign: Campaign) -> Progress:
    """The campaign's progress as the annotators' pages show it."""
    key = _key(campaign)
    token, progress = cache.get_or_set(
        key, lambda: (uuid4().hex, campaign_progress(campaign=campaign)), SNAPSHOT_SECONDS
    )
    since = cache.get(f"{key}:{token}")
    if not since:
        return progress
    return replace(progress, slots_done=min(progress.slots_goal, progress.slots_done + since))


def progress_count_finished(*, campaign: Campaign) -> None:
    """Count one post finished (a lease that became done) against the snapshot pages show."""
    key = _key(campaign)
    snapshot = cache.get(key)
    if snapshot is None:
        return  # the next page takes a fresh snapshot, which counts it
    counter = f"{key}:{snapshot[0]}"
    cache.add(counter, 0, SNAPSHOT_SECONDS * 2)
    try:
        cache.incr(counter)
    except ValueError:
        pass  # the counter ran out between the two calls, with its snapshot
