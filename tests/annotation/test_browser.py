"""The keyboard flow in a real headless Chromium: log in, rate with keys alone, submit."""

import pytest

from annotation.models import Assignment, Rating
from annotation.services import campaign_create
from tests.factories import miko_batch
from tests.helpers import browser_login, wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_rate_a_post_with_keys_alone(page, live_server, annotator, dataset):
    miko_batch(dataset=dataset, posts=2, kinds=["xWant", "xIntent", "open"])
    campaign = campaign_create(name="keys", dataset=dataset, overlap=1, members=[annotator])
    browser_login(page, live_server, "anna")
    page.goto(f"{live_server.url}/annotate/{campaign.pk}/")
    first = Assignment.objects.get(annotator=annotator, status="leased")
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    assert first.post.text in page.inner_text("article.post")
    # Three items × two questions: a digit rates the focused question and moves on.
    for digit in "453215":
        page.keyboard.press(digit)
    page.keyboard.press("ArrowUp")  # back to the last-but-one item, same question
    page.keyboard.press("ArrowUp")
    page.keyboard.press("2")  # the first item's typicality, the question that kept focus
    page.keyboard.press("Enter")
    wait_in_page(
        page,
        "id => document.querySelector('article.post') &&"
        " document.querySelector('article.post').dataset.assignment !== String(id)",
        arg=first.pk,
    )
    first.refresh_from_db()
    assert first.status == Assignment.Status.DONE
    values = sorted(
        Rating.objects.filter(assignment=first).values_list(
            "item__position", "question__name", "value"
        )
    )
    assert values == [
        (1, "plausibility", 4),
        (1, "typicality", 2),
        (2, "plausibility", 3),
        (2, "typicality", 2),
        (3, "plausibility", 1),
        (3, "typicality", 5),
    ]
    second = Assignment.objects.get(annotator=annotator, status="leased")
    assert second.post.text in page.inner_text("article.post")
    assert page.url.endswith(f"/annotate/{campaign.pk}/")

    # U goes back to the previous post, its answers shown; change one and save with Enter.
    page.keyboard.press("u")
    page.wait_for_selector("text=Changing your answers")
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    page.keyboard.press("5")  # focus starts on the first question of the first item
    page.keyboard.press("Enter")
    wait_in_page(
        page,
        "id => document.querySelector('article.post').dataset.assignment === String(id)"
        " && document.activeElement && document.activeElement.type === 'radio'",
        arg=second.pk,
    )
    assert (
        Rating.objects.get(assignment=first, item__position=1, question__name="plausibility").value
        == 5
    )
    assert Rating.objects.filter(annotator=annotator).count() == 6

    # S asks first; S again skips the current post; with k = 1 nothing is left.
    page.keyboard.press("s")
    page.wait_for_selector("#skip-confirm-button:focus")
    second.refresh_from_db()
    assert second.status == Assignment.Status.LEASED
    page.keyboard.press("s")
    page.wait_for_selector("#all-done")
    second.refresh_from_db()
    assert second.status == Assignment.Status.SKIPPED
