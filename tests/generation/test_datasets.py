"""The dataset browser and the datasets API: counts, paging (with and without htmx), search."""

import io

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from tests.factories import DatasetFactory, PostFactory, miko_items_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(name="miko-sample")
    for n in range(45):
        PostFactory(dataset=dataset, external_id=f"p{n}", text=f"post {n} about the sea")
    first = dataset.posts.order_by("id").first()
    first.text = "A puffin on the cliff"
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(image, "PNG")
    first.image.save("puffin.png", ContentFile(image.getvalue()))
    first.metadata = {"lang": "en"}
    first.save()
    miko_items_for(first)
    DatasetFactory(name="empty")
    return dataset


def test_dataset_list_has_counts(admin_client, dataset):
    page = admin_client.get("/datasets/").content.decode()
    assert f'href="/datasets/{dataset.pk}/"' in page
    assert '<td class="num">45</td>' in page and '<td class="num">1</td>' in page
    assert "empty" in page


def test_dataset_detail_shows_posts_with_image_text_metadata_and_items(admin_client, dataset):
    page = admin_client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "A puffin on the cliff" in page
    assert f"/media/posts/{dataset.pk}/puffin" in page
    assert "&#x27;lang&#x27;: &#x27;en&#x27;" in page
    assert "xWant" in page and "After posting this Tweet" in page
    assert "Page 1 of 3 · 45 posts" in page
    assert f'href="/datasets/{dataset.pk}/?page=2"' in page  # a real link without JavaScript
    assert page.count('class="card post"') == 20


def test_paging_without_htmx_renders_the_whole_page(admin_client, dataset):
    page = admin_client.get(f"/datasets/{dataset.pk}/?page=3").content.decode()
    assert "<html" in page and "Page 3 of 3" in page
    assert page.count('class="card post"') == 5
    assert "p44" in page and "p1<" not in page


def test_paging_with_htmx_renders_only_the_posts(admin_client, dataset):
    response = admin_client.get(
        f"/datasets/{dataset.pk}/?page=2", headers={"HX-Request": "true", "HX-Target": "posts"}
    )
    text = response.content.decode()
    assert "<html" not in text and text.lstrip().startswith('<section id="posts"')
    assert "Page 2 of 3" in text and 'hx-push-url="true"' in text


def test_search_by_text_and_id(admin_client, dataset):
    page = admin_client.get(f"/datasets/{dataset.pk}/?q=PUFFIN").content.decode()
    assert "1 post matching" in page and "A puffin on the cliff" in page
    page = admin_client.get(f"/datasets/{dataset.pk}/?q=p7").content.decode()
    assert "1 post matching" in page and "#p7" in page
    page = admin_client.get(f"/datasets/{dataset.pk}/?q=sea&page=2").content.decode()
    assert "44 posts matching" in page and "q=sea" in page
    page = admin_client.get(f"/datasets/{dataset.pk}/?q=zebra").content.decode()
    assert "No post matches" in page


def test_api_datasets_posts_and_search(admin_api, dataset):
    listed = admin_api.get("/api/datasets/").json()
    assert [d["name"] for d in listed["results"]] == ["empty", "miko-sample"]
    assert listed["results"][1]["post_count"] == 45 and listed["results"][1]["batch_count"] == 1
    detail = admin_api.get(f"/api/datasets/{dataset.pk}/").json()
    assert (detail["post_count"], detail["item_count"], detail["batch_count"]) == (45, 10, 1)
    posts = admin_api.get(f"/api/datasets/{dataset.pk}/posts/").json()
    assert posts["count"] == 45 and len(posts["results"]) == 45
    found = admin_api.get(f"/api/datasets/{dataset.pk}/posts/?search=puffin").json()
    assert found["count"] == 1
    post = found["results"][0]
    assert post["image"].startswith("http://testserver/media/posts/")
    assert [item["position"] for item in post["items"]] == list(range(1, 11))
    one = admin_api.get(f"/api/posts/{post['id']}/").json()
    assert one["metadata"] == {"lang": "en"} and one["items"][0]["kind"] == "xWant"
    assert admin_api.get("/api/posts/999999/").status_code == 404
    assert admin_api.get("/api/datasets/999999/posts/").status_code == 404


def test_annotators_are_refused_dataset_pages_and_api(annotator_client, annotator_api, dataset):
    post = dataset.posts.first()
    for url in ["/datasets/", f"/datasets/{dataset.pk}/", "/imports/new/"]:
        assert annotator_client.get(url).status_code == 403, url
    for url in [
        "/api/datasets/",
        f"/api/datasets/{dataset.pk}/",
        f"/api/datasets/{dataset.pk}/posts/",
        f"/api/posts/{post.pk}/",
    ]:
        assert annotator_api.get(url).status_code == 403, url


def test_anonymous_users_are_sent_to_login(client, dataset):
    response = client.get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/api/datasets/").status_code == 401
