#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # manage.py is the developer's tool: on a fresh clone its commands run on the embedded defaults. Servers
    # (uvicorn, celery) do not come through here and default to production; deployments set DEBUG=false
    # explicitly (compose.yaml does), which this leaves alone.
    os.environ.setdefault("DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
