"""Embeddings of items from a local model (a folder, or a model in the Hugging Face cache): a
sentence-transformers model where the folder is one, else a transformers encoder (or decoder)
mean-pooled over its last hidden states. Never downloads: loading is local-only.

Runs where the critic's task runs: the `gpu` queue for encoder critics (CUDA when there is one).
Models are loaded once per process.
"""

import functools
from pathlib import Path

import numpy as np

from config.errors import ApplicationError
from critics.selectors import ItemText

BATCH = 64
MAX_TOKENS = 256


def check_encoder(path: str) -> None:
    """Refuse what is neither a local model folder nor a model in the Hugging Face cache."""
    if _is_local_model(path):
        return
    raise ApplicationError(
        f"{path!r} is not a local model folder (with config.json or modules.json) nor a model in "
        "the Hugging Face cache; nothing is downloaded",
        field="encoder",
    )


def _is_local_model(path: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    folder = Path(path)
    try:
        if folder.is_dir():
            return (folder / "config.json").exists() or (folder / "modules.json").exists()
        if "/" in path and not folder.is_absolute():
            return isinstance(try_to_load_from_cache(path, "config.json"), str)
    except (OSError, ValueError):  # a NUL in the path, a name that is no repository id
        return False
    return False


def item_prompt(row: ItemText) -> str:
    return f"{row.kind}: {row.text}\n{row.context}"


@functools.cache
def _load(path: str):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if (Path(path) / "modules.json").exists():
        from sentence_transformers import SentenceTransformer

        return "sentence-transformers", SentenceTransformer(path, device=device), None, device
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
    return "transformers", model, tokenizer, device


def embed(path: str, rows: list[ItemText]) -> np.ndarray:
    """One L2-normalised vector a row."""
    import torch

    kind, model, tokenizer, device = _load(path)
    texts = [item_prompt(row) for row in rows]
    if kind == "sentence-transformers":
        return np.asarray(
            model.encode(texts, batch_size=BATCH, normalize_embeddings=True), dtype=np.float32
        )
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(
                texts[start : start + BATCH],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            vectors.append(torch.nn.functional.normalize(mean.float(), dim=-1).cpu().numpy())
    return np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
