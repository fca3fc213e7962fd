//! Senders: where a rendered SMS goes.
//!
//! * [`FileSender`] (`file`): appends `mobile,reference,message` to a CSV
//!   file (mode 0600, never through a symlink), for offices with no gateway
//!   and for tests. The file is the gateway: it holds the codes until the
//!   operator sends them and deletes it.
//! * C-DAC's Mobile Seva ([`super::msdg`], `msdg`), NIC's gateway
//!   ([`super::nic`], `nic`) and any other gateway through a configured
//!   request ([`super::template`], `template`): the government gateways'
//!   own APIs.
//! * [`HttpSender`] (`http`): POSTs each message as JSON to an SMS gateway,
//!   with what TRAI's DLT rules require of an Indian sender: the registered
//!   header (sender id), the principal entity id and the content template id
//!   of the template. The API key comes from an environment variable and is
//!   sent as a bearer token. The gateway's message id is kept, for its
//!   delivery reports (`POST /v1/sms/status`).
//!
//! The gateway request:
//!
//! ```json
//! {"to": "919876543210", "sender_id": "INPOST", "entity_id": "1101…", "template_id": "1107…",
//!  "unicode": false, "text": "India Post: …", "client_ref": "handover-42"}
//! ```
//!
//! A 2xx answer is sent (its JSON `message_id` kept when there is one); 408,
//! 429, 5xx and no answer are tried again later; any other 4xx is a refusal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::segments::Encoding;
use crate::config::SmsSettings;
use crate::error::{Error, Result};

/// One message on its way out. `Debug` shows neither the number nor the text.
pub struct Outgoing<'a> {
    /// The outbox row.
    pub id: i64,
    /// Full mobile number (10 digits).
    pub mobile: &'a str,
    /// The item.
    pub reference: &'a str,
    /// The text; for a code message it holds the code.
    pub text: &'a str,
    /// How it goes on the air.
    pub encoding: Encoding,
    /// `programme.purpose.language`, the key of its DLT template id.
    pub template: &'a str,
}

impl std::fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Handed to the gateway; its message id, if it gave one.
    Sent {
        /// The gateway's message id.
        gateway_id: Option<String>,
    },
    /// Refused for good (no point trying again).
    Refused(String),
    /// Not now (no answer, overloaded): try again.
    Later(String),
}

/// Somewhere SMS go.
pub trait Sender: Send + Sync {
    /// Try to send one message once.
    fn send(&self, message: &Outgoing<'_>) -> Attempt;

    /// Whether several messages may be in flight at once (a gateway);
    /// false keeps the outbox's order (a file someone reads).
    fn in_parallel(&self) -> bool {
        true
    }
}

/// Appends to a CSV file (see the module docs).
pub struct FileSender {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSender {
    /// A sender appending to `path`.
    pub fn new(path: PathBuf) -> FileSender {
        FileSender {
            path,
            lock: Mutex::new(()),
        }
    }
}

impl Sender for FileSender {
    fn in_parallel(&self) -> bool {
        false
    }

    fn send(&self, m: &Outgoing<'_>) -> Attempt {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let row = super::file::Sms {
            mobile: m.mobile.to_owned(),
            reference: m.reference.to_owned(),
            message: m.text.to_owned(),
            code: String::new(),
        };
        // A file that cannot be written now will not be in a second:
        // refused, kept on record, sent again on request.
        match super::file::write_sms_csv(&self.path, std::slice::from_ref(&row)) {
            Ok(()) => Attempt::Sent { gateway_id: None },
            Err(e) => Attempt::Refused(e.to_string()),
        }
    }
}

#[derive(Serialize)]
struct GatewayRequest<'a> {
    to: String,
    sender_id: &'a str,
    entity_id: &'a str,
    template_id: &'a str,
    unicode: bool,
    text: &'a str,
    client_ref: String,
}

#[derive(Deserialize)]
struct GatewayAnswer {
    #[serde(default)]
    message_id: Option<String>,
}

/// POSTs to an SMS gateway (see the module docs).
pub struct HttpSender {
    agent: ureq::Agent,
    url: String,
    api_key: Zeroizing<String>,
    sender_id: String,
    entity_id: String,
    templates: BTreeMap<String, String>,
}

impl HttpSender {
    /// The sender `settings` describe, with the API key from the environment.
    pub fn from_settings(settings: &SmsSettings) -> Result<HttpSender> {
        let missing = |what: &'static str| Error::SmsSetting(what);
        let api_key = std::env::var(&settings.api_key_env).map_err(|_| Error::SecretNotSet {
            var: settings.api_key_env.clone(),
            setting: "sms.api_key_env",
        })?;
        Ok(HttpSender {
            agent: super::gateway::agent(settings),
            url: settings.url.clone().ok_or(missing("sms.url"))?,
            api_key: Zeroizing::new(api_key),
            sender_id: settings.sender_id.clone().ok_or(missing("sms.sender_id"))?,
            entity_id: settings.entity_id.clone().ok_or(missing("sms.entity_id"))?,
            templates: settings.templates.clone(),
        })
    }
}

impl Sender for HttpSender {
    fn send(&self, m: &Outgoing<'_>) -> Attempt {
        let template_id = match super::gateway::template_id(&self.templates, m) {
            Ok(id) => id,
            Err(refused) => return refused,
        };
        let body = GatewayRequest {
            to: format!("91{}", m.mobile),
            sender_id: &self.sender_id,
            entity_id: &self.entity_id,
            template_id,
            unicode: m.encoding == Encoding::Ucs2,
            text: m.text,
            client_ref: format!("handover-{}", m.id),
        };
        let Ok(json) = serde_json::to_vec(&body) else {
            return Attempt::Refused("could not encode the gateway request".into());
        };
        let resp = self
            .agent
            .post(&self.url)
            .header(
                "authorization",
                &format!("Bearer {}", self.api_key.as_str()),
            )
            .header("content-type", "application/json")
            .send(&json[..]);
        let answer = match super::gateway::read(resp) {
            Ok(answer) => answer,
            Err(later) => return later,
        };
        if let Some(retry) = answer.http_retry() {
            return retry;
        }
        Attempt::Sent {
            gateway_id: serde_json::from_str::<GatewayAnswer>(&answer.text)
                .ok()
                .and_then(|a| a.message_id)
                .map(|id| id.chars().take(100).collect()),
        }
    }
}
