"""Creating a user's Weaviate tenant when two workers race for it (no server, no database).

The test contract in test_store_contract.py needs a real Weaviate server; this exercises
only the tenant creation, against a stand-in for weaviate-client v4's `collection.tenants`.
"""

from __future__ import annotations

import httpx
import pytest
from weaviate.exceptions import UnexpectedStatusCodeError

from knowledge.errors import ServiceError
from knowledge.stores.weaviate import _mapped_errors, ensure_tenant


def refusal(message: str) -> UnexpectedStatusCodeError:
    # What the client raises when Weaviate answers a tenants POST with an error status.
    response = httpx.Response(422, json={"error": [{"message": message}]})
    return UnexpectedStatusCodeError("Collection tenants may not have been added properly", response)


class FakeTenants:
    """`collection.tenants`: exists(name) and create([Tenant]); Weaviate refuses a duplicate.

    `rival` is a tenant another worker creates between this worker's exists() and create().
    """

    def __init__(self, *existing: str, rival: str | None = None, refuse: str | None = None) -> None:
        self.names = set(existing)
        self.rival = rival
        self.refuse = refuse
        self.created: list[str] = []

    def exists(self, name: str) -> bool:
        found = name in self.names
        if self.rival:
            self.names.add(self.rival)
            self.rival = None
        return found

    def create(self, tenants: list) -> None:
        if self.refuse:
            raise refusal(self.refuse)
        for tenant in tenants:
            if tenant.name in self.names:
                raise refusal(f"tenant {tenant.name} already exists")
        for tenant in tenants:
            self.names.add(tenant.name)
            self.created.append(tenant.name)


def test_a_missing_tenant_is_created():
    tenants = FakeTenants("user-2")
    ensure_tenant(tenants, "user-1")
    assert tenants.created == ["user-1"]


def test_an_existing_tenant_is_left_alone():
    tenants = FakeTenants("user-1")
    ensure_tenant(tenants, "user-1")
    assert tenants.created == []


def test_a_tenant_created_meanwhile_by_another_worker_is_fine():
    tenants = FakeTenants(rival="user-1")
    ensure_tenant(tenants, "user-1")
    assert tenants.created == []  # the other worker's creation won; this one carries on
    assert "user-1" in tenants.names


def test_any_other_refusal_is_raised_and_mapped_to_a_service_error():
    tenants = FakeTenants(refuse="tenant name is invalid")
    with pytest.raises(ServiceError) as caught, _mapped_errors():
        ensure_tenant(tenants, "user-1")
    assert caught.value.http_status == 422
    assert "tenant name is invalid" in caught.value.message
    assert not caught.value.transient
