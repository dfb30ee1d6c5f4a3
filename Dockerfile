# seedvault node in a container. Build: docker build -t seedvault .
# Run:   docker run -d -p 8470:8470 -v seedvault-data:/var/lib/seedvault \
#          -v ./seedvault.toml:/etc/seedvault/seedvault.toml:ro --env-file seedvault.env seedvault
# The config must listen on 0.0.0.0:8470 inside the container and keep the vault and catalog
# under /var/lib/seedvault (the volume).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system seedvault && useradd --system --gid seedvault --home /var/lib/seedvault \
        --create-home --shell /usr/sbin/nologin seedvault \
    && mkdir -p /etc/seedvault && chown seedvault:seedvault /var/lib/seedvault

WORKDIR /opt/seedvault-src
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY config ./config
RUN pip install . && rm -rf /opt/seedvault-src

USER seedvault
WORKDIR /var/lib/seedvault
VOLUME ["/var/lib/seedvault", "/etc/seedvault"]
EXPOSE 8470

# The server binds only after the catalog has caught up with the vault, which after a crash on
# a big vault can take minutes (the systemd unit allows TimeoutStartSec=15min): failed checks
# during the start period do not count, and the first success ends it, so a long one costs
# nothing on a quick start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8470/healthz', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["seedvault"]
CMD ["run", "--config", "/etc/seedvault/seedvault.toml"]
