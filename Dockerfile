# wsprobe and the reference server in one small image, for sharded load on Kubernetes
# (ci/k8s/). Build from the repository root: docker build -t wsprobe .
# Not built in this project's CI (its machines run no Docker engine); `ci/k8s/check.sh` lints it
# with hadolint instead.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin wsprobe --bin reference-server \
    && strip target/release/wsprobe target/release/reference-server

# Debian slim rather than distroless: the Kubernetes Jobs run a shell (the shard index
# arithmetic, the merge step's globs).
FROM debian:bookworm-slim
COPY --from=build /src/target/release/wsprobe /src/target/release/reference-server /usr/local/bin/
# The same non-root user the manifests ask for.
USER 65532:65532
ENTRYPOINT ["wsprobe"]
CMD ["--help"]
