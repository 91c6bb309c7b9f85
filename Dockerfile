# syntax=docker/dockerfile:1
# Mutabaqa app image: `mutabaqa api`, `mutabaqa worker`, `mutabaqa migrate`, ...

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its dependencies into a virtualenv -------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
RUN pip install . \
    && mutabaqa --help >/dev/null

# --- runtime: the virtualenv only, run as an unprivileged user -----------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MUTABAQA_ENV=production \
    MUTABAQA_DATA_DIR=/var/lib/mutabaqa

RUN groupadd --system --gid 10001 mutabaqa \
    && useradd --system --uid 10001 --gid mutabaqa \
        --home-dir /var/lib/mutabaqa --no-create-home --shell /usr/sbin/nologin mutabaqa \
    && install -d -o mutabaqa -g mutabaqa -m 0750 /var/lib/mutabaqa

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/mutabaqa
EXPOSE 8000

ENTRYPOINT ["mutabaqa"]
CMD ["--help"]
