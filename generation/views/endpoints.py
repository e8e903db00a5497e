"""Endpoint pages (admins only): list, add, edit, delete. The API key is never shown."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import admin_required
from config.errors import ApplicationError
from generation.limits import form_field
from generation.models import Endpoint
from generation.selectors.batches import endpoint_list
from generation.services.endpoints import endpoint_create, endpoint_delete, endpoint_update


class _JSONField(forms.JSONField):
    """JSON nested too deeply for Python to read is invalid input, not a server error."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": "..."}
            ) from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class EndpointForm(forms.Form):
    name = forms.CharField(max_length=100)
    backend = forms.ChoiceField(choices=Endpoint.Backend.choices)
    base_url = forms.CharField(
        max_length=500, required=False, help_text="For openai: e.g. https://api.openai.com/v1"
    )
    model_path = forms.CharField(
        max_length=500, required=False, help_text="For transformers: a hub id or a local folder"
    )
    model = forms.CharField(max_length=200)
    api_key_env = forms.CharField(
        max_length=100,
        required=False,
        label="API key variable",
        help_text="The name of the environment variable holding the key (never the key itself)",
    )
    concurrency = form_field("concurrency", initial=32)
    requests_per_minute = form_field("requests_per_minute", required=False)
    parameters = _JSONField(
        required=False,
        initial=dict,
        help_text='Sampling defaults and backend options, e.g. {"temperature": 0.7, "timeout": 60}',
    )

    def apply_errors(self, error: ValidationError) -> None:
        for field, field_messages in getattr(
            error, "message_dict", {"__all__": error.messages}
        ).items():
            for message in field_messages:
                self.add_error(field if field in self.fields else None, message)


@admin_required
def endpoint_list_page(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/endpoint_list.html", {"endpoints": endpoint_list()})


@admin_required
def endpoint_new(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            data = {**form.cleaned_data, "parameters": form.cleaned_data["parameters"] or {}}
            endpoint = endpoint_create(**data)
        except ValidationError as error:
            form.apply_errors(error)
        else:
            messages.success(request, f"Endpoint {endpoint.name} added.")
            return redirect("generation:endpoint-list")
    status = 400 if request.method == "POST" else 200
    return render(request, "generation/endpoint_form.html", {"form": form}, status=status)


@admin_required
def endpoint_edit(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    initial = {name: getattr(endpoint, name) for name in EndpointForm.base_fields}
    form = EndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            data = {**form.cleaned_data, "parameters": form.cleaned_data["parameters"] or {}}
            endpoint_update(endpoint=endpoint, **data)
        except ValidationError as error:
            form.apply_errors(error)
        else:
            messages.success(request, f"Endpoint {endpoint.name} saved.")
            return redirect("generation:endpoint-list")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "endpoint": endpoint}
    return render(request, "generation/endpoint_form.html", context, status=status)


@admin_required
@require_POST
def endpoint_remove(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    try:
        endpoint_delete(endpoint=endpoint)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Endpoint {endpoint.name} deleted.")
    return redirect("generation:endpoint-list")
