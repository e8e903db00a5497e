"""The local transformers backend with tiny, randomly initialised models built in the test.

A Llama-style text model and a LLaVA-style image-text-to-text model (tiny CLIP vision tower and
tiny Llama) are saved to a temp dir with a character-level tokenizer and a chat template, then
loaded by path on the CPU: nothing is downloaded.
"""

import base64
import io

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from generation.backends import backend_for  # noqa: E402
from generation.backends.base import BackendError, ChatRequest  # noqa: E402
from generation.backends.transformers import TransformersBackend  # noqa: E402
from generation.models import Endpoint  # noqa: E402
from generation.pipelines.base import StageInput, get_pipeline  # noqa: E402


def endpoint(path, **parameters):
    return Endpoint(
        name="local",
        backend="transformers",
        model_path=str(path),
        model="tiny",
        parameters={"max_tokens": 6, **parameters},
    )


def image_url(colour="red", size=(40, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def text_request(text, **parameters):
    return ChatRequest(messages=[{"role": "user", "content": text}], parameters=parameters)


def image_request(text, url):
    content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return ChatRequest(messages=[{"role": "user", "content": content}])


def test_the_factory_gives_a_batched_backend_on_the_cpu(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llama"))
    assert isinstance(backend, TransformersBackend) and backend.batched
    assert (backend.device, backend.dtype) == ("cpu", torch.float32)


def test_batched_left_padded_generation_matches_one_by_one(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llama"))
    requests = [text_request(t) for t in ("hi", "a much longer prompt than the others", "x y")]

    batched = backend.complete_batch(requests)
    alone = [backend.complete_batch([request])[0] for request in requests]

    assert backend.loaded().tokenizer.padding_side == "left"
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in alone]
    # The prompt counts exclude padding: <|user|>, the characters, </s>, <|assistant|>.
    assert [c.prompt_tokens for c in batched] == [2 + 3, 36 + 3, 3 + 3]
    assert all(c.completion_tokens <= 6 for c in batched)


def test_requests_beyond_the_batch_size_and_mixed_parameters_keep_their_order(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llama", batch_size=2))
    requests = [text_request(f"post {n}", max_tokens=2 + n % 2) for n in range(5)]
    answers = backend.complete_batch(requests)
    assert [a.completion_tokens <= 2 + n % 2 for n, a in enumerate(answers)] == [True] * 5
    assert [a.text for a in answers] == [backend.complete_batch([r])[0].text for r in requests]


def test_sampling_with_a_seed_is_reproducible(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llama", max_tokens=12))
    request = text_request("hello", temperature=1.0, top_p=0.9, seed=3)
    assert backend.complete_batch([request])[0].text == backend.complete_batch([request])[0].text


def test_each_model_is_loaded_once_per_process(model_dirs):
    first = backend_for(endpoint(model_dirs / "llama"))
    second = backend_for(endpoint(model_dirs / "llama", batch_size=4))
    assert first.loaded() is second.loaded()


def test_image_stages_run_on_a_llava_style_model(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llava"))
    miko = get_pipeline("miko")
    describe = miko.build_request(
        miko.stage("describe_image"),
        StageInput(text="what a day", image_data_url=image_url(), metadata={}, upstream={}),
        {},
    )
    requests = [describe, image_request("short", image_url("blue", (64, 64))), text_request("hi")]

    answers = backend.complete_batch(requests)

    assert all(not isinstance(a, BackendError) for a in answers)
    # 4 x 4 patches of 8 pixels on a 32-pixel image: 16 image tokens in the prompt.
    assert answers[1].prompt_tokens == 16 + len("short") + 3
    assert answers[2].prompt_tokens == len("hi") + 3
    assert answers[0].text == backend.complete_batch([describe])[0].text


def test_a_text_model_refuses_image_requests(model_dirs):
    backend = backend_for(endpoint(model_dirs / "llama"))
    text, image = backend.complete_batch([text_request("hi"), image_request("see", image_url())])
    assert not isinstance(text, BackendError)
    assert isinstance(image, BackendError) and not image.retryable
    assert "text model" in str(image)


def test_a_model_that_is_not_there_fails_every_request_without_downloading(tmp_path):
    backend = backend_for(endpoint("distillery-tests/no-such-model"))
    errors = backend.complete_batch([text_request("a"), text_request("b")])
    assert all(isinstance(e, BackendError) and not e.retryable for e in errors)
    assert "cannot load distillery-tests/no-such-model" in str(errors[0])


def test_a_base_model_without_a_chat_template_continues_the_plain_prompt(model_dirs):
    backend = backend_for(endpoint(model_dirs / "base"))
    (answer,) = backend.complete_batch([text_request("Text: hi")])
    assert not isinstance(answer, BackendError)
    assert answer.prompt_tokens == len("Text: hi\n")
