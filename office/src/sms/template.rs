//! A configurable request for any other gateway, as DHIS2's generic HTTP
//! SMS gateway does: `office.toml`'s `[sms.request]` gives the method, the
//! URL, the body (form, JSON or none) with its parameters, the headers, and
//! how to read the answer.
//!
//! ```toml
//! [sms]
//! sender = "template"
//! sender_id = "INPOST"
//! entity_id = "1101234567890123456"
//!
//! [sms.request]
//! method = "POST"
//! url = "https://gateway.example/api/send"
//! body = "json"                              # form, json or none (query in the URL)
//! success_regex = '"status"\s*:\s*"ok"'      # besides a 2xx status (optional)
//! message_id_pointer = "/data/id"            # or message_id_regex = 'id=(\w+)'
//!
//! [sms.request.params]
//! to = "{mobile_with_country}"
//! text = "{text}"
//! dlt_template_id = "{template_id}"
//! unicode = "{unicode}"
//!
//! [sms.request.headers]
//! authorization = "Bearer {env:GATEWAY_API_KEY}"
//! ```
//!
//! Placeholders: `{mobile}` (10 digits), `{mobile_with_country}` (`91…`),
//! `{text}`, `{template_id}`, `{entity_id}`, `{sender_id}`, `{unicode}`
//! (`true` or `false`), and `{env:NAME}` for a secret in the environment
//! variable `NAME` (never in the file). In the URL each value is
//! percent-encoded. An unknown placeholder is refused when the sender is
//! made, before any message goes.

use std::collections::BTreeMap;

use handover_core::api::percent_encode;
use serde::Deserialize;

use super::gateway::{read, Answer};
use super::segments::Encoding;
use super::sender::{Attempt, Outgoing, Sender};
use crate::config::SmsSettings;
use crate::error::{Error, Result};

/// `[sms.request]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestTemplate {
    /// `GET` or `POST` (the default).
    pub method: Option<String>,
    /// The URL, a template.
    pub url: String,
    /// `form` (the default), `json`, or `none`.
    pub body: Option<String>,
    /// Body parameters (or nothing, with `none`): name to template.
    pub params: BTreeMap<String, String>,
    /// Headers: name to template.
    pub headers: BTreeMap<String, String>,
    /// A regular expression the answer's body must match to count as sent
    /// (besides a 2xx status).
    pub success_regex: Option<String>,
    /// A regular expression whose first group is the message id.
    pub message_id_regex: Option<String>,
    /// A JSON pointer (RFC 6901) to the message id in a JSON answer.
    pub message_id_pointer: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Form,
    Json,
    None,
}

/// Sends the configured request (see the module docs).
pub struct TemplateSender {
    agent: ureq::Agent,
    post: bool,
    body: Body,
    request: RequestTemplate,
    success: Option<regex::Regex>,
    message_id: Option<regex::Regex>,
    sender_id: String,
    entity_id: String,
    templates: BTreeMap<String, String>,
}

/// The values a message fills its request with.
struct Values<'a> {
    mobile: &'a str,
    text: &'a str,
    template_id: &'a str,
    entity_id: &'a str,
    sender_id: &'a str,
    unicode: bool,
}

/// `template` with its placeholders filled, each value through `encode`.
/// An unknown placeholder or an unset variable is an error naming it.
fn fill(
    template: &str,
    v: &Values<'_>,
    encode: &dyn Fn(&str) -> String,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("an unclosed placeholder in {template:?}"))?;
        let name = &after[..close];
        let value = match name {
            "mobile" => v.mobile.to_owned(),
            "mobile_with_country" => format!("91{}", v.mobile),
            "text" => v.text.to_owned(),
            "template_id" => v.template_id.to_owned(),
            "entity_id" => v.entity_id.to_owned(),
            "sender_id" => v.sender_id.to_owned(),
            "unicode" => v.unicode.to_string(),
            _ => match name.strip_prefix("env:") {
                Some(var) => std::env::var(var)
                    .map_err(|_| format!("the environment variable {var} is not set"))?,
                None => return Err(format!("an unknown placeholder {{{name}}}")),
            },
        };
        out.push_str(&encode(&value));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl TemplateSender {
    /// The sender `settings` describe; every template is tried once with
    /// stand-in values, so a mistake shows before the first message.
    pub fn from_settings(settings: &SmsSettings) -> Result<TemplateSender> {
        let bad = |why: String| Error::SmsTemplate(why);
        let request = settings
            .request
            .clone()
            .ok_or(Error::SmsSetting("[sms.request]"))?;
        let post = match request.method.as_deref().unwrap_or("POST") {
            "POST" | "post" => true,
            "GET" | "get" => false,
            _ => return Err(bad("sms.request.method: GET or POST".into())),
        };
        let body = match request.body.as_deref().unwrap_or("form") {
            "form" => Body::Form,
            "json" => Body::Json,
            "none" => Body::None,
            _ => return Err(bad("sms.request.body: form, json or none".into())),
        };
        let regex = |r: &Option<String>, what: &str| {
            r.as_deref()
                .map(|r| regex::Regex::new(r).map_err(|e| bad(format!("{what}: {e}"))))
                .transpose()
        };
        let sender = TemplateSender {
            agent: super::gateway::agent(settings),
            post,
            body,
            success: regex(&request.success_regex, "sms.request.success_regex")?,
            message_id: regex(&request.message_id_regex, "sms.request.message_id_regex")?,
            request,
            sender_id: settings.sender_id.clone().unwrap_or_default(),
            entity_id: settings.entity_id.clone().unwrap_or_default(),
            templates: settings.templates.clone(),
        };
        let stand_in = Values {
            mobile: "9999999999",
            text: "test",
            template_id: "0",
            entity_id: "0",
            sender_id: "TEST",
            unicode: false,
        };
        sender.build(&stand_in).map_err(bad)?;
        Ok(sender)
    }

    /// The URL, headers and body for `v`.
    #[allow(clippy::type_complexity)]
    fn build(
        &self,
        v: &Values<'_>,
    ) -> std::result::Result<
        (
            String,
            Vec<(String, String)>,
            Option<(Vec<u8>, &'static str)>,
        ),
        String,
    > {
        let plain = |s: &str| s.to_owned();
        let url = fill(&self.request.url, v, &percent_encode)?;
        let headers = self
            .request
            .headers
            .iter()
            .map(|(k, t)| Ok((k.clone(), fill(t, v, &plain)?)))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let params = self
            .request
            .params
            .iter()
            .map(|(k, t)| Ok((k.clone(), fill(t, v, &plain)?)))
            .collect::<std::result::Result<Vec<(String, String)>, String>>()?;
        let body = match self.body {
            Body::None => None,
            Body::Form => Some((
                params
                    .iter()
                    .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes(),
                "application/x-www-form-urlencoded",
            )),
            Body::Json => Some((
                serde_json::to_vec(&params.into_iter().collect::<BTreeMap<_, _>>())
                    .map_err(|e| e.to_string())?,
                "application/json",
            )),
        };
        Ok((url, headers, body))
    }

    /// The answer as an attempt.
    fn read_answer(&self, answer: &Answer) -> Attempt {
        if let Some(retry) = answer.http_retry() {
            return retry;
        }
        if let Some(success) = &self.success {
            if !success.is_match(&answer.text) {
                return Attempt::Refused(format!(
                    "the gateway's answer does not say sent: {}",
                    super::delivery::clean_reason(&answer.text)
                ));
            }
        }
        let from_regex = self.message_id.as_ref().and_then(|r| {
            r.captures(&answer.text)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_owned())
        });
        let from_pointer = self.request.message_id_pointer.as_deref().and_then(|p| {
            serde_json::from_str::<serde_json::Value>(&answer.text)
                .ok()
                .and_then(|json| {
                    json.pointer(p).map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                })
        });
        Attempt::Sent {
            gateway_id: from_regex
                .or(from_pointer)
                .map(|id| id.chars().take(100).collect()),
        }
    }
}

impl Sender for TemplateSender {
    fn send(&self, m: &Outgoing<'_>) -> Attempt {
        let template_id = match super::gateway::template_id(&self.templates, m) {
            Ok(id) => id,
            Err(refused) => return refused,
        };
        let values = Values {
            mobile: m.mobile,
            text: m.text,
            template_id,
            entity_id: &self.entity_id,
            sender_id: &self.sender_id,
            unicode: m.encoding == Encoding::Ucs2,
        };
        let (url, headers, body) = match self.build(&values) {
            Ok(built) => built,
            Err(why) => return Attempt::Refused(format!("sms.request: {why}")),
        };
        let resp = if self.post {
            let mut req = self.agent.post(&url);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match body {
                Some((bytes, kind)) => req.header("content-type", kind).send(&bytes[..]),
                None => req.send_empty(),
            }
        } else {
            let mut req = self.agent.get(&url);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.call()
        };
        match read(resp) {
            Ok(answer) => self.read_answer(&answer),
            Err(later) => later,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_and_unknown_ones_are_refused() {
        let v = Values {
            mobile: "9876543210",
            text: "कोड 12 & more",
            template_id: "1107",
            entity_id: "1101",
            sender_id: "INPOST",
            unicode: true,
        };
        assert_eq!(
            fill("{mobile_with_country}/{unicode}/{sender_id}", &v, &|s| s
                .to_owned())
            .unwrap(),
            "919876543210/true/INPOST"
        );
        assert_eq!(
            fill("t={text}", &v, &percent_encode).unwrap(),
            "t=%E0%A4%95%E0%A5%8B%E0%A4%A1%2012%20%26%20more"
        );
        assert!(fill("{phone}", &v, &percent_encode)
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(
            fill("{env:HANDOVER_NO_SUCH_VARIABLE_X}", &v, &percent_encode)
                .unwrap_err()
                .contains("not set")
        );
        assert!(fill("{text", &v, &percent_encode).is_err());
    }
}
