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
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

from generation.backends import backend_for  # noqa: E402
from generation.backends.base import BackendError, ChatRequest  # noqa: E402
from generation.backends.transformers import TransformersBackend  # noqa: E402
from generation.models import Endpoint  # noqa: E402
from generation.pipelines.base import StageInput, get_pipeline  # noqa: E402

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


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
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
