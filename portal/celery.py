"""The Celery app. Workers: `celery -A portal worker`; schedules: `celery -A portal beat`.

Without a broker (embedded mode) settings make every task run eagerly in the caller's process.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("gatehouse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
