from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from core.crypto import blind_index, keyed_hash, normalize_email
from core.fields import EncryptedTextField


class UserManager(BaseUserManager["User"]):
    def get_by_email(self, email: str) -> User:
        return self.get(email_hash=blind_index(email))

    def get_by_natural_key(self, username: str) -> User:
        return self.get_by_email(username)

    def email_taken(self, email: str) -> bool:
        return self.filter(email_hash=blind_index(email)).exists()

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        # The encrypted column validates nothing and is not unique itself (email_hash is),
        # so createsuperuser and other callers outside the API get these checks here.
        validate_email(normalize_email(email))
        if self.email_taken(email):
            raise ValidationError({"email": "A user with this email already exists."})
        user = self.model(**fields)
        user.set_email(email)
        user.set_password(password)
        user.full_clean(exclude=["password", "email_hash"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields.setdefault("role", User.Role.ADMIN)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person using Inflow: staff (`admin`) or a client (`member`).

    Email and name are personal data and live encrypted. `email_hash`, a keyed HMAC of the
    normalized address, gives login and uniqueness without revealing the address.
    """

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin (staff)"
        MEMBER = "member", "Member (client)"

    email = EncryptedTextField(max_length=254)
    email_hash = models.CharField(max_length=64, unique=True, editable=False)
    name = EncryptedTextField(max_length=150)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set by a GDPR deletion request; the purge command removes the account after a grace period.
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        db_table = "users"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"User {self.pk}"

    @property
    def is_staff(self) -> bool:
        return self.role == self.Role.ADMIN and self.is_active

    def set_email(self, email: str) -> None:
        self.email = normalize_email(email)
        self.email_hash = blind_index(email)

    def get_username(self) -> str:
        return self.email

    def natural_key(self) -> tuple[str]:
        return (self.email,)

    def clean(self) -> None:
        super().clean()
        if self.email:
            self.email = normalize_email(self.email)
            self.email_hash = blind_index(self.email)

    @property
    def pseudonym(self) -> str:
        """The ledger's name for this account: no personal data, unique across id reuse."""
        return keyed_hash(f"user:{self.pk}:{self.created_at.isoformat()}")

    def disable_for_deletion(self) -> bool:
        """Lock the account at once; False if a deletion was already requested."""
        updated = User.objects.filter(pk=self.pk, deletion_requested_at__isnull=True).update(
            is_active=False, deletion_requested_at=timezone.now()
        )
        self.refresh_from_db(fields=["is_active", "deletion_requested_at"])
        return bool(updated)

    def cancel_deletion(self) -> bool:
        """Withdraw a deletion request that has not been carried out; False if none was pending.

        Only sign-in comes back: the flows stay paused and the revoked API keys and access
        tokens stay revoked, so nothing runs again until the owner turns it back on.
        """
        updated = User.objects.filter(pk=self.pk, deletion_requested_at__isnull=False).update(
            is_active=True, deletion_requested_at=None
        )
        self.refresh_from_db(fields=["is_active", "deletion_requested_at"])
        return bool(updated)


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKey(models.Model):
    """A secret for `Authorization: Token <key>`. Only its SHA-256 is stored.

    Keys are 256-bit random strings, so a fast hash is enough: there is nothing to
    brute-force, and lookups stay one indexed equality.
    """

    PREFIX = "inf_"
    # last_used_at is written at most this often per key, not on every request.
    TOUCH_INTERVAL = timedelta(minutes=5)

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="API key")
    prefix = models.CharField(max_length=16, help_text="The first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User, name: str = "API key") -> tuple[ApiKey, str]:
        """Create a key and return it with the raw secret, which is never stored."""
        raw_key = cls.PREFIX + secrets.token_urlsafe(32)
        api_key = cls.objects.create(user=user, name=name, prefix=raw_key[:12], key_hash=cls.hash_key(raw_key))
        return api_key, raw_key

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > self.TOUCH_INTERVAL:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class DeletionRecord(models.Model):
    """One GDPR erasure, kept without personal data (the "deletion ledger").

    `pseudonym` is a keyed HMAC of the subject: `user:<id>:<created_at>` for an account,
    `contact:<provider>:<id>` for an end customer. It lets `restore` recognise the subject
    in an older backup and erase it again, without the ledger saying who it was. Every
    record is also appended to GDPR_LEDGER_PATH, outside the database (accounts/ledger.py).
    """

    class Subject(models.TextChoices):
        USER = "user", "Account"
        CONTACT = "contact", "End customer (contact)"

    subject = models.CharField(max_length=16, choices=Subject.choices)
    pseudonym = models.CharField(max_length=64, db_index=True)
    erased_at = models.DateTimeField(default=timezone.now)
    counts = models.JSONField(default=dict, help_text="Rows removed or scrubbed, per table.")

    class Meta:
        db_table = "gdpr_ledger"
        ordering = ["-erased_at"]
        constraints = [models.UniqueConstraint(fields=["subject", "pseudonym"], name="gdpr_ledger_subject_once")]

    def __str__(self) -> str:
        return f"{self.subject} {self.pseudonym[:12]}… erased {self.erased_at:%Y-%m-%d}"
