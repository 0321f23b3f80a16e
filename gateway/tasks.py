"""Celery tasks of gateway. Tasks take ids (including tenant_id) and re-scope explicitly."""
