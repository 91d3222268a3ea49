# A Frugal worker image: `docker compose up --scale worker=N` runs N of these in one group.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bus ./bus
COPY cli ./cli
COPY pipeline ./pipeline
COPY consumers ./consumers
COPY providers ./providers
COPY schemas ./schemas
COPY sinks ./sinks
RUN pip install --no-cache-dir .
ENTRYPOINT ["frugal"]
CMD ["worker"]
