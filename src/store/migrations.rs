//! The schema's migrations, embedded in the binary (one list per engine, same versions and
//! meaning) and run at start; sqlx records which ran and refuses a changed one.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQL) for SQLite.
const SQLITE: &[(i64, &str, &str)] = &[(1, "store", include_str!("../../migrations/sqlite/0001_store.sql"))];

/// (version, description, SQL) for PostgreSQL.
const POSTGRES: &[(i64, &str, &str)] = &[(1, "store", include_str!("../../migrations/postgres/0001_store.sql"))];

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            list.iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// SQLite's migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// PostgreSQL's migrations.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}
