//! Property: however the office revises a manifest (issuing again,
//! re-issuing some items, changing the policy, leaving items out), every
//! revision carries the same verifier for a code version, so an insider who
//! brute-forces two or three revisions is left exactly the candidates of
//! one; and the device takes every revision the office makes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use handover_core::codes::{Code, Policy, Programme};
use handover_core::manifest::Manifest;
use handover_office::issue::IssueRequest;
use handover_tests::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Issue the same list again.
    Same,
    /// Re-issue item i's code.
    Reissue(usize),
    /// Switch to the other policy.
    SwitchPolicy,
    /// Leave item i out.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Same),
        (0usize..3).prop_map(Op::Reissue),
        Just(Op::SwitchPolicy),
        (0usize..3).prop_map(Op::Drop),
    ]
}

fn policies() -> [Policy; 2] {
    let p = Policy {
        digits: 4,
        tag_bits: 4,
        iterations: 1,
        max_attempts: 3,
    };
    [p, Policy { tag_bits: 5, ..p }]
}

fn candidates(m: &Manifest, reference: &str) -> Option<BTreeSet<u32>> {
    let item = m.items.iter().find(|i| i.reference == reference)?;
    let policy = item.policy_in(m).ok()?;
    Some(
        (0..10_000u32)
            .filter(|c| {
                item.verifier.check(
                    &Code::parse(&format!("{c:04}"), 4).unwrap(),
                    reference,
                    policy,
                )
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn revisions_never_narrow_an_insiders_candidates(ops in proptest::collection::vec(op(), 1..4)) {
        let [p0, p1] = policies();
        let day = Day::new(3, p0);
        let all_rows = day.rows.clone();
        let mut manifests = vec![Manifest::open(&day.issued.sealed, &[day.office.public_key()]).unwrap()];
        let mut policy = p0;
        let window = day.device.items().unwrap()[0].clone();
        for op in &ops {
            let mut rows = all_rows.clone();
            let mut reissue = vec![];
            match op {
                Op::Same => {}
                Op::Reissue(i) => reissue.push(all_rows[*i].reference.clone()),
                Op::SwitchPolicy => policy = if policy == p0 { p1 } else { p0 },
                Op::Drop(i) => { rows.remove(*i); }
            }
            let issued = day.office.issue(
                &IssueRequest {
                    device_id: &day.device_id,
                    programme: Programme::Post,
                    bookings: &rows,
                    policy: Some(policy),
                    valid_from: window.valid_from,
                    valid_until: window.valid_until,
                    reissue: &reissue,
                    missing: handover_office::issue::Missing::Withdraw,
                    now: Utc::now(),
                },
                &|| {},
                |_| Ok(()),
            ).unwrap();
            // The device takes every revision the office makes.
            day.device.import_manifest(&issued.sealed, Utc::now()).unwrap();
            manifests.push(Manifest::open(&issued.sealed, &[day.office.public_key()]).unwrap());
        }
        // One verifier and one policy per (reference, code version), in every revision.
        let mut seen = BTreeMap::new();
        for m in &manifests {
            for item in &m.items {
                let policy = *item.policy_in(m).unwrap();
                let key = (item.reference.clone(), item.code_version);
                let held = seen.entry(key).or_insert((item.verifier.clone(), policy));
                prop_assert_eq!(&held.0, &item.verifier);
                prop_assert_eq!(held.1, policy);
            }
        }
        // Brute force of every revision holding the first item's first code
        // version leaves exactly the candidates of one revision.
        let target = &all_rows[0].reference;
        let version_one: Vec<&Manifest> = manifests
            .iter()
            .filter(|m| m.items.iter().any(|i| &i.reference == target && i.code_version == 1))
            .collect();
        let one = candidates(version_one[0], target).unwrap();
        let mut all = one.clone();
        for m in &version_one[1..] {
            all = all.intersection(&candidates(m, target).unwrap()).cloned().collect();
        }
        prop_assert_eq!(all, one);
    }
}
