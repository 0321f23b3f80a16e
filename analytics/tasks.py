"""Celery tasks of analytics. Tasks take ids (including tenant_id) and re-scope explicitly."""
