# syntax=docker/dockerfile:1
# The runner image: the pipeline (`videojobs run-videojob`) with Manim, TeX, ffmpeg, fonts and espeak-ng.
# Build from the repository root:  docker build -f images/runner.Dockerfile -t videojobs/runner .
# Debian packages come from system/apt-*.txt, the same lists `make install` (and so `make test`) uses.
# Runs as uid 1000 under tini; NVIDIA's container runtime exposes the GPU for NVENC encoding.

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
COPY system/apt-runtime.txt /tmp/system/
RUN apt-get update \
    && grep -hv '^\s*#' /tmp/system/apt-runtime.txt | xargs apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* /tmp/system \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/runner --shell /usr/sbin/nologin runner \
    && install -d -o 1000 -g 1000 /work
COPY --from=build /opt/videojobs /opt/videojobs
ENV PATH=/opt/videojobs/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/runner \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
# The operator's Jobs mount emptyDirs on /tmp, /work and /home/runner under a read-only root filesystem.
WORKDIR /work
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--", "videojobs"]
CMD ["run-videojob"]
