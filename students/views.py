"""Pages (admins only): the leaderboard of a dataset's evaluation runs, a run (live while it
runs) and its manifest, the new-evaluation form; student trainings (the list with the form that
launches one, and a training's page, live while it trains); a failed run or training started
again."""

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import admin_required
from config.errors import ApplicationError
from evaluation.relations import KIND_ORDER
from generation.models import Dataset
from students.evaluating import evaluation_run_restart
from students.forms import EvaluationRunForm, StudentTrainingForm
from students.leases import worker_lost_at
from students.models import EvaluationRun, StudentTraining
from students.scoring import OVERALL
from students.selectors import LEADERBOARD_METRICS, leaderboard
from students.training import student_training_restart

LIVE = (EvaluationRun.Status.QUEUED, EvaluationRun.Status.RUNNING)


@admin_required
@require_GET
def dataset_leaderboard(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    metric = request.GET.get("metric", "rouge_l")
    if metric not in LEADERBOARD_METRICS:
        metric = "rouge_l"
    split = request.GET.get("split", "test")[:50]
    board = leaderboard(dataset=dataset, split=split, metric=metric)
    unfinished = EvaluationRun.objects.filter(dataset=dataset, split=split).exclude(
        status=EvaluationRun.Status.DONE
    )
    return render(
        request,
        "students/leaderboard.html",
        {
            "dataset": dataset,
            "split": split,
            "metric": metric,
            "metric_label": LEADERBOARD_METRICS[metric],
            "metrics": LEADERBOARD_METRICS,
            "unfinished": unfinished.defer("answers", "manifest")[:20],
            "form": EvaluationRunForm(dataset=dataset, initial={"split": split}),
            **board,
        },
    )


@admin_required
@require_http_methods(["GET", "POST"])
def evaluation_run_new(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The new-evaluation form (also on the leaderboard): queues the run and shows its page."""
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    initial = {key: request.GET[key] for key in ("split", "endpoint") if key in request.GET}
    form = EvaluationRunForm(request.POST or None, dataset=dataset, initial=initial)
    if request.method == "POST" and form.is_valid():
        run = form.launch(created_by=request.user)
        if run is not None:
            return redirect("students:run-detail", evaluation_run_id=run.pk)
    status = 400 if request.method == "POST" else 200
    context = {"dataset": dataset, "form": form}
    return render(request, "students/evaluation_run_form.html", context, status=status)


def _score_rows(run: EvaluationRun) -> list[tuple[str, dict]]:
    """(kind, figures) in MIKO's order, then overall."""
    kinds = run.scores.get("kinds", {})
    order = sorted(
        kinds, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k)
    )
    rows = [(kind, kinds[kind]) for kind in order]
    if OVERALL in run.scores:
        rows.append((OVERALL, run.scores[OVERALL]))
    return rows


@admin_required
@require_GET
def evaluation_run_detail(request: HttpRequest, evaluation_run_id: int) -> HttpResponse:
    """A run: its progress, polled every 2 s while it is queued or running; its scores."""
    run = get_object_or_404(
        EvaluationRun.objects.select_related("dataset", "campaign", "endpoint").defer("answers"),
        pk=evaluation_run_id,
    )
    context = {
        "run": run,
        "rows": _score_rows(run),
        "live": run.status in LIVE,
        "worker_lost_at": worker_lost_at(run),
    }
    template = "students/_run_status.html" if request.htmx else "students/evaluation_run.html"
    return render(request, template, context)


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
        "worker_lost_at": worker_lost_at(training),
    }
    template = "students/_training_status.html" if request.htmx else "students/training.html"
    return render(request, template, context)


@admin_required
@require_http_methods(["GET", "POST"])
def student_training_list(request: HttpRequest) -> HttpResponse:
    """The trainings, and the form that trains a student from a done sft-chat export
    (`?export=ID` picks one, as the export's page links here)."""
    initial = {"export": request.GET["export"]} if "export" in request.GET else {}
    form = StudentTrainingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        training = form.launch(created_by=request.user)
        if training is not None:
            return redirect("students:training-detail", training_id=training.pk)
    trainings = StudentTraining.objects.select_related("endpoint").order_by("-id")[:100]
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "trainings": trainings}
    return render(request, "students/trainings.html", context, status=status)


def _start_again(request: HttpRequest, start: Callable[[], object], started: str) -> None:
    """Start a failed job again; the page says so, or why not."""
    try:
        start()
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, started)


@admin_required
@require_POST
def evaluation_run_restart_view(request: HttpRequest, evaluation_run_id: int) -> HttpResponse:
    run = get_object_or_404(EvaluationRun.objects.select_related("endpoint"), pk=evaluation_run_id)
    _start_again(
        request, lambda: evaluation_run_restart(run=run), f"Evaluation run {run.pk} queued again."
    )
    return redirect("students:run-detail", evaluation_run_id=run.pk)


@admin_required
@require_POST
def student_training_restart_view(request: HttpRequest, training_id: int) -> HttpResponse:
    training = get_object_or_404(StudentTraining, pk=training_id)
    _start_again(
        request,
        lambda: student_training_restart(training=training),
        f"Student training {training.pk} queued again on the gpu queue.",
    )
    return redirect("students:training-detail", training_id=training.pk)
