//! C-DAC's Mobile Seva gateway (MSDG), its DLT push
//! (`…/esms/sendsmsrequestDLT`), as its integration document (version 1.8)
//! describes it:
//!
//! * a form-encoded POST of `username`, `password` (the SHA-1 hex of the
//!   department's password, which is how the gateway takes it), `senderid`,
//!   `content`, `smsservicetype` (`singlemsg`, or `unicodemsg` for Hindi),
//!   `mobileno`, `templateid` and `key`;
//! * `key` = SHA-512 hex of username + sender id + content + the
//!   department's secure key, each trimmed;
//! * Unicode content as the gateway documents it: every UTF-16 unit of the
//!   text written `&#N;`, the key computed over that encoded content;
//! * the answer is a line of text: `402,MsgID = 150620161466003974245msdgsms`
//!   for a message accepted, another three-digit code for anything else.
//!
//! The password and the secure key come from environment variables that
//! `office.toml` names; neither is ever written or logged.

use std::collections::BTreeMap;

use ring::digest;
use zeroize::Zeroizing;

use super::gateway::{env_secret, form_post, hex, Answer};
use super::segments::Encoding;
use super::sender::{Attempt, Outgoing, Sender};
use crate::config::SmsSettings;
use crate::error::{Error, Result};

/// What each of the gateway's answer codes means, and whether trying again
/// could help. 402 is success.
const CODES: &[(u16, &str, Retry)] = &[
    (
        401,
        "credentials error: wrong username or password",
        Retry::No,
    ),
    (403, "credits not available", Retry::No),
    (404, "internal database error", Retry::Later),
    (405, "internal networking error", Retry::Later),
    (406, "invalid or duplicate numbers", Retry::No),
    (407, "network error on the SMSC", Retry::Later),
    (408, "network error on the SMSC", Retry::Later),
    (
        409,
        "the SMSC timed out; the message will be submitted",
        Retry::Accepted,
    ),
    (410, "internal limit exceeded", Retry::Later),
    (411, "sender id not approved", Retry::No),
    (412, "sender id not approved", Retry::No),
    (413, "suspected spam", Retry::No),
    (414, "rejected by the operator (DND, spam)", Retry::No),
    (415, "secure key not available", Retry::No),
    (416, "hash does not match", Retry::No),
    (417, "too many numbers for this service type", Retry::No),
    (418, "daily limit exceeded", Retry::Later),
    (422, "entity id should be 12 to 19 digits", Retry::No),
    (
        423,
        "template id is mandatory and must be 12 or 19 digits",
        Retry::No,
    ),
    (425, "secure key is mandatory", Retry::No),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Retry {
    No,
    Later,
    /// The gateway took the message: trying again could send it twice.
    Accepted,
}

/// Sends through MSDG (see the module docs).
pub struct MsdgSender {
    agent: ureq::Agent,
    url: String,
    username: String,
    password_sha1: String,
    secure_key: Zeroizing<String>,
    sender_id: String,
    templates: BTreeMap<String, String>,
}

impl MsdgSender {
    /// The sender `settings` describe, its secrets from the environment.
    pub fn from_settings(settings: &SmsSettings) -> Result<MsdgSender> {
        let need =
            |v: &Option<String>, what: &'static str| v.clone().ok_or(Error::SmsSetting(what));
        let password = env_secret(&settings.password_env, "sms.password_env")?;
        Ok(MsdgSender {
            agent: super::gateway::agent(settings),
            url: need(&settings.url, "sms.url")?,
            username: need(&settings.username, "sms.username")?,
            password_sha1: hex(digest::digest(
                &digest::SHA1_FOR_LEGACY_USE_ONLY,
                password.as_bytes(),
            )
            .as_ref()),
            secure_key: env_secret(&settings.secure_key_env, "sms.secure_key_env")?,
            sender_id: need(&settings.sender_id, "sms.sender_id")?,
            templates: settings.templates.clone(),
        })
    }
}

/// `text` as MSDG takes Unicode content: each UTF-16 unit as `&#N;`.
pub fn unicode_content(text: &str) -> String {
    text.trim()
        .encode_utf16()
        .map(|u| format!("&#{u};"))
        .collect()
}

/// The request's `key`: SHA-512 hex of username + sender id + content +
/// secure key, each trimmed.
pub fn request_key(username: &str, sender_id: &str, content: &str, secure_key: &str) -> String {
    let text = format!(
        "{}{}{}{}",
        username.trim(),
        sender_id.trim(),
        content.trim(),
        secure_key.trim()
    );
    hex(digest::digest(&digest::SHA512, text.as_bytes()).as_ref())
}

/// The gateway's answer as an attempt.
pub fn read_answer(answer: &Answer) -> Attempt {
    if let Some(retry) = answer.http_retry() {
        return retry;
    }
    let text = answer.text.trim();
    // "402,MsgID = 1506…msdgsms", or "ERROR : 406 Invalid mobile number".
    let digits: String = text
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Ok(code) = digits.parse::<u16>() else {
        return Attempt::Refused(format!(
            "msdg: an answer without a code: {}",
            super::delivery::clean_reason(text)
        ));
    };
    if code == 402 {
        let id = text
            .split_once("MsgID")
            .and_then(|(_, rest)| rest.trim_start().strip_prefix('='))
            .map(|id| id.trim().chars().take(100).collect::<String>())
            .filter(|id| !id.is_empty());
        return Attempt::Sent { gateway_id: id };
    }
    match CODES.iter().find(|(c, ..)| *c == code) {
        Some((_, _, Retry::Accepted)) => Attempt::Sent { gateway_id: None },
        Some((c, meaning, Retry::Later)) => Attempt::Later(format!("msdg {c}: {meaning}")),
        Some((c, meaning, Retry::No)) => Attempt::Refused(format!("msdg {c}: {meaning}")),
        None => Attempt::Refused(format!(
            "msdg {code}: {}",
            super::delivery::clean_reason(text)
        )),
    }
}

impl Sender for MsdgSender {
    fn send(&self, m: &Outgoing<'_>) -> Attempt {
        let template_id = match super::gateway::template_id(&self.templates, m) {
            Ok(id) => id,
            Err(refused) => return refused,
        };
        let (content, service) = match m.encoding {
            Encoding::Ucs2 => (unicode_content(m.text), "unicodemsg"),
            Encoding::Gsm7 => (m.text.trim().to_owned(), "singlemsg"),
        };
        let key = request_key(&self.username, &self.sender_id, &content, &self.secure_key);
        let form = [
            ("username", self.username.as_str()),
            ("password", self.password_sha1.as_str()),
            ("senderid", self.sender_id.as_str()),
            ("content", content.as_str()),
            ("smsservicetype", service),
            ("mobileno", m.mobile),
            ("templateid", template_id),
            ("key", key.as_str()),
        ];
        form_post(&self.agent, &self.url, &form, read_answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_the_document_gives_them() {
        let ok = Answer::ok;
        assert_eq!(
            read_answer(&ok("402,MsgID = 150620161466003974245msdgsms\r\n")),
            Attempt::Sent {
                gateway_id: Some("150620161466003974245msdgsms".into())
            }
        );
        assert_eq!(
            read_answer(&ok("416,Hash doesn't match")),
            Attempt::Refused("msdg 416: hash does not match".into())
        );
        assert_eq!(
            read_answer(&ok("ERROR : 406 Invalid mobile number")),
            Attempt::Refused("msdg 406: invalid or duplicate numbers".into())
        );
        assert!(matches!(read_answer(&ok("405,")), Attempt::Later(_)));
        assert_eq!(
            read_answer(&ok("409,")),
            Attempt::Sent { gateway_id: None },
            "accepted: never sent twice"
        );
        assert!(matches!(
            read_answer(&Answer {
                status: 503,
                text: String::new()
            }),
            Attempt::Later(_)
        ));
    }

    #[test]
    fn unicode_content_is_every_utf16_unit() {
        assert_eq!(
            unicode_content(" कोड 1 "),
            "&#2325;&#2379;&#2337;&#32;&#49;"
        );
    }
}
