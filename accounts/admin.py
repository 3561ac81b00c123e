from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, ReadOnlyPasswordHashField, SetPasswordMixin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import ApiKey, DeletionRecord, User
from core.crypto import blind_index


class UserCreationForm(SetPasswordMixin, forms.ModelForm):
    email = forms.EmailField(max_length=254)
    password1, password2 = SetPasswordMixin.create_password_fields()

    class Meta:
        model = User
        fields = ["email", "name", "role"]

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if User.objects.email_taken(email):
            raise forms.ValidationError("A user with this email already exists.")
        return email

    def clean(self):
        self.validate_passwords()
        return super().clean()

    def _post_clean(self):
        super()._post_clean()
        self.validate_password_for_user(self.instance)

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.set_email(self.cleaned_data["email"])
        return self.set_password_and_save(user, commit=commit)


class UserChangeForm(forms.ModelForm):
    email = forms.EmailField(max_length=254)
    password = ReadOnlyPasswordHashField(label="Password")

    class Meta:
        model = User
        fields = ["email", "name", "role", "is_active", "is_superuser", "groups", "user_permissions"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Each permission's label names its content type: one join instead of a query per
        # permission (100+ on this page), as Django's own UserChangeForm does.
        permissions = self.fields.get("user_permissions")
        if permissions is not None:
            permissions.queryset = permissions.queryset.select_related("content_type")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if User.objects.filter(email_hash=blind_index(email)).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        user.set_email(self.cleaned_data["email"])
        if commit:
            user.save()
            self.save_m2m()
        return user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ["id", "email", "name", "role", "is_active", "created_at", "deletion_requested_at"]
    list_display_links = ["id", "email"]
    list_filter = ["role", "is_active", "is_superuser"]
    search_fields = ["email"]  # handled through the blind index in get_search_results
    search_help_text = "Exact email address, or a user id."
    ordering = ["-id"]
    readonly_fields = ["created_at", "last_login", "deletion_requested_at"]
    filter_horizontal = ["groups", "user_permissions"]
    fieldsets = [
        (None, {"fields": ["email", "name", "password"]}),
        ("Role and access", {"fields": ["role", "is_active", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["created_at", "last_login", "deletion_requested_at"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "name", "role", "password1", "password2"]})]
    actions = ["request_deletion", "cancel_deletion"]

    @admin.action(description="Request GDPR deletion (disable now, purge after the grace period)")
    def request_deletion(self, request: HttpRequest, queryset: QuerySet) -> None:
        from accounts.gdpr import request_deletion

        for user in queryset:
            request_deletion(user)
        self.message_user(request, f"Deletion requested for {queryset.count()} account(s).", messages.SUCCESS)

    @admin.action(description="Withdraw the GDPR deletion request (sign-in works again; flows stay paused)")
    def cancel_deletion(self, request: HttpRequest, queryset: QuerySet) -> None:
        withdrawn = sum(user.cancel_deletion() for user in queryset.filter(deletion_requested_at__isnull=False))
        self.message_user(
            request,
            f"Deletion request withdrawn for {withdrawn} account(s). Their flows stay paused; "
            "they need new API keys and must reconnect their Instagram/Facebook accounts.",
            messages.SUCCESS,
        )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit() and len(term) < 19:
            return queryset.filter(pk=int(term)), False
        # Emails are encrypted: only an exact (normalized) address can be found.
        return queryset.filter(email_hash=blind_index(term)), False


@admin.register(DeletionRecord)
class DeletionRecordAdmin(admin.ModelAdmin):
    """The deletion ledger: what was erased and when, without saying who."""

    list_display = ["erased_at", "subject", "pseudonym", "counts"]
    list_filter = ["subject"]
    readonly_fields = ["subject", "pseudonym", "erased_at", "counts"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the ledger is what keeps erased people erased after a restore


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    search_fields = ["prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued through the API and shown once

    @admin.action(description="Revoke the selected API keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
