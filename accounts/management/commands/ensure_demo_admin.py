"""Create a staff account for a developer machine and print how to log in.

The password is random; it is kept in .demo_admin (mode 600, git-ignored) so later runs can
print it again. Refuses to run when DEBUG is off: production accounts are made with
`createsuperuser`.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User

EMAIL = "admin@inflow.localhost"


class Command(BaseCommand):
    help = "Create (once) and print the demo staff account for local development."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("ensure_demo_admin is for development (DEBUG=true) only.")
        secret_file = Path(settings.BASE_DIR) / ".demo_admin"
        if not User.objects.email_taken(EMAIL):
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(EMAIL, password, name="Demo Admin")
            secret_file.write_text(password + "\n")
            secret_file.chmod(0o600)
        password = secret_file.read_text().strip() if secret_file.exists() else "(set before; see .demo_admin)"
        port = os.environ.get("PORT", "8000")
        self.stdout.write(f"Demo admin: {EMAIL} / {password}  ->  http://127.0.0.1:{port}/admin/")
