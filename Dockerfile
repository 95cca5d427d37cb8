# syntax=docker/dockerfile:1
# podterm's image: a builder stage makes the page assets (build.rs runs `npm ci` in web/) and the
# release binary; the runtime stage is distroless (glibc, libgcc, CA certificates; no shell, no
# package manager) with only the binary, run as a numeric non-root user.
#
#   docker build -t podterm .
#   docker run --rm -p 8080:8080 podterm        # PODTERM_* variables configure it

# Builder and runtime share one Debian release (trixie = Debian 13), so the binary's glibc matches.
FROM rust:1.95-trixie AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian's Node.js (20 on trixie) and npm; the image tag pins the release, and exact package
# versions are not pinned because Debian replaces them on every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The page needs only the runtime packages (devDependencies are the browser tests' tools).
ENV NPM_CONFIG_OMIT=dev
# .dockerignore admits only what the build reads: the manifest, the lockfiles, src/, web/.
COPY . .
# Caches (registry, npm, target) live in BuildKit cache mounts, not in layers; the binary is
# copied out of the cached target/ into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/root/.npm \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin podterm \
    && install -D -m 0755 target/release/podterm /out/podterm

FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=builder /out/podterm /podterm
# distroless' `nonroot` user, numerically, so that `runAsNonRoot` can verify it.
USER 65532:65532
ENV PODTERM_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/podterm", "serve"]
