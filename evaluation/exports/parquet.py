"""Parquet, one row group a chunk, and the Hugging Face `datasets` folder (`hf`) built from it."""

import tempfile
from pathlib import Path

from evaluation.exports.export import Export


def write_parquet(export: Export, path: Path) -> None:
    """Parquet, one row group a chunk, with a fixed schema so an empty export is still readable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [
        ("item_id", pa.int64()),
        ("post_id", pa.string()),
        ("kind", pa.string()),
        ("position", pa.int32()),
        ("text", pa.string()),
        ("post_text", pa.string()),
        ("image", pa.string()),
        ("image_description", pa.string()),
    ]
    for question in export.questions:
        fields += [
            (f"{question.name}_n", pa.int32()),
            (f"{question.name}_mean", pa.float64()),
            (f"{question.name}_median", pa.float64()),
            (f"{question.name}_spread", pa.int32()),
        ]
    schema = pa.schema(fields)
    with pq.ParquetWriter(path, schema) as writer:
        for rows in export.chunks():
            flat = [r.flat(export.questions) for r in rows]
            writer.write_table(pa.Table.from_pylist(flat, schema=schema))
        if not export.items:
            writer.write_table(schema.empty_table())


def write_hf(export: Export, folder: Path) -> None:
    """A `datasets` folder (`load_from_disk`), built from a streamed Parquet file."""
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        parquet = Path(scratch) / "items.parquet"
        write_parquet(export, parquet)
        dataset = datasets.Dataset.from_parquet(
            str(parquet), cache_dir=str(Path(scratch) / "cache"), keep_in_memory=False
        )
        dataset.save_to_disk(str(folder))
        del dataset
