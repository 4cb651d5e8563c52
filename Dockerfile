# Supervision Hub — one image for the API, the migration job and the scheduler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 suphub \
    && useradd --system --uid 10001 --gid suphub --home-dir /srv/suphub --shell /usr/sbin/nologin suphub

WORKDIR /srv/suphub

# README* is optional (pyproject names it as the readme); pyproject.toml must exist.
COPY pyproject.toml README* ./
COPY app/ ./app/
RUN pip install . \
    && rm -rf build ./*.egg-info

# Alembic reads alembic.ini and migrations/ from the working directory.
COPY alembic.ini ./
COPY migrations/ ./migrations/

ENV SUPHUB_DATA_DIR=/data
RUN mkdir -p /data && chown suphub:suphub /data
VOLUME /data

USER suphub

EXPOSE 8080

CMD ["supervision-hub", "serve", "--host", "0.0.0.0", "--port", "8080"]
