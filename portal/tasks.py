"""Portal-wide Celery tasks."""
