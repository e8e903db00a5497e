"""Rating value counts packed into one integer per item and question: the one copy of that rule.

Each rating adds 2^(bits × value index) to its item, so one SUM per question packs the item's
counts of every scale value into one 63-bit integer; the database then hashes one integer per
item and question instead of one counter per value. This module writes the SQL that packs
(`packed_sum`) and unpacks (`unpacked`) those integers, unpacks them with numpy (`unpack`), and
sets the memory the campaign-wide aggregates may use (`aggregation_memory`).
"""

from collections.abc import Sequence

import numpy as np
from django.db import connection

from annotation.models import Question
from evaluation.selectors.campaigns import question_domain

# Memory PostgreSQL may use per hash aggregate in the campaign-wide queries (SET LOCAL, so only
# inside their transaction): about 200 bytes a unit, so 256 MB keeps MIKO's in memory.
AGGREGATION_WORK_MEM = "256MB"


def aggregation_memory() -> None:
    """Let PostgreSQL hash a campaign's aggregates in memory in one pass, without JIT compilation.

    Call inside `transaction.atomic()`; it lasts until the transaction ends.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{AGGREGATION_WORK_MEM}'")
            # A one-off scan: compiling it (seconds for these many aggregates) never pays off.
            cursor.execute("SET LOCAL jit = off")
            # About one group per six rows: parallel workers would each build most of the hash
            # table and the leader merge them again, slower than one pass (measured on 2 cores).
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")


def packing_bits(domain: tuple[int, ...]) -> int:
    """Bits per value when a unit's counts are packed into one 63-bit integer: 12 for a 1-5 scale
    (up to 4,095 ratings of one value on one item), 8 for 1-7 (255)."""
    return min(16, 62 // len(domain))


def packed_sum(question: Question, value_column: str = "value") -> str:
    """SQL adding 2^(bits × value index) for each rating of `question`: its unit's value counts,
    packed in one integer. The weights are integers computed here."""
    domain = question_domain(question)
    bits = packing_bits(domain)
    code = " ".join(f"WHEN {int(v)} THEN {1 << (bits * i)}" for i, v in enumerate(domain))
    # PostgreSQL sums bigints into numeric, which has no bit operators: cast back.
    return (
        f"CAST(SUM(CASE WHEN question_id = {int(question.id)} "
        f"THEN (CASE {value_column} {code} END) END) AS BIGINT)"
    )


def unpacked(column: str, question: Question) -> list[tuple[int, str]]:
    """(value, SQL for the number of ratings of that value) from a packed column."""
    domain = question_domain(question)
    bits = packing_bits(domain)
    mask = (1 << bits) - 1
    return [(v, f"(({column} >> {bits * i}) & {mask})") for i, v in enumerate(domain)]


def unpack(packed: Sequence[int | None], domain: tuple[int, ...]) -> np.ndarray:
    """The counts of each value of `domain` in each packed integer: shape (len(packed), V).
    A null (no rating of the question) unpacks to zeros."""
    bits = packing_bits(domain)
    codes = np.array([int(code or 0) for code in packed], dtype=np.int64)
    shifts = np.arange(len(domain), dtype=np.int64) * bits
    return (codes[:, None] >> shifts) & ((1 << bits) - 1)
