"""Every URL the project serves, with its path parameters filled from a `World`."""

import re
from collections.abc import Iterator

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver

from students.models import EvaluationRun, StudentTraining
from tests.system.world import World

CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<parameter>\w+)>(?P<body>[^)]*)\)")


def url_patterns() -> Iterator[tuple[str, str, str]]:
    """(key, namespace, route) of every URL the project serves, with the routes joined."""

    def walk(patterns, prefix: str, namespace: str) -> Iterator[tuple[str, str, str]]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace]))
                yield from walk(pattern.url_patterns, route, inner)
            elif isinstance(pattern, URLPattern):
                name = ":".join(filter(None, [namespace, pattern.name])) if pattern.name else ""
                yield name or route, namespace, route

    yield from walk(get_resolver().url_patterns, "", "")


def is_api(route: str) -> bool:
    return route.startswith("api/") and route not in ("api/schema/", "api/docs/")


def _admin_object_id(route: str) -> str:
    app_label, model_name = route.split("/")[1:3]
    model = apps.get_model(app_label, model_name)
    return str(model._default_manager.order_by("pk").values_list("pk", flat=True).first())


def _value(parameter: str, route: str, world: World) -> str:
    campaign_route = route.startswith(("campaigns/", "annotate/", "api/campaigns/"))
    values = {
        "dataset_id": world.dataset.pk,
        "post_id": world.post.pk,
        "job_id": world.import_job.pk,
        "endpoint_id": world.endpoint.pk,
        "batch_id": world.batch.pk,
        "action": "cancel" if route.startswith("judges/") else "pause",
        "run_id": world.judge_run.pk,
        "campaign_id": world.campaign.pk,
        "assignment_id": world.assignment.pk,
        "export_id": world.export.pk,
        "evaluation_run_id": EvaluationRun.objects.values_list("pk", flat=True).first(),
        "training_id": StudentTraining.objects.values_list("pk", flat=True).first(),
        "comparison_id": world.comparison.pk,
        "pk": world.campaign.pk if campaign_route else world.export.pk,
        "path": world.post.image.name,
        "content_type_id": ContentType.objects.get_for_model(world.post).pk,
        "app_label": "generation",
        "url": "no-such-page/",
    }
    if route.startswith(("critics/", "api/critics/")) and parameter in ("pk", "critic_id"):
        return str(world.critic.pk)
    if parameter in ("object_id", "id"):
        return str(world.post.pk) if route.startswith("admin/r/") else _admin_object_id(route)
    if parameter not in values:
        raise AssertionError(f"no value to fill <{parameter}> of {route!r}: add one to _value")
    return str(values[parameter])


def fill(route: str, world: World) -> str:
    route = _REGEX_GROUP.sub(lambda m: _value(m["parameter"], route, world), route)
    route = CONVERTER.sub(lambda m: _value(m["parameter"], route, world), route)
    return "/" + route
