//! A device whose key the test holds, so it can sign whatever a modified
//! app would: the office must judge the events, not trust the app.

use chrono::{DateTime, Utc};
use handover_core::codes::{Policy, Programme};
use handover_core::event::{Event, EventBody, EventKind, GENESIS};
use handover_core::keys::SigningKey;
use handover_core::sync::{Batch, BATCH_FORMAT};
use handover_office::issue::Issued;
use handover_office::Office;

/// A rogue device: its key, its chain so far.
pub struct Rogue {
    /// The device key.
    pub key: SigningKey,
    /// The device id.
    pub device_id: String,
    /// The last seq signed.
    pub seq: u64,
    /// The hash of the last event.
    pub hash: [u8; 32],
    /// The last counter (hybrid logical clock) signed.
    pub counter: i64,
    /// Every event signed so far.
    pub events: Vec<Event>,
}

impl Default for Rogue {
    fn default() -> Self {
        Rogue::new()
    }
}

impl Rogue {
    /// A new key and an empty chain.
    pub fn new() -> Rogue {
        let key = SigningKey::generate().expect("key");
        let device_id = key.public_key().device_id();
        Rogue {
            key,
            device_id,
            seq: 0,
            hash: GENESIS,
            counter: 0,
            events: vec![],
        }
    }

    /// Sign the next event of the chain at `time`.
    pub fn push(&mut self, time: DateTime<Utc>, kind: EventKind) -> Event {
        self.counter = (self.counter + 1).max(time.timestamp_millis());
        let body = EventBody {
            device_id: self.device_id.clone(),
            seq: self.seq + 1,
            time,
            counter: self.counter,
            clock_suspect: false,
            kind,
            at: None,
        };
        let e = Event::create(self.hash, &body, &self.key).expect("event");
        self.seq += 1;
        self.hash = e.hash;
        self.events.push(e.clone());
        e
    }

    /// `events` as a batch's bytes.
    pub fn batch(&self, events: Vec<Event>) -> Vec<u8> {
        Batch {
            format: BATCH_FORMAT.into(),
            device_id: self.device_id.clone(),
            device_key: self.key.public_key(),
            events,
            acks: Vec::new(),
        }
        .to_bytes()
        .expect("batch")
    }
}

/// Vaccination bookings CSV of `n` appointments.
pub fn vaccination_csv(n: u32) -> String {
    let mut s = String::from("reference,name,year_of_birth,vaccine,dose,slot,mobile\n");
    for i in 0..n {
        s.push_str(&format!(
            "APPT-{i},Beneficiary {i},1990,Covishield,1,09:00,97{i:08}\n"
        ));
    }
    s
}

/// A rogue's day: an office with a rogue device enrolled and `n` items of
/// `programme` issued to it under `policy`.
pub struct RogueDay {
    /// Keeps the files.
    pub dir: tempfile::TempDir,
    /// The office.
    pub office: Office,
    /// The rogue device.
    pub rogue: Rogue,
    /// The items' references.
    pub references: Vec<String>,
    /// The issue (its SMS carry the codes).
    pub issued: Issued,
}

impl RogueDay {
    /// Set up the day.
    pub fn new(programme: Programme, n: u32, policy: Policy) -> RogueDay {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let office = crate::init_office(&dir.path().join("office"), "PO-1");
        let rogue = Rogue::new();
        office
            .enroll(rogue.key.public_key(), "Postman 9", now)
            .expect("enrol");
        let csv = match programme {
            Programme::Post => crate::post_csv(n),
            Programme::Vaccination => vaccination_csv(n),
        };
        let rows =
            handover_office::bookings::parse(programme, csv.as_bytes(), office.cod_payee(), 2026)
                .expect("bookings");
        let issued = crate::issue_today(&office, &rogue.device_id, programme, &rows, policy, now);
        let references = rows.iter().map(|b| b.reference.clone()).collect();
        RogueDay {
            dir,
            office,
            rogue,
            references,
            issued,
        }
    }

    /// The code the recipient of `reference` got by SMS.
    pub fn code(&self, reference: &str) -> String {
        crate::issued_code(&self.issued, reference)
    }
}
