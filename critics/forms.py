from django import forms

from annotation.models import Campaign


class CriticForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("name"))
    question = forms.SlugField(max_length=50, initial="plausibility")
    threshold = forms.FloatField(
        initial=4, help_text="people would rate the item at least this (their mean)"
    )
    name = forms.SlugField(
        max_length=100, required=False, help_text="the same name again trains its next version"
    )
    encoder = forms.CharField(
        max_length=500, required=False, help_text="local model folder (optional; gpu queue)"
    )
    order_tasks = forms.BooleanField(
        required=False, label="Then order the campaign's unclaimed posts by its uncertainty"
    )
