"""Training a critic: it finds a planted signal, its folds never share a post, broken input is
refused with nothing stored, and scoring every item is restartable."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from critics.learning import post_folds
from critics.models import Critic, CriticScore
from critics.selectors import training_data
from critics.services import critic_create, critic_score, critic_train
from generation.models import KnowledgeItem
from tests.factories import SIGNAL_WORD, campaign_create, posts_with_items, signal_campaign


@pytest.fixture
def campaign(db):
    return signal_campaign(name="signal", posts=60, rated_posts=40)


def test_the_critic_finds_the_planted_word_and_scores_every_item(campaign, capsys):
    call_command("train_critic", "--campaign", "signal", "--question", "plausibility",
                 "--threshold", "3.5", "--name", "sunny", "--no-progress")  # fmt: skip
    critic = Critic.objects.get(name="sunny")
    metrics = critic.metrics
    # 40 rated posts × 4 items; the label is the human mean (3 ratings, 10% flipped).
    assert metrics["n_items"] == 160 and metrics["n_posts"] == 40
    assert metrics["roc_auc"] > 0.85 > metrics["baseline"]["roc_auc"] + 0.3
    assert metrics["average_precision"] > metrics["baseline"]["average_precision"] + 0.3
    assert metrics["brier"] < metrics["baseline"]["brier"]
    curve = metrics["pr_curve"]
    assert len(curve["threshold"]) == len(curve["precision"]) == len(curve["recall"])
    assert sum(b["n"] for b in metrics["calibration"]) == 160
    out = capsys.readouterr().out
    assert "ROC-AUC" in out and "majority baseline 0.500" in out
    # Every item of the dataset is scored, the unrated ones too, and the word carries the score.
    scores = dict(CriticScore.objects.filter(critic=critic).values_list("item_id", "score"))
    assert set(scores) == {item.id for item in campaign.items}
    unrated = campaign.items[160:]
    with_word = [scores[i.id] for i in unrated if SIGNAL_WORD in i.text]
    without = [scores[i.id] for i in unrated if SIGNAL_WORD not in i.text]
    assert np.mean(with_word) > np.mean(without) + 0.3
    critic.refresh_from_db()
    assert critic.scoring_status == Critic.Status.DONE and critic.scored == 240
    assert critic.model_file.name.startswith(f"critics/{campaign.pk}/")


def test_folds_never_share_a_post(campaign):
    critic = Critic(campaign=campaign, question=campaign.questions.get(), threshold=3.5)
    critic.exclusions = {}
    data = training_data(critic=critic)
    folds = post_folds(data.labels, data.posts)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(data.labels)))
    for train, test in folds:
        assert not set(data.posts[train].tolist()) & set(data.posts[test].tolist())
        assert set(data.labels[test].tolist()) == {0, 1}


def test_training_again_adds_a_version(campaign):
    first = critic_create(campaign=campaign, question="plausibility", threshold=3.5, name="v")
    second = critic_create(campaign=campaign, question="plausibility", threshold=3.5, name="v")
    assert (first.version, second.version) == (1, 2)
    assert critic_train(critic_id=first.pk).status == Critic.Status.DONE
    # Training runs once: a second call leaves the trained critic as it is.
    assert critic_train(critic_id=first.pk).trained_at == Critic.objects.get(pk=first.pk).trained_at


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "nope", "--question", "plausibility", "--threshold", "4"],
         "no campaign named 'nope'"),
        (["--campaign", "signal", "--question", "typicality", "--threshold", "4"],
         "has no question 'typicality'; questions: plausibility"),
        (["--campaign", "signal", "--question", "plausibility", "--threshold", "6"],
         "outside the 1-5 scale"),
        (["--campaign", "signal", "--question", "plausibility", "--threshold", "1"],
         "160 of 160 rated items reach the threshold and 0 do not"),
        (["--campaign", "signal", "--question", "plausibility", "--threshold", "3",
          "--encoder", "/no/such/model"], "is not a local model folder"),
        (["--campaign", "signal", "--question", "plausibility", "--threshold", "3",
          "--min-gold-accuracy", "2"], "between 0 and 1"),
    ],
)  # fmt: skip
def test_broken_input_is_refused_and_nothing_is_stored(campaign, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("train_critic", *args, "--no-progress")
    assert not Critic.objects.exists()


def test_too_few_rated_items_or_posts(db):
    small = campaign_create(name="small", questions=("plausibility",))
    items = posts_with_items(small, posts=3, kinds=["xWant", "xIntent"])
    with pytest.raises(CommandError, match="only 0 rated items"):
        call_command("train_critic", "--campaign", "small", "--question", "plausibility",
                     "--threshold", "3", "--no-progress")  # fmt: skip
    signal_campaign(
        name="few-posts", posts=4, rated_posts=4, kinds=tuple(f"k{i}" for i in range(8))
    )
    with pytest.raises(CommandError, match="come from 4 posts; cross-validation by post needs"):
        call_command("train_critic", "--campaign", "few-posts", "--question", "plausibility",
                     "--threshold", "3", "--no-progress")  # fmt: skip
    assert not Critic.objects.exists() and items


def test_scoring_stopped_midway_resumes_after_the_last_stored_chunk(campaign):
    critic = critic_create(campaign=campaign, question="plausibility", threshold=3.5)
    critic_train(critic_id=critic.pk)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the worker dies after the first chunk is stored

    with pytest.raises(KeyboardInterrupt):
        critic_score(critic_id=critic.pk, progress=stop, chunk_size=100)
    critic.refresh_from_db()
    first_chunk = sorted(i.id for i in campaign.items)[:100]
    assert critic.scored == 100 and critic.scored_through == first_chunk[-1]
    assert CriticScore.objects.filter(critic=critic).count() == 100
    seen = []
    critic = critic_score(critic_id=critic.pk, progress=lambda d, t: seen.append((d, t)),
                          chunk_size=100)  # fmt: skip
    assert seen == [(200, 240), (240, 240)]
    assert critic.scored == 240 and critic.scoring_status == Critic.Status.DONE
    assert CriticScore.objects.filter(critic=critic).count() == 240
    # Items generated later are scored by the next run, and only they.
    item = campaign.items[0]
    late = KnowledgeItem.objects.create(post=item.post, batch=item.batch, kind="open", position=9,
                                        text=f"{SIGNAL_WORD} later")  # fmt: skip
    critic = critic_score(critic_id=critic.pk)
    assert critic.scored == 241
    assert CriticScore.objects.filter(critic=critic, item=late).exists()


def test_a_critic_trained_with_another_scikit_learn_is_refused(campaign):
    critic = critic_create(campaign=campaign, question="plausibility", threshold=3.5)
    critic_train(critic_id=critic.pk)
    Critic.objects.filter(pk=critic.pk).update(sklearn_version="0.1")
    with pytest.raises(Exception, match="trained with scikit-learn 0.1"):
        critic_score(critic_id=critic.pk)
