//! TLS to PostgreSQL with certificate verification (security round three,
//! a low finding): the office's connection to its database was plain. A
//! throwaway PostgreSQL serves a certificate signed by a CA of the test's
//! own; the office connects with `sslmode=verify-full` and that CA, and
//! refuses another CA, a missing CA and the modes that believe anyone.
//! On the code before the fix, `sslmode=verify-full` was not understood.

use std::path::Path;

use handover_core::codes::Programme;
use handover_office::{bookings, Office};
use handover_tests::pg::{self, Postgres};
use handover_tests::*;

fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    // The server runs as nobody when the tests run as root.
    if unsafe { libc::getuid() } == 0 {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::chown(c.as_ptr(), pg::NOBODY, pg::NOBODY) },
            0
        );
    }
}

/// A CA, and a server certificate for localhost and 127.0.0.1 signed by it.
fn ca_and_server() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "handover test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &rcgen::Issuer::new(ca, ca_key))
        .unwrap();
    (ca_cert.pem(), server.pem(), server_key.serialize_pem())
}

#[test]
fn the_office_reaches_postgresql_over_verified_tls_only() {
    if pg::skip("the_office_reaches_postgresql_over_verified_tls_only") {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (ca, cert, key) = ca_and_server();
    let (ca_pem, cert_pem, key_pem) = (
        files.path().join("ca.pem"),
        files.path().join("server.pem"),
        files.path().join("server.key"),
    );
    write_private(&ca_pem, &ca, 0o644);
    write_private(&cert_pem, &cert, 0o644);
    write_private(&key_pem, &key, 0o600);
    let server = Postgres::start_with(
        false,
        &[
            "ssl=on".into(),
            format!("ssl_cert_file={}", cert_pem.display()),
            format!("ssl_key_file={}", key_pem.display()),
        ],
    )
    .expect("PostgreSQL with TLS");
    let plain = server.database();
    let host = |url: &str| url.replacen("@127.0.0.1:", "@localhost:", 1);
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        host(&plain),
        ca_pem.display()
    );

    // Verified TLS: the office works, and the session is encrypted.
    let dir = tempfile::tempdir().unwrap();
    let office = Office::init_in(
        &dir.path().join("office"),
        "PO-1",
        bookings::CodPayee::default(),
        Some(&verified),
    )
    .expect("an office over verified TLS");
    let key = handover_core::keys::SigningKey::generate().unwrap();
    let device_id = office
        .enroll(key.public_key(), "Postman 1", chrono::Utc::now())
        .unwrap();
    let rows = bookings::parse(
        Programme::Post,
        post_csv(2).as_bytes(),
        office.cod_payee(),
        2026,
    )
    .unwrap();
    issue_today(
        &office,
        &device_id,
        Programme::Post,
        &rows,
        test_policy(),
        chrono::Utc::now(),
    );
    assert_eq!(office.report().unwrap().items_issued, 2);
    drop(office);

    // Another CA: refused, nothing connected.
    let (other_ca, _, _) = ca_and_server();
    let other = files.path().join("other-ca.pem");
    write_private(&other, &other_ca, 0o644);
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        host(&plain),
        other.display()
    );
    assert!(
        Office::open_in(&dir.path().join("office"), Some(&wrong)).is_err(),
        "a certificate from another CA was believed"
    );
    // The right CA but another name than the certificate's.
    let renamed = verified.replacen("@localhost:", "@127.0.0.2:", 1);
    assert!(
        Office::open_in(&dir.path().join("office"), Some(&renamed)).is_err(),
        "a certificate for another name was believed"
    );
    // Modes that would believe anyone are refused before connecting.
    for mode in ["require", "verify-full", "prefer"] {
        let url = format!("{}?sslmode={mode}", host(&plain));
        let e = Office::open_in(&dir.path().join("office"), Some(&url)).unwrap_err();
        assert!(
            matches!(e, handover_office::Error::DatabaseUrl(_)),
            "{mode}: {e}"
        );
    }
}
