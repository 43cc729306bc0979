# syntax=docker/dockerfile:1
# herald: a Pusher Channels protocol server.
#
#   docker build -t herald:0.1.0 .
#   docker run --rm -p 6001:6001 -p 9601:9601 herald:0.1.0
#
# The build step is the repository's release build: `cargo build --release -p herald --locked`
# (Rust 1.85+), which produces target/release/herald.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cached target/ because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p herald --locked \
    && install -D -m 0755 target/release/herald /out/herald

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin herald
COPY --from=build /out/herald /usr/local/bin/herald
USER 10001:10001
# 6001: WebSocket + HTTP API (/app/{key}, /apps/{id}/..., /healthz, /readyz); 9601: /metrics.
EXPOSE 6001 9601
ENV HERALD_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/herald"]
