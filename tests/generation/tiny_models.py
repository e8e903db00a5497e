"""Tiny, randomly initialised models for the transformers backend, saved to a folder.

A Llama-style text model and a LLaVA-style image-text-to-text model (tiny CLIP vision tower and
tiny Llama), with a character-level tokenizer and a chat template: loaded by path on the CPU,
nothing is downloaded. The `model_dirs` fixture (`tests/generation/conftest.py`) builds them once
per test module; importing this module needs torch and transformers (the `gpu` extra).
"""

from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<pad>", "</s>", "<s>", "<unk>", "<image>", "<|user|>", "<|assistant|>"]


def tiny_tokenizer():
    vocab = {chr(code): code - 32 for code in range(32, 127)}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIAL)})
    model = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    model.decoder = decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model,
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL[4:]})
    return tokenizer


def tiny_llama_config(tokenizer):
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def build_tiny_models(root: Path) -> Path:
    """`root/llama` (chat), `root/base` (the same weights, no chat template), `root/llava`."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(tiny_llama_config(tokenizer))
    llama.save_pretrained(root / "llama")
    tokenizer.save_pretrained(root / "llama")
    # The same weights as a base model: no chat template.
    llama.save_pretrained(root / "base")
    tokenizer.chat_template = None
    tokenizer.save_pretrained(root / "base")
    tokenizer.chat_template = CHAT_TEMPLATE

    vision = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=tiny_llama_config(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    transformers.LlavaForConditionalGeneration(config).save_pretrained(root / "llava")
    processor = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(root / "llava")
    return root
