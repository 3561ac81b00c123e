import django_filters
from django import forms

from executions.models import FlowExecution


class IdFilter(django_filters.NumberFilter):
    """A whole number: NumberFilter's default decimal field took `flow=1.5` as flow 1."""

    field_class = forms.IntegerField


class ExecutionFilter(django_filters.FilterSet):
    # A plain number, not a model choice: an unknown or foreign flow id filters to nothing
    # instead of confirming that the flow exists.
    flow = IdFilter(field_name="flow_id", min_value=1, max_value=2**63 - 1)
    status = django_filters.ChoiceFilter(choices=FlowExecution.Status.choices)

    class Meta:
        model = FlowExecution
        fields = ["flow", "status"]
