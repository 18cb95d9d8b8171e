FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg softhsm2 opensc poppler-utils \
    fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY archive archive
COPY ingest ingest
COPY signing signing
COPY api api
COPY workers workers
COPY verifier verifier
RUN pip install --no-cache-dir ./verifier .
RUN useradd --system --uid 10001 evidence
USER evidence
EXPOSE 8000
CMD ["evidence", "serve", "--host", "0.0.0.0", "--no-workers"]
