"""Hostile text stays text: markup typed into posts, items, campaigns and dataset names renders
escaped on every page (and its htmx partial) and in the Django admin, stays plain text in jsonl
exports, and cannot start a formula in csv exports. One browser test watches for dialogs.
"""

import csv
import io
import json
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Campaign
from generation.fake_openai import FakeOpenAIServer
from generation.models import KnowledgeItem
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from generation.services.endpoints import endpoint_create
from generation.services.import_jobs import import_job_create
from generation.tasks import import_job_run_task
from tests.factories import make_posts
from tests.helpers import browser_login
from tests.system.routes import fill, is_api, url_patterns
from tests.system.world import World, build_world

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
MARK = f"{SCRIPT}{BREAKOUT}"
# Spreadsheet formulas: cells that start with these run as code when the csv is opened.
FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A2)"]


class _Scan(HTMLParser):
    """What a browser would run: script elements and event handlers. And the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.executable: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on") and value and "alert(1)" in value:
                self.executable.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and value and "javascript:" in value.lower():
                self.executable.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(1)" in data:
            self.executable.append(f"<script>{data}</script>")
        elif not self._in_script:
            self.text.append(data)


def scan(html: str) -> _Scan:
    parser = _Scan()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture
def world(admin_user, annotator, other_annotator) -> World:
    return build_world(admin=admin_user, annotator=annotator, outsider=other_annotator, mark=MARK)


def _html_pages(client: Client, world: World, *, htmx: bool) -> dict[str, str]:
    """Every page (GET, not the API) the client may read, by URL: its HTML."""
    pages = {}
    headers = {"HX-Request": "true"} if htmx else {}
    for key, _, route in url_patterns():
        if is_api(route) or key in ("accounts:logout", "admin:logout"):
            continue
        url = fill(route, world)
        response = client.get(url, headers=headers)
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            pages[url] = response.content.decode()
    return pages


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "partial"])
def test_markup_in_user_text_renders_escaped_on_every_page(
    world, admin_client, client, annotator, htmx
) -> None:
    pages = _html_pages(admin_client, world, htmx=htmx)
    client.force_login(annotator)
    pages |= {f"{url} (anna)": html for url, html in _html_pages(client, world, htmx=htmx).items()}
    assert len(pages) > 60
    scans = {url: scan(html) for url, html in pages.items()}
    executable = {url: found.executable for url, found in scans.items() if found.executable}
    assert not executable

    # And the text is there, shown as text, where people read it.
    c, e = world.campaign.pk, world.export.pk
    shown = [
        "/datasets/",
        f"/datasets/{world.dataset.pk}/",
        "/batches/",
        f"/batches/{world.batch.pk}/",
        "/campaigns/",
        f"/campaigns/{c}/",
        f"/campaigns/{c}/evaluation/",
        f"/campaigns/{c}/evaluation/items/",
        f"/exports/{e}/",
        "/evaluation/",
        f"/admin/generation/dataset/{world.dataset.pk}/change/",
        f"/admin/generation/post/{world.post.pk}/change/",
        f"/admin/generation/knowledgeitem/{world.item.pk}/change/",
        f"/admin/annotation/campaign/{c}/change/",
        "/admin/generation/post/",
        "/admin/annotation/campaign/",
        f"/annotate/{c}/ (anna)",
        "/annotate/ (anna)",
    ]
    if htmx:  # partials show parts of a page; the text is checked on the whole pages
        return
    missing = [url for url in shown if url not in pages or SCRIPT not in "".join(scans[url].text)]
    assert not missing


@pytest.mark.django_db
def test_campaign_instructions_are_sanitised_markdown(world, annotator, client) -> None:
    world.campaign.instructions += (
        "\n\n[a link](javascript:alert(1)) [data](data:text/html,<script>alert(1)</script>)"
        '\n\n<a href="javascript:alert(1)">raw link</a> <iframe src="/admin/"></iframe>'
        "\n\n<style>body{display:none}</style> <form action=/accounts/logout/><button>x</button>"
        '</form> <svg onload="alert(1)"></svg> <details open ontoggle="alert(1)">'
    )
    world.campaign.save()
    client.force_login(annotator)
    html = client.get(f"/annotate/{world.campaign.pk}/").content.decode()
    api = APIClient()
    api.force_authenticate(annotator)
    rendered = api.get(f"/api/campaigns/{world.campaign.pk}/").json()["instructions_html"]
    assert "<strong>every</strong>" in rendered  # markdown still works
    for tag in ("<script", "<iframe", "<style", "<form", "<svg", "javascript:", "data:text/html"):
        assert tag not in rendered, tag
    assert not scan(rendered).executable
    assert not scan(html).executable and rendered in html


def _export(campaign: Campaign, fmt: str, tmp_path) -> str:
    output = tmp_path / f"out.{fmt}"
    call_command(
        "export_dataset",
        campaign=campaign.name,
        format=fmt,
        output=str(output),
        no_progress=True,
        stdout=io.StringIO(),
    )
    return output.read_text(encoding="utf-8")


@pytest.mark.django_db
def test_exports_keep_markup_as_text_and_never_start_a_formula(world, tmp_path) -> None:
    post = world.done_assignment.post
    items = list(KnowledgeItem.objects.filter(post=post).order_by("position"))
    for item, formula in zip(items, FORMULAS, strict=False):
        item.text = formula
        item.save()
    post.text = f"=cmd|' /C calc'!A0 {MARK}"
    post.save()
    hostile = {item.pk: item.text for item in items}

    records = [json.loads(line) for line in _export(world.campaign, "jsonl", tmp_path).splitlines()]
    assert {r["item_id"]: r["text"] for r in records} == hostile  # exactly the text, not escaped
    assert {r["post_text"] for r in records} == {post.text}

    rows = list(csv.DictReader(io.StringIO(_export(world.campaign, "csv", tmp_path))))
    assert len(rows) == len(items)
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@")), (column, cell)
        text = hostile[int(row["item_id"])]
        assert row["text"] == ("'" + text if text in FORMULAS else text)
        assert row["post_text"] == "'" + post.text
        assert MARK in row["post_text"]  # markup stays as it was typed

    ratings = list(csv.reader(io.StringIO(_export(world.campaign, "ratings", tmp_path))))
    assert len(ratings) == 1 + len(items) * 2
    for row in ratings:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


# A blank or a line break before the formula: spreadsheets skip it and still run the rest.
HIDDEN_FORMULAS = [" =1+1", "\n=cmd", "\t@x", "  -2+3"]


def _runs_as_formula(cell: str) -> bool:
    return cell.startswith(("\t", "\r", "\n")) or cell.lstrip().startswith(("=", "+", "-", "@"))


@pytest.mark.django_db
def test_a_blank_before_a_formula_does_not_hide_it_in_csv_exports(world, tmp_path) -> None:
    items = list(KnowledgeItem.objects.filter(post=world.done_assignment.post).order_by("position"))
    for item, formula in zip(items, HIDDEN_FORMULAS, strict=False):
        KnowledgeItem.objects.filter(pk=item.pk).update(text=formula)
    # Question names are checked now; one stored before that may still hold a formula.
    world.campaign.questions.filter(name="typicality").update(name="\t@x")
    rows = list(csv.reader(io.StringIO(_export(world.campaign, "csv", tmp_path), newline="")))
    assert "'\t@x_mean" in rows[0]
    texts = {row[rows[0].index("text")] for row in rows[1:]}
    assert {"'" + formula for formula in HIDDEN_FORMULAS} <= texts
    ratings = list(
        csv.reader(io.StringIO(_export(world.campaign, "ratings", tmp_path), newline=""))
    )
    assert "'\t@x" in {row[3] for row in ratings[1:]}
    for row in rows + ratings:
        assert not [cell for cell in row if _runs_as_formula(cell)], row


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_script_in_a_post_never_runs_in_the_browser(
    page, live_server, admin_user, annotator, other_annotator
) -> None:
    world = build_world(admin=admin_user, annotator=annotator, outsider=other_annotator, mark=MARK)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    browser_login(page, live_server, "anna")
    page.goto(f"{live_server.url}/annotate/{world.campaign.pk}/")
    page.wait_for_function("document.activeElement && document.activeElement.type === 'radio'")
    assert SCRIPT in page.inner_text("article.post")  # shown as text
    assert SCRIPT in page.inner_text("#rate-form")
    assert page.locator("article.post img[src=x], #rate-form img").count() == 0
    page.keyboard.press("Tab")  # move about a little: nothing wakes up
    page.click("text=Instructions")

    page.context.clear_cookies()
    browser_login(page, live_server, "ada")
    for url in (
        f"/datasets/{world.dataset.pk}/",
        f"/campaigns/{world.campaign.pk}/",
        f"/campaigns/{world.campaign.pk}/evaluation/",
        f"/batches/{world.batch.pk}/",
        f"/admin/generation/post/{world.post.pk}/change/",
    ):
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("networkidle")
        assert SCRIPT in page.inner_text("body"), url
    assert dialogs == [] and errors == []


@pytest.mark.django_db
def test_an_import_error_quoting_the_file_renders_escaped(admin_client, admin_user) -> None:
    """Import errors quote the file (ids, values): shown as text on the job page and partial."""
    line = json.dumps({"id": MARK, "text": MARK}) + "\n"
    job = import_job_create(
        file=SimpleUploadedFile(f"{BREAKOUT}.jsonl", (line * 2).encode()),
        dataset_name=MARK,
        created_by=admin_user,
    )
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and SCRIPT in job.error
    for headers in ({}, {"HX-Request": "true"}):
        found = scan(admin_client.get(f"/imports/{job.pk}/", headers=headers).content.decode())
        assert not found.executable
        assert SCRIPT in "".join(found.text)


@pytest.mark.django_db
def test_a_model_answer_with_markup_renders_escaped_on_the_batch_page(admin_client) -> None:
    """What a model answers is shown on the batch page (failed stages, raw answers): as text."""
    dataset = make_posts(MARK, 2, images=False)

    def answers(stage, body):
        return MARK if stage == "intentions" else None

    with FakeOpenAIServer(answers=answers) as server:
        endpoint = endpoint_create(
            name="fake", backend="openai", base_url=server.base_url, model=MARK
        )
        batch = batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False)
        batch = batch_execute(batch_id=batch.pk)
    assert batch.posts_failed == 2
    for headers in ({}, {"HX-Request": "true"}):
        for url in (f"/batches/{batch.pk}/", f"/batches/{batch.pk}/progress/", "/batches/"):
            found = scan(admin_client.get(url, headers=headers).content.decode())
            assert not found.executable, url
    page = scan(admin_client.get(f"/batches/{batch.pk}/").content.decode())
    assert SCRIPT in "".join(page.text)
