"""API-key and idempotency storage (``stores/sql_keys.py``) and its migration, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect

from memsvc.exceptions import InvalidInputError, RecordNotFound
from memsvc.stores.sql import migrate
from memsvc.stores.sql_keys import APIKeyStore, hash_key, utcnow


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'k.db'}"
    eng = create_engine(url)
    migrate(eng)
    yield eng
    eng.dispose()


def test_migration_up_and_down(engine: Engine) -> None:
    assert {"api_keys", "idempotency_keys"} <= set(inspect(engine).get_table_names())
    migrate(engine, "0001", down=True)
    assert not {"api_keys", "idempotency_keys"} & set(inspect(engine).get_table_names())
    assert "events" in inspect(engine).get_table_names()
    migrate(engine)
    assert {"api_keys", "idempotency_keys"} <= set(inspect(engine).get_table_names())


def test_keys_are_hashed_verified_and_revoked(engine: Engine) -> None:
    store = APIKeyStore(engine)
    rec, secret = store.create("acme", name="ci")
    assert secret.startswith(f"msk_{rec.id}_") and len(secret) > 50
    assert store.verify(secret) == rec and rec.tenant == "acme" and not rec.is_admin
    with engine.connect() as c:
        from sqlalchemy import text

        rows = list(c.execute(text("SELECT id, key_hash FROM api_keys")))
    assert rows == [(rec.id, hash_key(secret))]
    for bad in ("", "msk_", secret[:-1], secret + "x", "Bearer " + secret, "msk_" + "a" * 200):
        assert store.verify(bad) is None
    adm, adm_secret = store.create(None, admin=True)
    assert store.verify(adm_secret).is_admin and adm.tenant is None  # type: ignore[union-attr]
    assert [k.id for k in store.list("acme")] == [rec.id]
    assert store.revoke(rec.id).revoked_at is not None
    assert store.verify(secret) is None
    assert store.revoke(rec.id).revoked_at is not None  # idempotent
    assert store.list("acme") == [] and len(store.list("acme", include_revoked=True)) == 1
    with pytest.raises(RecordNotFound):
        store.revoke("nope")
    for tenant, admin in (("acme", True), (None, False), ("", False), ("x" * 129, False)):
        with pytest.raises(InvalidInputError):
            store.create(tenant, admin=admin)


def test_idempotency_claims(engine: Engine) -> None:
    store = APIKeyStore(engine)
    assert store.claim("t", "k", "fp1").outcome == "new"
    assert store.claim("t", "k", "fp1").outcome == "conflict"  # still running
    assert store.claim("t", "k", "fp2").outcome == "mismatch"
    assert store.claim("u", "k", "fp1").outcome == "new"  # keys are per tenant
    store.complete("t", "k", 200, {"ids": ["a"]})
    again = store.claim("t", "k", "fp1")
    assert (again.outcome, again.status_code, again.response) == ("replay", 200, {"ids": ["a"]})
    store.release("u", "k")
    assert store.claim("u", "k", "fp1").outcome == "new"
    assert store.claim("u", "k", "fp1", stale_after_s=0.0).outcome == "new"  # a dead claim is taken over
    assert store.purge_idempotency(utcnow() + timedelta(seconds=1)) == 2
    assert store.claim("t", "k", "fp1").outcome == "new"
