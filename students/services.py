"""Writes of the students app: splits drawn from a seed or kept from a source file."""

from collections.abc import Callable, Iterable

from django.db import transaction

from config.errors import ApplicationError, Conflict
from generation.models import Dataset, Post
from students.models import PostSplit, SplitAssignment
from students.splits import (
    fractions_checked,
    fractions_text,
    seed_checked,
    split_name_checked,
    split_of,
)

CHUNK = 5000

Progress = Callable[[int, int], None]  # (posts done, posts to do)


def splits_draw(
    *,
    dataset: Dataset,
    fractions: dict[str, float],
    seed: int,
    replace: bool = False,
    created_by=None,
    progress: Progress | None = None,
) -> SplitAssignment:
    """Give every post of `dataset` that has no split yet one drawn from `seed` and `fractions`.

    Drawing again with the same seed and fractions splits only the posts added since (the others
    keep theirs, which the same draw would give them anyway). Another seed or other fractions are
    refused while posts hold splits of the earlier draw, unless `replace`, which first takes those
    splits away. Splits kept from a source file (`splits_keep`) are never moved.
    The dataset row is locked for the transaction: two draws on one dataset run one after the other.
    """
    fractions = fractions_checked(fractions)
    seed = seed_checked(seed)
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        drawn = SplitAssignment.objects.filter(dataset=dataset, source=SplitAssignment.Source.SEED)
        assignment = None
        for earlier in drawn:
            same = list(earlier.fraction_map.items()) == list(fractions.items())
            if same and earlier.seed == seed and not replace:
                assignment = earlier
            elif not replace and earlier.posts.exists():
                raise Conflict(
                    f"dataset {dataset.name!r} is already split with seed {earlier.seed} "
                    f"({fractions_text(earlier.fraction_map)}); replace those splits to draw "
                    f"again (a post that moves from test to train leaks into training)",
                    field="seed",
                )
        if replace:
            drawn.delete()
        if assignment is None:
            assignment = SplitAssignment.objects.create(
                dataset=dataset,
                source=SplitAssignment.Source.SEED,
                seed=seed,
                fractions=[[name, fraction] for name, fraction in fractions.items()],
                created_by=created_by,
            )
        unsplit = Post.objects.filter(dataset=dataset, split__isnull=True).order_by("id")
        total = unsplit.count()
        done = 0
        rows = unsplit.values_list("id", "external_id")
        # Keyset chunks: the rows written in a chunk leave `unsplit`, so no offset is needed.
        last = 0
        while chunk := list(rows.filter(id__gt=last)[:CHUNK]):
            PostSplit.objects.bulk_create(
                PostSplit(
                    post_id=post_id,
                    dataset=dataset,
                    name=split_of(seed=seed, fractions=fractions, external_id=external_id),
                    assignment=assignment,
                )
                for post_id, external_id in chunk
            )
            last = chunk[-1][0]
            done += len(chunk)
            if progress:
                progress(done, total)
    return assignment


class SplitKeeper:
    """Records the split a source file gives its posts, chunk by chunk, inside an import's
    transaction (`posts_import(on_posts=...)`): one assignment for the whole file."""

    def __init__(self, *, name: str, origin: str, created_by=None) -> None:
        self.name = split_name_checked(name)
        self.origin = origin[-500:]
        self.created_by = created_by
        self.assignment: SplitAssignment | None = None

    def __call__(self, dataset: Dataset, external_ids: Iterable[str]) -> None:
        if self.assignment is None:
            self.assignment = SplitAssignment.objects.create(
                dataset=dataset,
                source=SplitAssignment.Source.IMPORT,
                origin=self.origin,
                created_by=self.created_by,
            )
        splits_keep(assignment=self.assignment, name=self.name, external_ids=external_ids)


def splits_keep(*, assignment: SplitAssignment, name: str, external_ids: Iterable[str]) -> int:
    """Put the posts of `assignment`'s dataset with these ids in split `name`; returns how many
    were new to it. A post already in another split is refused (naming it): moving it could leak
    a test post into training, or a training post into the test set."""
    name = split_name_checked(name)
    posts = dict(
        Post.objects.filter(
            dataset_id=assignment.dataset_id, external_id__in=list(external_ids)
        ).values_list("id", "external_id")
    )
    held = dict(PostSplit.objects.filter(post_id__in=list(posts)).values_list("post_id", "name"))
    moved = sorted(posts[pk] for pk, split in held.items() if split != name)
    if moved:
        shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        raise ApplicationError(
            f"{len(moved)} post(s) are already in another split than {name!r}: {shown}",
            field="split",
        )
    fresh = [pk for pk in posts if pk not in held]
    PostSplit.objects.bulk_create(
        PostSplit(post_id=pk, dataset_id=assignment.dataset_id, name=name, assignment=assignment)
        for pk in fresh
    )
    return len(fresh)
