# One image for every redstep service (orchestrator, worker, and the CLI for one-off commands).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a change to the code does not download them again.
COPY pyproject.toml /app/
RUN mkdir -p orchestrator worker producer \
    && touch README.md orchestrator/__init__.py worker/__init__.py producer/__init__.py \
    && pip install . \
    && pip uninstall -y redstep \
    && rm -rf /app/*

COPY . /app
RUN pip install --no-deps . \
    && useradd --system --no-create-home --shell /usr/sbin/nologin redstep

# Nothing in the image needs root, and a worker runs user functions: it runs without it.
USER redstep

CMD ["redstep", "--help"]
