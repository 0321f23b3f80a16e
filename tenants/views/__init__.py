"""Pages of the tenants app: account.py (the signed-in person) and tenant.py (/t/<slug>/…)."""
