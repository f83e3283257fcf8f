# syntax=docker/dockerfile:1.7
# The coordinator image: psd and psctl on Debian 12, no LibTorch, running as a non-root user.
#   docker build -f deploy/docker/coordinator.Dockerfile -t proxsparse/psd:0.1.0 .
# (from the repository root; docs/deploy-containers.md lists the build arguments).
#
# Pinned: the base image by tag (pin it by digest for production: docs/deploy-containers.md) and
# every Debian package by the snapshot.debian.org date below, so a rebuild gets the same versions.
ARG DEBIAN_IMAGE=debian:12.11-slim
ARG DEBIAN_SNAPSHOT=20250601T000000Z

FROM ${DEBIAN_IMAGE} AS base
ARG DEBIAN_SNAPSHOT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# All apt sources point at one snapshot date: the package versions are fixed by it.
RUN printf 'Types: deb\nURIs: http://snapshot.debian.org/archive/debian/%s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://snapshot.debian.org/archive/debian-security/%s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "${DEBIAN_SNAPSHOT}" "${DEBIAN_SNAPSHOT}" > /etc/apt/sources.list.d/debian.sources \
 && rm -f /etc/apt/sources.list \
 && printf 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n' \
      > /etc/apt/apt.conf.d/99snapshot

# --- build: compile psd and psctl only (PS_BUILD_WORKER=OFF: no LibTorch) ----------------------
FROM base AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libsqlite3-dev libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev \
      zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPS_BUILD_WORKER=OFF -DPS_BUILD_TESTS=OFF -DPS_BUILD_BENCH=OFF \
 && cmake --build /build --target psd psctl \
 && mkdir -p /out/bin \
 && find /build -type f \( -name psd -o -name psctl \) -perm -u+x -exec cp {} /out/bin/ \; \
 && test -x /out/bin/psd && test -x /out/bin/psctl \
 && strip /out/bin/psd /out/bin/psctl
# The runtime needs exactly the packages that own the shared libraries the binaries load.
RUN ldd /out/bin/psd /out/bin/psctl | awk '/=> \// {print $3}' | sort -u \
      | xargs -r realpath | { xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 | sort -u \
      > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

# --- runtime -------------------------------------------------------------------------------------
FROM base AS runtime
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
# tini reaps the local launcher's mpirun children; kubernetes-client is the kubectl the
# Kubernetes launcher applies MPIJobs with; ca-certificates for TLS to the API server.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt apt-get install -y \
      --no-install-recommends \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      tini ca-certificates kubernetes-client sqlite3 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
RUN groupadd --system --gid 10001 psd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/proxsparse --shell /usr/sbin/nologin psd \
 && mkdir -p /var/lib/proxsparse/store /var/lib/proxsparse/data /etc/proxsparse \
 && chown -R psd:psd /var/lib/proxsparse
COPY --from=build /out/bin/psd /out/bin/psctl /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/proxsparse
VOLUME ["/var/lib/proxsparse/store", "/var/lib/proxsparse/data"]
EXPOSE 50051 9464
LABEL org.opencontainers.image.title="proxsparse-psd" \
      org.opencontainers.image.description="ProxSparse coordinator (psd) and psctl" \
      org.opencontainers.image.version="0.1.0"
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/psd"]
CMD ["--listen=0.0.0.0:50051", "--metrics-listen=0.0.0.0:9464", \
     "--db=/var/lib/proxsparse/store/psd.db", "--data-dir=/var/lib/proxsparse/data", \
     "--launcher=local"]
