//! TLS to PostgreSQL, with certificate verification (rustls).
//!
//! The connection string takes libpq's settings for it:
//!
//! * `sslmode=disable` (or none at all): plain TCP, for a database on the
//!   same host or a private network.
//! * `sslmode=require` and `sslmode=verify-full`: TLS, the server's
//!   certificate verified against the CA in `sslrootcert=PATH` (PEM) and
//!   its name checked against the host connected to. Without
//!   `sslrootcert` the office refuses to connect rather than trust any
//!   certificate: `require` here is libpq's `verify-full`, never "encrypt
//!   but believe anyone".
//! * `sslmode=prefer` and `sslmode=verify-ca` are refused: the first
//!   falls back to plain text when an attacker says so, the second accepts
//!   any name the CA ever signed.
//!
//! Both forms work: `postgres://…/db?sslmode=verify-full&sslrootcert=/etc/handover/db-ca.pem`
//! and `host=db.example dbname=handover sslmode=verify-full sslrootcert=/…`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// How to reach the database: the connection string the driver takes (the
/// TLS settings taken out of it) and the TLS connector, if any.
pub(crate) struct Target {
    /// The connection string for `postgres::Client::connect`.
    pub url: String,
    /// `Some` for a verified TLS connection.
    pub tls: Option<MakeRustlsConnect>,
}

fn refused(why: impl Into<String>) -> Error {
    Error::DatabaseUrl(why.into())
}

/// Split a connection string into its TLS settings and the rest.
fn split(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let take = |kv: &str, mode: &mut Option<String>, root: &mut Option<String>| -> bool {
        match kv.split_once('=') {
            Some((k, v)) if k.trim() == "sslmode" => {
                *mode = Some(v.trim().to_owned());
                true
            }
            Some((k, v)) if k.trim() == "sslrootcert" => {
                *root = Some(v.trim().to_owned());
                true
            }
            _ => false,
        }
    };
    let trimmed = url.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let (base, query) = match trimmed.split_once('?') {
            Some((b, q)) => (b, q),
            None => (trimmed, ""),
        };
        let rest: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.is_empty() && !take(kv, &mut mode, &mut root))
            .collect();
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        (url, mode, root)
    } else {
        let rest: Vec<&str> = trimmed
            .split_whitespace()
            .filter(|kv| !take(kv, &mut mode, &mut root))
            .collect();
        (rest.join(" "), mode, root)
    }
}

/// Append `sslmode=require` so the driver insists on TLS.
fn with_require(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=require")
    } else {
        format!("{url} sslmode=require")
    }
}

/// Read `url`'s TLS settings (module docs).
pub(crate) fn target(url: &str) -> Result<Target> {
    let (rest, mode, root) = split(url);
    match mode.as_deref() {
        None | Some("disable") => Ok(Target {
            url: rest,
            tls: None,
        }),
        Some("require") | Some("verify-full") => {
            let Some(root) = root else {
                return Err(refused(
                    "sslmode=require and verify-full need sslrootcert=PATH, the CA (PEM) that \
                     signed the database's certificate",
                ));
            };
            Ok(Target {
                url: with_require(&rest),
                tls: Some(connector(PathBuf::from(root))?),
            })
        }
        Some("prefer") | Some("allow") => Err(refused(
            "sslmode=prefer and allow fall back to plain text: use verify-full (or disable on a \
             private network)",
        )),
        Some("verify-ca") => Err(refused(
            "sslmode=verify-ca does not check the database's name: use verify-full",
        )),
        Some(_) => Err(refused(
            "sslmode: disable, require or verify-full (with sslrootcert)",
        )),
    }
}

/// A connector that trusts only the CA certificates in `root`.
fn connector(root: PathBuf) -> Result<MakeRustlsConnect> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&root)
        .and_then(|certs| certs.collect::<std::result::Result<_, _>>())
        .map_err(|_| {
            refused(format!(
                "sslrootcert {}: not a readable PEM file of certificates",
                root.display()
            ))
        })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| refused(format!("sslrootcert {}: {e}", root.display())))?;
    }
    if roots.is_empty() {
        return Err(refused(format!(
            "sslrootcert {}: holds no certificate",
            root.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_out_of_both_forms() {
        let (url, mode, root) = split(
            "postgres://h@db:5432/x?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5",
        );
        assert_eq!(url, "postgres://h@db:5432/x?connect_timeout=5");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (url, mode, root) = split("host=db dbname=x sslmode=require sslrootcert=/ca.pem");
        assert_eq!(url, "host=db dbname=x");
        assert_eq!(
            (mode.as_deref(), root.as_deref()),
            (Some("require"), Some("/ca.pem"))
        );
        assert_eq!(
            with_require("postgres://h@db/x"),
            "postgres://h@db/x?sslmode=require"
        );
    }

    #[test]
    fn no_mode_that_believes_anyone_is_taken() {
        for url in [
            "postgres://h@db/x?sslmode=require",
            "postgres://h@db/x?sslmode=verify-full",
            "postgres://h@db/x?sslmode=prefer",
            "postgres://h@db/x?sslmode=verify-ca&sslrootcert=/ca.pem",
            "postgres://h@db/x?sslmode=sometimes",
        ] {
            assert!(matches!(target(url), Err(Error::DatabaseUrl(_))), "{url}");
        }
        assert!(target("postgres://h@db/x").unwrap().tls.is_none());
        assert!(target("postgres://h@db/x?sslmode=disable")
            .unwrap()
            .tls
            .is_none());
    }
}
