"""Posts that cannot reach k with the campaign's current members.

A post needs k different annotators, and no one is offered a post twice: whoever rated it, skipped
it, let its lease expire or holds it now is out for that post. A post is stuck when the annotators
who have it (leased or done) and the active members who never had it together number fewer than
k: the campaign would stay short of 100% for good. The ways out are more members
(`services.campaign_add_members`) or giving the post back to those who skipped it or let it expire
(`services.assignments_reopen`).
"""

from dataclasses import dataclass, field

from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from annotation.models import Assignment, Campaign, Task

# Statuses that keep an annotator off a post for good without counting towards its k.
LEFT = (Assignment.Status.SKIPPED, Assignment.Status.EXPIRED)


@dataclass(frozen=True)
class StuckPost:
    post_id: int
    external_id: str
    text: str
    done: int
    leased: int
    skipped: int
    expired: int
    available: int  # active members who never had the post
    missing: int  # annotators short of k even if every available member rates it


@dataclass
class StuckReport:
    k: int
    members: int  # active members
    total: int  # stuck posts, of which `posts` lists the first
    posts: list[StuckPost] = field(default_factory=list)


def stuck_posts(*, campaign: Campaign, limit: int = 50) -> StuckReport:
    """The campaign's posts (not gold posts) that cannot reach k with the current members.

    With at least k active members, only a post that a member skipped or let expire can be stuck
    (the others can still be given to every member who has not had them), so the search starts
    from those assignments, which are few; with fewer than k members every unfinished post is.
    """
    k = campaign.overlap
    members = list(campaign.members.filter(is_active=True).values_list("pk", flat=True))
    tasks = Task.objects.filter(campaign=campaign, is_gold=False, taken__lt=k)
    if len(members) >= k:
        left = Assignment.objects.filter(campaign=campaign, status__in=LEFT, annotator__in=members)
        # Read apart: as a subquery the planner scans every task of the campaign to join them.
        candidates = list(left.values_list("task_id", flat=True).order_by().distinct())
        if not candidates:
            return StuckReport(k=k, members=len(members), total=0)
        tasks = tasks.filter(pk__in=candidates)
    if not members:
        had = Value(0)
    elif len(members) >= k:
        # Members who had each of the few candidates, through the (task, annotator) index.
        had = Coalesce(
            Subquery(
                Assignment.objects.filter(task=OuterRef("pk"), annotator_id__in=members)
                .order_by()
                .values("task")
                .annotate(n=Count("pk"))
                .values("n")
            ),
            0,
        )
    else:
        # Every unfinished post is a candidate: one pass over the campaign's assignments.
        had = Count("assignments", filter=Q(assignments__annotator_id__in=members))
    tasks = tasks.annotate(available=Value(len(members)) - had).filter(
        taken__lt=Value(k) - F("available")
    )
    report = StuckReport(k=k, members=len(members), total=tasks.count())
    rows = list(
        tasks.values(
            "pk",
            "post_id",
            "taken",
            "available",
            external_id=F("post__external_id"),
            text=F("post__text"),
        ).order_by("pk")[:limit]
    )
    counts: dict[tuple[int, str], int] = {
        (task_id, status): n
        for task_id, status, n in Assignment.objects.filter(task_id__in=[r["pk"] for r in rows])
        .values_list("task_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    }
    for row in rows:
        report.posts.append(
            StuckPost(
                post_id=row["post_id"],
                external_id=row["external_id"],
                text=row["text"],
                done=counts.get((row["pk"], Assignment.Status.DONE), 0),
                leased=counts.get((row["pk"], Assignment.Status.LEASED), 0),
                skipped=counts.get((row["pk"], Assignment.Status.SKIPPED), 0),
                expired=counts.get((row["pk"], Assignment.Status.EXPIRED), 0),
                available=row["available"],
                missing=k - row["taken"] - row["available"],
            )
        )
    return report
