from django import forms

from annotation.models import Campaign
from evaluation.exports import FORMATS
from evaluation.selectors import ItemFilters

FORMAT_LABELS = {
    "jsonl": "jsonl: items with scores",
    "csv": "csv: items with scores",
    "ratings": "ratings: every raw rating (csv)",
    "parquet": "parquet: items with scores",
    "sft-chat": 'sft-chat: {"messages": [...]} for chat fine-tuning',
    "alpaca": "alpaca: instruction / input / output",
    "cotpd": "cotpd: text, caption and knowledge per post",
    "label-studio": "label-studio: tasks with annotations",
    "hf": "hf: Hugging Face datasets folder (zip) with a dataset card",
}


class ExportForm(forms.Form):
    """Format and filters; one minimum-mean field per question of the campaign."""

    format = forms.ChoiceField(choices=[(f, FORMAT_LABELS[f]) for f in FORMATS])
    kinds = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: every kind"
    )
    min_ratings = forms.IntegerField(min_value=0, initial=1, label="Minimum ratings per question")
    max_spread = forms.FloatField(
        min_value=0, required=False, label="Maximum spread (max − min) within an item"
    )

    def __init__(self, *args, campaign: Campaign, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.questions = list(campaign.questions.order_by("position", "id"))
        self.fields["kinds"].choices = [(k, k) for k in kinds]
        for question in self.questions:
            self.fields[f"min_{question.name}"] = forms.FloatField(
                required=False, label=f"Minimum mean {question.name}"
            )

    def question_fields(self) -> list:
        return [self[f"min_{q.name}"] for q in self.questions]

    def filters(self) -> ItemFilters:
        data = self.cleaned_data
        return ItemFilters(
            min_mean={
                q.name: data[f"min_{q.name}"]
                for q in self.questions
                if data.get(f"min_{q.name}") is not None
            },
            kinds=tuple(data["kinds"]),
            min_ratings=data["min_ratings"],
            max_spread=data["max_spread"],
        )
