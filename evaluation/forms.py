"""The export form of the campaign dashboard: a format and the filters (`ItemFilters`), and the
same filters without a format for the preview of how many items they keep."""

from django import forms

from annotation.models import Campaign, Question
from evaluation.exports.formats import FORMATS
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY
from evaluation.selectors.filters import AtLeast, ItemFilters
from evaluation.validators import validate_agree_count, validate_min_ratings

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
    """Format and filters: per question of the campaign a minimum mean, a minimum median and "at
    least M ratings at or above X"; gold items and low-accuracy annotators left out unless ticked.
    """

    format = forms.ChoiceField(choices=[(f, FORMAT_LABELS[f]) for f in FORMATS])
    kinds = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: every kind"
    )
    min_ratings = forms.IntegerField(
        validators=[validate_min_ratings], initial=1, label="Minimum ratings per question"
    )
    max_spread = forms.FloatField(
        min_value=0, required=False, label="Maximum spread (max − min) within an item"
    )
    include_gold = forms.BooleanField(
        required=False, label="Export gold items too", help_text="left out by default"
    )
    include_low_accuracy = forms.BooleanField(
        required=False,
        label="Count the ratings of annotators below the gold accuracy",
        help_text="left out by default",
    )
    min_gold_accuracy = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        initial=MIN_GOLD_ACCURACY,
        label="Minimum gold accuracy (0–1)",
        help_text=f"default {MIN_GOLD_ACCURACY}; only annotators who rated a gold item can fall "
        "below it",
    )
    # Export by critic (docs/critics.md): the unrated items a critic keeps join the rated ones.
    critic = forms.CharField(
        max_length=120, required=False, label="Critic", help_text="NAME or NAME:vN; empty: none"
    )
    min_precision = forms.FloatField(
        min_value=0, max_value=1, required=False, label="Minimum held-out precision (0–1)"
    )
    critic_threshold = forms.FloatField(
        min_value=0, max_value=1, required=False, label="or a critic score threshold (0–1)"
    )

    def __init__(self, *args, campaign: Campaign, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.questions = list(campaign.questions.order_by("position", "id"))
        self.fields["kinds"].choices = [(k, k) for k in kinds]
        for question in self.questions:
            name = question.name
            self.fields[f"min_{name}"] = forms.FloatField(
                required=False, label=f"Minimum mean {name}"
            )
            self.fields[f"min_median_{name}"] = forms.FloatField(
                required=False, label=f"Minimum median {name}"
            )
            self.fields[f"min_agree_value_{name}"] = forms.FloatField(
                required=False, label=f"{name}: ratings at or above"
            )
            self.fields[f"min_agree_count_{name}"] = forms.IntegerField(
                required=False,
                validators=[validate_agree_count],
                label="at least this many of them",
            )

    def question_fields(self) -> list:
        return [self[f"min_{q.name}"] for q in self.questions]

    def question_rows(self) -> list[dict]:
        """Per question: its mean, median and at-least fields, for the template."""
        return [
            {
                "name": q.name,
                "mean": self[f"min_{q.name}"],
                "median": self[f"min_median_{q.name}"],
                "agree_value": self[f"min_agree_value_{q.name}"],
                "agree_count": self[f"min_agree_count_{q.name}"],
            }
            for q in self.questions
        ]

    def clean(self) -> dict:
        data = super().clean()
        for question in self.questions:
            value = data.get(f"min_agree_value_{question.name}")
            count = data.get(f"min_agree_count_{question.name}")
            if (value is None) != (count is None):
                self.add_error(
                    f"min_agree_count_{question.name}" if count is None else
                    f"min_agree_value_{question.name}",
                    "Give both the value and how many ratings must reach it.",
                )  # fmt: skip
        return data

    def filters(self) -> ItemFilters:
        data = self.cleaned_data

        def given(prefix: str) -> list[Question]:
            return [q for q in self.questions if data.get(f"{prefix}{q.name}") is not None]

        return ItemFilters(
            min_mean={q.name: data[f"min_{q.name}"] for q in given("min_")},
            kinds=tuple(data["kinds"]),
            min_ratings=data["min_ratings"],
            max_spread=data["max_spread"],
            min_median={q.name: data[f"min_median_{q.name}"] for q in given("min_median_")},
            min_agree={
                q.name: AtLeast(
                    value=data[f"min_agree_value_{q.name}"],
                    count=data[f"min_agree_count_{q.name}"],
                )
                for q in given("min_agree_count_")
            },
            include_gold=data["include_gold"],
            include_low_accuracy=data["include_low_accuracy"],
            min_gold_accuracy=(
                MIN_GOLD_ACCURACY
                if data["min_gold_accuracy"] is None
                else data["min_gold_accuracy"]
            ),
        )


class ExportPreviewForm(ExportForm):
    """The export form's filters alone: the count of the items they keep needs no format."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["format"].required = False
