from rest_framework import serializers

from executions.models import FlowExecution


class ExecutionSerializer(serializers.ModelSerializer):
    flow = serializers.IntegerField(source="flow_id", read_only=True)

    class Meta:
        model = FlowExecution
        fields = [
            "id",
            "flow",
            "status",
            "trigger_type",
            "trigger_data",
            "execution_log",
            "error",
            "cancel_requested",
            "started_at",
            "completed_at",
            "resume_at",
        ]
        read_only_fields = fields
