"""The admins' campaign form, for a new campaign and for editing one.

Its choices follow the dataset chosen: that dataset's batches with their status (the unfinished
and failed ones shown but not pickable), the kinds those batches produced, the questions known
(custom ones under the API's name rule), annotators as members. Each setting is checked by the
validator in `annotation.validators` that the API and the services use.
"""

from django import forms
from django.utils.datastructures import MultiValueDict

from annotation.campaign_choices import (
    annotator_choices,
    batch_kinds,
    batch_label,
    dataset_batches,
    known_questions,
    rateable_batches,
)
from annotation.models import Campaign
from annotation.scales import DEFAULT_QUESTIONS, SCALES
from annotation.services import QuestionSpec
from annotation.validators import (
    RATEABLE_BATCH_STATUSES,
    validate_batch_rateable,
    validate_gold_rate,
    validate_lease_minutes,
    validate_overlap,
    validate_question_name,
)
from config.converters import parse_id
from generation.models import Batch, Dataset

# The fields that say what is rated and how: fixed once annotators have started.
SETUP_FIELDS = ("dataset", "batches", "kinds", "questions", "other_questions", "scale", "overlap")


class BatchCheckboxes(forms.CheckboxSelectMultiple):
    """Batch boxes: a batch that cannot be rated is listed with its status, but disabled."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        batch = getattr(value, "instance", None)
        if batch is not None and batch.status not in RATEABLE_BATCH_STATUSES:
            option["attrs"]["disabled"] = True
        return option


class BatchField(forms.ModelMultipleChoiceField):
    widget = BatchCheckboxes

    def label_from_instance(self, batch: Batch) -> str:
        return batch_label(batch)

    def clean(self, value):
        batches = super().clean(value)
        for batch in batches:
            validate_batch_rateable(batch)
        return batches


class MemberField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, user) -> str:
        # Only a campaign that has an admin among its members already lists one.
        return f"{user.username} (admin)" if user.is_staff else user.username


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"),
        empty_label="Choose a dataset",
        help_text="The posts to rate. Its batches are listed below once it is chosen.",
    )
    batches = BatchField(
        queryset=Batch.objects.none(),
        required=False,
        help_text="Only finished batches can be rated. None ticked: every finished batch.",
    )
    kinds = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The kinds of items the batches produced. None ticked: every kind.",
    )
    questions = forms.MultipleChoiceField(
        choices=(),
        initial=list(DEFAULT_QUESTIONS),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What annotators answer about each item.",
    )
    other_questions = forms.CharField(
        required=False,
        label="Other questions",
        help_text="Your own questions' names, separated by commas: letters, digits, _ or -, "
        "e.g. relevance, clarity.",
    )
    scale = forms.ChoiceField(
        choices=[(s.key, s.label) for s in SCALES.values()],
        initial="1-5",
        help_text="The scale every question is answered on.",
    )
    overlap = forms.IntegerField(
        label="Annotators per post (k)",
        validators=[validate_overlap],
        initial=3,
        help_text="How many different annotators rate each post.",
    )
    members = MemberField(
        queryset=annotator_choices(),
        required=False,
        help_text="The annotators who rate in this campaign; admins are not offered. "
        "Each post needs k of them.",
    )
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="Shown to annotators above every post; Markdown.",
    )
    lease_minutes = forms.IntegerField(
        label="Lease (minutes)",
        validators=[validate_lease_minutes],
        initial=15,
        help_text="How long an opened post stays with its annotator before it goes back.",
    )
    gold_rate = forms.FloatField(
        validators=[validate_gold_rate],
        initial=0,
        help_text="From 0 to 1: the chance that a claim offers a gold post first.",
    )
    is_active = forms.BooleanField(
        label="Open for rating", required=False, help_text="Annotators see it and get posts."
    )
    show_gold_accuracy = forms.BooleanField(
        label="Show annotators their gold accuracy", required=False
    )

    def __init__(self, data=None, *, campaign: Campaign | None = None, handed_out: int = 0, **kw):
        self.campaign = campaign
        self.fixed_note = ""
        if campaign is not None:
            kw["initial"] = _initial_of(campaign) | kw.get("initial", {})
        super().__init__(data, **kw)
        if campaign is None:
            del self.fields["is_active"], self.fields["show_gold_accuracy"]
        dataset = self._dataset()
        batches = dataset_batches(dataset=dataset)
        self.fields["batches"].queryset = batches
        # The kinds of the batches ticked (of this dataset: not those of one chosen before).
        ticked = [i for i in map(parse_id, self._values("batches")) if i is not None]
        chosen = list(batches.filter(pk__in=ticked).values_list("pk", flat=True))
        if not chosen and dataset is not None:
            chosen = list(rateable_batches(dataset=dataset).values_list("pk", flat=True))
        kinds = batch_kinds(batch_ids=chosen)
        kinds += [k for k in (campaign.kinds if campaign else []) if k not in kinds]
        self.fields["kinds"].choices = [(k, k) for k in kinds]
        questions = known_questions()
        if campaign is not None:
            for question in campaign.questions.all():
                questions.setdefault(question.name, question.prompt)
        self.fields["questions"].choices = [
            (name, f"{name}: {prompt}" if prompt else name) for name, prompt in questions.items()
        ]
        keep = campaign.members.values_list("pk", flat=True) if campaign else ()
        self.fields["members"].queryset = annotator_choices(keep=keep)
        if handed_out:
            for name in SETUP_FIELDS:
                self.fields[name].disabled = True
            self.fixed_note = (
                f"Annotators have started ({handed_out} post{'' if handed_out == 1 else 's'} "
                "handed out): what is rated, the questions, the scale and k are fixed. "
                "Make a new campaign to change them."
            )

    # The value of a field as posted (bound) or as initially given (unbound).
    def _values(self, name: str) -> list[str]:
        if self.is_bound and not self.fields.get(name, forms.Field()).disabled:
            data = self.data
            key = self.add_prefix(name)
            values = data.getlist(key) if isinstance(data, MultiValueDict) else data.get(key, [])
        else:
            values = self.initial.get(name, [])
        if not isinstance(values, list | tuple):
            values = [values]
        return [str(getattr(v, "pk", v)) for v in values if v not in (None, "")]

    def _dataset(self) -> Dataset | None:
        values = self._values("dataset")
        dataset_id = parse_id(values[0]) if values else None
        return Dataset.objects.filter(pk=dataset_id).first() if dataset_id is not None else None

    @property
    def chosen_dataset(self) -> Dataset | None:
        return self._dataset()

    def clean(self):
        data = super().clean()
        names = list(data.get("questions") or [])
        for name in _names(data.get("other_questions") or ""):
            try:
                validate_question_name(name)
            except forms.ValidationError as error:
                self.add_error("other_questions", f"{name!r}: {error.messages[0]}")
            if name not in names:
                names.append(name)
        if not names and not self.has_error("other_questions"):
            self.add_error("questions", "Choose at least one question, or name your own.")
        data["question_names"] = names
        return data

    def question_specs(self) -> list[QuestionSpec]:
        """The chosen questions on the chosen scale; a question the campaign has keeps its
        prompt, a default one gets its standard prompt, any other its name."""
        prompts = dict(DEFAULT_QUESTIONS)
        if self.campaign is not None:
            prompts |= {q.name: q.prompt for q in self.campaign.questions.all()}
        scale = self.cleaned_data["scale"]
        return [
            QuestionSpec(name, prompts.get(name) or name.capitalize(), scale)
            for name in self.cleaned_data["question_names"]
        ]


def _initial_of(campaign: Campaign) -> dict:
    questions = list(campaign.questions.all())
    return {
        "name": campaign.name,
        "dataset": campaign.dataset_id,
        "batches": list(campaign.batches.values_list("pk", flat=True)),
        "kinds": list(campaign.kinds),
        "questions": [q.name for q in questions],
        "scale": questions[0].scale if questions else "1-5",
        "overlap": campaign.overlap,
        "members": list(campaign.members.values_list("pk", flat=True)),
        "instructions": campaign.instructions,
        "lease_minutes": campaign.lease_minutes,
        "gold_rate": campaign.gold_rate,
        "is_active": campaign.is_active,
        "show_gold_accuracy": campaign.show_gold_accuracy,
    }


class MembersAddForm(forms.Form):
    """The campaign page's way to add annotators, for posts short of k."""

    members = MemberField(
        queryset=annotator_choices(),
        label="Add annotators",
        error_messages={"required": "Choose at least one annotator to add."},
        help_text="Annotators who are not members yet.",
    )

    def __init__(self, data=None, *, campaign: Campaign, **kw):
        super().__init__(data, **kw)
        self.fields["members"].queryset = annotator_choices().exclude(campaigns=campaign)
