-- The store's first schema (SQLite). Versions come from one counter row, taken inside each
-- write's transaction, so they commit in order and a follower reading "after N" misses none.
CREATE TABLE store_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO store_version (id, version) VALUES (1, 0);

-- The change log: one row per committed change, in version order.
CREATE TABLE changes (
    version INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    realm TEXT NOT NULL,
    entity_id TEXT,
    action TEXT NOT NULL,
    actor TEXT NOT NULL
);

-- Revoked tokens by identity (SHA-256 over realm and jti or signed content), kept until
-- their token expires (plus leeway), then purged.
CREATE TABLE revocations (
    token_key BLOB PRIMARY KEY,
    realm TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX revocations_version ON revocations (version);
CREATE INDEX revocations_expiry ON revocations (expires_at);

-- Client-assertion jtis (SHA-256 of realm, client and jti): single use across replicas.
CREATE TABLE assertion_jtis (
    jti_key BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);

-- Managed entities: each a declaration (JSON, the configuration's own shape).
CREATE TABLE entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    realm TEXT NOT NULL,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
