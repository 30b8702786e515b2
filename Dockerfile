# syntax=docker/dockerfile:1.7
# The Chat Orchestrator (droplet 12) as a container: build with the Rust toolchain, run from a
# small distroless image as a non-root user. DEPLOYMENT.md has the whole procedure.
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) -t chat-orchestrator .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# shown by /version (there is no .git in the build context)
ARG GIT_COMMIT=unknown
ENV CHAT_ORCHESTRATOR_GIT_COMMIT=${GIT_COMMIT}
COPY . .
# cache mounts keep the crate registry and compiled dependencies between builds
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chat-orchestrator \
 && cp target/release/chat-orchestrator /chat-orchestrator

# glibc and libgcc, nothing else: no shell, no package manager; user 65532 (nonroot)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /chat-orchestrator /usr/local/bin/chat-orchestrator
# The configuration (pipelines, templates, catalogue, udc_config.json) is built into the binary;
# mount a folder and set CONFIG_DIR to run an edited copy (it reloads on change).
ENV HOST=0.0.0.0 \
    PORT=8012 \
    LOG_FORMAT=json \
    ENVIRONMENT=production
EXPOSE 8012
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/chat-orchestrator", "probe"]
ENTRYPOINT ["/usr/local/bin/chat-orchestrator"]
CMD ["serve"]
