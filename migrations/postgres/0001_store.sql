-- The store's first schema (PostgreSQL). Versions come from one counter row, locked by each
-- write's transaction until it commits, so versions commit in order and a follower reading
-- "after N" misses none.
CREATE TABLE store_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO store_version (id, version) VALUES (1, 0);

-- The change log: one row per committed change, in version order.
CREATE TABLE changes (
    version BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    realm TEXT NOT NULL,
    entity_id TEXT,
    action TEXT NOT NULL,
    actor TEXT NOT NULL
);

-- Revoked tokens by identity (SHA-256 over realm and jti or signed content), kept until
-- their token expires (plus leeway), then purged.
CREATE TABLE revocations (
    token_key BYTEA PRIMARY KEY,
    realm TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX revocations_version ON revocations (version);
CREATE INDEX revocations_expiry ON revocations (expires_at);

-- Client-assertion jtis (SHA-256 of realm, client and jti): single use across replicas.
CREATE TABLE assertion_jtis (
    jti_key BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);

-- Managed entities: each a declaration (JSON, the configuration's own shape).
CREATE TABLE entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    realm TEXT NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
