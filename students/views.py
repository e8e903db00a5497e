"""Pages (admins only): the leaderboard of a dataset's evaluation runs, and a run's manifest."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.permissions import admin_required
from generation.models import Dataset
from students.models import EvaluationRun, StudentTraining
from students.selectors import LEADERBOARD_METRICS, leaderboard


@admin_required
@require_GET
def dataset_leaderboard(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    metric = request.GET.get("metric", "rouge_l")
    if metric not in LEADERBOARD_METRICS:
        metric = "rouge_l"
    split = request.GET.get("split", "test")[:50]
    board = leaderboard(dataset=dataset, split=split, metric=metric)
    return render(
        request,
        "students/leaderboard.html",
        {
            "dataset": dataset,
            "split": split,
            "metric": metric,
            "metric_label": LEADERBOARD_METRICS[metric],
            "metrics": LEADERBOARD_METRICS,
            **board,
        },
    )


@admin_required
@require_GET
def run_manifest(request: HttpRequest, evaluation_run_id: int) -> HttpResponse:
    """The run's manifest, scores and answers as JSON (a download, linked from each row)."""
    run = get_object_or_404(EvaluationRun, pk=evaluation_run_id)
    body = {
        "id": run.pk,
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "tokens": {"prompt": run.prompt_tokens, "completion": run.completion_tokens},
        "cost": run.cost,
        "error": run.error,
        "manifest": run.manifest,
        "scores": run.scores,
        "answers": run.answers,
    }
    return JsonResponse(body, json_dumps_params={"indent": 2, "ensure_ascii": False})


def _loss_points(losses: list, width: int = 480, height: int = 160) -> str:
    """The loss curve as SVG polyline points: steps across, losses from the top (highest) down."""
    if not losses:
        return ""
    steps = [step for step, _ in losses]
    values = [loss for _, loss in losses]
    low, high = min(values), max(values)
    first, last = min(steps), max(steps)
    points = []
    for step, loss in losses:
        x = 0 if last == first else (step - first) / (last - first) * width
        y = height / 2 if high == low else (high - loss) / (high - low) * height
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)


@admin_required
@require_GET
def student_training_detail(request: HttpRequest, training_id: int) -> HttpResponse:
    training = get_object_or_404(
        StudentTraining.objects.select_related("export", "endpoint"), pk=training_id
    )
    context = {
        "training": training,
        "points": _loss_points(training.losses),
        "last_loss": training.losses[-1][1] if training.losses else None,
        "live": training.status in (StudentTraining.Status.QUEUED, StudentTraining.Status.RUNNING),
    }
    template = "students/_training_status.html" if request.htmx else "students/training.html"
    return render(request, template, context)
