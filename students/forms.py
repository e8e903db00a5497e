"""Forms of the students pages: a new evaluation run (on a dataset) and a student training.

Each form checks what a form can; the services check the rest (`evaluation_run_create`,
`student_training_create`) and their refusals land on the field they name
(`ApplicationError.show_on`).
"""

from django import forms

from annotation.models import Campaign
from config.errors import ApplicationError
from evaluation.models import ExportJob
from generation.models import Dataset, Endpoint
from students.evaluating import accept_parse, evaluation_campaign, evaluation_run_create
from students.models import EvaluationRun, StudentTraining
from students.selectors import split_counts
from students.training import MAX_STEPS, student_training_create


class EvaluationRunForm(forms.Form):
    split = forms.ChoiceField(help_text="The posts answered and scored")
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.order_by("name"), to_field_name="name"
    )
    pipeline = forms.ChoiceField(choices=EvaluationRun.Pipeline.choices)
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.none(),
        to_field_name="name",
        required=False,
        empty_label="(the dataset's only campaign)",
        help_text="Whose ratings accept the references",
    )
    accept = forms.CharField(
        required=False,
        max_length=500,
        label="Accept",
        help_text="A reference's minimum mean rating: QUESTION=X, separated by commas "
        "(empty: plausibility=4)",
    )
    price_prompt = forms.FloatField(
        min_value=0, required=False, label="Price per million prompt tokens"
    )
    price_completion = forms.FloatField(
        min_value=0, required=False, label="Price per million completion tokens"
    )

    def __init__(self, *args, dataset: Dataset, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dataset = dataset
        self.fields["split"].choices = [(name, name) for name in split_counts(dataset=dataset)]
        self.fields["campaign"].queryset = Campaign.objects.filter(dataset=dataset).order_by("name")

    def clean(self) -> dict:
        data = super().clean()
        prices = (data.get("price_prompt"), data.get("price_completion"))
        if (prices[0] is None) != (prices[1] is None):
            raise forms.ValidationError("Give both prices, or neither.")
        return data

    def launch(self, *, created_by) -> EvaluationRun | None:
        """Queue the run; None, with the refusal on the form, when the service refuses it."""
        data = self.cleaned_data
        prices = (data["price_prompt"], data["price_completion"])
        try:
            campaign = data["campaign"] or evaluation_campaign(dataset=self.dataset, name=None)
            specs = [spec.strip() for spec in data["accept"].split(",") if spec.strip()]
            return evaluation_run_create(
                campaign=campaign,
                split=data["split"],
                endpoint=data["endpoint"],
                pipeline=data["pipeline"],
                accept=accept_parse(specs),
                price_per_million=None if prices[0] is None else prices,
                created_by=created_by,
            )
        except ApplicationError as error:
            error.show_on(self)
            return None


class ExportChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, export: ExportJob) -> str:
        return f"#{export.pk}: {export.campaign.name}, {export.items_written} records"


class StudentTrainingForm(forms.Form):
    export = ExportChoiceField(
        queryset=ExportJob.objects.filter(
            format="sft-chat", status=ExportJob.Status.DONE
        ).select_related("campaign").order_by("-id"),
        help_text="A done sft-chat export (its training split rule left the test posts out)",
    )  # fmt: skip
    base_model = forms.CharField(
        max_length=500, label="Base model folder", help_text="A model folder on the GPU worker"
    )
    method = forms.ChoiceField(choices=StudentTraining.Method.choices)
    max_steps = forms.IntegerField(min_value=1, max_value=MAX_STEPS, initial=100)

    def launch(self, *, created_by) -> StudentTraining | None:
        try:
            return student_training_create(created_by=created_by, **self.cleaned_data)
        except ApplicationError as error:
            error.show_on(self)
            return None
