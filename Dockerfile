# The edgelens image: one binary, every role (`edgelens ingest|aggregate|query|...`).
#   docker build -t edgelens .
# Used by deploy/compose.yaml and deploy/k8s/ (checked by tests/deploy_manifests.rs).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# cmake and a C++ compiler build the bundled librdkafka.
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ && rm -rf /var/lib/apt/lists/*
COPY . .
# The `production` profile (Cargo.toml): whole-program LTO, one code unit.
RUN cargo build --profile production --locked --bin edgelens && cp target/production/edgelens /edgelens

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/edgelens edgelens \
    && mkdir -p /var/lib/edgelens /etc/edgelens && chown edgelens /var/lib/edgelens
COPY --from=build /edgelens /usr/local/bin/edgelens
USER edgelens
WORKDIR /var/lib/edgelens
# query (HTTP API, SQL, dashboard; Postgres wire protocol), ingest (Logpush receiver)
EXPOSE 8080 5433 8090
ENTRYPOINT ["edgelens"]
CMD ["--help"]
