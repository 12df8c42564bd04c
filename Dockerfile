# Multi-stage build: compile in the Rust image, run as non-root in a small Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sigil-server -p sigil --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/sigil sigil \
    && mkdir -p /var/lib/sigil && chown sigil /var/lib/sigil
COPY --from=build /src/target/release/sigil-server /src/target/release/sigil /usr/local/bin/
USER sigil
ENV SIGIL_DATA_DIR=/var/lib/sigil SIGIL_SERVER_LISTEN=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["sigil-server"]
CMD ["serve"]
