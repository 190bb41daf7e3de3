# The appliance image. CPU build of torch comes with the inference issue; for a GPU host see README.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends dcmtk && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/appliance
COPY pyproject.toml README.md ./
COPY appliance appliance
COPY dicom_gateway dicom_gateway
COPY anonymizer anonymizer
COPY audit audit
COPY models models
RUN pip install --no-cache-dir '.[postgres]'
RUN useradd --system --home /var/lib/appliance appliance && mkdir -p /var/lib/appliance && chown appliance /var/lib/appliance
USER appliance
ENV APPLIANCE_HOME=/var/lib/appliance/home
EXPOSE 11112 8080
CMD ["sh", "-c", "[ -f \"$APPLIANCE_HOME/appliance.toml\" ] || appliance init; exec appliance serve"]
