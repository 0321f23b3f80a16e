"""The Django project: settings, URLs, ASGI entry point, Celery app and the developer-portal pages."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
