"""What the hot path's statements share: their rows mapped onto models, and SQL pieces.

`from_row` and `assignment_from_row` build model instances from a statement's row, as the ORM
would; `RatingTargets.from_row` reads the two columns `TARGETS_COLUMNS` selects.
"""

from dataclasses import dataclass

from django.db import connection

from annotation.models import Assignment, Campaign

# --- rows onto models ---------------------------------------------------------------------------

# Columns read by plain SQL: the Campaign's without `kinds` (a JSON column Django decodes itself;
# it stays deferred) and all of the Assignment's.
CAMPAIGN_FIELDS = [f for f in Campaign._meta.concrete_fields if f.name != "kinds"]
ASSIGNMENT_FIELDS = list(Assignment._meta.concrete_fields)
CAMPAIGN_COLUMNS = ", ".join(f"c.{f.column}" for f in CAMPAIGN_FIELDS)
ASSIGNMENT_COLUMNS = ", ".join(f.column for f in ASSIGNMENT_FIELDS)
A_ASSIGNMENT_COLUMNS = ", ".join(f"a.{f.column}" for f in ASSIGNMENT_FIELDS)


def from_row(model, fields, row):
    return model.from_db(connection.alias, [f.attname for f in fields], row)


def assignment_from_row(row, campaign: Campaign) -> Assignment:
    """An Assignment from a row of ASSIGNMENT_COLUMNS, with its campaign attached."""
    assignment = from_row(Assignment, ASSIGNMENT_FIELDS, row)
    assignment.campaign = campaign
    return assignment


@dataclass(frozen=True)
class RatingTargets:
    """What a submission must cover: the questions (id -> name, scale) and the post's items."""

    questions: dict[int, tuple[str, str]]
    items: set[int]

    @classmethod
    def from_row(cls, questions, items) -> "RatingTargets":
        return cls({pk: (name, scale) for pk, name, scale in questions or []}, set(items or []))


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


# --- SQL pieces -----------------------------------------------------------------

# The items a campaign rates on one post (as `campaign_items`).
POST_ITEMS_SQL = """
    SELECT i.id, i.kind, i.text, i.position, i.description_result_id
    FROM generation_knowledgeitem i
    JOIN generation_post p ON p.id = i.post_id
    JOIN annotation_campaign c ON c.id = {campaign} AND c.dataset_id = p.dataset_id
    WHERE i.post_id = {post}
      AND EXISTS (SELECT 1 FROM generation_batchitem bi
                  JOIN annotation_campaign_batches cb
                      ON cb.batch_id = bi.batch_id AND cb.campaign_id = {campaign}
                  WHERE bi.item_id = i.id)
      AND (jsonb_array_length(c.kinds) = 0
           OR i.kind IN (SELECT jsonb_array_elements_text(c.kinds)))
"""
PARAMETER_ITEMS_SQL = POST_ITEMS_SQL.format(campaign="%(campaign)s", post="%(post)s")

# The questions (id, name, scale) and the item ids a submission must cover (`items` is a CTE of
# POST_ITEMS_SQL), as the two columns `RatingTargets.from_row` reads.
TARGETS_COLUMNS = """
    (SELECT json_agg(json_build_array(q.id, q.name, q.scale))
     FROM annotation_question q WHERE q.campaign_id = {campaign}),
    (SELECT array_agg(items.id) FROM items)
"""

# One of the user's assignments, in an active campaign they still rate in.
OWN_ASSIGNMENT_SQL = f"""
SELECT {A_ASSIGNMENT_COLUMNS}, {CAMPAIGN_COLUMNS}
FROM annotation_assignment a
JOIN annotation_campaign c ON c.id = a.campaign_id AND c.is_active
JOIN annotation_campaign_members m ON m.campaign_id = c.id AND m.user_id = %(user)s
WHERE a.id = %(assignment)s AND a.annotator_id = %(user)s
"""
