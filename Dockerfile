# Junebug: a slim image running jb as an unprivileged user.
#
#   docker build -t junebug .
#   docker build --build-arg WITH_NGINX=no -t junebug:no-nginx .   (no nginx plugin)
#
# The wheel is built in a throw-away stage, so the final image has no build
# tools or sources, only the installed package.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY junebug ./junebug
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# nginx for the nginx plugin (junebug.plugins.nginx); WITH_NGINX=no leaves it out.
ARG WITH_NGINX=yes
RUN if [ "$WITH_NGINX" = "yes" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends nginx \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN groupadd --system --gid 10001 junebug \
    && useradd --system --uid 10001 --gid junebug --home-dir /app \
        --shell /usr/sbin/nologin junebug \
    && mkdir -p /app/logs \
    && chown -R junebug:junebug /app
COPY docker/entrypoint.sh /usr/local/bin/junebug-entrypoint
WORKDIR /app
USER 10001:10001
# Variables, not arguments, so `docker run junebug -c file` keeps them (flags
# and the file still override them).  See docs/config.rst for every variable.
ENV JUNEBUG_INTERFACE=0.0.0.0 \
    JUNEBUG_PORT=8080 \
    JUNEBUG_LOGGING_PATH=/app/logs \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# /health answers 200 while Redis and RabbitMQ are reachable.  Orchestrators
# that tell liveness from readiness use /health/live and /health/ready
# (docs/operations.rst).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('JUNEBUG_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["junebug-entrypoint"]
CMD []
