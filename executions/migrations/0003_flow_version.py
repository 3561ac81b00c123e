import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

# flow_executions is the largest table: nothing here holds a lock that stops writes for
# longer than a moment. The foreign key is added NOT VALID and validated apart (that scan
# lets runs go on), and the index is built concurrently (hence atomic = False).
ADD_COLUMN_SQL = [
    "ALTER TABLE flow_executions ADD COLUMN flow_version_id bigint NULL",
    "ALTER TABLE flow_executions ADD CONSTRAINT flow_executions_flow_version_id_fk FOREIGN KEY (flow_version_id) "
    "REFERENCES flow_versions (id) DEFERRABLE INITIALLY DEFERRED NOT VALID",
    "ALTER TABLE flow_executions VALIDATE CONSTRAINT flow_executions_flow_version_id_fk",
]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("executions", "0002_started_at_brin"),
        ("flows", "0002_flowversion"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    ADD_COLUMN_SQL, reverse_sql="ALTER TABLE flow_executions DROP COLUMN flow_version_id"
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="flowexecution",
                    name="flow_version",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="executions",
                        to="flows.flowversion",
                    ),
                ),
            ],
        ),
        AddIndexConcurrently(
            model_name="flowexecution",
            index=models.Index(fields=["flow_version"], name="flow_executions_version"),
        ),
    ]
