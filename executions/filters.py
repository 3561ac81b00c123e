import django_filters

from executions.models import FlowExecution


class ExecutionFilter(django_filters.FilterSet):
    # A plain number, not a model choice: an unknown or foreign flow id filters to nothing
    # instead of confirming that the flow exists.
    flow = django_filters.NumberFilter(field_name="flow_id", min_value=1, max_value=2**63 - 1)
    status = django_filters.ChoiceFilter(choices=FlowExecution.Status.choices)

    class Meta:
        model = FlowExecution
        fields = ["flow", "status"]
