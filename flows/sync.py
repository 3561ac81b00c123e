from __future__ import annotations

from django.db import transaction

from flows.catalog import all_specs
from flows.models import NodeType


@transaction.atomic
def sync_node_types() -> tuple[int, int, int]:
    existing = {row.type: row for row in NodeType.objects.select_for_update()}
    created = updated = 0
    specs = all_specs()
    for spec in specs:
        row = existing.get(spec.type)
        values = spec.as_row()
        if row is None:
            NodeType.objects.create(type=spec.type, **values)
            created += 1
        elif any(getattr(row, field) != value for field, value in values.items()):
            for field, value in values.items():
                setattr(row, field, value)
            row.save(update_fields=[*values, "updated_at"])
            updated += 1
    known = {spec.type for spec in specs}
    removed, _ = NodeType.objects.exclude(type__in=known).delete()
    return created, updated, removed


def sync_after_migrate(sender, **kwargs) -> None:
    sync_node_types()
