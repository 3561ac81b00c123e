import django_filters

from flows.models import Flow


class FlowFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Flow.Status.choices)
    uses_node = django_filters.CharFilter(
        method="filter_uses_node", max_length=64, help_text="Flows with at least one node of this type."
    )

    class Meta:
        model = Flow
        fields = ["status", "uses_node"]

    def filter_uses_node(self, queryset, name, value):
        # `flow_data @> {"nodes": [{"type": value}]}`: served by the jsonb_path_ops GIN index.
        return queryset.filter(flow_data__contains={"nodes": [{"type": value}]})
