# The appliance image, CPU build of torch (for a GPU host, build with TORCH_INDEX set to PyTorch's CUDA index).

# OHIF's prebuilt viewer, fetched from the npm registry by the same pinned script as `make install`:
# npm stays in this stage; the image gets the static files only.
FROM node:20-slim AS viewer
COPY scripts/fetch-viewer.sh /fetch-viewer.sh
RUN bash /fetch-viewer.sh /viewer

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends dcmtk tesseract-ocr tesseract-ocr-eng && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/appliance
COPY pyproject.toml README.md ./
COPY appliance appliance
COPY dicom_gateway dicom_gateway
COPY anonymizer anonymizer
COPY audit audit
COPY models models
COPY durable durable
COPY workspace workspace
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX"
RUN pip install --no-cache-dir '.[appliance,postgres]'
# GPU=1: ONNX Runtime's CUDA and TensorRT providers, and TensorRT (the GPU wheel replaces the CPU one)
ARG GPU=
RUN if [ -n "$GPU" ]; then pip install --no-cache-dir '.[gpu]' \
    && pip uninstall -y onnxruntime onnxruntime-openvino onnxruntime-gpu && pip install --no-cache-dir 'onnxruntime-gpu>=1.20'; fi
# where the appliance looks for the viewer by default: <python prefix>/share/ohif-viewer
COPY --from=viewer /viewer /usr/local/share/ohif-viewer
RUN useradd --system --home /var/lib/appliance appliance && mkdir -p /var/lib/appliance && chown appliance /var/lib/appliance
USER appliance
ENV APPLIANCE_HOME=/var/lib/appliance/home
EXPOSE 11112 8080
CMD ["sh", "-c", "[ -f \"$APPLIANCE_HOME/appliance.toml\" ] || appliance init; exec appliance serve"]
