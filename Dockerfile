# Production image: one image for web (uvicorn), worker and beat (celery). See compose.yaml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEHOUSE_VAR_DIR=/app/var

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY manage.py ./
COPY portal/ portal/
COPY tenants/ tenants/
COPY subscriptions/ subscriptions/
COPY gateway/ gateway/
COPY analytics/ analytics/
COPY templates/ templates/
COPY static/ static/
RUN pip install --constraint requirements/constraints.txt . \
    && DEBUG=false SECRET_KEY=build-only GATEHOUSE_ENCRYPTION_KEY=build-only \
       python manage.py collectstatic --noinput \
    && useradd --system --home /app gatehouse \
    && chown -R gatehouse /app/var

USER gatehouse
EXPOSE 8000
CMD ["uvicorn", "portal.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
