"""Helpers for the billing/state tests: a minimal platform repo built by hand (no tests here)."""

from __future__ import annotations

from pathlib import Path

from workmill.backends import open_billing_store
from workmill.repo import PlatformRepo
from workmill.state import BillingStore

TENANT = "Ab12Cd"
OTHER = "Zx98Yw"

PRICING = (
    "module_id,product_code,price_credits,artifact_price_credits,active\n"
    "001,P01,100,20,true\n"
    "003,P03,100,0,true\n"
)
PROMOTIONS = (
    "promo_code,kind,value,module_ids,starts_at,ends_at,max_redemptions,max_redemptions_per_tenant,active\n"
    "WELCOME10,FIXED,15,,,,,,true\n"
)
TOPUP_METHODS = "topup_method_id,name,active\nAD,admin,true\nOF,old form,false\n"


def make_repo(root: Path, tenants: tuple[str, ...] = (TENANT, OTHER)) -> Path:
    """workmill.yml, tenants/<id>/tenant.yml and releases/billing-state-v1/*.csv."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "workmill.yml").write_text("billing_state_tag: billing-state-v1\nstore: local\n")
    for t in tenants:
        d = root / "tenants" / t
        d.mkdir(parents=True, exist_ok=True)
        (d / "tenant.yml").write_text(f"tenant_id: {t}\nname: Tenant {t}\n")
    tpl = root / "releases" / "billing-state-v1"
    tpl.mkdir(parents=True, exist_ok=True)
    (tpl / "pricing.csv").write_text(PRICING)
    (tpl / "promotions.csv").write_text(PROMOTIONS)
    (tpl / "topup_methods.csv").write_text(TOPUP_METHODS)
    return root


def bootstrapped_store(root: Path) -> BillingStore:
    """A local billing store on ``make_repo(root)``, bootstrapped from its templates."""
    repo = PlatformRepo.open(make_repo(root))
    store = open_billing_store(repo)
    assert store.bootstrap(repo.templates_dir) is True
    return store


def seeded_store(root: Path) -> BillingStore:
    """``bootstrapped_store(root)`` whose TENANT has topped up 5,000 credits (reference "seed")."""
    store = bootstrapped_store(root)
    store.commit_with_retry(lambda st: st.topup(TENANT, "AD", 5000, "seed"))
    return store


def store_snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the local store (name -> bytes), to prove a command changed nothing."""
    releases = root / ".workmill" / "releases"
    return {
        f"{d.name}/{p.name}": p.read_bytes()
        for d in sorted(releases.glob("billing-state-v1*"))  # the head and its segments
        for p in sorted(d.iterdir())
        if not p.name.startswith(".")
    }
