"""The batch form on the server: miko by default, only the chosen pipeline's stage menus count
(issue 14), the redraw for browsers without JavaScript, and no "queued" message after a launch."""

import pytest
from django.urls import reverse

from generation.models import Batch
from tests.factories import fake_endpoint, make_posts

pytestmark = pytest.mark.django_db

URL = reverse("generation:batch-new")


@pytest.fixture
def endpoints(fake_server) -> None:
    make_posts("miko", 2)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")


def groups(html: str) -> dict[str, str]:
    """Each pipeline's stage fieldset opening tag, by pipeline."""
    found = {}
    for part in html.split('<fieldset data-pipeline="')[1:]:
        name, _, rest = part.partition('"')
        found[name] = rest[: rest.index(">")]
    return found


def test_the_form_defaults_to_miko_and_shows_only_its_stages(admin_client, endpoints) -> None:
    html = admin_client.get(URL).content.decode()
    assert '<option value="miko" selected>' in html
    fieldsets = groups(html)
    assert fieldsets["miko"].strip() == "" and "hidden disabled" in fieldsets["cotpd"]


def test_the_other_pipelines_stages_are_ignored_errors_included(admin_client, endpoints) -> None:
    # As a page without JavaScript sends it: the miko menus filled in, one with a stale name.
    response = admin_client.post(
        URL,
        {
            "dataset": "miko",
            "pipeline": "cotpd",
            "endpoint": "fake",
            "stage_miko_describe_image": "vision",
            "stage_miko_key_info": "deleted-endpoint",
            "stage_cotpd_caption": "vision",
        },
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert batch.pipeline == "cotpd" and list(batch.stage_endpoints) == ["caption"]


def test_a_bad_stage_endpoint_of_the_chosen_pipeline_is_an_error(admin_client, endpoints) -> None:
    response = admin_client.post(
        URL,
        {"dataset": "miko", "pipeline": "miko", "endpoint": "fake", "stage_miko_key_info": "nope"},
    )
    assert response.status_code == 400 and not Batch.objects.exists()
    assert "stage_miko_key_info" in response.context["form"].errors


@pytest.mark.parametrize("pipeline, shown", [("cotpd", "cotpd"), ("nope", "miko"), ("", "miko")])
def test_without_javascript_the_form_is_redrawn_for_the_chosen_pipeline(
    admin_client, endpoints, pipeline, shown
) -> None:
    response = admin_client.post(
        URL,
        {"dataset": "miko", "pipeline": pipeline, "endpoint": "fake", "show_stages": "1"},
    )
    assert response.status_code == 200 and not Batch.objects.exists()
    html = response.content.decode()
    fieldsets = groups(html)
    assert [name for name, tag in fieldsets.items() if "hidden" not in tag] == [shown]
    assert 'class="error"' not in html  # a redraw, not a refused launch
    assert '<option value="fake" selected>' in html  # what was filled in stays


def test_a_launch_leaves_no_queued_message_beside_the_live_status(admin_client, endpoints) -> None:
    response = admin_client.post(
        URL, {"dataset": "miko", "pipeline": "miko", "endpoint": "fake"}, follow=True
    )
    html = response.content.decode()
    assert 'id="batch-status">queued' in html and "queued." not in html
