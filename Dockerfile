# syntax=docker/dockerfile:1
# gmm-stream: a multi-stage build. The builder compiles librdkafka (from source,
# with TLS) and the daemon; the runtime image is Debian slim with a non-root user.
#   docker build -t gmm-stream .
#   docker run -p 9464:9464 -v gmm-data:/var/lib/gmm-stream \
#       -e GMM_STREAM__KAFKA__BROKERS=broker:9092 -e GMM_STREAM_HTTP_TOKEN=... gmm-stream
# (the image listens on 0.0.0.0: without a token, or http.allow_unauthenticated,
# it refuses to start)
# The build steps live in scripts/build-release.sh, which CI runs and checks
# (scripts/check-image.sh), so they cannot rot.

FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-release.sh /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gmm
COPY --from=builder /out/ /
RUN chown -R gmm:gmm /var/lib/gmm-stream
USER gmm
# Snapshots: the model survives restarts and redeployments.
VOLUME /var/lib/gmm-stream
# /healthz, /readyz, /metrics, /model, /score
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s \
    CMD ["gmm-stream", "healthcheck", "--address", "127.0.0.1:9464"]
ENTRYPOINT ["gmm-stream"]
CMD ["run", "--config", "/etc/gmm-stream/config.toml"]
