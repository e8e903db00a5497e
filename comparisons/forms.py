"""The admins' form for a new comparison: the runs of a dataset's split to compare, and the
campaign that rates their answers (its name, questions, k, annotators, instructions, lease)."""

from django import forms
from django.utils import timezone

from annotation.campaign_choices import annotator_choices, known_questions
from annotation.forms import MemberField
from annotation.scales import DEFAULT_QUESTIONS, SCALES
from annotation.services import QuestionSpec, question_specs
from annotation.validators import validate_lease_minutes, validate_overlap
from comparisons.selectors import comparable_runs
from comparisons.services import DEFAULT_SEED
from config.converters import MAX_ID
from generation.models import Dataset
from students.models import EvaluationRun


class RunField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, run: EvaluationRun) -> str:
        when = timezone.localtime(run.created_at).strftime("%d %b %Y %H:%M")
        return f"#{run.pk} {run.endpoint_name} · {run.pipeline} · {when}"


class ComparisonForm(forms.Form):
    runs = RunField(
        queryset=EvaluationRun.objects.none(),
        error_messages={"required": "Tick at least two runs to compare."},
        help_text="Done runs of this split. Two runs of one endpoint make a sanity check.",
    )
    name = forms.CharField(
        max_length=200,
        label="Campaign name",
        help_text="Annotators read it: it may not name an endpoint.",
    )
    questions = forms.MultipleChoiceField(
        choices=(),
        initial=list(DEFAULT_QUESTIONS),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one question."},
        help_text="What annotators answer about each answer.",
    )
    scale = forms.ChoiceField(choices=[(s.key, s.label) for s in SCALES.values()], initial="1-5")
    overlap = forms.IntegerField(
        label="Annotators per post (k)", validators=[validate_overlap], initial=3
    )
    members = MemberField(
        queryset=annotator_choices(), required=False, help_text="Each post needs k of them."
    )
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="Shown to annotators above every post; Markdown. It may not name an endpoint.",
    )
    lease_minutes = forms.IntegerField(
        label="Lease (minutes)", validators=[validate_lease_minutes], initial=15
    )
    seed = forms.IntegerField(
        min_value=0,
        max_value=MAX_ID,
        initial=DEFAULT_SEED,
        help_text="Orders the items (so no run's come first) and draws the report's bootstrap.",
    )

    def __init__(self, data=None, *, dataset: Dataset, split: str, **kw):
        super().__init__(data, **kw)
        self.fields["runs"].queryset = comparable_runs(dataset=dataset, split=split)
        self.fields["questions"].choices = [
            (name, f"{name}: {prompt}" if prompt else name)
            for name, prompt in known_questions().items()
        ]

    def question_specs(self) -> list[QuestionSpec]:
        return question_specs(
            names=self.cleaned_data["questions"], scale=self.cleaned_data["scale"]
        )
