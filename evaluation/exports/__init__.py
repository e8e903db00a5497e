"""Exports: filtered items streamed, chunk by chunk, into the formats training code reads.

- `export`: `Export`, one run (the filters, the rows they select, counts for the manifest);
- `formats`: the format names, their file extensions and `write_format`, which picks the writer;
- `text`: items with scores as jsonl and csv, and every raw rating (`ratings`);
- `training`: instruction formats (`sft-chat`, `alpaca`);
- `cotpd`: one record a post with gold labels, knowledge and labelled augmentations;
- `label_studio`: Label Studio tasks with each annotator's ratings;
- `parquet`: Parquet and the Hugging Face `datasets` folder (`hf`) built from it;
- `files`: writing a file atomically and its checksum;
- `manifest`: what an export holds and how it was made, and the `hf` dataset card.
"""
