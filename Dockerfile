# portcullis container image: a release build on Debian bookworm, run on bookworm-slim.
#
#   docker build -t portcullis .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v /srv/portcullis/etc:/etc/portcullis:ro \
#     -v portcullis-data:/var/lib/portcullis \
#     portcullis
#
# /etc/portcullis is the configuration: a directory of *.toml files (merged in name order)
# and the key files they name (relative paths resolve against the TOML file's directory),
# mounted read-only. The files must set, for the image's ports and volume:
#
#   [server]
#   listen = "0.0.0.0:8080"          # the default, 127.0.0.1:8080, is unreachable from outside
#   admin_listen = "0.0.0.0:9090"    # /healthz, /readyz, /metrics; publish it privately only
#   [store]
#   url = "sqlite:///var/lib/portcullis/portcullis.db"   # or url_env = "…" for PostgreSQL
#
# The working directory is the volume too, so even the default store URL
# (sqlite://data/portcullis.db, relative to the working directory) lands in it.

FROM rust:1-bookworm AS builder
# openssl-sys (through josekit) links the system OpenSSL; aws-lc-sys builds with the C
# compiler the image already has.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole crate: tests/ and config/ too, since the library embeds test vectors and the demo
# keys (src/fuzzing.rs) and Cargo checks the declared bench and example targets exist.
COPY . .
RUN cargo build --release --locked --bin portcullis \
    && install -m 0755 target/release/portcullis /usr/local/bin/portcullis

FROM debian:bookworm-slim
# ca-certificates: the platform trust store for https:// upstreams and remote JWKS;
# libssl3: the OpenSSL the binary links.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --home-dir /var/lib/portcullis \
       --no-create-home --shell /usr/sbin/nologin portcullis \
    && install -d -o portcullis -g portcullis -m 0750 /var/lib/portcullis \
    && install -d -m 0755 /etc/portcullis
COPY --from=builder /usr/local/bin/portcullis /usr/local/bin/portcullis

# The store (SQLite file, created on first start); a named volume starts with this
# directory's owner, so the non-root user can write it.
VOLUME ["/var/lib/portcullis"]
WORKDIR /var/lib/portcullis
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# 8080: the public listener; 9090: the admin listener (when [server] admin_listen says so).
EXPOSE 8080 9090

# No HEALTHCHECK: the slim image has no curl or wget, and the gateway has no probe command.
# Orchestrators probe the admin listener instead: GET /healthz (the process answers) for
# liveness, GET /readyz (every realm has usable keys; 503 otherwise) for readiness.

# SIGTERM drains (in-flight requests finish, 30 s at most); SIGHUP reloads the configuration.
STOPSIGNAL SIGTERM
ENTRYPOINT ["portcullis"]
CMD ["serve", "--config", "/etc/portcullis"]
