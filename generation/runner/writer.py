"""The writer: stage results and their knowledge items, stored in one transaction per bulk.

New results go in by COPY on PostgreSQL (`generation.copying`: the writer's CPU per call stays
small), by a bulk insert elsewhere; retried ones are updated in place. Items are stored once per
(post, kind, text) and linked to the batch (`generation.services.items.items_store`); each names
the stage results it was built from.
"""

import json
from collections import ChainMap
from collections.abc import Mapping
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from generation.copying import (
    STAGE_RESULT_FIELDS,
    StageResultRow,
    column_list,
    copy_into_temp,
    execute,
    instances,
    table,
)
from generation.models import Batch, KnowledgeItem, StageResult
from generation.pipelines.base import ItemSpec
from generation.runner.keys import STAGE_RESULT_KEY, StagePlan
from generation.runner.outcomes import Outcome
from generation.services.items import DESCRIPTION_STAGES, items_store

# Where the stored ids of results are kept, by (post id, stage name).
ResultIds = dict[tuple[int, str], int]

# What a retried result's update writes: all but its key and when it was first stored.
RESULT_FIELDS = [
    name for name in STAGE_RESULT_FIELDS if name not in (*STAGE_RESULT_KEY, "created_at")
]


def persist_outcomes(
    *,
    batch: Batch,
    plans: dict[str, StagePlan],
    outcomes: list[Outcome],
    known_ids: ResultIds,
) -> None:
    """Write results and their items in one transaction.

    New keys are inserted (a conflicting row, written meanwhile by another batch, wins and lends
    its id); keys in `known_ids` (earlier failures being retried) are updated in place. The new
    ids join `known_ids` only once the transaction has committed, so a write that fails (a lost
    connection) can be given the same outcomes again.
    """
    if not outcomes:
        return
    now = timezone.now()
    fresh = [o for o in outcomes if (o.post_id, o.stage) not in known_ids]
    retried = [o for o in outcomes if (o.post_id, o.stage) in known_ids]
    new_ids: ResultIds = {}
    with transaction.atomic():
        if retried:
            updates = _results(batch, plans, retried, now)
            for result in updates:
                result.pk = known_ids[(result.post_id, result.stage)]
            StageResult.objects.bulk_update(updates, RESULT_FIELDS)
        if fresh and connection.vendor == "postgresql":
            new_ids.update(_insert_results_by_copy(batch, plans, fresh, now))
        elif fresh:
            inserts = _results(batch, plans, fresh, now)
            StageResult.objects.bulk_create(
                inserts,
                update_conflicts=True,
                unique_fields=STAGE_RESULT_KEY,
                update_fields=["updated_at"],
            )
            new_ids.update({(r.post_id, r.stage): r.pk for r in inserts})
        ids = ChainMap(new_ids, known_ids)
        items = [
            item
            for o in outcomes
            if o.ok and o.items
            for item in result_items(
                batch=batch, plan=plans[o.stage], post_id=o.post_id, ids=ids, specs=o.items
            )
        ]
        items_store(batch_id=batch.pk, items=items, now=now)
    known_ids.update(new_ids)


def result_items(
    *,
    batch: Batch,
    plan: StagePlan,
    post_id: int,
    ids: Mapping[tuple[int, str], int],
    specs: list[ItemSpec],
) -> list[KnowledgeItem]:
    """The items of one stage result, naming the results they were built from.

    `ids` maps (post, stage) to stored result ids: the result itself and the stages it read
    (the image description or caption, the key information).
    """
    if not specs:
        return []
    sources = {name: ids[(post_id, name)] for name in plan.stage.needs if (post_id, name) in ids}
    description = next((sources[name] for name in DESCRIPTION_STAGES if name in sources), None)
    result_id = ids.get((post_id, plan.name))
    provenance = {
        "stage": plan.name,
        "model": plan.model,
        "endpoint": plan.endpoint.name,
        "template_hash": plan.template_hash,
        "stage_results": {plan.name: result_id, **sources},
    }
    return [
        KnowledgeItem(
            post_id=post_id,
            batch_id=batch.pk,
            kind=spec.kind,
            position=spec.position,
            text=spec.text,
            stage_result_id=result_id,
            description_result_id=description,
            provenance={**provenance, **spec.provenance} if spec.provenance else provenance,
        )
        for spec in specs
    ]


def _results(
    batch: Batch, plans: dict[str, StagePlan], outcomes: list[Outcome], now: datetime
) -> list[StageResult]:
    """StageResult instances of outcomes, for the ORM (the same values as their COPY rows)."""
    rows = [_copy_row(batch, plans[o.stage], o, now) for o in outcomes]
    return instances(StageResult, STAGE_RESULT_FIELDS, rows)


def _copy_row(batch: Batch, plan: StagePlan, o: Outcome, now: datetime) -> StageResultRow:
    return StageResultRow(
        post=o.post_id,
        stage=o.stage,
        template_hash=plan.template_hash,
        model=plan.model,
        params_hash=plan.params_hash,
        endpoint_key=plan.endpoint_key,
        parameters=json.dumps(plan.parameters),
        batch=batch.pk,
        endpoint=plan.endpoint.pk,
        status=o.status,
        request=json.dumps(o.request),
        raw_answer=o.raw,
        parsed=None if o.parsed is None else json.dumps(o.parsed),
        error=o.error,
        prompt_tokens=o.prompt_tokens,
        completion_tokens=o.completion_tokens,
        latency_ms=o.latency_ms,
        attempts=o.attempts,
        created_at=now,
        updated_at=now,
    )


def _insert_results_by_copy(
    batch: Batch, plans: dict[str, StagePlan], outcomes: list[Outcome], now: datetime
) -> ResultIds:
    rows = [_copy_row(batch, plans[o.stage], o, now) for o in outcomes]
    result_columns = column_list(StageResult, STAGE_RESULT_FIELDS)
    with connection.cursor() as cursor:
        temp = copy_into_temp(cursor, StageResult, STAGE_RESULT_FIELDS, rows)
        # A key another batch stored meanwhile keeps its row; its id is returned all the same.
        execute(
            cursor,
            sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} "
                "ON CONFLICT ({}) DO UPDATE SET updated_at = EXCLUDED.updated_at "
                "RETURNING id, post_id, stage"
            ).format(
                table(StageResult),
                result_columns,
                result_columns,
                temp,
                column_list(StageResult, STAGE_RESULT_KEY),
            ),
        )
        return {(post_id, stage): pk for pk, post_id, stage in cursor.fetchall()}
