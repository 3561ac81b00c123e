"""Copy the node catalog (flows/catalog.py) into the node_types table.

Runs after every `migrate` too. Rows keep their `enabled` flag, which belongs to staff;
types that left the catalog are removed.
"""

from django.core.management.base import BaseCommand

from flows.sync import sync_node_types


class Command(BaseCommand):
    help = "Upsert the node_types rows from the code's node catalog."

    def handle(self, *args, **options):
        created, updated, removed = sync_node_types()
        if options["verbosity"]:
            self.stdout.write(f"node types: {created} created, {updated} updated, {removed} removed")
