# syntax=docker/dockerfile:1
# The control image: the REST API (`videojobs serve`) and the operator (`videojobs operator`).
# Build from the repository root:  docker build -f images/control.Dockerfile -t videojobs/control .
# Neither command imports Manim or cairo, so no rendering libraries are installed at run time; the
# build stage compiles the Python dependencies with the packages of system/apt-build.txt.
# Runs as uid 1000 under tini.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY system/apt-build.txt /tmp/system/
RUN apt-get update \
    && grep -hv '^\s*#' /tmp/system/apt-build.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common common
COPY runner runner
COPY api api
COPY operator operator
COPY cli cli
COPY examples examples
RUN python -m venv /opt/videojobs \
    && /opt/videojobs/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# tini's version is the one of the base image's Debian release, like every package of the lists.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /work --shell /usr/sbin/nologin videojobs \
    && install -d -o 1000 -g 1000 /work
COPY --from=build /opt/videojobs /opt/videojobs
ENV PATH=/opt/videojobs/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/work
# The chart mounts emptyDirs on /tmp and /work under a read-only root filesystem.
WORKDIR /work
USER 1000:1000
EXPOSE 8000 8080
ENTRYPOINT ["/usr/bin/tini", "--", "videojobs"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
