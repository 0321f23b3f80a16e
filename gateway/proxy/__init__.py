"""The gateway hot path: a raw ASGI app for /v1/…, dispatched ahead of Django in portal/asgi.py.

Read top to bottom: app.py (the request: auth → route → upstream → respond), snapshot.py (what keys may do and
where models run, cached in-process, no ORM once warm), upstream.py (calls through the one HTTP door),
errors.py (OpenAI's error shape).
"""
