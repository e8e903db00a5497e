"""Creating a comparison: the runs' answers become items of one finished batch rated by one
campaign, mapped to the runs that wrote them; what is refused, with nothing stored."""

import io

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Campaign, Task
from annotation.services import campaign_create as annotation_campaign_create
from comparisons.models import ComparedItem, ComparedRun, Comparison
from comparisons.services import comparison_create, evaluation_runs_named
from config.errors import ApplicationError
from generation.models import Batch, KnowledgeItem
from students.evaluating import evaluation_campaign
from tests.comparisons.runs import answer, make_run


@pytest.fixture
def runs(reference):
    dataset = reference.dataset
    teacher = make_run(
        dataset,
        "teacher",
        [
            answer("p0", "xWant", "the user wants to rest"),
            answer("p0", "open", "the user is tired"),
            answer("p1", "xWant", "the user wants coffee"),
            answer("p1", "open", "", error="HTTP 500"),
            answer("p2", "xWant", "the user wants to swim"),
        ],
    )
    student = make_run(
        dataset,
        "student",
        [
            answer("p0", "xWant", "the user wants to rest"),  # as the teacher: one item
            answer("p0", "open", "the user is bored"),
            answer("p1", "xWant", "the user wants tea"),
            answer("p1", "open", "   "),  # empty: not rated
            answer("p2", "xWant", ""),  # p2: no usable answer, left out
        ],
    )
    return teacher, student


def _texts(compared: ComparedRun) -> set[tuple[str, str, str]]:
    items = KnowledgeItem.objects.filter(
        pk__in=ComparedItem.objects.filter(compared_run=compared).values("item_id")
    )
    return {(i.post.external_id, i.kind, i.text) for i in items}


def test_two_runs_become_one_campaign_over_their_items(runs, admin_user, annotator):
    teacher, student = runs
    comparison = comparison_create(
        runs=runs, name="Which reads better?", members=[annotator], created_by=admin_user
    )
    campaign = comparison.campaign
    assert [q.name for q in campaign.questions.all()] == ["plausibility", "typicality"]
    assert list(campaign.batches.all()) == [comparison.batch]
    assert (
        comparison.batch.status == Batch.Status.DONE and comparison.batch.pipeline == "comparison"
    )
    assert list(campaign.members.all()) == [annotator]
    # p2 is left out: the student has no usable answer there.
    assert (comparison.posts_compared, comparison.posts_left_out) == (2, 1)
    assert sorted(
        Task.objects.filter(campaign=campaign).values_list("post__external_id", flat=True)
    ) == ["p0", "p1"]
    first, second = comparison.runs.all()
    assert (first.run, first.label, first.answers, first.failed) == (teacher, "teacher", 5, 1)
    assert (second.run, second.label, second.answers, second.failed) == (student, "student", 5, 2)
    assert _texts(first) == {
        ("p0", "xWant", "the user wants to rest"),
        ("p0", "open", "the user is tired"),
        ("p1", "xWant", "the user wants coffee"),
    }
    assert _texts(second) == {
        ("p0", "xWant", "the user wants to rest"),
        ("p0", "open", "the user is bored"),
        ("p1", "xWant", "the user wants tea"),
    }
    # The shared sentence is one item, rated once and counted for both runs.
    items = KnowledgeItem.objects.filter(batch_links__batch=comparison.batch)
    assert items.count() == 5
    shared = items.get(text="the user wants to rest")
    assert ComparedItem.objects.filter(item=shared).count() == 2
    # Items sit at their kind's slot, with the image description of the references' post.
    reference_items = {i.post_id: i.description_result_id for i in KnowledgeItem.objects.exclude(
        batch=comparison.batch)}  # fmt: skip
    for item in items:
        assert item.position == (1 if item.kind == "xWant" else 10)
        assert item.description_result_id == reference_items[item.post_id]
        assert item.provenance == {"source": "comparison"}


def test_an_answer_equal_to_an_item_already_there_is_that_item(runs, reference):
    existing = reference.items[0]  # p0's xWant reference
    teacher, student = runs
    teacher.answers[0]["text"] = existing.text
    teacher.save()
    comparison = comparison_create(runs=runs, name="c")
    assert existing.batch_links.filter(batch=comparison.batch).exists()
    assert ComparedItem.objects.filter(item=existing, compared_run__run=teacher).exists()
    assert KnowledgeItem.objects.filter(post=existing.post, text=existing.text).count() == 1


def test_items_are_created_in_an_order_drawn_from_the_seed(reference):
    """Within a kind the rating page orders items by id: ids must not follow the runs' order."""
    dataset = reference.dataset
    posts = [f"p{i}" for i in range(3)]
    runs = [
        make_run(dataset, name, [answer(p, "xWant", f"{name} says {p}") for p in posts])
        for name in ("first", "second", "third")
    ]
    orders = set()
    for seed in range(6):
        comparison = comparison_create(runs=runs, name=f"c{seed}", seed=seed)
        for post in posts:
            items = KnowledgeItem.objects.filter(
                batch_links__batch=comparison.batch, post__external_id=post
            ).order_by("position", "id")
            orders.add(tuple(item.text.split()[0] for item in items))
        KnowledgeItem.objects.filter(batch=comparison.batch).delete()
    assert len(orders) > 1  # not always first, second, third


def test_one_endpoint_twice_is_a_valid_sanity_check(reference):
    same = [answer("p0", "xWant", "the same"), answer("p1", "xWant", "again")]
    runs = [
        make_run(reference.dataset, "teacher", same),
        make_run(reference.dataset, "teacher", same),
    ]
    comparison = comparison_create(runs=runs, name="sanity")
    assert KnowledgeItem.objects.filter(batch_links__batch=comparison.batch).count() == 2
    assert ComparedItem.objects.count() == 4


def _nothing_stored() -> None:
    assert not Comparison.objects.exists() and not ComparedRun.objects.exists()
    assert not Batch.objects.filter(pipeline="comparison").exists()
    assert not Campaign.objects.exclude(name="references").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"status": "running"}, "is running: only done runs are compared"),
        ({"status": "failed"}, "is failed: only done runs are compared"),
        ({"split": "dev"}, "compared runs answer the same posts"),
        ({"dataset": "other"}, "compared runs answer the same posts"),
    ],
)
def test_runs_that_cannot_be_compared_are_refused(runs, change, message):
    from tests.factories import DatasetFactory

    student = runs[1]
    if change.get("dataset"):
        change = {"dataset": DatasetFactory(name="other")}
    for name, value in change.items():
        setattr(student, name, value)
    student.save()
    with pytest.raises(ApplicationError, match=message):
        comparison_create(runs=runs, name="c")
    _nothing_stored()


def test_other_refusals(runs):
    teacher, student = runs
    cases = [
        (dict(runs=[teacher], name="c"), "at least two runs"),
        (dict(runs=[teacher, teacher], name="c"), "each run may be named once"),
        (dict(runs=runs, name="teacher against the rest"), "name names endpoint 'teacher'"),
        (dict(runs=runs, name="c", instructions="Our STUDENT wrote half"), "instructions names"),
        (dict(runs=runs, name="c", seed=-1), "the seed is a whole number"),
        (dict(runs=runs, name="c", overlap=0), "overlap must be between 1 and 100"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ApplicationError, match=message):
            comparison_create(**kwargs)
        _nothing_stored()
    comparison_create(runs=runs, name="taken")
    with pytest.raises(ApplicationError, match="a campaign named 'taken' already exists"):
        comparison_create(runs=runs, name="taken")
    assert Comparison.objects.count() == 1


def test_no_common_post_is_refused(reference):
    runs = [
        make_run(reference.dataset, "a", [answer("p0", "xWant", "one")]),
        make_run(reference.dataset, "b", [answer("p1", "xWant", "two")]),
    ]
    with pytest.raises(ApplicationError, match="no post has a usable answer from every run"):
        comparison_create(runs=runs, name="c")
    _nothing_stored()


def test_runs_are_named_by_id(runs):
    teacher, student = runs
    assert evaluation_runs_named(run_ids=[student.pk, teacher.pk]) == [student, teacher]
    with pytest.raises(ApplicationError, match=f"no evaluation run {teacher.pk + 99}"):
        evaluation_runs_named(run_ids=[teacher.pk, teacher.pk + 99])
    with pytest.raises(ApplicationError, match=f"run {teacher.pk} is named twice"):
        evaluation_runs_named(run_ids=[teacher.pk, teacher.pk])
    with pytest.raises(ApplicationError, match="is not a run id"):
        evaluation_runs_named(run_ids=[0, teacher.pk])


def _create_campaign(*args: str) -> str:
    out = io.StringIO()
    call_command("create_campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_campaign_compares_runs(runs, annotator):
    teacher, student = runs
    out = _create_campaign(
        "blind", "--dataset", "references-data", "--compare-runs", f"{teacher.pk},{student.pk}",
        "--overlap", "2", "--annotators", "anna", "--questions", "plausibility",
    )  # fmt: skip
    comparison = Comparison.objects.get()
    assert comparison.campaign.name == "blind" and comparison.campaign.overlap == 2
    assert [q.name for q in comparison.campaign.questions.all()] == ["plausibility"]
    assert f"comparison {comparison.pk} of runs {teacher.pk}, {student.pk}" in out
    assert "2 posts compared, 1 left out" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--compare-runs", "{t}"], "a comparison needs at least two runs"),
        (["--compare-runs", "{t},x"], "run ids must be numbers"),
        (["--compare-runs", "{t},{t99}"], "no evaluation run {t99}"),
        (
            ["--compare-runs", "{t},{s}", "--batch", "1"],
            "--compare-runs takes no --batch or --kinds",
        ),
        (["--compare-runs", "{t},{s}", "--dataset", "nope"], "no dataset named 'nope'"),
        (["--compare-runs", "{t},{s}", "--dataset", "other"], "are of dataset 'references-data'"),
    ],
)
def test_create_campaign_refuses_broken_comparisons(runs, args, message):
    from tests.factories import DatasetFactory

    DatasetFactory(name="other")
    teacher, student = runs
    ids = {"t": teacher.pk, "s": student.pk, "t99": teacher.pk + 99}
    args = [a.format(**ids) for a in args]
    if "--dataset" not in args:
        args += ["--dataset", "references-data"]
    with pytest.raises(CommandError, match=message.format(**ids)):
        _create_campaign("blind", *args)
    _nothing_stored()


def test_a_comparison_stays_out_of_the_datasets_other_work_unless_named(runs, reference):
    """A campaign made without naming batches leaves the comparison's batch out, and `evaluate`
    still finds the dataset's reference campaign without --campaign."""
    comparison = comparison_create(runs=runs, name="Which reads better?")
    dataset = reference.dataset
    assert evaluation_campaign(dataset=dataset, name=None) == reference
    assert evaluation_campaign(dataset=dataset, name="Which reads better?") == comparison.campaign
    later = annotation_campaign_create(name="later", dataset=dataset)
    assert comparison.batch not in set(later.batches.all())
    assert later.batches.exists()
