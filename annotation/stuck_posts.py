"""Posts that cannot reach k with the campaign's current members.

A post needs k different annotators, and no one is offered a post twice: whoever rated it, skipped
it, let its lease expire or holds it now is out for that post. A post is stuck when the annotators
who have it (leased or done) and the active members who never had it together number fewer than
k: the campaign would stay short of 100% for good. The ways out are more members
(`services.campaign_add_members`) or giving the post back to those who skipped it or let it expire
(`services.assignments_reopen`).
"""

from dataclasses import dataclass, field

from django.db.models import Count, F, Q, Value

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
        tasks = tasks.filter(pk__in=left.values("task_id"))
    had = (
        Count("assignments", filter=Q(assignments__annotator_id__in=members))
        if members
        else Value(0)
    )
    tasks = (
        tasks.annotate(had=had)
        .annotate(available=Value(len(members)) - F("had"))
        .filter(taken__lt=Value(k) - F("available"))
    )
    report = StuckReport(k=k, members=len(members), total=tasks.count())
    rows = (
        tasks.annotate(
            done=_status_count(Assignment.Status.DONE),
            leased=_status_count(Assignment.Status.LEASED),
            skipped=_status_count(Assignment.Status.SKIPPED),
            expired=_status_count(Assignment.Status.EXPIRED),
        )
        .values(
            "post_id",
            "taken",
            "available",
            "done",
            "leased",
            "skipped",
            "expired",
            external_id=F("post__external_id"),
            text=F("post__text"),
        )
        .order_by("pk")[:limit]
    )
    for row in rows:
        report.posts.append(
            StuckPost(
                post_id=row["post_id"],
                external_id=row["external_id"],
                text=row["text"],
                done=row["done"],
                leased=row["leased"],
                skipped=row["skipped"],
                expired=row["expired"],
                available=row["available"],
                missing=k - row["taken"] - row["available"],
            )
        )
    return report


def _status_count(status: str) -> Count:
    return Count("assignments", filter=Q(assignments__status=status))
