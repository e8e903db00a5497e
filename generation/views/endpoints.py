"""Endpoint pages (admins only): list, add, edit, delete. The API key is never shown.

The form's "Test connection" button checks the values as typed without saving them; "Save" tests
them too and refuses an endpoint that does not answer, unless "Save without a working connection"
is ticked.
"""

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
from generation.services.endpoints import (
    endpoint_connection_test,
    endpoint_create,
    endpoint_delete,
    endpoint_update,
)

SAVE_ANYWAY_HINT = "Tick “Save without a working connection” to save it anyway."


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

    save_without_connection = forms.BooleanField(
        required=False,
        label="Save without a working connection",
        help_text="For a server that is not up yet: saving then skips the connection test",
    )

    def apply_errors(self, error: ValidationError) -> None:
        for field, field_messages in getattr(
            error, "message_dict", {"__all__": error.messages}
        ).items():
            for message in field_messages:
                if field == "connection":
                    message = f"The connection test failed: {message} {SAVE_ANYWAY_HINT}"
                self.add_error(field if field in self.fields else None, message)

    def endpoint_data(self) -> dict:
        data = {**self.cleaned_data, "parameters": self.cleaned_data["parameters"] or {}}
        data.pop("save_without_connection")
        return data


def _saved_message(endpoint: Endpoint, verb: str) -> str:
    if endpoint.connection_check is None:
        return f"Endpoint {endpoint.name} {verb} without testing its connection."
    return f"Endpoint {endpoint.name} {verb}. {endpoint.connection_check.message}"


def _form_page(
    request: HttpRequest, form: EndpointForm, endpoint: Endpoint | None = None
) -> HttpResponse:
    """The form again: with the connection test's answer when asked for, else with its errors."""
    context = {"form": form, "endpoint": endpoint}
    status = 400 if request.method == "POST" else 200
    if request.method == "POST" and request.POST.get("action") == "test" and form.is_valid():
        try:
            context["check"] = endpoint_connection_test(endpoint=endpoint, **form.endpoint_data())
            status = 200
        except ValidationError as error:
            form.apply_errors(error)
    return render(request, "generation/endpoint_form.html", context, status=status)


@admin_required
def endpoint_list_page(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/endpoint_list.html", {"endpoints": endpoint_list()})


def _saving(request: HttpRequest, form: EndpointForm) -> bool:
    return request.method == "POST" and request.POST.get("action") != "test" and form.is_valid()


@admin_required
def endpoint_new(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if _saving(request, form):
        test = not form.cleaned_data["save_without_connection"]
        try:
            endpoint = endpoint_create(**form.endpoint_data(), test_connection=test)
        except ValidationError as error:
            form.apply_errors(error)
        else:
            messages.success(request, _saved_message(endpoint, "added"))
            return redirect("generation:endpoint-list")
    return _form_page(request, form)


@admin_required
def endpoint_edit(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    initial = {
        name: getattr(endpoint, name)
        for name in EndpointForm.base_fields
        if name != "save_without_connection"
    }
    form = EndpointForm(request.POST or None, initial=initial)
    if _saving(request, form):
        test = not form.cleaned_data["save_without_connection"]
        try:
            endpoint_update(endpoint=endpoint, **form.endpoint_data(), test_connection=test)
        except ValidationError as error:
            endpoint.refresh_from_db()  # the page names the endpoint as it is stored
            form.apply_errors(error)
        else:
            messages.success(request, _saved_message(endpoint, "saved"))
            return redirect("generation:endpoint-list")
    return _form_page(request, form, endpoint)


@admin_required
@require_POST
def endpoint_test(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Test a stored endpoint from the list; the answer comes back as a message."""
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    try:
        check = endpoint_connection_test(endpoint=endpoint)
    except ValidationError as error:  # stored before today's rules
        messages.error(request, f"{endpoint.name}: {' '.join(error.messages)}")
    else:
        (messages.success if check.ok else messages.error)(
            request, f"{endpoint.name}: {check.message}"
        )
    return redirect("generation:endpoint-list")


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
