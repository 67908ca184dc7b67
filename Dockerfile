# Skylane services (ingest, api, alerts, simulate, record, replay): one image, the command picks the part.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY protocol protocol
COPY i18n i18n
COPY airspace airspace
COPY ingest ingest
COPY storage storage
COPY devices devices
COPY replay replay
COPY api api
COPY alerting alerting
COPY skylane skylane
COPY bench bench
RUN pip install --no-cache-dir . && useradd --system --uid 10001 skylane
USER skylane
ENV SKYLANE_ZONE_FILE=/app/airspace/data/pujiang_wujing.geojson SKYLANE_STATE_DIR=/tmp/skylane
EXPOSE 8000 9108 9110
ENTRYPOINT ["skylane"]
CMD ["api"]
