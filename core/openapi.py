"""What the OpenAPI schema says beyond the happy path, defined once for every operation.

- `AutoSchema` adds the error answers an operation can really give, all in the single
  error shape of core/api.py, derived from the view itself: 401 when it needs credentials,
  429 when it is throttled, 413/415 when it reads a JSON body, 404 for ids and pages...
  Errors only some views raise (409, 502, 503) are declared on the view with `error()`.
- `add_links` names the OpenAPI links between operations (create a flow, then read, change,
  run or delete it by the id in the answer), which clients and stateful fuzzing follow.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator
from drf_spectacular import openapi
from drf_spectacular.plumbing import get_lib_doc_excludes as spectacular_lib_doc_excludes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers
from rest_framework.authentication import SessionAuthentication


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in a sentence.")
    code = serializers.CharField(
        help_text="A stable machine-readable code: invalid, parse_error, not_authenticated, not_found, throttled..."
    )
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text='Validation failures only: the messages per field, e.g. {"name": ["This field is required."]}.',
    )

    class Meta:
        ref_name = "Error"


def error(description: str) -> OpenApiResponse:
    """An error answer in the shared shape, for `extend_schema(responses={409: error("...")})`."""
    return OpenApiResponse(ErrorSerializer, description=description)


def _header(description: str, schema_type: str = "string", *, required: bool = True) -> dict[str, Any]:
    return {"schema": {"type": schema_type}, "description": description, "required": required}


BODY_METHODS = {"POST", "PUT", "PATCH"}
NOT_BLANK = r"[^\s\x1c-\x1f]"


class AutoSchema(openapi.AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            # Whitespace is trimmed before the blank check, so "   " is as blank as "". Python
            # also strips \x1c-\x1f, which are not whitespace to an ECMA regex.
            schema["pattern"] = NOT_BLANK
        return schema

    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters = super()._get_parameters()
        for parameter in parameters:
            # `?status=` is no filter, `?page_size=` the default page size, `?k=` the default
            # k: DRF, django-filter and the paginator all read an empty optional value as absent.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        """django-filter parameters, with the bounds and integer type their form fields enforce."""
        parameters = super()._get_filter_parameters()
        filters = {}
        for backend in self.get_filter_backends():
            if hasattr(backend, "get_filterset_class"):
                filterset = backend().get_filterset_class(self.view, self.view.get_queryset())
                filters.update(filterset.base_filters if filterset else {})
        for parameter in parameters:
            filter_ = filters.get(parameter["name"])
            if filter_ is None:
                continue
            if issubclass(filter_.field_class, forms.IntegerField):
                parameter["schema"]["type"] = "integer"
            for option, keyword in (("min_value", "minimum"), ("max_value", "maximum"), ("max_length", "maxLength")):
                if filter_.extra.get(option) is not None:
                    parameter["schema"][keyword] = filter_.extra[option]
        return parameters

    def _map_serializer(self, serializer, direction, bypass_extensions=False) -> dict[str, Any]:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        from core.api import RejectUnknownFieldsMixin

        if direction == "request" and isinstance(serializer, RejectUnknownFieldsMixin):
            # Unknown fields are a 400. (Read-only ones, like `id`, are known and ignored.)
            schema["additionalProperties"] = False
        return schema

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status, (description, headers) in self._error_responses().items():
            if status in responses:  # the view declared this status itself
                continue
            response = self._get_response_for_code(ErrorSerializer, status, direction=direction)
            response["description"] = description
            if headers:
                response["headers"] = headers
            responses[status] = response
        return dict(sorted(responses.items()))

    def _error_responses(self) -> dict[str, tuple[str, dict[str, Any]]]:
        view = self.view
        reads_body = self.method in BODY_METHODS and self._get_request_body() is not None
        needs_auth = not any(isinstance(p, permissions.AllowAny) for p in view.get_permissions())
        session_auth = any(isinstance(a, SessionAuthentication) for a in view.get_authenticators())
        has_id = "{" in self.path
        paginated = self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

        errors: dict[str, tuple[str, dict[str, Any]]] = {}
        if reads_body:
            errors["400"] = (
                "The request is invalid: malformed or too deeply nested JSON, NaN or NUL characters, an unknown "
                "field, or a field that fails validation (`errors` names them).",
                {},
            )
        else:
            errors["400"] = ("A query parameter is invalid, or the URL contains NUL characters.", {})
        if needs_auth:
            errors["401"] = (
                "No credentials, or an unknown, revoked or disabled API key.",
                {"WWW-Authenticate": _header("The scheme to use: `Token`.")},
            )
            if session_auth and self.method not in permissions.SAFE_METHODS:
                errors["403"] = ("CSRF check failed: a session-cookie request without its CSRF token.", {})
        if has_id:
            errors["404"] = ("No such object among the caller's own (another user's object is a 404 too).", {})
        elif paginated:
            errors["404"] = ("The page does not exist.", {})
        if self.method not in permissions.SAFE_METHODS:
            errors["413"] = ("The request body is larger than MAX_REQUEST_BODY_BYTES (1 MiB by default).", {})
        if reads_body:
            errors["415"] = ("The body is not `application/json`.", {})
        if view.get_throttles():
            errors["429"] = (
                "Too many requests from this client (address or user); try again after `Retry-After` seconds.",
                {"Retry-After": _header("Seconds to wait before trying again.", "integer")},
            )
        return errors


def get_lib_doc_excludes() -> list[type]:
    """Classes whose docstrings never describe an operation or a component.

    drf-spectacular takes a view's or serializer's description from the first docstring up
    its MRO; without this, our mixins' docstrings described every view and serializer that
    uses them.
    """
    from core.api import OwnedQuerysetMixin, RejectUnknownFieldsMixin

    return [*spectacular_lib_doc_excludes(), OwnedQuerysetMixin, RejectUnknownFieldsMixin]


def _by_id(*operation_ids: str, id_from: str = "$response.body#/id") -> dict[str, dict[str, Any]]:
    return {op: {"operationId": op, "parameters": {"id": id_from}} for op in operation_ids}


# operationId -> status -> {link name: link}. A link feeds a value of one answer into the
# next request: the id of the created object into the operations on that object.
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "flows_create": {
        "201": _by_id("flows_retrieve", "flows_update", "flows_partial_update", "flows_destroy", "flows_run_create")
    },
    "flows_run_create": {
        "202": {
            **_by_id("executions_retrieve", "executions_cancel_create"),
            "executions_list": {"operationId": "executions_list", "parameters": {"flow": "$response.body#/flow"}},
        }
    },
    "knowledge_documents_create": {
        "201": _by_id(
            "knowledge_documents_retrieve",
            "knowledge_documents_update",
            "knowledge_documents_partial_update",
            "knowledge_documents_destroy",
            "knowledge_documents_retry_create",
        )
    },
    "tokens_create": {status: _by_id("tokens_retrieve", "tokens_destroy") for status in ("200", "201")},
}


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: attach LINKS to the responses they start from."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for status, links in LINKS.get(operation.get("operationId"), {}).items():
                response = operation["responses"].get(status)
                if response is not None:
                    response["links"] = {_link_name(name): link for name, link in links.items()}
    return result


def _link_name(operation_id: str) -> str:
    return "".join(part.capitalize() for part in operation_id.split("_"))
