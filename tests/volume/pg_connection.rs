//! The connection to a PostgreSQL store: TLS with libpq's `sslmode`
//! meanings, against the test server's certificate (.ci/postgres.sh makes
//! a throwaway CA and sets LLMFS_TEST_PG_CA to its certificate):
//! verify-full with the right root certificate connects over TLS, without
//! it is refused, require encrypts without verifying; and a connection the
//! server ends is reopened, with the volume's lock, at the next
//! transaction.

use llmfs::store::{Durability, StoreError, StoreLocation};

use crate::common::{admin_client, pg_url, FreshStore};

/// The test server's CA certificate, or `None` (with a line) to skip.
fn ca() -> Option<String> {
    pg_url()?;
    match std::env::var("LLMFS_TEST_PG_CA") {
        Ok(ca) if !ca.is_empty() => Some(ca),
        _ => {
            eprintln!("skipped a TLS test: LLMFS_TEST_PG_CA is not set (.ci/postgres.sh sets it)");
            None
        }
    }
}

/// A fresh store whose connections name themselves `name` to the server.
fn named(name: &str, params: &str) -> FreshStore {
    FreshStore::postgres_with(&format!("{params}&application_name={name}"))
}

/// Whether the connections named `name` (one store's) are TLS.
fn store_connections_use_tls(fresh: &FreshStore, name: &str) -> bool {
    let StoreLocation::Postgres(t) = &fresh.location else {
        unreachable!()
    };
    let mut c = admin_client(t).unwrap();
    let row = c
        .query_one(
            "SELECT COUNT(*), COALESCE(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1",
            &[&name],
        )
        .unwrap();
    let (n, tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(n >= 1, "the store's connection is visible");
    tls
}

#[test]
fn verify_full_connects_over_tls_with_the_servers_ca() {
    let Some(ca) = ca() else {
        return;
    };
    let fresh = named(
        "llmfs_tls_verify_full",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let s = fresh.create(65536).unwrap();
    assert!(s.read(|m| m.inode(1)).unwrap().is_some());
    assert!(store_connections_use_tls(&fresh, "llmfs_tls_verify_full"));
}

#[test]
fn verify_full_refuses_a_server_it_cannot_verify() {
    if ca().is_none() {
        return;
    }
    // The system's roots do not know the throwaway CA.
    let fresh = FreshStore::postgres_with("sslmode=verify-full");
    let err = fresh.create(65536).unwrap_err();
    assert!(matches!(err, StoreError::Pg(_)), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn require_encrypts_without_verifying() {
    if ca().is_none() {
        return;
    }
    let fresh = named("llmfs_tls_require", "sslmode=require");
    let s = fresh.create(65536).unwrap();
    assert!(s.read(|m| m.inode(1)).unwrap().is_some());
    assert!(store_connections_use_tls(&fresh, "llmfs_tls_require"));
}

/// A fresh store holding one block (1, 0) = "abc", durably, whose
/// connection (named `name`) the server then ends behind its back.
fn store_whose_connection_ends(name: &str) -> (FreshStore, llmfs::store::Store) {
    let fresh = FreshStore::postgres_with(&format!("sslmode=disable&application_name={name}"));
    let s = fresh.create(65536).unwrap();
    s.write(Durability::Durable, |m| m.put_block(1, 0, 0, 3, b"abc"))
        .unwrap();
    let StoreLocation::Postgres(t) = &fresh.location else {
        unreachable!()
    };
    let ended: i64 = admin_client(t)
        .unwrap()
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    (fresh, s)
}

/// The server ends the store's connection (a restart, an administrator):
/// the transaction it breaks fails, nothing half-done stays, the next one
/// reconnects and the volume is still locked against a second writer.
#[test]
fn a_lost_connection_is_reopened_with_its_lock() {
    if pg_url().is_none() {
        return;
    }
    let (fresh, s) = store_whose_connection_ends("llmfs_reconnect");
    // The first transaction may find the connection dead; within a few
    // the store is back, with everything committed before.
    let mut back = None;
    for _ in 0..3 {
        if let Ok(b) = s.read(|m| m.block(1, 0)) {
            back = Some(b);
            break;
        }
    }
    assert_eq!(back.expect("reconnected").as_deref(), Some(&b"abc"[..]));
    s.write(Durability::Durable, |m| m.put_block(1, 1, 0, 2, b"de"))
        .unwrap();
    assert_eq!(s.read(|m| m.inode(1)).unwrap().unwrap().stored_bytes, 5);
    assert!(
        fresh.lock_as_older_llmfs().is_none(),
        "the session lock came back with the new connection"
    );
}

/// A connection the server ends while the store is idle (a restart at
/// night) costs the next transaction nothing: an idle connection is
/// checked before use and replaced, so that transaction succeeds at once.
#[test]
fn a_connection_ended_while_idle_is_replaced_before_the_next_transaction() {
    if pg_url().is_none() {
        return;
    }
    let (fresh, s) = store_whose_connection_ends("llmfs_idle_reconnect");
    // Idle past the store's check (1 s).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let back = s
        .read(|m| m.block(1, 0))
        .expect("the first transaction succeeds");
    assert_eq!(back.as_deref(), Some(&b"abc"[..]));
    // Still a writer: the session lock came back with the new connection.
    assert!(fresh.lock_as_older_llmfs().is_none());
}
