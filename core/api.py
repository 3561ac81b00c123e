"""Shared REST plumbing: a strict JSON parser, pagination and one error shape.

Every error response is JSON: {"detail": "<what went wrong>", "code": "<machine code>"},
plus "errors": {field: [messages]} for validation failures.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, parsers, serializers
from rest_framework.response import Response


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    # 1e400 is valid JSON but becomes float("inf"), which no jsonb column or JSON answer
    # can hold: refused here rather than failing as a 500 when it is saved.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


# PostgreSQL stores neither U+0000 nor a lone UTF-16 surrogate ("\ud800" without its pair)
# in text or jsonb; json.loads accepts both.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(text: str, where: str) -> exceptions.ParseError | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return exceptions.ParseError(f"JSON {where} must not contain NUL characters.")
    return exceptions.ParseError(f"JSON {where} must not contain unpaired surrogates (\\ud800-\\udfff).")


def check_json_value(value: Any, max_depth: int) -> None:
    """Reject structures deeper than max_depth and strings PostgreSQL cannot store.

    Iterative on purpose: a recursive walk is exactly what a deeply nested body attacks.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise exceptions.ParseError(f"JSON is nested deeper than {max_depth} levels.")
            for key, child in item.items():
                if error := _unstorable(key, "keys"):
                    raise error
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise exceptions.ParseError(f"JSON is nested deeper than {max_depth} levels.")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and (error := _unstorable(item, "strings")):
            raise error


def loads_strict(raw: bytes | str) -> Any:
    """json.loads that turns every kind of bad input into a ParseError."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise exceptions.ParseError(f"JSON is nested deeper than {settings.MAX_JSON_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise exceptions.ParseError(f"Malformed JSON: {exc}") from None
    check_json_value(value, settings.MAX_JSON_DEPTH)
    return value


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.MAX_REQUEST_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        if not raw.strip():
            raise exceptions.ParseError("The request body is empty; send a JSON object.")
        return loads_strict(raw)


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    """A well-formed request the object's current state does not allow (a finished run...)."""

    status_code = 409
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class StrictPageSizeMixin:
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request) -> int:
        # DRF quietly falls back to the default for `page_size=abc` or `0`; a client that
        # asked for something else deserves to hear it did not get it.
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:  # absent or empty, like an empty `page` or filter: the default
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise exceptions.ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        return min(int(raw), self.max_page_size)


class Pagination(StrictPageSizeMixin, pagination.PageNumberPagination):
    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page (default {self.page_size}); larger values than {self.max_page_size} "
                    f"give {self.max_page_size}."
                )
            else:
                parameter["description"] = "A page number, from 1; a page past the last one is a 404."
        return parameters


class CursorPagination(StrictPageSizeMixin, pagination.CursorPagination):
    """For high-volume, newest-first logs (executions): no COUNT(*) over a user's whole
    history on every request, and stable pages while new rows keep arriving."""

    ordering = ("-started_at", "-id")

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page (default {self.page_size}); larger values than {self.max_page_size} "
                    f"give {self.max_page_size}."
                )
            else:
                parameter["description"] = "The `next` or `previous` link's cursor; an invalid one is a 404."
        return parameters


def _first_message(errors: Any, path: str = "") -> str:
    """A one-line summary of a nested validation error, naming the field."""
    while isinstance(errors, (list, dict)) and errors:
        if isinstance(errors, dict):
            key, errors = next(iter(errors.items()))
            path = f"{path}.{key}" if path else str(key)
        else:
            errors = errors[0]
    message = str(errors) if errors else "Invalid input."
    if path and path != "non_field_errors":
        return f"{path}: {message}"
    return message


def exception_handler(exc: Exception, context: dict) -> Response | None:
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, which names this
    # module, so a module-level import is circular when core.api is imported first.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _first_message(errors), "code": "invalid", "errors": errors}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"detail": str(detail), "code": code}
    return response


# DRF fields and the JSON types they take. DRF itself coerces: 5 becomes the string "5",
# "5" the integer 5, "yes" True; a JSON API says what type it wants and means it.
JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...]], ...] = (
    (serializers.BooleanField, (bool,)),
    (serializers.CharField, (str,)),
    (serializers.IntegerField, (int,)),
    (serializers.FloatField, (int, float)),
)


def _input_error(field: serializers.Field, value: Any) -> str | None:
    """What is wrong with a value before DRF coerces or trims it, if anything."""
    for field_class, types in JSON_TYPES:
        if isinstance(field, field_class):
            # bool is an int to Python, not to JSON.
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                return field.error_messages["invalid"]
            break
    # DRF trims before it measures, so 500 characters and a run of spaces passed a 500
    # limit; the limit is on what the client sends, as the schema's maxLength says.
    max_length = getattr(field, "max_length", None)
    if isinstance(field, serializers.CharField) and max_length is not None and len(value) > max_length:
        return field.error_messages["max_length"].format(max_length=max_length)
    return None


class RejectUnknownFieldsMixin:
    """Serializer mixin: a field the serializer does not know is an error, not silence.

    Read-only fields (id, owner, status...) are known and simply ignored on input. A value
    of the wrong JSON type (a number for a string field...) is an error too, not coerced,
    and so is a string longer than its field's max_length, surrounding spaces included.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
            errors = {
                name: _input_error(self.fields[name], value)
                for name, value in data.items()
                if value is not None and not self.fields[name].read_only
            }
            wrong = {name: [message] for name, message in errors.items() if message}
            if wrong:
                raise exceptions.ValidationError(wrong)
        return super().to_internal_value(data)


class NoInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """The body of an action that takes no input (cancel, retry, a deletion request): none
    at all, or `{}`. Anything in it is refused, as everywhere else, rather than ignored."""


def check_no_input(request) -> None:
    NoInputSerializer(data=request.data).is_valid(raise_exception=True)


class OwnedQuerysetMixin:
    """Limit a view to the caller's own rows, so another user's object is a 404."""

    owner_field = "user"

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return queryset.none()
        return queryset.filter(**{self.owner_field: self.request.user})
