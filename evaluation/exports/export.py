"""One export run: the campaign, its questions, the filters and the rows they select.

Rows come from `selectors.scores.item_scores` through a server-side cursor; each chunk is
completed with its items' text, posts and image descriptions in two small queries, written, and
dropped, so memory stays flat whatever the campaign's size.
"""

import functools
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Max, Min

from annotation.models import Campaign, Question, Rating
from annotation.selectors import campaign_items
from evaluation.selectors.campaigns import item_details, stage_keys
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores, score_summaries
from generation.pipelines.base import all_pipelines
from generation.selectors.items import result_descriptions, source_ids

CHUNK_SIZE = 2000

Progress = Callable[[int, int], None]  # (percent, items written)


@dataclass
class ExportRow:
    item_id: int
    post_pk: int
    post_id: str
    post_text: str
    image: str
    image_description: str
    kind: str
    position: int
    text: str
    scores: dict[str, dict]

    def flat(self, questions: list[Question]) -> dict:
        row = {
            "item_id": self.item_id,
            "post_id": self.post_id,
            "kind": self.kind,
            "position": self.position,
            "text": self.text,
            "post_text": self.post_text,
            "image": self.image,
            "image_description": self.image_description,
        }
        for question in questions:
            score = self.scores[question.name]
            for key in ("n", "mean", "median", "spread"):
                row[f"{question.name}_{key}"] = score[key]
        return row

    def prompt(self) -> str:
        return post_prompt(self.post_text, self.image_description)


def post_prompt(text: str, image_description: str) -> str:
    """The post as a model reads it: its text, then what its image shows."""
    parts = [f"Post: {text}"]
    if image_description:
        parts.append(f"Image description: {image_description}")
    return "\n".join(parts)


class Export:
    """One export run: the campaign, its questions, the filters and the rows they select."""

    def __init__(
        self,
        *,
        campaign: Campaign,
        filters: ItemFilters,
        progress: Progress | None,
        by_post: bool = False,
        drop_empty: bool = False,
        critic=None,
    ):
        self.campaign = campaign
        # Export by critic (`critics.exporting.CriticSelection`): unrated items it keeps join the
        # rows by item id; None exports the rated items only.
        self.critic = critic
        self.by_post = by_post
        self.filters = filters
        # Gold items and low-accuracy annotators the filters leave out (of scores and ratings).
        self.exclusions = filters.exclusions(campaign=campaign)
        # cotpd: leave out the posts none of whose items passed (kept, with empty knowledge, else).
        self.drop_empty = drop_empty
        self.questions = list(campaign.questions.order_by("position", "id"))
        self.progress = progress
        self.items = 0
        self._posts_seen: set[int] = set()
        # Posts written, where a format writes other posts than those of its items (cotpd).
        self.post_records: int | None = None
        # The ratings behind the exported items: those their scores were computed from.
        self.ratings = 0
        # Format-specific figures for the manifest (cotpd: records, labels, augmentations).
        self.extra: dict = {}
        # (stage, pipeline, model, template hash, parameters as JSON, endpoint id) of the stage
        # results the exported items were built from.
        self.stage_keys: set[tuple] = set()
        # Progress is the share of the id range passed; the range comes from the campaign's items
        # (through the batch index), not from a scan of the ratings.
        field = "post_id" if by_post else "id"
        bounds = campaign_items(campaign=campaign).aggregate(lo=Min(field), hi=Max(field))
        self._lo, self._hi = bounds["lo"] or 0, bounds["hi"] or 0

    def chunks(self) -> Iterator[list[ExportRow]]:
        scores = item_scores(
            campaign=self.campaign,
            filters=self.filters,
            by_post=self.by_post,
            chunk_size=CHUNK_SIZE,
            exclusions=self.exclusions,
        )
        if self.critic is not None:
            scores = heapq.merge(scores, self.critic.rows(self), key=lambda row: row["item_id"])
        chunk: list[dict] = []
        for row in scores:
            chunk.append(row)
            if len(chunk) >= CHUNK_SIZE:
                yield self._complete(chunk)
                self._report(chunk[-1])
                chunk = []
        if chunk:
            yield self._complete(chunk)
        if self.critic is not None:
            self.extra["critic"] = self.critic.as_manifest()
        if self.progress:
            self.progress(100, self.items)

    def _report(self, row: dict) -> None:
        """Progress as the share of the id range passed (of posts when ordered by post)."""
        if self.progress and self._hi > self._lo:
            at = row["post_id"] if self.by_post else row["item_id"]
            share = (at - self._lo) / (self._hi - self._lo)
            self.progress(min(99, max(0, int(100 * share))), self.items)

    def _complete(self, chunk: list[dict]) -> list[ExportRow]:
        items = item_details(item_ids=[row["item_id"] for row in chunk])
        # The description or caption each item's own run read, not the post's latest.
        descriptions = result_descriptions(
            result_ids={i["description_result_id"] for i in items.values()} - {None}
        )
        rows = []
        for score_row, scores in zip(chunk, score_summaries(chunk, self.questions), strict=True):
            item = items[score_row["item_id"]]
            rows.append(
                ExportRow(
                    item_id=item["id"],
                    post_pk=item["post_id"],
                    post_id=item["external_id"],
                    post_text=item["post_text"],
                    image=item["image"] or "",
                    image_description=descriptions.get(item["description_result_id"], ""),
                    kind=item["kind"],
                    position=item["position"],
                    text=item["text"],
                    scores=scores,
                )
            )
            self._posts_seen.add(item["post_id"])
            self.ratings += sum(score["n"] for score in scores.values())
        self.items += len(rows)
        if self.critic is not None:
            self.critic.count(chunk)
        self._note_sources(items.values())
        return rows

    def _note_sources(self, items: Iterable[dict]) -> None:
        """Remember how the stage results behind these items (as `item_details` reads them) were
        produced, for the manifest.

        An item names its stage results in `provenance["stage_results"]`; an item from before
        provenance is read with its own stage result and what its batch's upstream stages (those
        another stage needs: descriptions, key information, captions) answered for its post.
        """
        result_ids: set[int] = set()
        posts: set[int] = set()
        batches: set[int] = set()
        for item in items:
            result_ids.update(
                pk for pk in (item["stage_result_id"], item["description_result_id"]) if pk
            )
            sources = source_ids(item["stage_results"])
            if sources:
                result_ids.update(sources.values())
            else:
                posts.add(item["post_id"])
                batches.add(item["batch_id"])
        self.stage_keys.update(stage_keys(result_ids=result_ids))
        if posts:
            self.stage_keys.update(
                stage_keys(posts=posts, batches=batches, stages=upstream_stages())
            )

    @property
    def posts(self) -> int:
        if self.post_records is not None:
            return self.post_records
        return len(self._posts_seen)

    def raw_ratings(self, rows: list[ExportRow]) -> list[tuple]:
        ratings = (
            Rating.objects.filter(campaign=self.campaign, item_id__in=[r.item_id for r in rows])
            .exclude(annotator_id__in=self.exclusions.annotator_ids)
            .order_by("item_id", "annotator__username", "question__position", "question_id")
            .values_list("item_id", "annotator__username", "question__name", "value", "seconds")
        )
        return list(ratings)


@functools.cache
def upstream_stages() -> list[str]:
    """Stages whose output another stage reads, in every pipeline."""
    return sorted(
        {need for p in all_pipelines().values() for stage in p.stages for need in stage.needs}
    )


def empty_scores(export: Export) -> dict:
    """The scores of an item no one rated, per question of the export."""
    return {
        q.name: {"n": 0, "mean": None, "median": None, "spread": None} for q in export.questions
    }
