"""Pages (admins only): the form for a new comparison of a dataset's runs (reached from the
leaderboard, listing that split's comparisons), and a comparison's report."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.permissions import admin_required
from comparisons.forms import ComparisonForm
from comparisons.models import Comparison
from comparisons.plots import intervals_chart
from comparisons.selectors import comparison_report, dataset_comparisons
from comparisons.services import comparison_create
from config.errors import ApplicationError
from generation.models import Dataset


@admin_required
@require_http_methods(["GET", "POST"])
def comparison_create_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    split = (request.POST if request.method == "POST" else request.GET).get("split", "test")[:50]
    form = ComparisonForm(
        request.POST if request.method == "POST" else None, dataset=dataset, split=split
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            comparison = comparison_create(
                runs=list(data["runs"]),
                name=data["name"],
                questions=form.question_specs(),
                overlap=data["overlap"],
                lease_minutes=data["lease_minutes"],
                instructions=data["instructions"],
                members=data["members"],
                seed=data["seed"],
                created_by=request.user,
            )
        except ApplicationError as error:
            error.show_on(form)
        else:
            messages.success(
                request,
                f"Campaign {comparison.campaign.name} created: "
                f"{comparison.posts_compared} posts to rate blind.",
            )
            return redirect("comparisons:comparison-detail", comparison_id=comparison.pk)
    context = {
        "dataset": dataset,
        "split": split,
        "form": form,
        "comparisons": dataset_comparisons(dataset=dataset, split=split).order_by("-id"),
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "comparisons/comparison_form.html", context, status=status)


@admin_required
@require_GET
def comparison_detail(request: HttpRequest, comparison_id: int) -> HttpResponse:
    comparison = get_object_or_404(
        Comparison.objects.select_related("campaign", "dataset"), pk=comparison_id
    )
    report = comparison_report(comparison=comparison)
    for question in report["questions"]:
        question["chart"] = intervals_chart(question)
    context = {"comparison": comparison, "report": report}
    return render(request, "comparisons/comparison_detail.html", context)
