"""The rating page in a real headless Chromium, at 1280×800 and on a 390×844 phone: the post in
view, contrast, unanswered questions, live progress, drafts, stale tabs, skipping, instructions,
touch targets, alt text. The campaign fixture: four posts of ten items, two questions, k = 2."""

import pytest
from django.core.files.base import ContentFile

from annotation.models import Assignment, Rating
from annotation.services import QuestionSpec, campaign_create
from generation.models import Post
from tests.helpers import browser_login, wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

IN_VIEW = """selector => {
    const box = document.querySelector(selector).getBoundingClientRect();
    return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight
        && box.left >= 0 && box.right <= window.innerWidth;
}"""
FOCUSED_GROUP = """() => Array.from(document.querySelectorAll('#rate-form fieldset.question'))
    .indexOf(document.activeElement.closest('fieldset.question'))"""
CHECKED = (
    "() => Array.from(document.querySelectorAll('#rate-form input:checked')).map(i => i.value)"
)


def _open(page, live_server, campaign) -> int:
    """Open the rating page; the id of the assignment it shows, once the first radio has focus."""
    page.goto(f"{live_server.url}/annotate/{campaign.pk}/")
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    return int(page.get_attribute("article.post", "data-assignment"))


def _rate(page, digits: str) -> None:
    for digit in digits:
        page.keyboard.press(digit)


def _wait_for_next(page, shown) -> int:
    """Wait until another post is shown and the page's script has started on it; its assignment."""
    wait_in_page(
        page,
        "id => { const l = document.querySelector('article.post');"
        " return l && l.dataset.assignment !== id"
        " && document.activeElement && document.activeElement.type === 'radio'; }",
        arg=str(shown),
    )
    return int(page.get_attribute("article.post", "data-assignment"))


def _submit_all(page, digit: str = "3") -> int:
    """Rate the 20 questions of the post shown, submit with Enter; the next post's assignment."""
    shown = page.get_attribute("article.post", "data-assignment")
    _rate(page, digit * 20)
    page.keyboard.press("Enter")
    return _wait_for_next(page, shown)


def _blocking_axe(page, rules: list[str] | None = None) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    options = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = rules
    found = Axe().run(page, options=options).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): " + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_the_post_stays_in_view_beside_the_items(page, live_server, campaign, annotator):
    page.set_viewport_size(DESKTOP)
    browser_login(page, live_server, "anna")
    _open(page, live_server, campaign)
    assert page.evaluate(IN_VIEW, ".post-text")
    post = page.locator("article.post").bounding_box()
    item = page.locator("fieldset.item").first.bounding_box()
    assert post["x"] + post["width"] <= item["x"], "the post sits beside the items"
    # Rate down to the last item: the page scrolls, the post stays in view.
    _rate(page, "3" * 19)
    assert page.evaluate("window.scrollY") > 200
    assert page.evaluate(IN_VIEW, ".post-text")


def test_all_text_meets_wcag_aa_contrast(page, live_server, campaign, annotator):
    """The Submit button's "Enter" key was 1.07:1; answers chosen and focus shown as well."""
    page.set_viewport_size(DESKTOP)
    browser_login(page, live_server, "anna")
    _open(page, live_server, campaign)
    _rate(page, "15")
    assert _blocking_axe(page, ["color-contrast"]) == []


def test_unanswered_questions_are_counted_with_a_jump_and_text_has_contrast(
    page, live_server, campaign, annotator
):
    page.set_viewport_size(DESKTOP)
    browser_login(page, live_server, "anna")
    shown = _open(page, live_server, campaign)
    _rate(page, "3" * 17)
    page.keyboard.press("Enter")
    page.wait_for_selector("#unanswered:not([hidden])")
    assert "3 of 20 unanswered" in page.inner_text("#unanswered")
    assert page.evaluate("document.activeElement.id") == "jump-unanswered"
    assert page.locator("fieldset.question.missing").count() == 3
    # Every text, these states included (the Submit button's key), meets WCAG AA contrast;
    # nothing else serious either.
    assert _blocking_axe(page) == []
    page.keyboard.press("Enter")  # the jump
    assert page.evaluate(FOCUSED_GROUP) == 17
    assert Assignment.objects.get(pk=shown).status == "leased"
    assert not Rating.objects.exists()
    # Answered, the message goes.
    _rate(page, "444")
    assert page.is_hidden("#unanswered")
    assert page.inner_text("#answered") == "20 of 20 answered"


def test_the_header_counts_each_post_submitted(page, live_server, campaign, annotator):
    browser_login(page, live_server, "anna")
    _open(page, live_server, campaign)
    assert page.inner_text("#progress-text").startswith("0 of 8 post ratings done")
    _submit_all(page)
    assert page.inner_text("#progress-text") == "1 of 8 post ratings done · you rated 1 post"
    _submit_all(page)
    assert page.inner_text("#progress-text").startswith("2 of 8 post ratings done")


def _phone(browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def test_on_a_phone_the_post_is_in_view_and_collapses(browser, live_server, campaign, annotator):
    context, page = _phone(browser)
    try:
        browser_login(page, live_server, "anna")
        _open(page, live_server, campaign)
        # The post is in view on arrival, not scrolled away to item 1.
        assert page.evaluate("window.scrollY") == 0
        assert page.evaluate(IN_VIEW, ".post-text")
        # It collapses to one line and stays at the top while the items scroll.
        page.click("#post-toggle")
        assert page.get_attribute("#post-toggle", "aria-expanded") == "false"
        assert page.is_hidden(".post-text") and page.is_visible("#post-excerpt")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert page.evaluate("window.scrollY") > 500
        assert page.evaluate(IN_VIEW, "#post-heading")
        page.click("#post-toggle")
        assert page.get_attribute("#post-toggle", "aria-expanded") == "true"
        assert page.evaluate(IN_VIEW, ".post-text")
        assert _blocking_axe(page) == []
    finally:
        context.close()


def test_on_a_phone_scales_fit_in_one_row_of_touch_targets(
    browser, live_server, dataset, campaign, annotator
):
    """A 1–5 and a 1–7 scale at 390 px; no keyboard hints; the image's alt text from the post."""
    seven = campaign_create(
        name="seven",
        dataset=dataset,
        questions=[
            QuestionSpec("plausibility", "Plausible?", "1-5"),
            QuestionSpec("fit", "Fit?", "1-7"),
        ],
        members=[annotator],
    )
    for post in Post.objects.all():
        post.image.save("photo.png", ContentFile(b"not really a png"), save=True)
    context, page = _phone(browser)
    try:
        browser_login(page, live_server, "anna")
        assignment = Assignment.objects.get(pk=_open(page, live_server, seven))
        alt = page.get_attribute("article.post img", "alt")
        assert alt == f"A photo that goes with {assignment.post.external_id}."
        assert page.is_hidden("#keys-help") and page.is_hidden("#submit-button kbd")
        boxes = page.evaluate(
            """() => Array.from(document.querySelectorAll('#rate-form fieldset.question'))
                .map(g => Array.from(g.querySelectorAll('label')).map(l => {
                    const b = l.getBoundingClientRect();
                    return [b.top, b.width, b.height, b.right]; }))"""
        )
        assert sorted({len(labels) for labels in boxes}) == [5, 7]
        for labels in boxes:
            assert len({round(top) for top, *_ in labels}) == 1, labels
            assert all(w >= 44 and h >= 44 and right <= PHONE["width"] for _, w, h, right in labels)
        for button in ("#submit-button", "#skip-button", "#post-toggle"):
            box = page.locator(button).bounding_box()
            assert box["height"] >= 44 and box["width"] >= 44, button
    finally:
        context.close()


def test_answers_survive_reload_and_back_and_leaving_warns(page, live_server, campaign, annotator):
    browser_login(page, live_server, "anna")
    shown = _open(page, live_server, campaign)
    _rate(page, "452")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))

    page.reload()
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    assert dialogs == ["beforeunload"]
    assert page.evaluate(CHECKED) == ["4", "5", "2"]
    assert page.inner_text("#answered") == "3 of 20 answered"

    # Away and Back: warned again, and the answers are still there.
    page.goto(f"{live_server.url}/annotate/")
    assert dialogs == ["beforeunload", "beforeunload"]
    page.go_back()
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    assert page.evaluate(CHECKED) == ["4", "5", "2"]

    # Submitted, the draft is gone, and a fresh post warns of nothing.
    _rate(page, "3" * 17)
    page.keyboard.press("Enter")
    _wait_for_next(page, shown)
    assert Assignment.objects.get(pk=shown).status == "done"
    assert page.evaluate(f"localStorage.getItem('distillery:draft:{shown}')") is None
    page.goto(f"{live_server.url}/annotate/")
    assert len(dialogs) == 2


def test_a_submission_from_a_stale_tab_is_refused(page, live_server, campaign, annotator):
    browser_login(page, live_server, "anna")
    other_tab = page.context.new_page()
    other_tab.set_default_timeout(10_000)
    shown = _open(page, live_server, campaign)
    assert _open(other_tab, live_server, campaign) == shown
    _submit_all(page, "4")
    other_tab.bring_to_front()
    _rate(other_tab, "1" * 20)
    other_tab.keyboard.press("Enter")
    other_tab.wait_for_selector("#rate-error[data-stale]")
    assert "submitted from another tab or window" in other_tab.inner_text("#rate-error")
    assert set(Rating.objects.filter(assignment_id=shown).values_list("value", flat=True)) == {4}
    # The stale tab now shows what is saved, at its new version.
    assert set(other_tab.evaluate(CHECKED)) == {"4"}
    assert other_tab.get_attribute("#rate-layout", "data-version") == "1"
    assert "Save changes" in other_tab.inner_text("#submit-button")


def test_skip_asks_first_and_can_be_called_off(page, live_server, campaign, annotator):
    page.set_viewport_size(DESKTOP)
    browser_login(page, live_server, "anna")
    shown = _open(page, live_server, campaign)
    page.keyboard.press("s")
    page.wait_for_selector("#skip-confirm:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "skip-confirm-button"
    assert _blocking_axe(page, ["color-contrast"]) == []
    page.keyboard.press("Escape")
    assert page.is_hidden("#skip-confirm") and page.is_visible("#skip-button")
    page.click("#skip-button")
    page.click("#skip-cancel")
    assert page.is_hidden("#skip-confirm")
    assert Assignment.objects.get(pk=shown).status == "leased"

    page.keyboard.press("s")
    page.keyboard.press("Enter")
    _wait_for_next(page, shown)
    assert Assignment.objects.get(pk=shown).status == "skipped"


def test_instructions_open_on_the_first_visit_then_as_left(page, live_server, campaign, annotator):
    browser_login(page, live_server, "anna")
    _open(page, live_server, campaign)
    assert page.evaluate("document.querySelector('details.instructions').open")
    _submit_all(page)
    assert not page.evaluate("document.querySelector('details.instructions').open")
    page.reload()
    page.wait_for_selector("details.instructions")
    assert not page.evaluate("document.querySelector('details.instructions').open")
    # Opened by hand, they stay open on this campaign's later posts.
    page.click("details.instructions > summary")
    page.reload()
    wait_in_page(page, "document.activeElement && document.activeElement.type === 'radio'")
    assert page.evaluate("document.querySelector('details.instructions').open")
