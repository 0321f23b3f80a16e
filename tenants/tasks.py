"""Celery tasks of tenants. Tasks take ids (including tenant_id) and re-scope explicitly."""
