//! What every HTTP gateway sender shares: the agent with the configured
//! timeout, secrets from the environment, a form POST, and reading the
//! answer's status: a 408, 429, 5xx or no answer is tried again later
//! (the API's one rule, `handover_core::api::retry_later`), any other
//! non-2xx status is a refusal with the gateway's own words kept (cleaned
//! and capped) as the reason.

use std::time::Duration;

use zeroize::Zeroizing;

use super::sender::Attempt;
use crate::config::SmsSettings;
use crate::error::{Error, Result};

/// A gateway's answer: status and text (at most 64 KiB read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as text (lossy UTF-8).
    pub text: String,
}

impl Answer {
    /// A 200 answer with `text` (tests of the answer readers).
    #[cfg(test)]
    pub fn ok(text: &str) -> Answer {
        Answer {
            status: 200,
            text: text.into(),
        }
    }

    /// The attempt a non-2xx status makes, or `None` for a 2xx.
    pub fn http_retry(&self) -> Option<Attempt> {
        match self.status {
            200..=299 => None,
            s if handover_core::api::retry_later(s) => {
                Some(Attempt::Later(format!("the gateway answered {s}")))
            }
            s => Some(Attempt::Refused(format!(
                "the gateway refused the message ({s}): {}",
                super::delivery::clean_reason(&self.text)
            ))),
        }
    }
}

/// An agent that waits `timeout_seconds` for the gateway and reads every
/// status as an answer.
pub fn agent(settings: &SmsSettings) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(settings.timeout_seconds.max(1))))
        .build()
        .into()
}

/// The secret in the environment variable `var` names; `setting` is the
/// `office.toml` key that names it, for the message.
pub fn env_secret(var: &Option<String>, setting: &'static str) -> Result<Zeroizing<String>> {
    let var = var.as_deref().ok_or(Error::SmsSetting(setting))?;
    std::env::var(var)
        .map(Zeroizing::new)
        .map_err(|_| Error::SecretNotSet {
            var: var.to_owned(),
            setting,
        })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read an answer, or the attempt a transport failure makes.
pub fn read(
    resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> std::result::Result<Answer, Attempt> {
    let mut resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Timeout(_)) => {
            return Err(Attempt::Later("the gateway did not answer in time".into()))
        }
        Err(e) => {
            return Err(Attempt::Later(format!(
                "the gateway could not be reached: {e}"
            )))
        }
    };
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    Ok(Answer {
        status,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// POST `form` (form-encoded) to `url`; the answer through `answer`.
pub fn form_post(
    agent: &ureq::Agent,
    url: &str,
    form: &[(&str, &str)],
    answer: fn(&Answer) -> Attempt,
) -> Attempt {
    match read(agent.post(url).send_form(form.iter().copied())) {
        Ok(a) => answer(&a),
        Err(later) => later,
    }
}

/// The DLT template id of a message's template, or the refusal to send it
/// without one.
pub fn template_id<'t>(
    templates: &'t std::collections::BTreeMap<String, String>,
    m: &super::sender::Outgoing<'_>,
) -> std::result::Result<&'t str, Attempt> {
    templates
        .get(m.template)
        .map(String::as_str)
        .ok_or_else(|| {
            Attempt::Refused(format!(
                "no DLT template id for {} in office.toml",
                m.template
            ))
        })
}
