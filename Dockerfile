# immich-ext2int: a small, non-root image that works with a read-only root file system.
# The install step is the README's (`pip install .`): pyproject.toml is the one source of dependencies,
# each bounded above by its next major version.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY job ./job
RUN python -m venv /opt/ext2int \
 && /opt/ext2int/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="immich-ext2int" \
      org.opencontainers.image.description="Move assets from Immich external libraries into the internal library, safely and gradually" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/immich-ext2int/immich-ext2int" \
      org.opencontainers.image.documentation="https://github.com/immich-ext2int/immich-ext2int#readme"
COPY --from=build /opt/ext2int /opt/ext2int
# No bytecode written at run time (read-only root), logs unbuffered, the job's venv first on PATH.
ENV PATH=/opt/ext2int/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The job keeps no files: bytes stream from download to upload. Mount a volume only for EXT2INT_REPORT.
USER 10001:10001
EXPOSE 9807
ENTRYPOINT ["ext2int"]
CMD ["run"]
