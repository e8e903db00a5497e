"""Evaluation runs written directly, with the answers a test needs: the comparison is under test,
not `evaluate`."""

from students.models import EvaluationRun


def make_run(dataset, endpoint_name: str, answers: list[dict], **fields) -> EvaluationRun:
    """A done run of the test split whose references came from campaign `references`."""
    fields = {
        "split": "test",
        "pipeline": "direct",
        "status": "done",
        "manifest": {"references": {"campaign": "references"}},
        **fields,
    }
    return EvaluationRun.objects.create(
        dataset=dataset, endpoint_name=endpoint_name, answers=answers, **fields
    )


def answer(post: str, kind: str, text: str, error: str = "") -> dict:
    """One answer as `evaluate` stores it."""
    return {"post": post, "kind": kind, "text": text, "error": error}
