"""An encoder critic on a tiny random transformers model built here (never downloaded)."""

import pytest
from django.core.management import call_command

pytest.importorskip("transformers")

import transformers  # noqa: E402

from critics.models import Critic, CriticScore  # noqa: E402
from tests.factories import signal_campaign  # noqa: E402
from tests.generation.tiny_models import tiny_llama_config, tiny_tokenizer  # noqa: E402


@pytest.fixture
def encoder(tmp_path):
    tokenizer = tiny_tokenizer()
    model = transformers.LlamaModel(tiny_llama_config(tokenizer))
    model.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    return tmp_path / "encoder"


def test_an_encoder_critic_trains_and_scores_on_embeddings(db, encoder, capsys):
    campaign = signal_campaign(name="enc", posts=16, rated_posts=12)
    call_command("train_critic", "--campaign", "enc", "--question", "plausibility",
                 "--threshold", "3.5", "--encoder", str(encoder), "--no-progress")  # fmt: skip
    critic = Critic.objects.get()
    assert critic.kind == Critic.Kind.ENCODER and critic.encoder == str(encoder)
    assert critic.metrics["n_items"] == 48 and critic.metrics["folds"] == 5
    assert 0 <= critic.metrics["roc_auc"] <= 1 and "ROC-AUC" in capsys.readouterr().out
    scores = CriticScore.objects.filter(critic=critic)
    assert scores.count() == len(campaign.items) == 64
    assert all(0 < s < 1 for s in scores.values_list("score", flat=True))
