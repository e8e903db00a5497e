"""Judge runs on the generation runner against the fake OpenAI-compatible server: the window,
retries, failures kept with their raw answers, never the same call twice, the token budget."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Rating
from judges.models import JudgeRating, JudgeRun
from judges.runner import judge_run_execute
from judges.services import judge_run_cancel, judge_run_create, judge_run_retry
from tests.factories import campaign_create, fake_endpoint, posts_with_items

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def create(campaign, endpoint, **extra) -> JudgeRun:
    return judge_run_create(campaign=campaign, endpoint=endpoint, enqueue=False, **extra)


@pytest.fixture
def campaign():
    campaign = campaign_create(name="judged")
    campaign.instructions = "Rate what a careful reader would accept."
    campaign.save()
    posts_with_items(campaign, posts=4, kinds=["xIntent", "xWant", "open"])
    return campaign


def test_a_judge_rates_every_item_on_every_question_in_a_window(
    fake_server, call_log, campaign
) -> None:
    endpoint = fake_endpoint(fake_server, concurrency=3)
    run = judge_run_execute(run_id=create(campaign, endpoint).pk)

    assert run.status == JudgeRun.Status.DONE, run.error
    assert (run.ratings_total, run.ratings_done, run.ratings_failed) == (24, 24, 0)
    assert run.calls == fake_server.requests == 24
    assert run.prompt_tokens == fake_server.prompt_tokens
    assert fake_server.peak_concurrency == 3
    assert not call_log.repeated()
    ratings = JudgeRating.objects.filter(run=run)
    assert ratings.count() == 24
    assert set(ratings.values_list("value", flat=True)) <= {1, 2, 3, 4, 5}
    # A model rater: nothing reaches the people's ratings.
    assert not Rating.objects.exists()
    rating = ratings.select_related("item", "item__post").first()
    prompt = rating.request["messages"][0]["content"]
    # What the annotators see: instructions, post, description, relation, question and anchors.
    assert "Rate what a careful reader would accept." in prompt
    assert rating.item.post.text in prompt and rating.item.text in prompt
    assert "A photo that goes with" in prompt
    assert "3 = Moderately" in prompt and "where N is one of 1, 2, 3, 4, 5." in prompt
    assert rating.raw_answer.startswith("rating: ")
    assert run.template_version == "v1" and len(run.template_hash) == 64
    assert run.template_text in open("judges/prompts/v1.txt").read()


def test_structured_output_asks_for_the_json_schema(fake_server, campaign) -> None:
    endpoint = fake_endpoint(fake_server, parameters={"structured_output": True})
    run = judge_run_execute(run_id=create(campaign, endpoint, questions=["typicality"]).pk)

    assert run.ratings_done == 12 and run.structured_output
    assert fake_server.last_request["response_format"]["json_schema"]["name"] == "judge"
    schema = fake_server.last_request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["rating"]["enum"] == [1, 2, 3, 4, 5]
    rating = JudgeRating.objects.filter(run=run).first()
    assert json.loads(rating.raw_answer) == {"rating": rating.value}


def test_nothing_is_asked_twice_by_a_rerun_or_another_run_of_the_same_calls(
    fake_server, call_log, campaign
) -> None:
    endpoint = fake_endpoint(fake_server)
    first = judge_run_execute(run_id=create(campaign, endpoint).pk)
    assert fake_server.requests == 24

    again = judge_run_execute(run_id=judge_run_retry(run=first).pk)
    assert again.status == JudgeRun.Status.DONE and again.ratings_done == 24
    other = judge_run_execute(run_id=create(campaign, endpoint).pk)
    assert (other.ratings_done, other.ratings_cached, other.calls) == (24, 24, 0)
    assert fake_server.requests == 24 and not call_log.repeated()
    copied = dict(JudgeRating.objects.filter(run=other).values_list("call_key", "value"))
    assert copied == dict(JudgeRating.objects.filter(run=first).values_list("call_key", "value"))

    # Other sampling parameters are other calls.
    hotter = judge_run_execute(
        run_id=create(campaign, endpoint, parameters={"temperature": 0.7}).pk
    )
    assert hotter.ratings_cached == 0 and fake_server.requests == 48


def test_retries_and_failures_keep_the_raw_answer_and_the_error(fake_server, campaign) -> None:
    answers = {"count": 0}

    def unparseable_once(stage, body):
        prompt = body["messages"][0]["content"]
        if stage == "judge" and "(xWant)" not in prompt and "typicality?" in prompt:
            answers["count"] += 1
            return "I would say it is quite plausible." if answers["count"] <= 8 else None
        return None

    fake_server.answers = unparseable_once
    fake_server.fail_next("rate_limit", 2)
    fake_server.fail_next("server_error", 1)
    endpoint = fake_endpoint(fake_server)
    run = judge_run_execute(run_id=create(campaign, endpoint).pk)

    assert run.status == JudgeRun.Status.DONE
    assert (run.ratings_done, run.ratings_failed) == (16, 8)
    assert fake_server.status_counts[429] == 2 and fake_server.status_counts[500] == 1
    assert run.calls == 24 + 3  # the retried attempts are counted
    failed = JudgeRating.objects.filter(run=run, status="failed")
    assert failed.count() == 8
    for rating in failed:
        assert rating.value is None
        assert rating.raw_answer == "I would say it is quite plausible."
        assert rating.error.startswith("ParseError: no line")

    # Retry asks only the failed ones again; this time they parse.
    requests = fake_server.requests
    run = judge_run_execute(run_id=judge_run_retry(run=run).pk, retry_failed=True)
    assert (run.ratings_done, run.ratings_failed) == (24, 0)
    assert fake_server.requests == requests + 8
    assert not JudgeRating.objects.filter(run=run, status="failed").exists()


def test_a_call_the_server_refuses_is_stored_with_its_error(fake_server, campaign) -> None:
    fake_server.fail_next("bad_request", 1)  # not retryable: stored at once
    endpoint = fake_endpoint(fake_server, concurrency=1)
    run = judge_run_execute(run_id=create(campaign, endpoint, questions=["plausibility"]).pk)

    assert (run.ratings_done, run.ratings_failed) == (11, 1)
    failed = JudgeRating.objects.get(run=run, status="failed")
    assert "HTTP 400" in failed.error and failed.attempts == 1 and failed.value is None
    assert "unsupported parameter" in failed.raw_answer


def test_the_token_budget_stops_the_run(fake_server, campaign) -> None:
    endpoint = fake_endpoint(fake_server, concurrency=1)
    run = judge_run_execute(run_id=create(campaign, endpoint, token_budget=50).pk)

    assert run.status == JudgeRun.Status.FAILED
    assert run.error.startswith("Token budget exceeded")
    assert run.ratings_done < 24


def test_a_cancelled_run_stops_and_a_retry_finishes_it(fake_server, campaign) -> None:
    endpoint = fake_endpoint(fake_server, concurrency=1)
    run = create(campaign, endpoint)

    def cancel_early(progress: JudgeRun) -> None:
        if progress.ratings_done >= 2 and progress.status == "running":
            judge_run_cancel(run=progress)

    run = judge_run_execute(run_id=run.pk, on_progress=cancel_early)
    assert run.status == JudgeRun.Status.CANCELLED and run.ratings_done < 24
    run = judge_run_execute(run_id=judge_run_retry(run=run).pk, retry_failed=True)
    assert run.status == JudgeRun.Status.DONE and run.ratings_done == 24
    assert JudgeRating.objects.filter(run=run).count() == 24
    # A cancel abandons the calls in flight (at most the endpoint's concurrency): those alone are
    # asked again.
    assert 24 <= fake_server.requests <= 24 + endpoint.concurrency


def test_one_runner_at_a_time_and_a_dead_ones_run_is_taken_over(fake_server, campaign) -> None:
    endpoint = fake_endpoint(fake_server)
    run = create(campaign, endpoint)
    JudgeRun.objects.filter(pk=run.pk).update(
        status="running", runner="someone", heartbeat_at=timezone.now()
    )
    assert judge_run_execute(run_id=run.pk).status == "running"  # live: left to it
    assert fake_server.requests == 0

    stale = timezone.now() - timedelta(minutes=5)
    JudgeRun.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    taken = judge_run_execute(run_id=run.pk)
    assert taken.status == "done" and taken.ratings_done == 24 and taken.runner == ""

    JudgeRun.objects.filter(pk=run.pk).delete()
    assert judge_run_execute(run_id=run.pk) is None
