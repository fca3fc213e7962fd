//! `office.toml` in the office directory: the SMS sender, the gateway and
//! its DLT ids, customer-care numbers, languages. Every setting has a
//! default, so an office without the file sends SMS to a CSV file
//! (`sms.csv`, mode 0600) in English.
//!
//! ```toml
//! [office]
//! language = "hi+en"               # for bookings without a language column: en, hi, hi+en
//! database_url = "postgres://handover@db.example/handover"   # or database_url_env; SQLite when absent
//!
//! [customer_care]
//! post = "1800 266 6868"
//! vaccination = "1075"
//!
//! [sms]
//! sender = "http"                  # file, http, msdg, nic or template (README)
//! file = "sms.csv"                 # the file sender's CSV, relative to the office directory
//! url = "https://sms-gateway.example/v1/messages"
//! api_key_env = "HANDOVER_SMS_API_KEY"             # the key itself stays in the environment
//! callback_secret_env = "HANDOVER_SMS_CALLBACK_SECRET"
//! sender_id = "INPOST"             # TRAI DLT header
//! entity_id = "1101234567890123456"  # DLT principal entity id
//! timeout_seconds = 10
//! max_attempts = 4
//! concurrency = 8                  # messages in flight at once
//! breaker_failures = 5             # stop after this many gateway failures in a row; 0: never
//! send_every_seconds = 5           # how often `serve` sends the outbox; 0: never
//!
//! [sms.templates]                  # DLT content template ids, programme.purpose.language
//! "post.code.en" = "1107160000000000001"
//! "post.code.hi" = "1107160000000000002"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::language::Language;

/// The file's name in the office directory.
pub const FILE: &str = "office.toml";

/// The office's configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Office-wide settings.
    pub office: OfficeSettings,
    /// Customer-care numbers by programme.
    pub customer_care: CustomerCare,
    /// Sending SMS.
    pub sms: SmsSettings,
}

/// Office-wide settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeSettings {
    /// Language of bookings that do not say: `en`, `hi` or `hi+en`.
    pub language: String,
    /// The PostgreSQL store (`postgres://…`); SQLite in the office
    /// directory when neither this nor `database_url_env` is set.
    pub database_url: Option<String>,
    /// The environment variable holding the PostgreSQL URL (keeps a password
    /// out of the file).
    pub database_url_env: Option<String>,
    /// The address phones reach the sync service at (`https://…`), put in
    /// the enrolment QR codes the console makes; without it they hold the
    /// token only.
    pub public_url: Option<String>,
}

impl std::fmt::Debug for OfficeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A database URL may carry a password.
        f.debug_struct("OfficeSettings")
            .field("language", &self.language)
            .field("database", &self.database_url.as_ref().map(|_| "postgres"))
            .field("database_url_env", &self.database_url_env)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl Default for OfficeSettings {
    fn default() -> Self {
        OfficeSettings {
            language: "en".into(),
            database_url: None,
            database_url_env: None,
            public_url: None,
        }
    }
}

/// Customer-care numbers, as the confirmation SMS print them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerCare {
    /// India Post's.
    pub post: String,
    /// The vaccination programme's.
    pub vaccination: String,
}

impl Default for CustomerCare {
    fn default() -> Self {
        CustomerCare {
            post: "1800 266 6868".into(),
            vaccination: "1075".into(),
        }
    }
}

/// How SMS leave the office.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// `file`, `http`, `msdg` (C-DAC's Mobile Seva), `nic` (NIC's gateway)
    /// or `template` (a request configured in `[sms.request]`).
    pub sender: String,
    /// The file sender's CSV, relative to the office directory.
    pub file: String,
    /// The gateway's URL (`http` sender).
    pub url: Option<String>,
    /// The environment variable holding the gateway's API key.
    pub api_key_env: String,
    /// The environment variable holding the delivery callback's secret.
    pub callback_secret_env: String,
    /// TRAI DLT sender id (header).
    pub sender_id: Option<String>,
    /// DLT principal entity id.
    pub entity_id: Option<String>,
    /// The department's user name at the gateway (`msdg`, `nic`).
    pub username: Option<String>,
    /// The environment variable holding the gateway password (`msdg`).
    pub password_env: Option<String>,
    /// The environment variable holding the department's secure key
    /// (`msdg`).
    pub secure_key_env: Option<String>,
    /// The environment variable holding the gateway pin (`nic`).
    pub pin_env: Option<String>,
    /// The request the `template` sender makes.
    pub request: Option<crate::sms::template::RequestTemplate>,
    /// DLT content template ids: `programme.purpose.language` to id.
    pub templates: BTreeMap<String, String>,
    /// Seconds to wait for the gateway.
    pub timeout_seconds: u64,
    /// Attempts per message before it is marked failed.
    pub max_attempts: u32,
    /// First wait between attempts, milliseconds (doubling).
    pub backoff_ms: u64,
    /// Messages in flight at once when sending (1 to 64).
    pub concurrency: usize,
    /// Stop sending after this many messages in a row end on the gateway's
    /// failure (no answer, timeouts); the rest stay queued. 0: never stop.
    pub breaker_failures: u32,
    /// How often `handover office serve` sends the outbox in the
    /// background, seconds; 0: never (`handover office sms send` does).
    /// Several servers on one store may all send: each message is claimed
    /// by one of them.
    pub send_every_seconds: u64,
}

impl Default for SmsSettings {
    fn default() -> Self {
        SmsSettings {
            sender: "file".into(),
            file: "sms.csv".into(),
            url: None,
            api_key_env: "HANDOVER_SMS_API_KEY".into(),
            callback_secret_env: "HANDOVER_SMS_CALLBACK_SECRET".into(),
            sender_id: None,
            entity_id: None,
            username: None,
            password_env: None,
            secure_key_env: None,
            pin_env: None,
            request: None,
            templates: BTreeMap::new(),
            timeout_seconds: 10,
            max_attempts: 4,
            backoff_ms: 500,
            concurrency: 8,
            breaker_failures: 5,
            send_every_seconds: 5,
        }
    }
}

/// The environment variable the command line reads the PostgreSQL URL
/// from, and that `office init` records in `database_url_env` when the URL
/// holds a password.
pub const DATABASE_URL_ENV: &str = "HANDOVER_DATABASE_URL";

/// Whether a PostgreSQL connection string holds a password: a URL's
/// `user:password@` or `password=` parameter, or a `password=` keyword.
/// Such a string must not be on a command line (`ps` shows it to every
/// user) nor in a file the office writes.
pub fn url_has_password(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            let (authority, query) = match rest.split_once('?') {
                Some((a, q)) => (a, q),
                None => (rest, ""),
            };
            let authority = authority.split('/').next().unwrap_or("");
            let in_userinfo = authority
                .rsplit_once('@')
                .is_some_and(|(userinfo, _)| userinfo.contains(':'));
            let in_query = query
                .split('&')
                .any(|kv| kv.trim_start().starts_with("password="));
            return in_userinfo || in_query;
        }
    }
    lower
        .split_whitespace()
        .any(|kv| kv.starts_with("password=") || kv.starts_with("password ="))
        || lower.contains("password =")
}

/// Each named setting is given and not empty.
fn required(settings: &[(&str, &Option<String>)]) -> std::result::Result<(), String> {
    match settings
        .iter()
        .find(|(_, v)| v.as_deref().is_none_or(str::is_empty))
    {
        Some((name, _)) => Err(format!("{name} is needed by this sender")),
        None => Ok(()),
    }
}

impl Config {
    /// Read `office.toml` from `dir`; the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Config> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(crate::error::io(&path)(e)),
        };
        let config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            why: where_in(&text, e.span()).map_or_else(
                || e.message().to_owned(),
                |at| format!("{at}: {}", e.message()),
            ),
        })?;
        config.check().map_err(|why| Error::Config { path, why })?;
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self
            .office
            .database_url
            .as_deref()
            .is_some_and(url_has_password)
        {
            return Err(format!(
                "office.database_url holds a password: name an environment variable that holds \
                 the URL in office.database_url_env (e.g. {DATABASE_URL_ENV}), or keep the \
                 password in PostgreSQL's password file (~/.pgpass)"
            ));
        }
        self.default_language()
            .map_err(|_| "office.language: en, hi or hi+en".to_owned())?;
        if let Some(url) = &self.office.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                return Err(format!(
                    "office.public_url: the address phones reach the service at, e.g. https://po411001.example:8443; got {url}"
                ));
            }
        }
        match self.sms.sender.as_str() {
            "file" => {}
            "http" => {
                for (name, v) in [
                    ("sms.url", &self.sms.url),
                    ("sms.sender_id", &self.sms.sender_id),
                    ("sms.entity_id", &self.sms.entity_id),
                ] {
                    if v.as_deref().is_none_or(str::is_empty) {
                        return Err(format!("{name} is needed by the http sender"));
                    }
                }
            }
            "msdg" => required(&[
                ("sms.url", &self.sms.url),
                ("sms.username", &self.sms.username),
                ("sms.password_env", &self.sms.password_env),
                ("sms.secure_key_env", &self.sms.secure_key_env),
                ("sms.sender_id", &self.sms.sender_id),
            ])?,
            "nic" => required(&[
                ("sms.url", &self.sms.url),
                ("sms.username", &self.sms.username),
                ("sms.pin_env", &self.sms.pin_env),
                ("sms.sender_id", &self.sms.sender_id),
                ("sms.entity_id", &self.sms.entity_id),
            ])?,
            "template" => {
                if self.sms.request.is_none() {
                    return Err("[sms.request] is needed by the template sender".into());
                }
            }
            _ => return Err("sms.sender: file, http, msdg, nic or template".into()),
        }
        if self.sms.max_attempts == 0 || self.sms.max_attempts > 20 {
            return Err("sms.max_attempts: 1 to 20".into());
        }
        if self.sms.concurrency == 0 || self.sms.concurrency > 64 {
            return Err("sms.concurrency: 1 to 64".into());
        }
        Ok(())
    }

    /// The PostgreSQL URL the settings name, if any.
    pub fn database_url(&self) -> Result<Option<String>> {
        if let Some(url) = &self.office.database_url {
            return Ok(Some(url.clone()));
        }
        match &self.office.database_url_env {
            Some(var) => std::env::var(var).map(Some).map_err(|_| Error::Config {
                path: FILE.into(),
                why: format!("office.database_url_env names {var}, which is not set"),
            }),
            None => Ok(None),
        }
    }

    /// The language of bookings that do not say.
    pub fn default_language(&self) -> Result<Language> {
        self.office.language.parse()
    }
}

/// `line N, key K` of the byte range a TOML error points at: the key the
/// line sets, or the table it opens.
fn where_in(text: &str, span: Option<std::ops::Range<usize>>) -> Option<String> {
    let start = span?.start.min(text.len());
    let line_no = text.get(..start)?.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let key = if line.starts_with('[') {
        line.trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_owned()
    } else {
        line.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned()
    };
    Some(if key.is_empty() {
        format!("line {line_no}")
    } else {
        format!("line {line_no}, key `{key}`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(toml_text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), toml_text).unwrap();
        Config::load(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = error_of("[office]\nlanguage = \"en\"\n\n[sms]\nsendr = \"file\"\n");
        assert!(
            e.contains("line 5, key `sendr`: unknown field `sendr`"),
            "{e}"
        );
        let e = error_of("[sms]\ntimeout_seconds = \"ten\"\n");
        assert!(e.contains("line 2, key `timeout_seconds`"), "{e}");
        let e = error_of("[smss]\nsender = \"file\"\n");
        assert!(e.contains("line 1, key `smss`"), "{e}");
        let e = error_of("[sms\n");
        assert!(e.contains("line 1"), "{e}");
    }
}
