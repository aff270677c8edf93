# airuns, production-shaped. Build: `docker build -t airuns .`; run: README "Run in Docker".
# Stop with a timeout that covers the shutdown (`docker run --stop-timeout 45`, `docker stop -t 45`,
# compose `stop_grace_period: 45s`): after SIGTERM, calls in flight get shutdown.grace_period
# (30 s), then the records still queued are stored within a third of it (10 s); Docker's default
# 10 s would kill calls in flight.

# The airuns wheel, built once from the code; its dependencies are installed in their own layer.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY persistence ./persistence
COPY pricing ./pricing
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 airuns \
    && useradd --system --uid 10001 --gid airuns --home-dir /data --shell /usr/sbin/nologin airuns \
    && mkdir -p /data && chown airuns:airuns /data
WORKDIR /app

# Dependencies from pyproject's list alone, before any code: a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
    && pip install -r requirements.txt \
    && rm requirements.txt pyproject.toml

# The code: the wheel alone, dependencies untouched (`pip check` fails the build if they drifted).
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels && pip check

# The container config: no mock; provider, keys and database from the environment.
COPY deploy/config.yaml /etc/airuns/config.yaml
ENV AIRUNS_CONFIG=/etc/airuns/config.yaml

# The SQLite database and the spool (records waiting for the database) survive restarts here.
WORKDIR /data
VOLUME /data
USER 10001:10001
EXPOSE 8080

# /readyz on the port the config says (a mounted config included); 503 while the database
# does not answer (calls are still proxied, records wait). Slim has no curl: airuns asks itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["airuns", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["airuns", "serve"]
