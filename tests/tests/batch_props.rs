//! Property: a batch's verdicts do not depend on how the events are cut
//! into batches. The office reads what a batch's verdicts depend on once,
//! then judges event after event against that knowledge plus the batch's
//! earlier events; with one event per batch every verdict is judged
//! against the store alone. The two must agree, whatever a device (here
//! one whose key the test holds, signing anything) sends: duplicate
//! handovers, wrong codes past the limit, locks, reimports, payments twice,
//! items never issued.

use chrono::Utc;
use handover_core::codes::{Code, Programme};
use handover_core::event::{
    ChainCursor, Event, EventBody, EventKind, ExceptionReason, PaymentMethod,
};
use handover_core::keys::SigningKey;
use handover_core::sync::{Ack, Batch, BATCH_FORMAT};
use handover_office::{bookings, Office};
use handover_tests::*;
use proptest::prelude::*;

const ITEMS: u32 = 4;

/// What the device does, before it is made into signed events.
#[derive(Clone, Debug)]
enum Op {
    Import,
    /// Item `item` (`ITEMS` is one never issued), right code or not.
    HandOver {
        item: u32,
        right: bool,
    },
    Fail {
        item: u32,
    },
    Lock {
        item: u32,
    },
    Pay {
        item: u32,
        right_amount: bool,
        upi: bool,
    },
    NotHome {
        item: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let item = 0..=ITEMS;
    prop_oneof![
        1 => Just(Op::Import),
        4 => (item.clone(), any::<bool>()).prop_map(|(item, right)| Op::HandOver { item, right }),
        2 => item.clone().prop_map(|item| Op::Fail { item }),
        1 => item.clone().prop_map(|item| Op::Lock { item }),
        2 => (item.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(item, right_amount, upi)| Op::Pay { item, right_amount, upi }),
        1 => item.prop_map(|item| Op::NotHome { item }),
    ]
}

/// An office with a device whose key the test holds, and `ITEMS` post items
/// issued to it (every third with cash on delivery); the codes.
struct Setup {
    _dir: tempfile::TempDir,
    office: Office,
    key: SigningKey,
    device_id: String,
    manifest_id: String,
    revision: u32,
    references: Vec<String>,
    codes: Vec<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let office = init_office(&dir.path().join("office"), "PO-1");
    let key = SigningKey::generate().unwrap();
    let now = Utc::now();
    let device_id = office.enroll(key.public_key(), "Postman 1", now).unwrap();
    let rows = bookings::parse(
        Programme::Post,
        post_csv(ITEMS).as_bytes(),
        office.cod_payee(),
        2026,
    )
    .unwrap();
    let issued = issue_today(
        &office,
        &device_id,
        Programme::Post,
        &rows,
        test_policy(),
        now,
    );
    let mut references: Vec<String> = rows.iter().map(|b| b.reference.clone()).collect();
    let codes = references
        .iter()
        .map(|r| {
            let sms = issued.sms.iter().find(|s| &s.reference == r).unwrap();
            sms.code.clone()
        })
        .collect();
    // One reference never issued to anyone.
    references.push(handover_core::s10::make("EE", 29_999_999, "IN").unwrap());
    Setup {
        _dir: dir,
        office,
        key,
        device_id,
        manifest_id: issued.manifest_id.clone(),
        revision: issued.revision,
        references,
        codes,
    }
}

impl Setup {
    /// The ops as this office's device would sign them.
    fn events(&self, ops: &[Op]) -> Vec<Event> {
        let now = Utc::now();
        let mut cursor = ChainCursor::genesis();
        let mut out = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let (m, rev) = (self.manifest_id.clone(), self.revision);
            let r = |item: &u32| self.references[*item as usize].clone();
            let kind = match op {
                Op::Import => EventKind::ManifestImported {
                    manifest_id: m,
                    revision: rev,
                    items: ITEMS,
                },
                Op::HandOver { item, right } => {
                    let right_code = self.codes.get(*item as usize).cloned();
                    let code = match (right, right_code) {
                        (true, Some(c)) => c,
                        (_, Some(c)) if c != "000000" => "000000".to_owned(),
                        _ => "111111".to_owned(),
                    };
                    EventKind::HandedOver {
                        manifest_id: m,
                        revision: rev,
                        reference: r(item),
                        code_version: 1,
                        code: Code::parse(&code, 6).unwrap(),
                    }
                }
                Op::Fail { item } => EventKind::AttemptFailed {
                    manifest_id: m,
                    reference: r(item),
                    code_version: 1,
                    attempts_left: 0,
                },
                Op::Lock { item } => EventKind::Locked {
                    manifest_id: m,
                    reference: r(item),
                    code_version: 1,
                },
                Op::Pay {
                    item,
                    right_amount,
                    upi,
                } => EventKind::Payment {
                    manifest_id: m,
                    reference: r(item),
                    amount_paise: if *right_amount { 49_900 } else { 100 },
                    method: if *upi {
                        PaymentMethod::Upi {
                            txn_ref: "412345678901".into(),
                        }
                    } else {
                        PaymentMethod::Cash
                    },
                },
                Op::NotHome { item } => EventKind::Exception {
                    manifest_id: m,
                    reference: r(item),
                    reason: ExceptionReason::NotHome,
                },
            };
            let body = EventBody {
                device_id: self.device_id.clone(),
                seq: cursor.next_seq(),
                time: now,
                counter: now.timestamp_millis() + i as i64,
                clock_suspect: false,
                kind,
                at: None,
            };
            out.push(cursor.append(&body, &self.key).unwrap());
        }
        out
    }

    /// Ingest `events` cut at `sizes` (cycled); every verdict, in order.
    fn ingest(&self, events: &[Event], sizes: &[usize]) -> Vec<String> {
        let mut verdicts = Vec::new();
        let mut rest = events;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).clamp(1, rest.len());
            let (batch, next) = rest.split_at(n);
            rest = next;
            let bytes = Batch {
                format: BATCH_FORMAT.into(),
                device_id: self.device_id.clone(),
                device_key: self.key.public_key(),
                events: batch.to_vec(),
                acks: Vec::new(),
            }
            .to_bytes()
            .unwrap();
            let ingested = self.office.ingest(&bytes, Utc::now()).unwrap();
            let ack = Ack::open(&ingested.ack, &[self.office.public_key()]).unwrap();
            assert_eq!(ack.through_seq, batch.last().unwrap().seq);
            verdicts.extend(ack.verdicts.iter().map(|v| v.verdict.as_str().to_owned()));
        }
        verdicts
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_do_not_depend_on_how_events_are_cut_into_batches(
        ops in prop::collection::vec(op(), 1..40),
        sizes in prop::collection::vec(1usize..40, 1..4),
    ) {
        let (one_by_one, cut) = (setup(), setup());
        let alone = one_by_one.ingest(&one_by_one.events(&ops), &[1]);
        let events = cut.events(&ops);
        let together = cut.ingest(&events, &sizes);
        prop_assert_eq!(&alone, &together, "ops {:?}", ops);
        let (a, b) = (one_by_one.office.report().unwrap(), cut.office.report().unwrap());
        prop_assert_eq!((a.handed_over, a.verified), (b.handed_over, b.verified));
        prop_assert_eq!(a.sms, b.sms);
        // The batch again, whole: every event held, the same verdicts.
        let again = cut.ingest(&events, &[ops.len()]);
        prop_assert_eq!(&again, &together);
    }
}
