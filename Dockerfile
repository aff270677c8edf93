FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY persistence ./persistence
COPY pricing ./pricing
RUN pip install . && useradd --create-home --uid 10001 airuns && mkdir -p /data \
    && chown airuns /data
COPY config.yaml ./config.yaml

USER airuns
ENV AIRUNS_DATABASE_URL=sqlite+aiosqlite:////data/airuns.db AIRUNS_RECORDING_SPOOL_DIR=/data/spool
EXPOSE 8080
CMD ["airuns", "serve", "--host", "0.0.0.0"]
