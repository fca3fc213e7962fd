//! NIC's SMS gateway (`…/failsafe/MLink`), as departments integrate it: a
//! form-encoded POST of `username`, `pin`, `message`, `mnumber` (with the
//! country code), `signature` (the DLT sender id), `dlt_entity_id` and
//! `dlt_template_id`; Unicode text (Hindi) as UTF-8 with `msgType=UC`. The
//! answer is a line of text: `Message Accepted for Request ID=…~code=API000
//! & info=Platform accepted & Time =…`, or `Message Rejected for Request
//! ID=…~code=API-3& info=REJECTED: Empty mnumber& Time = …`.
//!
//! The pin comes from an environment variable that `office.toml` names.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::gateway::{env_secret, form_post, Answer};
use super::segments::Encoding;
use super::sender::{Attempt, Outgoing, Sender};
use crate::config::SmsSettings;
use crate::error::{Error, Result};

/// Sends through NIC's gateway (see the module docs).
pub struct NicSender {
    agent: ureq::Agent,
    url: String,
    username: String,
    pin: Zeroizing<String>,
    sender_id: String,
    entity_id: String,
    templates: BTreeMap<String, String>,
}

impl NicSender {
    /// The sender `settings` describe, its pin from the environment.
    pub fn from_settings(settings: &SmsSettings) -> Result<NicSender> {
        let need =
            |v: &Option<String>, what: &'static str| v.clone().ok_or(Error::SmsSetting(what));
        Ok(NicSender {
            agent: super::gateway::agent(settings),
            url: need(&settings.url, "sms.url")?,
            username: need(&settings.username, "sms.username")?,
            pin: env_secret(&settings.pin_env, "sms.pin_env")?,
            sender_id: need(&settings.sender_id, "sms.sender_id")?,
            entity_id: need(&settings.entity_id, "sms.entity_id")?,
            templates: settings.templates.clone(),
        })
    }
}

/// The part of `text` after `key=`, up to `~`, `&` or the end.
fn field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let start = text.find(key)? + key.len();
    let rest = text[start..].trim_start().strip_prefix('=')?;
    let end = rest.find(['~', '&']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// The gateway's answer as an attempt.
pub fn read_answer(answer: &Answer) -> Attempt {
    if let Some(retry) = answer.http_retry() {
        return retry;
    }
    let text = answer.text.trim();
    let code = field(text, "code").unwrap_or("");
    let info = field(text, "info").unwrap_or("");
    if text.starts_with("Message Accepted") {
        let id = field(text, "Request ID")
            .filter(|id| !id.is_empty())
            .map(|id| id.chars().take(100).collect());
        return Attempt::Sent { gateway_id: id };
    }
    let why = super::delivery::clean_reason(&format!("nic {code}: {info}"));
    if text.starts_with("Message Rejected") {
        Attempt::Refused(why)
    } else {
        Attempt::Refused(format!(
            "nic: an answer that is not the gateway's: {}",
            super::delivery::clean_reason(text)
        ))
    }
}

impl Sender for NicSender {
    fn send(&self, m: &Outgoing<'_>) -> Attempt {
        let template_id = match super::gateway::template_id(&self.templates, m) {
            Ok(id) => id,
            Err(refused) => return refused,
        };
        let mnumber = format!("91{}", m.mobile);
        let mut form = vec![
            ("username", self.username.as_str()),
            ("pin", self.pin.as_str()),
            ("message", m.text),
            ("mnumber", mnumber.as_str()),
            ("signature", self.sender_id.as_str()),
            ("dlt_entity_id", self.entity_id.as_str()),
            ("dlt_template_id", template_id),
        ];
        if m.encoding == Encoding::Ucs2 {
            form.push(("msgType", "UC"));
        }
        form_post(&self.agent, &self.url, &form, read_answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_departments_see_them() {
        let ok = Answer::ok;
        assert_eq!(
            read_answer(&ok("Message Accepted for Request ID=70414170921368011248849~code=API000 & info=Platform accepted & Time =2014/11/27/18/12")),
            Attempt::Sent { gateway_id: Some("70414170921368011248849".into()) }
        );
        assert_eq!(
            read_answer(&ok("Message Rejected for Request ID= ~code=API-3& info=REJECTED: Empty mnumber& Time = 2014/11/27/19/47")),
            Attempt::Refused("nic API-3: REJECTED: Empty mnumber".into())
        );
        assert!(matches!(
            read_answer(&ok("<html>proxy</html>")),
            Attempt::Refused(_)
        ));
    }
}
