# One image for the API and the worker; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DUMONT_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client rsync curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY providers providers
COPY workflows workflows
COPY activities activities
COPY api api
COPY agent agent
COPY sim sim
COPY dumont dumont
COPY worker.py ./
RUN pip install --no-cache-dir .
VOLUME ["/data"]
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
