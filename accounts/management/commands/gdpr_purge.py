"""Permanently remove accounts whose owners asked for deletion, once the grace period is over.

Rules:
- A deletion request disables the account at once (see accounts.gdpr.request_deletion);
  the data stays for GDPR_GRACE_DAYS (default 30), then this command removes it: flows,
  executions, tokens, Meta data, knowledge documents, chunks and vector namespace, API
  keys, beat schedules, task results, admin history, sessions and cache keys, and finally
  the account itself.
- Each purge leaves a ledger entry without personal data, in the database and in
  GDPR_LEDGER_PATH, so `restore` can erase the account again from older backups.
- Safe to run from cron and to overlap: subjects are locked one at a time, and a finished
  purge is never repeated.

Cron (daily): 30 3 * * *  cd /app && python manage.py gdpr_purge
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts import gdpr
from executions.models import FlowExecution
from flows.models import Flow


class Command(BaseCommand):
    help = "Purge accounts past their deletion grace period; erase one contact; re-apply the ledger after a restore."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Show what would be removed; change nothing.")
        parser.add_argument("--grace-days", type=int, default=None, help="Override GDPR_GRACE_DAYS (0: purge now).")
        parser.add_argument("--user", type=int, help="Only this account (it must have asked for deletion).")
        parser.add_argument("--contact", help="Erase one end customer everywhere: instagram:<id> or messenger:<id>.")
        parser.add_argument(
            "--reapply-ledger", action="store_true", help="After a restore: erase ledger subjects again."
        )
        parser.add_argument("--batch-size", type=int, default=10_000)

    def handle(self, *args, **options):
        report = self.stdout.write if options["verbosity"] else (lambda message: None)
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["reapply_ledger"]:
            self.stdout.write(f"re-applied the deletion ledger: {gdpr.reapply_ledger(report=report)}")
            return
        if options["contact"]:
            self._erase_contact(options["contact"], options["dry_run"], report)
            return
        grace = settings.GDPR_GRACE_DAYS if options["grace_days"] is None else options["grace_days"]
        if grace < 0:
            raise CommandError("--grace-days cannot be negative.")
        due = list(gdpr.users_due(grace, options["user"]))
        self.stdout.write(f"{len(due)} account(s) past a {grace}-day grace period")
        if options["user"] is not None and not due:
            self.stdout.write(f"user {options['user']}: no deletion request past the grace period (or already purged)")
        if options["dry_run"]:
            for user in due:
                executions = FlowExecution.objects.filter(user_id=user.pk).count()
                flows = Flow.objects.filter(user_id=user.pk).count()
                self.stdout.write(
                    f"would purge user {user.pk} (asked {user.deletion_requested_at:%Y-%m-%d}): "
                    f"{flows} flows, {executions} executions, and everything else of theirs"
                )
            return
        purged = 0
        for index, user in enumerate(due, start=1):
            report(f"[{index}/{len(due)}] purging user {user.pk}")
            if gdpr.purge_user(user, batch_size=options["batch_size"], report=report):
                purged += 1
        if purged:
            report("rebuilding indexes and vacuuming what the deletions touched")
            gdpr.after_purge(report)
        self.stdout.write(self.style.SUCCESS(f"purged {purged} account(s)"))

    def _erase_contact(self, spec: str, dry_run: bool, report) -> None:
        try:
            provider, contact_id = gdpr.parse_contact(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if dry_run:
            from executions.privacy import contact_executions

            count = contact_executions(provider, contact_id).count()
            self.stdout.write(f"would scrub {count} execution(s) and the Meta records of {spec}")
            return
        gdpr.erase_contact(provider, contact_id, report=report)
        self.stdout.write(self.style.SUCCESS(f"erased {spec}"))
