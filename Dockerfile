# edgeproxy image: one image for the proxy (default) and the demo origin (`demo-origin`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EDGEPROXY_HEALTH_URL=http://127.0.0.1:9090/healthz

# LightGBM's wheel links the OpenMP runtime, which the slim image does not ship.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY edgeproxy ./edgeproxy
COPY policies ./policies
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin edgeproxy

USER edgeproxy

# 8080: client traffic; 9090: admin API (purge, reload, /metrics, status page).
EXPOSE 8080 9090

# The proxy's /healthz answers 503 only when it cannot serve; Redis down is "degraded" and stays
# healthy so one Redis outage does not restart the whole fleet. The origin overrides the URL.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['EDGEPROXY_HEALTH_URL'], timeout=2)"]

ENTRYPOINT ["edgeproxy"]
CMD ["serve", "--origin", "http://origin:8000", "--listen", "0.0.0.0:8080"]
