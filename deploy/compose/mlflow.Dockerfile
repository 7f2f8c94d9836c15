# The MLflow tracking server of the compose stack: MLflow with the PostgreSQL driver and boto3
# (artifacts on MinIO/S3). Keep MLFLOW_VERSION on the minor mloop installs (`pip show mlflow`).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG MLFLOW_VERSION=3.17.*
# The CA secret is optional: builds behind a TLS-intercepting proxy pass
# `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`; others build without it.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca,required=false \
    PY=$(command -v python || command -v python3) \
    && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && "$PY" -m venv /opt/mlflow \
    && /opt/mlflow/bin/pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" \
       "psycopg[binary]>=3.1" "boto3>=1.34" \
    && useradd --system --uid 10002 --home-dir /nonexistent --shell /usr/sbin/nologin mlflow
ENV PATH=/opt/mlflow/bin:$PATH
USER 10002
EXPOSE 5000
STOPSIGNAL SIGTERM
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]
