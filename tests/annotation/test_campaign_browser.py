"""The admins' campaign pages in a real headless Chromium: the form from the keyboard and without
JavaScript, editing in the app, and the posts that cannot reach k with their ways out."""

import pytest

from accounts.services import user_create_annotator
from annotation.models import Assignment, Campaign
from annotation.selectors import task_view
from annotation.services import (
    assignment_claim,
    assignment_skip,
    assignment_submit,
    campaign_create,
)
from generation.models import Batch
from tests.factories import BatchFactory, DatasetFactory, miko_batch
from tests.helpers import browser_login, full_ratings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _focused(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def _tab_to(page, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(limit):
        if _focused(page) == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def _id_of(page, selector: str) -> str:
    return page.get_attribute(selector, "id")


def test_create_a_campaign_from_the_keyboard(page, live_server, admin_user, annotator):
    DatasetFactory(name="another")  # two datasets: the form asks which one first
    dataset = DatasetFactory(name="miko")
    done = miko_batch(dataset=dataset, posts=2, kinds=["xWant", "open"])
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED, error="refused")
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/campaigns/new/")
    assert page.is_visible("text=Choose a dataset to see its batches.")

    page.focus("#id_name")
    page.keyboard.type("from keys")
    _tab_to(page, "id_dataset")
    # Options: "Choose a dataset", another, miko. Arrow keys change a closed select at once.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector(f"text=#{done.pk} — done")
    assert _focused(page) == "id_dataset"  # the swap keeps the focus where it was
    assert page.is_visible(f"text=#{failed.pk} — failed")
    assert page.is_disabled(f"input[name=batches][value='{failed.pk}']")
    assert page.input_value("#id_name") == "from keys"

    done_box = _id_of(page, f"input[name=batches][value='{done.pk}']")
    _tab_to(page, done_box)
    page.keyboard.press("Space")
    page.wait_for_function(
        "id => document.getElementById(id) && document.getElementById(id).checked", arg=done_box
    )
    open_box = _id_of(page, "input[name=kinds][value='open']")
    assert page.is_visible("input[name=kinds][value='xWant']")
    assert not page.query_selector("input[name=kinds][value='oWant']")
    _tab_to(page, open_box)
    page.keyboard.press("Space")
    typicality = _id_of(page, "input[name=questions][value='typicality']")
    _tab_to(page, typicality)
    page.keyboard.press("Space")  # untick: plausibility stays
    _tab_to(page, "id_other_questions")
    page.keyboard.type("clarity")
    anna = _id_of(page, f"input[name=members][value='{annotator.pk}']")
    assert not page.query_selector(f"input[name=members][value='{admin_user.pk}']")
    _tab_to(page, anna)
    page.keyboard.press("Space")
    page.focus("#id_name")
    page.keyboard.press("Enter")  # Enter saves (the refresh buttons are not the default)

    page.wait_for_selector("text=Campaign from keys created.")
    campaign = Campaign.objects.get(name="from keys")
    assert list(campaign.batches.all()) == [done] and campaign.kinds == ["open"]
    assert list(campaign.questions.values_list("name", flat=True)) == ["plausibility", "clarity"]
    assert list(campaign.members.all()) == [annotator] and campaign.tasks.count() == 2


def test_the_form_works_without_javascript(browser, live_server, admin_user):
    dataset = DatasetFactory(name="miko")
    done = miko_batch(dataset=dataset, posts=2, kinds=["xWant"])
    second = DatasetFactory(name="second")
    theirs = miko_batch(dataset=second, posts=1, kinds=["oReact"])
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        browser_login(page, live_server, "ada")
        # The batch page's "Create a campaign from this batch" link.
        page.goto(f"{live_server.url}/campaigns/new/?dataset={dataset.pk}&batch={done.pk}")
        assert page.is_checked(f"input[name=batches][value='{done.pk}']")
        page.fill("#id_name", "plain")
        page.select_option("#id_dataset", str(second.pk))
        page.click("text=Show this dataset's batches")
        page.wait_for_selector(f"text=#{theirs.pk} — done")
        assert page.input_value("#id_name") == "plain"
        assert page.is_visible("input[name=kinds][value='oReact']")
        page.check(f"input[name=batches][value='{theirs.pk}']")
        page.focus("#id_name")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Campaign plain created.")
    finally:
        context.close()
    campaign = Campaign.objects.get(name="plain")
    assert campaign.dataset == second and list(campaign.batches.all()) == [theirs]


def test_edit_a_campaign_in_the_app(page, live_server, admin_user, annotator, dataset):
    miko_batch(dataset=dataset, posts=2)
    campaign = campaign_create(name="pilot", dataset=dataset, overlap=2, members=[annotator])
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    page.focus("text=Edit campaign")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/edit/")

    page.fill("#id_lease_minutes", "0")
    page.click("button.primary")
    page.wait_for_selector("[role=alert]:has-text('the lease must last at least one minute')")
    page.fill("#id_lease_minutes", "30")
    page.fill("#id_overlap", "1")
    page.click("button.primary")
    page.wait_for_selector("text=Campaign pilot saved.")
    assert page.is_visible("text=lease 30 min")
    campaign.refresh_from_db()
    assert (campaign.lease_minutes, campaign.overlap) == (30, 1)

    # Once a post is handed out, what is rated, the questions and k are fixed.
    assignment_claim(campaign=campaign, annotator=annotator)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/edit/")
    assert page.is_visible("text=Annotators have started (1 post handed out)")
    assert page.is_disabled("#id_overlap") and page.is_disabled("#id_dataset")
    assert page.is_disabled("input[name=questions][value='plausibility']")
    assert not page.is_disabled("#id_lease_minutes")


def test_a_stuck_post_is_listed_and_reopened(page, live_server, admin_user, dataset):
    anna = user_create_annotator(username="anna", password="correct-horse-battery")
    otto = user_create_annotator(username="otto", password="correct-horse-battery")
    miko_batch(dataset=dataset, posts=2)
    campaign = campaign_create(name="stuck", dataset=dataset, overlap=2, members=[anna, otto])
    skipped = assignment_claim(campaign=campaign, annotator=anna)
    assignment_skip(assignment=skipped)
    theirs = assignment_claim(campaign=campaign, annotator=otto)
    assignment_submit(assignment=theirs, ratings=full_ratings(task_view(assignment=theirs)))

    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    section = page.locator("#stuck")
    assert "Posts that cannot reach k" in section.inner_text()
    assert skipped.post.external_id in section.inner_text()
    reopen = f"Reopen post {skipped.post.external_id}"
    page.get_by_role("button", name=reopen).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("text=reopened: 1 annotator who skipped it or let it expire")
    assert not page.query_selector("#stuck")
    assert not Assignment.objects.filter(pk=skipped.pk).exists()
    assert assignment_claim(campaign=campaign, annotator=anna).post_id == skipped.post_id


def test_add_annotators_when_the_campaign_has_fewer_than_k(page, live_server, admin_user, dataset):
    anna = user_create_annotator(username="anna", password="correct-horse-battery")
    tess = user_create_annotator(username="tess", password="correct-horse-battery")
    miko_batch(dataset=dataset, posts=2)
    campaign = campaign_create(name="small", dataset=dataset, overlap=2, members=[anna])
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    assert "2 posts can never get k = 2 ratings" in page.inner_text("#stuck")
    page.click("#stuck >> text=Add annotators")
    box = _id_of(page, f"#add-members input[value='{tess.pk}']")
    assert not page.query_selector(f"#add-members input[value='{admin_user.pk}']")
    page.focus(f"#{box}")
    page.keyboard.press("Space")
    page.get_by_role("button", name="Add to the campaign").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("text=1 annotator added: tess.")
    assert not page.query_selector("#stuck")
    assert set(campaign.members.all()) == {anna, tess}


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)])
def test_the_campaign_pages_pass_axe(browser, live_server, admin_user, dataset, size):
    """No serious or critical axe-core finding on the form with its choices, the edit page with
    its fixed fields and the campaign page with stuck posts and the members form."""
    from axe_playwright_python.sync_playwright import Axe

    anna = user_create_annotator(username="anna", password="correct-horse-battery")
    user_create_annotator(username="tess", password="correct-horse-battery")
    done = miko_batch(dataset=dataset, posts=2)
    BatchFactory(dataset=dataset, status=Batch.Status.FAILED, error="connection refused")
    campaign = campaign_create(name="axe", dataset=dataset, overlap=2, members=[anna])
    assignment_skip(assignment=assignment_claim(campaign=campaign, annotator=anna))
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(10_000)
    found = {}
    try:
        browser_login(page, live_server, "ada")
        for path in (
            f"/campaigns/new/?dataset={dataset.pk}&batch={done.pk}",
            f"/campaigns/{campaign.pk}/edit/",
            f"/campaigns/{campaign.pk}/",
        ):
            page.goto(live_server.url + path)
            page.wait_for_load_state("networkidle")
            blocking = [
                f"{v['id']}: {[n['target'] for n in v['nodes'][:3]]}"
                for v in Axe().run(page).response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            if blocking:
                found[path] = blocking
        assert page.is_visible("#stuck")
    finally:
        context.close()
    assert not found, found
