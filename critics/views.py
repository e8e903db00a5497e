"""Critic pages (admins only): the list with the training form, and a critic's page with its
held-out metrics beside the majority baseline and its other versions (before and after each round
of ratings), its live scoring progress and its actions."""

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required
from config.errors import ApplicationError
from critics.forms import CriticForm
from critics.models import Critic
from critics.selectors import critic_versions
from critics.services import critic_create, critic_enqueue, critic_order_tasks, critic_schedule

METRIC_ROWS = [
    ("ROC-AUC", "roc_auc"),
    ("Average precision", "average_precision"),
    ("Brier score (lower is better)", "brier"),
    ("Accuracy at 0.5", "accuracy"),
]


@admin_required
def critic_list(request: HttpRequest) -> HttpResponse:
    form = CriticForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                critic = critic_create(
                    campaign=data["campaign"],
                    question=data["question"],
                    threshold=data["threshold"],
                    name=data["name"],
                    encoder=data["encoder"],
                    order_tasks=data["order_tasks"],
                    created_by=request.user,
                )
                critic_enqueue(critic=critic)
        except ApplicationError as error:
            error.show_on(form)
        else:
            return redirect("critics:critic-detail", critic.pk)
    critics = Critic.objects.select_related("campaign", "question").order_by("-id")[:100]
    status = 400 if form.errors else 200
    return render(request, "critics/list.html", {"form": form, "critics": critics}, status=status)


def _detail_context(critic: Critic) -> dict:
    versions = list(critic_versions(critic=critic))
    trained = [v for v in versions if v.metrics]
    rows = []
    for label, key in METRIC_ROWS:
        rows.append(
            {
                "label": label,
                "values": [(v.metrics[key], v.metrics["baseline"][key]) for v in trained],
            }
        )
    for label, key in (("Rated items", "n_items"), ("Posts", "n_posts"),
                       ("Share reaching the threshold", "positive_rate")):  # fmt: skip
        rows.append({"label": label, "values": [(v.metrics[key], None) for v in trained]})
    curve = (critic.metrics or {}).get("pr_curve") or {}
    points = list(zip(curve.get("threshold", []), curve.get("precision", []),
                      curve.get("recall", []), strict=True))  # fmt: skip
    step = max(1, len(points) // 12)
    return {
        "critic": critic,
        "versions": trained,
        "metric_rows": rows,
        "curve": points[::step],
        "calibration": (critic.metrics or {}).get("calibration", []),
    }


@admin_required
def critic_detail(request: HttpRequest, pk: int) -> HttpResponse:
    critic = get_object_or_404(Critic.objects.select_related("campaign", "question"), pk=pk)
    if request.htmx:
        return render(request, "critics/_progress.html", {"critic": critic})
    return render(request, "critics/detail.html", _detail_context(critic))


@require_POST
@admin_required
def critic_score_view(request: HttpRequest, pk: int) -> HttpResponse:
    critic = get_object_or_404(Critic, pk=pk)
    try:
        critic_schedule(critic=critic)
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("critics:critic-detail", pk)


@require_POST
@admin_required
def critic_order_tasks_view(request: HttpRequest, pk: int) -> HttpResponse:
    critic = get_object_or_404(Critic.objects.select_related("campaign"), pk=pk)
    try:
        ordered = critic_order_tasks(critic=critic)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"{ordered} unclaimed posts of {critic.campaign.name} ordered by uncertainty: the next "
            "round rates the most uncertain first.",
        )
    return redirect("critics:critic-detail", pk)
