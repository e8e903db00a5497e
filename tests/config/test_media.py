"""/media/: ids in the path are bounded integers; anything else is 404, never a 500."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "folder",
    ["%C2%B2", "\u00b2", "\u0663", "1" * 23, str(2**63), "-1", "+1", " 1", "1_0", "0x1", ""],
)
def test_a_post_folder_that_is_no_id_is_404_for_an_annotator(annotator_client, folder) -> None:
    response = annotator_client.get(f"/media/posts/{folder}/x.png")
    assert response.status_code == 404


def test_a_huge_id_is_404_for_an_admin_too(admin_client) -> None:
    assert admin_client.get(f"/media/posts/{'9' * 23}/x.png").status_code == 404


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("a%00b.png", 400),  # the middleware refuses NUL in any request (config/middleware.py)
        ("a" * 5000 + ".png", 404),
        (("d" * 200 + "/") * 30 + "x", 404),
    ],
    ids=["NUL", "long name", "long path"],
)
def test_a_name_the_file_system_refuses_is_no_500(
    admin_client, annotator_client, name, status
) -> None:
    assert admin_client.get(f"/media/posts/1/{name}").status_code == status
    assert annotator_client.get(f"/media/posts/1/{name}").status_code == status
