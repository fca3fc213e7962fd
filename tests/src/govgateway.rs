//! Stand-ins for the government SMS gateways on a loopback port, written
//! from their integration documents (not from our senders): C-DAC's Mobile
//! Seva DLT push and NIC's `failsafe/MLink`. Each checks every field the
//! document requires, the MSDG password's SHA-1 and request key's SHA-512
//! (computed here from the fields received), decodes MSDG's `&#N;` Unicode
//! content, and answers as the real gateway does: accepted with a message
//! id, a hash that does not match, an unknown template, a 5xx, or nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};

/// Which gateway it stands in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// C-DAC's Mobile Seva (`/esms/sendsmsrequestDLT`).
    Msdg,
    /// NIC's gateway (`/failsafe/MLink`).
    Nic,
}

/// What it does with a well-formed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept it.
    Accept,
    /// Answer 503.
    Unavailable,
    /// Hold it and never answer.
    Hang,
}

/// The department's account as the gateway knows it.
#[derive(Clone, Debug)]
pub struct Account {
    /// User name.
    pub username: String,
    /// The password (MSDG) or pin (NIC), in the clear.
    pub secret: String,
    /// MSDG's secure key.
    pub secure_key: String,
    /// The approved sender id.
    pub sender_id: String,
    /// The DLT entity id (NIC).
    pub entity_id: String,
    /// Registered DLT template ids.
    pub templates: Vec<String>,
}

/// A message the gateway accepted: number, text (decoded), template, and
/// whether it went as Unicode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The number as given.
    pub number: String,
    /// The text, decoded.
    pub text: String,
    /// The DLT template id.
    pub template_id: String,
    /// Sent as Unicode.
    pub unicode: bool,
}

struct Inner {
    kind: Kind,
    account: Account,
    behaviour: Mutex<Behaviour>,
    delivered: Mutex<Vec<Delivered>>,
    answers: Mutex<Vec<String>>,
}

/// A running stand-in.
pub struct GovGateway {
    inner: Arc<Inner>,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MSDG's Unicode content back to text: `&#2325;&#2379;…`.
fn decode_entities(content: &str) -> Option<String> {
    let units: Option<Vec<u16>> = content
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| p.strip_prefix("&#").and_then(|n| n.parse().ok()))
        .collect();
    String::from_utf16(&units?).ok()
}

fn msdg(inner: &Inner, f: &HashMap<String, String>) -> String {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let a = &inner.account;
    let sha1 = hex(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        a.secret.as_bytes(),
    )
    .as_ref());
    if get("username") != a.username || get("password") != sha1 {
        return "401,Credentials Error, may be invalid username or password".into();
    }
    if get("senderid") != a.sender_id {
        return "412,Sender ID not approved".into();
    }
    let content = get("content");
    let expected_key = hex(ring::digest::digest(
        &ring::digest::SHA512,
        format!(
            "{}{}{}{}",
            get("username").trim(),
            get("senderid").trim(),
            content.trim(),
            a.secure_key.trim()
        )
        .as_bytes(),
    )
    .as_ref());
    if get("key") != expected_key {
        return "416,Hash doesn't match".into();
    }
    let template = get("templateid");
    if !(template.len() == 12 || template.len() == 19) || !a.templates.iter().any(|t| t == template)
    {
        return "423,TEMPLATE_ID is mandatory and it should be 12 or 19 digit length".into();
    }
    let number = get("mobileno");
    if number.len() != 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return "ERROR : 406 Invalid mobile number".into();
    }
    let (text, unicode) = match get("smsservicetype") {
        "singlemsg" => (content.to_owned(), false),
        "unicodemsg" => match decode_entities(content) {
            Some(t) => (t, true),
            None => return "ERROR : 400 Unicode content is not &#N; entities".into(),
        },
        _ => return "ERROR : 400 unknown smsservicetype".into(),
    };
    let mut delivered = inner.delivered.lock().unwrap();
    delivered.push(Delivered {
        number: number.to_owned(),
        text,
        template_id: template.to_owned(),
        unicode,
    });
    format!("402,MsgID = {:021}msdgsms", delivered.len())
}

fn nic(inner: &Inner, f: &HashMap<String, String>) -> String {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let a = &inner.account;
    let reject = |code: &str, info: &str| {
        format!("Message Rejected for Request ID= ~code={code}& info=REJECTED: {info}& Time = 2026/11/30/12/00")
    };
    if get("username") != a.username || get("pin") != a.secret {
        return reject("API-1", "Invalid username or pin");
    }
    if get("signature") != a.sender_id {
        return reject("API-6", "Invalid signature");
    }
    if get("dlt_entity_id") != a.entity_id {
        return reject("API-31", "Invalid DLT entity id");
    }
    let template = get("dlt_template_id");
    if !a.templates.iter().any(|t| t == template) {
        return reject("API-32", "DLT template not registered");
    }
    let number = get("mnumber");
    if !(number.len() == 12
        && number.starts_with("91")
        && number.bytes().all(|b| b.is_ascii_digit()))
    {
        return reject("API-3", "Empty or invalid mnumber");
    }
    let message = get("message");
    if message.is_empty() {
        return reject("API-4", "Empty message");
    }
    let unicode = get("msgType") == "UC";
    if !unicode && !message.is_ascii() {
        return reject("API-7", "Unicode text without msgType=UC");
    }
    let mut delivered = inner.delivered.lock().unwrap();
    delivered.push(Delivered {
        number: number.to_owned(),
        text: message.to_owned(),
        template_id: template.to_owned(),
        unicode,
    });
    format!(
        "Message Accepted for Request ID={:023}~code=API000 & info=Platform accepted & Time =2026/11/30/12/00",
        delivered.len()
    )
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let behaviour = *inner.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behaviour::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Behaviour::Accept => {
            let answer = match inner.kind {
                Kind::Msdg => msdg(&inner, &f),
                Kind::Nic => nic(&inner, &f),
            };
            inner.answers.lock().unwrap().push(answer.clone());
            (StatusCode::OK, answer).into_response()
        }
    }
}

impl GovGateway {
    /// Start a stand-in for `kind` with `account`.
    pub fn start(kind: Kind, account: Account) -> GovGateway {
        let inner = Arc::new(Inner {
            kind,
            account,
            behaviour: Mutex::new(Behaviour::Accept),
            delivered: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let path = match kind {
            Kind::Msdg => "/esms/sendsmsrequestDLT",
            Kind::Nic => "/failsafe/MLink",
        };
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route(path, post(receive))
            .with_state(inner.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
        GovGateway {
            inner,
            url,
            _runtime: runtime,
        }
    }

    /// The URL to configure as `sms.url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Change what it does.
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.inner.behaviour.lock().unwrap() = b;
    }

    /// The messages it accepted.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.inner.delivered.lock().unwrap().clone()
    }

    /// Every answer it gave to a well-formed request.
    pub fn answers(&self) -> Vec<String> {
        self.inner.answers.lock().unwrap().clone()
    }
}
