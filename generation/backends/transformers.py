"""A local model through Hugging Face transformers, for the `gpu` queue.

Text models answer through their tokenizer's chat template; image-text-to-text models (LLaVA and
the like: any model whose config has a `vision_config`) through their processor, with the images
of the request decoded from its data URLs. Requests are generated in batches, left-padded, in
bf16 on a GPU when there is one and float32 on the CPU otherwise. Each model is loaded once per
worker process (`_LOADED`, keyed by path, device and dtype).

Endpoint parameters besides sampling: `batch_size` (default 8), `device` ("cuda", "cpu", ...),
`dtype` ("bfloat16", "float16", "float32"), `allow_download` (default false: a hub id must
already be in the local Hugging Face cache; a path always works) and `adapter` (a PEFT adapter
folder, e.g. a student trained by `train_student`, applied to the model at `model_path`).
"""

import io
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from generation.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
    decode_data_url,
    sampling_parameters,
)

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_TOKENS = 512


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    processor: Any | None  # set for image-text-to-text models
    device: str
    dtype: torch.dtype

    @property
    def reads_images(self) -> bool:
        return self.processor is not None


_LOADED: dict[tuple[str, str, str, str], LoadedModel] = {}
_LOADING = threading.Lock()


def _device_and_dtype(parameters: dict[str, Any]) -> tuple[str, torch.dtype]:
    device = parameters.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    default = "bfloat16" if str(device).startswith("cuda") else "float32"
    return device, getattr(torch, parameters.get("dtype") or default)


def load_model(
    path: str, *, device: str, dtype: torch.dtype, allow_download: bool, adapter: str = ""
) -> LoadedModel:
    """The model at `path` (a folder or a hub id), with the PEFT adapter at `adapter` when given,
    loaded once per process."""
    key = (path, device, str(dtype), adapter)
    with _LOADING:
        if key not in _LOADED:
            options = {"local_files_only": not allow_download}
            config = AutoConfig.from_pretrained(path, **options)
            processor = None
            if getattr(config, "vision_config", None) is not None:
                model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **options)
                processor = AutoProcessor.from_pretrained(path, **options)
                tokenizer = processor.tokenizer
            else:
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **options)
                tokenizer = AutoTokenizer.from_pretrained(path, **options)
            if adapter:
                from peft import PeftModel

                # Merged: generation runs at the base model's speed.
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            # Decoder-only generation continues each row's last token: pad on the left.
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model.to(device).eval()
            _LOADED[key] = LoadedModel(model, tokenizer, processor, device, dtype)
        return _LOADED[key]


def _prompt_parts(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Messages in the processor's format (`{"type": "image"}` parts) and the image bytes."""
    converted, images = [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            converted.append(
                {"role": message["role"], "content": [{"type": "text", "text": content}]}
            )
            continue
        parts = []
        for part in content or []:
            if part.get("type") == "image_url":
                images.append(decode_data_url(part["image_url"]["url"]))
                parts.append({"type": "image"})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
        converted.append({"role": message["role"], "content": parts})
    return converted, images


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "role": m["role"],
            "content": m["content"]
            if isinstance(m["content"], str)
            else "\n".join(p["text"] for p in m["content"] if p["type"] == "text"),
        }
        for m in messages
    ]


class TransformersBackend(Backend):
    batched = True

    def __init__(
        self, *, model: str, model_path: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(model=model, parameters=parameters)
        self.model_path = model_path
        self.batch_size = max(1, int(self.parameters.get("batch_size") or DEFAULT_BATCH_SIZE))
        self.device, self.dtype = _device_and_dtype(self.parameters)
        self._defaults = sampling_parameters(self.parameters)

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, model_path={self.model_path!r})"

    def loaded(self) -> LoadedModel:
        return load_model(
            self.model_path,
            device=self.device,
            dtype=self.dtype,
            allow_download=bool(self.parameters.get("allow_download")),
            adapter=str(self.parameters.get("adapter") or ""),
        )

    def complete_batch(self, requests: list[ChatRequest]) -> list[Completion | BackendError]:
        """One answer (or error) per request, in order, generated `batch_size` at a time.

        Requests are grouped by sampling parameters and by whether they carry images, so every
        generate call is uniform, and sorted by length within a group, so little is padding.
        Loading failures fail every request (not retryable). A chunk that runs out of device
        memory is split in halves and tried again; a single request that still does not fit
        fails as retryable.
        """
        try:
            loaded = self.loaded()
        except (OSError, ValueError) as exc:
            error = BackendError(f"cannot load {self.model_path}: {exc}", retryable=False)
            return [error] * len(requests)
        results: list[Completion | BackendError | None] = [None] * len(requests)
        groups: dict[tuple[str, bool], list[int]] = {}
        for index, request in enumerate(requests):
            parameters = {**self._defaults, **sampling_parameters(request.parameters)}
            has_image = any(
                isinstance(m.get("content"), list)
                and any(p.get("type") == "image_url" for p in m["content"])
                for m in request.messages
            )
            key = (json.dumps(parameters, sort_keys=True), has_image)
            groups.setdefault(key, []).append(index)
        for (parameters_json, has_image), indexes in groups.items():
            parameters = json.loads(parameters_json)
            indexes.sort(key=lambda i: len(json.dumps(requests[i].messages)))
            for start in range(0, len(indexes), self.batch_size):
                chunk = indexes[start : start + self.batch_size]
                answers = self._generate_chunk(
                    loaded, [requests[i] for i in chunk], parameters, has_image
                )
                for index, answer in zip(chunk, answers, strict=True):
                    results[index] = answer
        return results  # type: ignore[return-value]

    def _generate_chunk(
        self,
        loaded: LoadedModel,
        requests: list[ChatRequest],
        parameters: dict[str, Any],
        has_image: bool,
    ) -> list[Completion | BackendError]:
        if has_image and not loaded.reads_images:
            error = BackendError(
                f"{self.model_path} is a text model and this stage sends an image",
                retryable=False,
            )
            return [error] * len(requests)
        started = time.perf_counter()
        try:
            inputs = self._inputs(loaded, requests, has_image)
            with torch.inference_mode():
                output = loaded.model.generate(
                    **inputs, **self._generation_options(loaded, parameters)
                )
        except torch.OutOfMemoryError as exc:
            if str(loaded.device).startswith("cuda"):
                torch.cuda.empty_cache()
            if len(requests) == 1:
                return [BackendError(f"out of memory: {exc}", retryable=True)]
            half = len(requests) // 2
            return [
                *self._generate_chunk(loaded, requests[:half], parameters, has_image),
                *self._generate_chunk(loaded, requests[half:], parameters, has_image),
            ]
        except (ValueError, RuntimeError, OSError) as exc:
            error = BackendError(f"generation failed: {type(exc).__name__}: {exc}", retryable=False)
            return [error] * len(requests)
        latency_ms = round((time.perf_counter() - started) * 1000)
        prompt_length = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        max_tokens = int(parameters.get("max_tokens") or DEFAULT_MAX_TOKENS)
        stops = {loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
        completions: list[Completion | BackendError] = []
        for row, prompt_count in zip(
            output[:, prompt_length:].tolist(), prompt_tokens, strict=True
        ):
            generated = []
            for token in row:
                if token in stops:
                    break
                generated.append(token)
            finished = len(generated) < len(row) or len(row) < max_tokens
            completions.append(
                Completion(
                    text=loaded.tokenizer.decode(generated, skip_special_tokens=True),
                    prompt_tokens=int(prompt_count),
                    completion_tokens=len(generated),
                    latency_ms=latency_ms,
                    finish_reason="stop" if finished else "length",
                )
            )
        return completions

    def _inputs(
        self, loaded: LoadedModel, requests: list[ChatRequest], has_image: bool
    ) -> dict[str, Any]:
        if loaded.processor is None:
            prompts = [self._text_prompt(loaded, _text_only(r.messages)) for r in requests]
            encoded = loaded.tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            )
            return encoded.to(loaded.device)
        prompts, images = [], []
        for request in requests:
            messages, image_bytes = _prompt_parts(request.messages)
            prompts.append(
                loaded.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
            images.extend(Image.open(io.BytesIO(data)).convert("RGB") for data in image_bytes)
        encoded = loaded.processor(
            text=prompts,
            images=images if has_image else None,
            return_tensors="pt",
            padding=True,
            padding_side="left",
        ).to(loaded.device)
        if "pixel_values" in encoded:
            encoded["pixel_values"] = encoded["pixel_values"].to(loaded.dtype)
        return encoded

    @staticmethod
    def _text_prompt(loaded: LoadedModel, messages: list[dict[str, Any]]) -> str:
        if loaded.tokenizer.chat_template is None:
            # A base model without a chat template continues the plain text.
            return "\n\n".join(m["content"] for m in messages) + "\n"
        return loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _generation_options(self, loaded: LoadedModel, parameters: dict[str, Any]) -> dict:
        temperature = float(parameters.get("temperature") or 0.0)
        options: dict[str, Any] = {
            "max_new_tokens": int(parameters.get("max_tokens") or DEFAULT_MAX_TOKENS),
            "pad_token_id": loaded.tokenizer.pad_token_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            options["temperature"] = temperature
            if parameters.get("top_p") is not None:
                options["top_p"] = float(parameters["top_p"])
            if parameters.get("top_k") is not None:
                options["top_k"] = int(parameters["top_k"])
        if parameters.get("seed") is not None:
            torch.manual_seed(int(parameters["seed"]))
        if parameters.get("stop"):
            stop = parameters["stop"]
            options["stop_strings"] = [stop] if isinstance(stop, str) else list(stop)
            options["tokenizer"] = loaded.tokenizer
        return options
