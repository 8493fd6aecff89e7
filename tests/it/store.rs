//! The store on real engines: SQLite always, PostgreSQL when `PORTCULLIS_TEST_POSTGRES`
//! names a server (each test in a database of its own, dropped after). Every test runs the
//! same checks against each engine it has.

use portcullis::store::{EntityWrite, Follower, Store, StoreError};
use portcullis::time::ManualClock;
use portcullis::token::{RevocationKey, Revocations};

use crate::support::{NOW, TestDb};

/// Runs `check` on a fresh SQLite store, then (when configured) a fresh PostgreSQL one.
async fn on_each_engine<F, Fut>(check: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/store.db", dir.path().display());
    check(Store::open(&url).await.unwrap(), url).await;
    if let Some(db) = TestDb::create().await {
        check(Store::open(&db.url).await.unwrap(), db.url.clone()).await;
        db.drop().await;
    }
}

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

#[tokio::test]
async fn revocations_survive_reopening_and_expire() {
    on_each_engine(|store, url| async move {
        store.revoke("t", &key(1), NOW + 100, "rs", NOW).await.unwrap();
        store.revoke("t", &key(2), NOW + 5, "rs", NOW).await.unwrap();
        drop(store);
        let store = Store::open(&url).await.unwrap();
        let live: Vec<[u8; 32]> = store
            .revocations_after(0, NOW + 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(live, [key(1)], "the one expired at NOW+5 is not in force at NOW+10");
        assert_eq!(store.purge(NOW + 10).await.unwrap(), 1);
        assert_eq!(store.revocations_after(0, NOW).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_assertion_jti_is_used_once_across_handles() {
    on_each_engine(|store, url| async move {
        let other = Store::open(&url).await.unwrap();
        assert!(store.first_use(&key(7), NOW + 60, NOW).await.unwrap());
        assert!(
            !other.first_use(&key(7), NOW + 60, NOW).await.unwrap(),
            "a replay on the other handle"
        );
        assert!(!store.first_use(&key(7), NOW + 60, NOW + 59).await.unwrap());
        assert!(
            other.first_use(&key(7), NOW + 200, NOW + 60).await.unwrap(),
            "an expired record is taken over"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_of_one_jti_have_one_winner() {
    // 200 checks at once, each of 100 jtis twice: they are committed in groups, and within
    // a group as across groups exactly one check of each jti is its first use.
    on_each_engine(|store, _| async move {
        let tasks: Vec<_> = (0..200u16)
            .map(|i| {
                let store = store.clone();
                let mut k = [0u8; 32];
                k[..2].copy_from_slice(&(i % 100).to_be_bytes());
                tokio::spawn(async move { (i % 100, store.first_use(&k, NOW + 60, NOW).await.unwrap()) })
            })
            .collect();
        let mut wins = [0u8; 100];
        for t in tasks {
            let (n, first) = t.await.unwrap();
            wins[usize::from(n)] += u8::from(first);
        }
        assert!(wins.iter().all(|w| *w == 1), "{wins:?}");
    })
    .await;
}

#[tokio::test]
async fn entity_writes_are_conditional_on_the_version_they_read() {
    on_each_engine(|store, _| async move {
        let w = |body: Option<&'static str>, based_on| EntityWrite {
            kind: "resource_server",
            id: "orders",
            realm: "t",
            body,
            based_on,
            validated_at: None,
            actor: "admin",
            now: NOW,
        };
        let v1 = store.write_entity(&w(Some(r#"{"a":1}"#), None)).await.unwrap();
        match store.write_entity(&w(Some(r#"{"a":2}"#), None)).await {
            Err(StoreError::Conflict { current }) => assert_eq!(current, Some(v1)),
            other => panic!("a second create must conflict: {other:?}"),
        }
        let v2 = store.write_entity(&w(Some(r#"{"a":3}"#), Some(v1))).await.unwrap();
        assert!(v2 > v1);
        assert!(matches!(
            store.write_entity(&w(Some(r#"{"a":4}"#), Some(v1))).await,
            Err(StoreError::Conflict { current: Some(c) }) if c == v2
        ));
        let (version, all) = store.entities().await.unwrap();
        assert_eq!(version, v2);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].body.as_str(), all[0].version), (r#"{"a":3}"#, v2));
        // A write validated at one store version fails once anything else committed.
        let at = store.version().await.unwrap();
        store.revoke("t", &key(9), NOW + 10, "rs", NOW).await.unwrap();
        let validated = EntityWrite {
            validated_at: Some(at),
            ..w(Some(r#"{"a":5}"#), Some(v2))
        };
        assert!(matches!(store.write_entity(&validated).await, Err(StoreError::Moved)));
        let fresh = EntityWrite {
            validated_at: Some(store.version().await.unwrap()),
            ..w(Some(r#"{"a":5}"#), Some(v2))
        };
        let v2 = store.write_entity(&fresh).await.unwrap();
        store.write_entity(&w(None, Some(v2))).await.unwrap();
        assert!(store.entities().await.unwrap().1.is_empty());
        let log = store.changes_after(0, 100).await.unwrap();
        let actions: Vec<&str> = log.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(
            actions,
            ["create", "update", "revoke", "update", "delete"],
            "refused writes leave no trace"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_writes_from_one_version_exactly_one_wins() {
    on_each_engine(|store, _| async move {
        let create = EntityWrite {
            kind: "client",
            id: "c1",
            realm: "t",
            body: Some("{}"),
            based_on: None,
            validated_at: None,
            actor: "admin",
            now: NOW,
        };
        let v = store.write_entity(&create).await.unwrap();
        let tries = (0..8).map(|i| {
            let store = store.clone();
            let create = create.clone();
            async move {
                let body = format!("{{\"n\":{i}}}");
                let w = EntityWrite {
                    body: Some(&body),
                    based_on: Some(v),
                    ..create.clone()
                };
                store.write_entity(&w).await
            }
        });
        let results = futures_join_all(tries).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
            .count();
        assert_eq!((won, conflicts), (1, 7), "{results:?}");
    })
    .await;
}

#[tokio::test]
async fn versions_commit_in_order_without_gaps() {
    on_each_engine(|store, _| async move {
        let writes = (0..20u8).map(|i| {
            let store = store.clone();
            async move { store.revoke("t", &key(i), NOW + 100, "rs", NOW).await }
        });
        for r in futures_join_all(writes).await {
            r.unwrap();
        }
        let versions: Vec<i64> = store
            .changes_after(0, 100)
            .await
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
        assert_eq!(store.version().await.unwrap(), 20);
        let page: Vec<i64> = store
            .changes_after(5, 3)
            .await
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(page, [6, 7, 8]);
    })
    .await;
}

#[tokio::test]
async fn a_follower_loads_and_catches_up_revocations_and_entity_changes() {
    on_each_engine(|store, url| async move {
        store.revoke("t", &key(1), NOW + 100, "rs", NOW).await.unwrap();
        let clock = ManualClock::new(NOW);
        let revocations = Revocations::new(1000, clock.clone());
        let (follower, mut entities) = Follower::new(
            Store::open(&url).await.unwrap(),
            revocations.clone(),
            clock.clone(),
            std::time::Duration::from_secs(1),
        );
        follower.load().await.unwrap();
        assert!(revocations.is_revoked(&RevocationKey::from_bytes(key(1))));
        assert!(!revocations.is_revoked(&RevocationKey::from_bytes(key(2))));
        store.revoke("t", &key(2), NOW + 100, "rs", NOW).await.unwrap();
        follower.catch_up().await.unwrap();
        assert!(revocations.is_revoked(&RevocationKey::from_bytes(key(2))));
        assert!(!entities.has_changed().unwrap(), "no entity changed yet");
        let w = EntityWrite {
            kind: "protected_resource",
            id: "p",
            realm: "t",
            body: Some("{}"),
            based_on: None,
            validated_at: None,
            actor: "admin",
            now: NOW,
        };
        let v = store.write_entity(&w).await.unwrap();
        follower.catch_up().await.unwrap();
        assert!(entities.has_changed().unwrap());
        assert_eq!(*entities.borrow_and_update(), v);
        assert_eq!(follower.health().version(), v);
        assert!(follower.health().is_ok());
    })
    .await;
}

#[tokio::test]
async fn postgres_pushes_every_committed_change() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    let mut listener = store.listen().await.unwrap().expect("postgres listens");
    let v = store.revoke("t", &key(3), NOW + 100, "rs", NOW).await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(n.payload(), v.to_string());
    drop(listener);
    drop(store);
    db.drop().await;
}

#[tokio::test]
async fn a_store_url_of_no_known_engine_is_refused_by_name() {
    let e = Store::open("mysql://root@127.0.0.1/x").await.unwrap_err();
    assert!(matches!(e, StoreError::BadUrl(_)), "{e}");
    let e = Store::open("postgres://u:hunter2@127.0.0.1:1/x").await.unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

/// Awaits every future (the tests' own join, without another dependency).
async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
