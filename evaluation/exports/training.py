"""Instruction-tuning formats: chat messages (`sft-chat`) and instruction/input/output
(`alpaca`), one record an item, asking for the item's relation to the post."""

from typing import IO

from evaluation.exports.export import Export
from evaluation.exports.text import json_line
from evaluation.relations import SYSTEM_PROMPT, relation_instruction


def chat_prompt(post_prompt: str, kind: str) -> list[dict]:
    """The system and user messages of an `sft-chat` record: what a student trained on the export
    reads, and what `evaluate --pipeline direct` asks any endpoint."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{post_prompt}\n\n{relation_instruction(kind)}"},
    ]


def write_sft_chat(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            json_line(
                {
                    "messages": [
                        *chat_prompt(r.prompt(), r.kind),
                        {"role": "assistant", "content": r.text},
                    ]
                }
            )
            for r in rows
        )


def write_alpaca(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            json_line(
                {"instruction": relation_instruction(r.kind), "input": r.prompt(), "output": r.text}
            )
            for r in rows
        )
