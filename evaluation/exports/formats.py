"""The export formats: their names, file extensions and the writer of each."""

from pathlib import Path

from config.errors import ApplicationError
from evaluation.exports.cotpd import write_cotpd
from evaluation.exports.export import Export
from evaluation.exports.label_studio import write_label_studio
from evaluation.exports.parquet import write_hf, write_parquet
from evaluation.exports.text import write_csv, write_jsonl, write_ratings
from evaluation.exports.training import write_alpaca, write_sft_chat

FORMATS = (
    "jsonl",
    "csv",
    "ratings",
    "parquet",
    "sft-chat",
    "alpaca",
    "cotpd",
    "label-studio",
    "hf",
)
# Formats a model is trained on: the posts of a held-out split (test) never go into them unless
# forced (the split rule, `evaluation.extensions.export_split_filters`).
TRAINING_FORMATS = ("parquet", "sft-chat", "alpaca", "cotpd", "hf")
EXTENSIONS = {
    "jsonl": ".jsonl",
    "csv": ".csv",
    "ratings": ".csv",
    "parquet": ".parquet",
    "sft-chat": ".jsonl",
    "alpaca": ".jsonl",
    "cotpd": ".jsonl",
    "label-studio": ".json",
    "hf": "",
}

TEXT_WRITERS = {
    "jsonl": write_jsonl,
    "csv": write_csv,
    "ratings": write_ratings,
    "sft-chat": write_sft_chat,
    "alpaca": write_alpaca,
    "cotpd": write_cotpd,
    "label-studio": write_label_studio,
}


def write_format(export: Export, fmt: str, path: Path) -> None:
    """Write `fmt` to `path` (a folder for `hf`); callers wrap this in `atomic_path`."""
    if fmt in TEXT_WRITERS:
        with open(path, "w", encoding="utf-8", newline="") as out:
            TEXT_WRITERS[fmt](export, out)
    elif fmt == "parquet":
        write_parquet(export, path)
    elif fmt == "hf":
        write_hf(export, path)
    else:
        check_format(fmt)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ApplicationError(
            f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}", field="format"
        )
