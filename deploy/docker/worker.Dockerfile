# syntax=docker/dockerfile:1.7
# The worker image: psworker (LibTorch + CUDA + NCCL + OpenMPI) and psctl, non-root, with a
# non-root sshd so the Kubeflow MPI Operator's launcher can start ranks on it.
#   docker build -f deploy/docker/worker.Dockerfile -t proxsparse/psworker:0.1.0 .
# (from the repository root; docs/deploy-containers.md lists the build arguments).
#
# Pinned: the CUDA base image tag (pin by digest for production), LibTorch by the exact torch
# wheel version (its CUDA libraries and NCCL come with it as pinned pip dependencies), and the
# Ubuntu packages (gRPC 1.51, OpenMPI 4.1) by the snapshot.ubuntu.com date below.
ARG CUDA_VERSION=12.6.3
ARG UBUNTU_TAG=ubuntu24.04
ARG UBUNTU_SNAPSHOT=20250601T000000Z
ARG TORCH_VERSION=2.7.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
# Compute capabilities to build the CUDA kernels for (A100 = 80, H100 = 90).
ARG CUDA_ARCHITECTURES="80;90"

# --- build -----------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-${UBUNTU_TAG} AS build
ARG UBUNTU_SNAPSHOT
ARG TORCH_VERSION
ARG TORCH_INDEX_URL
ARG CUDA_ARCHITECTURES
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update --snapshot "${UBUNTU_SNAPSHOT}" \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --snapshot "${UBUNTU_SNAPSHOT}" \
      build-essential cmake ninja-build pkg-config python3 python3-venv \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libopenmpi-dev openmpi-bin \
      libsqlite3-dev libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev \
      libsentencepiece-dev libre2-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
# LibTorch from the torch wheel (the same CUDA LibTorch the GPU machines build against). It brings
# NCCL (nvidia-nccl-cu12): the worker links that one, so one NCCL is loaded per process.
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY . .
RUN torch_prefix=$(/opt/torch/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)') \
 && nccl_root=$(/opt/torch/bin/python -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))') \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPS_BUILD_TESTS=OFF -DPS_BUILD_BENCH=OFF \
      -DCMAKE_PREFIX_PATH="${torch_prefix}" -DNCCL_ROOT="${nccl_root}" \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES}" \
 && cmake --build /build --target psworker psctl \
 && mkdir -p /out/bin \
 && find /build -type f \( -name psworker -o -name psctl \) -perm -u+x -exec cp {} /out/bin/ \; \
 && test -x /out/bin/psworker && test -x /out/bin/psctl
# Runtime packages: the owners of the system libraries the binaries load (LibTorch, CUDA and NCCL
# libraries resolve into /opt/torch and are copied as they are).
RUN ldd /out/bin/psworker /out/bin/psctl | awk '/=> \// {print $3}' | grep -v '^/opt/torch' | sort -u \
      | xargs -r realpath | { xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 | sort -u \
      > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

# --- runtime ---------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-base-${UBUNTU_TAG} AS runtime
ARG UBUNTU_SNAPSHOT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update --snapshot "${UBUNTU_SNAPSHOT}" \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt apt-get install -y \
      --no-install-recommends --snapshot "${UBUNTU_SNAPSHOT}" \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --snapshot "${UBUNTU_SNAPSHOT}" \
      openmpi-bin openssh-client openssh-server tini ca-certificates python3 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# The torch wheel's libraries (LibTorch, cuBLAS, cuDNN, NCCL...) at the path psworker's RPATH names.
COPY --from=build /opt/torch /opt/torch
COPY --from=build /out/bin/psworker /out/bin/psctl /usr/local/bin/
# Non-root user; its sshd listens on 2222 with the key the MPI Operator mounts at ~/.ssh
# (MPIJob spec.sshAuthMountPath: /home/psd/.ssh), and mpirun reaches peers on that port.
RUN groupadd --gid 10001 psd \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/psd --shell /bin/bash psd \
 && mkdir -p /var/lib/proxsparse/data /home/psd/.ssh \
 && chown -R psd:psd /var/lib/proxsparse /home/psd \
 && sed -i 's/^#\?\s*StrictHostKeyChecking .*/    StrictHostKeyChecking no/' /etc/ssh/ssh_config \
 && printf '    UserKnownHostsFile /dev/null\n    Port 2222\n' >> /etc/ssh/ssh_config
COPY --chown=psd:psd deploy/docker/worker-sshd_config /home/psd/.sshd_config
ENV OMPI_MCA_plm_rsh_args="-p 2222" \
    OMPI_MCA_btl_vader_single_copy_mechanism=none \
    NCCL_DEBUG=WARN
USER 10001:10001
WORKDIR /home/psd
EXPOSE 2222
LABEL org.opencontainers.image.title="proxsparse-psworker" \
      org.opencontainers.image.description="ProxSparse MPI worker (LibTorch, CUDA, NCCL, OpenMPI)" \
      org.opencontainers.image.version="0.1.0"
ENTRYPOINT ["/usr/bin/tini", "--"]
# MPIJob worker pods run sshd (the launcher pod overrides the command with mpirun ... psworker).
CMD ["/usr/sbin/sshd", "-De", "-f", "/home/psd/.sshd_config"]
