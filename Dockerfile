# Multi-stage build of sluice: a static binary in an image with nothing else.
#   docker build -t sluice .                   the sluice image (default stage)
#   docker build --target bench -t sluice-bench .   the benchmark harness
# Versions are pinned so a benchmark image is the same image next year.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version stamp (internal/buildinfo); `make image` passes it from git.
# Left empty, sluice falls back to the VCS stamp go build takes from .git.
ARG SLUICE_VERSION=
ARG SLUICE_REVISION=
ARG SLUICE_MODIFIED=
# CGO off: a static binary that runs on scratch; -trimpath: reproducible.
RUN BI=github.com/sluicehq/sluice/internal/buildinfo \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X $BI.version=$SLUICE_VERSION -X $BI.revision=$SLUICE_REVISION -X $BI.modified=$SLUICE_MODIFIED" -o /out/sluice ./cmd/sluice \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sluice-bench ./cmd/sluice-bench \
 && mkdir -m 1777 /out/tmp \
 && mkdir -p -m 0700 /out/state/sluice

# The harness: load generator and target service (docker-compose.bench.yml).
FROM scratch AS bench
# The runner keeps configs and logs in a scratch directory under /tmp.
COPY --from=build /out/tmp /tmp
COPY --from=build /out/sluice-bench /usr/local/bin/sluice-bench
ENTRYPOINT ["/usr/local/bin/sluice-bench"]

# The product image, last so that a plain `docker build .` makes it.
FROM scratch AS sluice
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/sluice /usr/local/bin/sluice
# The edge keeps leases and certificates in $XDG_STATE_HOME/sluice; the user
# nobody has no home, so the image gives it /var/lib/sluice (mount a volume
# there to keep them across container restarts).
COPY --from=build --chown=65534:65534 /out/state /var/lib
ENV XDG_STATE_HOME=/var/lib
USER 65534:65534
EXPOSE 7835 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
