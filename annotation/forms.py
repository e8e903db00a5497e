"""The admins' campaign form; its settings are checked by `annotation.validators`."""

from django import forms
from django.contrib.auth import get_user_model

from annotation.scales import DEFAULT_QUESTIONS, SCALES
from annotation.validators import (
    validate_gold_rate,
    validate_lease_minutes,
    validate_overlap,
    validate_question_name,
)
from generation.models import Batch, Dataset


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    batches = forms.ModelMultipleChoiceField(
        queryset=Batch.objects.all(),
        required=False,
        help_text="None chosen: every batch of the dataset.",
    )
    kinds = forms.CharField(
        required=False, help_text="Comma-separated item kinds, e.g. xWant,xIntent. Empty: all."
    )
    questions = forms.CharField(
        initial=",".join(DEFAULT_QUESTIONS),
        help_text="Comma-separated question names; plausibility and typicality have prompts.",
    )
    scale = forms.ChoiceField(choices=[(s.key, s.label) for s in SCALES.values()], initial="1-5")
    overlap = forms.IntegerField(validators=[validate_overlap], initial=3)
    lease_minutes = forms.IntegerField(validators=[validate_lease_minutes], initial=15)
    gold_rate = forms.FloatField(validators=[validate_gold_rate], initial=0)
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
    )

    def clean_kinds(self) -> list[str]:
        return [k.strip() for k in self.cleaned_data["kinds"].split(",") if k.strip()]

    def clean_questions(self) -> list[str]:
        names = [q.strip() for q in self.cleaned_data["questions"].split(",") if q.strip()]
        if not names:
            raise forms.ValidationError("Name at least one question.")
        for name in names:
            validate_question_name(name)
        return names
