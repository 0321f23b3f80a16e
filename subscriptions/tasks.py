"""Celery tasks of subscriptions. Tasks take ids (including tenant_id) and re-scope explicitly."""
