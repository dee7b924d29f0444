FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY junebug ./junebug
RUN pip install --no-cache-dir .
EXPOSE 8080
# Configure with a mounted file (-c /app/config.yaml) or JUNEBUG_* variables.
ENTRYPOINT ["jb"]
CMD ["--interface", "0.0.0.0", "--port", "8080"]
