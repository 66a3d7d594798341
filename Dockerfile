# syntax=docker/dockerfile:1
# One image for every fluxqueue process; the subcommand picks the role:
#   fluxqueue controller      (webhook + scheduling loop)
#   fluxqueue fluxion serve   (the Fluxion graph-matching service)
#   fluxqueue migrate         (schema migrations, shipped in the wheel; the chart runs it as an init container)

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: build the wheel and install it with its runtime dependencies into a virtualenv ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fluxqueue ./fluxqueue
COPY proto ./proto
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/fluxqueue \
 # Only the package and its runtime dependencies: no [sim] or [test] extras.
 && /opt/fluxqueue/bin/pip install /wheels/fluxqueue-*.whl \
 && /opt/fluxqueue/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/fluxqueue -name '__pycache__' -prune -exec rm -rf {} +

# ---- runtime --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fluxqueue" \
      org.opencontainers.image.description="HPC batch scheduler for Kubernetes (controller, webhook, Fluxion service)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/fluxqueue/fluxqueue"
# 65532: the conventional "nonroot" uid/gid (distroless); the chart runs as it with a read-only root.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin nonroot
COPY --from=builder /opt/fluxqueue /opt/fluxqueue
ENV PATH=/opt/fluxqueue/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 9443 8080 4242
ENTRYPOINT ["fluxqueue"]
CMD ["--help"]
