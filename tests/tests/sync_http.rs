//! The office sync service end to end over HTTP: enrolment by token, the
//! manifest pull, the outbox push, and every refusal `docs/sync-api.md`
//! promises. The service runs on a loopback port.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use handover_cli::client::{self, OfficeLink};
use handover_core::api::{self, ApiError, EnrolResponse};
use handover_core::device::{Device, HttpRequest, HttpResponse, SyncSession, VerifyOutcome};
use handover_core::event::ExceptionReason;
use handover_server::Limits;
use handover_tests::*;

fn error(resp: &HttpResponse) -> String {
    serde_json::from_slice::<ApiError>(&resp.body)
        .map(|e| e.error.as_str().to_owned())
        .unwrap_or_else(|_| format!("not a JSON error: {}", String::from_utf8_lossy(&resp.body)))
}

fn post(
    link: &OfficeLink,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: &[u8],
) -> HttpResponse {
    link.send(&HttpRequest {
        method: "POST",
        path,
        headers,
        body: body.to_vec(),
    })
    .expect("the service answers")
}

#[test]
fn a_day_over_http_enrol_pull_work_sync_report() {
    let svc = Service::start(Limits::default());
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("phone.db"), "Postman 1");
    assert_eq!(device.office_keys().unwrap(), vec![svc.office.public_key()]);
    let codes = svc.issue_post(&device, 5, 0);
    let link = svc.link();
    // Morning: the pull brings the manifest (and the import event goes back).
    let morning = client::sync(&device, &link).unwrap();
    assert_eq!(morning.manifests_imported, 1);
    assert_eq!(morning.pending, 0);
    assert_eq!(device.items().unwrap().len(), 5);
    // At the doors, offline.
    let now = Utc::now();
    for (i, (r, c)) in codes.iter().enumerate() {
        if i == 4 {
            device
                .record_exception(r, ExceptionReason::NotHome, now)
                .unwrap();
        } else {
            assert!(matches!(
                device.verify(r, c, now).unwrap(),
                VerifyOutcome::Accepted { .. }
            ));
        }
    }
    // A second sync pulls nothing new and pushes the day.
    let evening = client::sync(&device, &link).unwrap();
    assert_eq!(evening.manifests_imported, 0);
    assert_eq!(evening.events_sent, 5);
    assert_eq!(evening.pending, 0);
    assert_eq!(evening.acknowledged_through, device.head().unwrap().0);
    let report = svc.office.report().unwrap();
    assert_eq!(
        (report.handed_over, report.verified, report.confirmation_sms),
        (4, 4, 4)
    );
    assert_eq!(report.exceptions.get("not_home"), Some(&1));
    // Health and metrics.
    let health = link
        .send(&HttpRequest {
            method: "GET",
            path: api::HEALTH,
            headers: vec![],
            body: vec![],
        })
        .unwrap();
    assert_eq!(health.status, 200);
    let text = metrics_text(&link);
    assert!(
        text.contains("handover_requests_total{route=\"/v1/batches\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("handover_events{verdict=\"verified\"} 4"),
        "{text}"
    );
    assert!(text.contains("handover_devices_flagged 0"));
    assert!(text.contains("handover_request_duration_seconds_bucket{route=\"/v1/manifests\""));
    // Nothing personal in the metrics.
    assert!(!text.contains("Resident") && !text.contains(&codes[0].0));
}

#[test]
fn enrolment_tokens_are_single_use_expire_and_bind_the_office_key() {
    let svc = Service::start(Limits::default());
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let token = svc
        .office
        .create_enrol_token("Postman 1", Duration::hours(1), now)
        .unwrap()
        .token;
    let first = Device::open(d.path().join("a.db")).unwrap();
    let enrolled = client::enrol(&first, &link, &token).unwrap();
    assert_eq!(enrolled.device_id, first.identity().device_id);
    assert_eq!(enrolled.assignee, "Postman 1");
    // The same device again (a lost response): the same answer.
    assert_eq!(client::enrol(&first, &link, &token).unwrap(), enrolled);
    // Another device with the used token: refused.
    let second = Device::open(d.path().join("b.db")).unwrap();
    let resp = link
        .send(&second.enrol_request(&token, now).unwrap())
        .unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (409, "token_used"));
    assert!(second.office_keys().unwrap().is_empty());
    // An expired token.
    let old = svc
        .office
        .create_enrol_token("Postman 2", Duration::minutes(30), now - Duration::hours(1))
        .unwrap()
        .token;
    let resp = link
        .send(&second.enrol_request(&old, now).unwrap())
        .unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (410, "token_expired"));
    // A token this office never made.
    let other = handover_office::Office::init(&d.path().join("other"), "PO-2").unwrap();
    let foreign = other
        .create_enrol_token("X", Duration::hours(1), now)
        .unwrap()
        .token;
    let resp = link
        .send(&second.enrol_request(&foreign, now).unwrap())
        .unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (401, "unknown_token"));

    // The office key is checked, not trusted: a man in the middle who
    // substitutes his key in the answer is refused...
    let fresh = svc
        .office
        .create_enrol_token("Postman 3", Duration::hours(1), now)
        .unwrap()
        .token;
    let third = Device::open(d.path().join("c.db")).unwrap();
    let resp = link
        .send(&third.enrol_request(&fresh, now).unwrap())
        .unwrap();
    let mut answer: EnrolResponse = serde_json::from_slice(&resp.body).unwrap();
    answer.office_key = other.public_key();
    let swapped = HttpResponse {
        status: 200,
        body: serde_json::to_vec(&answer).unwrap(),
    };
    assert!(matches!(
        third.finish_enrolment(&fresh, &swapped, now),
        Err(handover_core::Error::UntrustedKey)
    ));
    // ...and so is an answer whose key matches the id but not the proof.
    let tampered: handover_core::api::EnrolToken = {
        let text = fresh.to_string();
        let (id, secret) = text.split_once('.').unwrap();
        let flipped = if secret.starts_with('a') { "b" } else { "a" };
        format!("{id}.{flipped}{}", &secret[1..]).parse().unwrap()
    };
    assert!(third.finish_enrolment(&tampered, &resp, now).is_err());
    assert!(third.office_keys().unwrap().is_empty());
    // The genuine answer pins the key.
    third.finish_enrolment(&fresh, &resp, now).unwrap();
    assert_eq!(third.office_keys().unwrap(), vec![svc.office.public_key()]);
}

#[test]
fn replayed_stale_unknown_and_revoked_requests_are_refused() {
    let svc = Service::start(Limits::default());
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
    let now = Utc::now();
    let mut session = SyncSession::new(100);
    let req = session.next_request(&device, now).unwrap().unwrap();
    assert_eq!(link.send(&req).unwrap().status, 200);
    // The same signed request again.
    let again = link.send(&req).unwrap();
    assert_eq!(
        (again.status, error(&again).as_str()),
        (401, "replayed_request")
    );
    // The body changed under the signature.
    let mut changed = req.clone();
    changed.body = b"{\"held\":[]} ".to_vec();
    let resp = link.send(&changed).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (401, "bad_signature"));
    // No signature at all.
    let resp = post(&link, api::MANIFESTS, vec![], b"{\"held\":[]}");
    assert_eq!(
        (resp.status, error(&resp).as_str()),
        (401, "missing_signature")
    );
    // Ten minutes off the office's clock.
    let stale = device
        .signed_request(
            "POST",
            api::MANIFESTS,
            b"{\"held\":[]}".to_vec(),
            "application/json",
            (now - Duration::minutes(10)).timestamp_millis(),
        )
        .unwrap();
    let resp = link.send(&stale).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (401, "stale_request"));
    let body: ApiError = serde_json::from_slice(&resp.body).unwrap();
    assert!(body.server_time_ms.is_some());
    // A device whose clock is 10 minutes off still syncs: it signs with the
    // office's time after the first refusal.
    let mut late = SyncSession::new(100);
    let skewed = now - Duration::minutes(10);
    while let Some(r) = late.next_request(&device, skewed).unwrap() {
        let resp = link.send(&r).unwrap();
        late.handle_response(&device, &resp, skewed).unwrap();
    }
    // An unknown device.
    let stranger = Device::open(d.path().join("s.db")).unwrap();
    let resp = link
        .send(
            &SyncSession::new(1)
                .next_request(&stranger, now)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        (resp.status, error(&resp).as_str()),
        (401, "unknown_device")
    );
    // A revoked device.
    svc.office
        .revoke(&device.identity().device_id, now)
        .unwrap();
    let resp = link
        .send(
            &SyncSession::new(1)
                .next_request(&device, now)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (403, "revoked"));
    let err = client::sync(&device, &link).unwrap_err();
    assert!(err.to_string().contains("403 (revoked)"), "{err}");
}

#[test]
fn a_manifest_is_served_only_to_its_device_and_batches_only_from_theirs() {
    let svc = Service::start(Limits::default());
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let a = svc.enrolled_device(&d.path().join("a.db"), "Postman A");
    let b = svc.enrolled_device(&d.path().join("b.db"), "Postman B");
    svc.issue_post(&a, 3, 0);
    // B asks with an empty list: nothing of A's comes back.
    let s = client::sync(&b, &link).unwrap();
    assert_eq!(s.manifests_imported, 0);
    assert!(b.items().unwrap().is_empty());
    // B cannot send A's batch, signed by B.
    client::sync(&a, &link).unwrap();
    a.record_exception(
        &a.items().unwrap()[0].reference,
        ExceptionReason::NotHome,
        Utc::now(),
    )
    .unwrap();
    let batch = a.export_batch(100).unwrap().to_bytes().unwrap();
    let req = b
        .signed_request(
            "POST",
            api::BATCHES,
            batch,
            "application/json",
            Utc::now().timestamp_millis(),
        )
        .unwrap();
    let resp = link.send(&req).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (403, "wrong_device"));
    assert_eq!(
        svc.office.device(&a.identity().device_id).unwrap().head_seq,
        1
    );
}

#[test]
fn malformed_and_oversized_bodies_are_refused_and_store_nothing() {
    let svc = Service::start(Limits {
        batch_bytes: 4096,
        ..Limits::default()
    });
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
    let now = || Utc::now().timestamp_millis();
    let sign = |body: &[u8]| {
        device
            .signed_request(
                "POST",
                api::BATCHES,
                body.to_vec(),
                "application/json",
                now(),
            )
            .unwrap()
    };
    let resp = link.send(&sign(b"{not json")).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (400, "malformed"));
    let resp = link.send(&sign(&vec![b' '; 5000])).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (413, "too_large"));
    let resp = post(
        &link,
        api::ENROL,
        vec![("content-type", "application/json".into())],
        b"[]",
    );
    assert_eq!((resp.status, error(&resp).as_str()), (400, "malformed"));
    let resp = link
        .send(&HttpRequest {
            method: "GET",
            path: "/v1/nothing",
            headers: vec![],
            body: vec![],
        })
        .unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (404, "not_found"));
    assert_eq!(
        svc.office
            .device(&device.identity().device_id)
            .unwrap()
            .head_seq,
        0
    );
    assert_eq!(svc.office.report().unwrap().handed_over, 0);
}

#[test]
fn a_device_over_its_rate_is_told_to_wait() {
    let svc = Service::start(Limits {
        per_device_per_second: 1.0,
        per_device_burst: 3.0,
        ..Limits::default()
    });
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            let req = SyncSession::new(1)
                .next_request(&device, Utc::now())
                .unwrap()
                .unwrap();
            link.send(&req).unwrap().status
        })
        .collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[4], 429);
}

#[test]
fn a_lost_response_is_harmless_when_the_device_retries() {
    let svc = Service::start(Limits::default());
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
    let codes = svc.issue_post(&device, 3, 0);
    client::sync(&device, &link).unwrap();
    for (r, c) in &codes {
        device.verify(r, c, Utc::now()).unwrap();
    }
    // The batch reaches the office, the answer is lost on the way back.
    let mut session = SyncSession::new(100);
    let now = Utc::now();
    let pull = session.next_request(&device, now).unwrap().unwrap();
    let resp = link.send(&pull).unwrap();
    session.handle_response(&device, &resp, now).unwrap();
    let push = session.next_request(&device, now).unwrap().unwrap();
    let lost = link.send(&push).unwrap();
    assert_eq!(lost.status, 200);
    // The device asks again: a freshly signed request for the same batch.
    let retry = session.next_request(&device, Utc::now()).unwrap().unwrap();
    assert_ne!(retry.headers, push.headers);
    assert_eq!(retry.body, push.body);
    let second = link.send(&retry).unwrap();
    assert_eq!(
        second.body, lost.body,
        "the same batch gets the same ack bytes"
    );
    session
        .handle_response(&device, &second, Utc::now())
        .unwrap();
    assert_eq!(device.pending_count().unwrap(), 0);
    let report = svc.office.report().unwrap();
    assert_eq!((report.handed_over, report.verified), (3, 3));
}

#[test]
fn fifty_devices_sync_at_once_and_nothing_is_lost_or_duplicated() {
    let svc = Service::start(Limits::default());
    let d = tempfile::tempdir().unwrap();
    let devices: Vec<(Device, Vec<(String, String)>)> = (0..50)
        .map(|i| {
            let device =
                svc.enrolled_device(&d.path().join(format!("d{i}.db")), &format!("Postman {i}"));
            let codes = svc.issue_post(&device, 4, i * 10);
            (device, codes)
        })
        .collect();
    let svc = &svc;
    std::thread::scope(|s| {
        for (device, codes) in &devices {
            let link = svc.link();
            s.spawn(move || {
                client::sync(device, &link).unwrap();
                for (r, c) in codes {
                    device.verify(r, c, Utc::now()).unwrap();
                }
                // Two syncs race each other from the same device, too.
                let again = svc.link();
                std::thread::scope(|inner| {
                    inner.spawn(|| client::sync(device, &again));
                    client::sync(device, &link).unwrap();
                });
                client::sync(device, &link).unwrap();
            });
        }
    });
    let report = svc.office.report().unwrap();
    assert_eq!(report.devices, 50);
    assert_eq!(
        report.handed_over, 200,
        "one event per handover, none lost or twice"
    );
    assert_eq!(report.verified, 200);
    assert!(report.flagged.is_empty());
    for (device, _) in &devices {
        let (head, _) = device.head().unwrap();
        assert_eq!(
            svc.office
                .device(&device.identity().device_id)
                .unwrap()
                .head_seq,
            head
        );
        assert_eq!(device.pending_count().unwrap(), 0);
    }
}

#[test]
fn an_unreachable_office_loses_nothing() {
    let svc = Service::start(Limits::default());
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
    let codes = svc.issue_post(&device, 2, 0);
    client::sync(&device, &svc.link()).unwrap();
    let url = svc.url();
    drop(svc);
    device.verify(&codes[0].0, &codes[0].1, Utc::now()).unwrap();
    let link = OfficeLink::new(&url, None)
        .unwrap()
        .with_backoff(StdDuration::from_millis(5));
    let err = client::sync(&device, &link).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot reach the office at"),
        "{err}"
    );
    assert_eq!(device.pending_count().unwrap(), 1);
}

/// Issue #19: a big issue derives its verifiers (PBKDF2, seconds) before it
/// takes the device's lock and the store's writer, so the device's batch
/// sent meanwhile is answered at once, not after the issue.
#[test]
fn a_big_issue_for_a_device_does_not_hold_up_its_batches() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let svc = Service::start(Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&dir.path().join("d.db"), "Postman 7");
    let link = svc.link();
    let codes = svc.issue_post(&device, 3, 0);
    client::sync(&device, &link).unwrap();
    assert!(matches!(
        device.verify(&codes[0].0, &codes[0].1, Utc::now()).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    // Tomorrow's 5,000 items for the same device, at 1,000 iterations:
    // seconds of PBKDF2 on this machine.
    let rows = handover_office::bookings::parse(
        handover_core::codes::Programme::Post,
        post_csv(5_000).as_bytes(),
        svc.office.cod_payee(),
        2026,
    )
    .unwrap();
    let policy = handover_core::codes::Policy {
        iterations: 1_000,
        ..test_policy()
    };
    let derived = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let device_id = device.identity().device_id;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let req = handover_office::issue::IssueRequest::working_day(
                &device_id,
                handover_core::codes::Programme::Post,
                &rows,
                policy,
                Utc::now() + Duration::days(1),
            );
            svc.office
                .issue(
                    &req,
                    &|| {
                        derived.fetch_add(1, Ordering::SeqCst);
                    },
                    |_| Ok(()),
                )
                .unwrap();
            done.store(true, Ordering::SeqCst);
        });
        while derived.load(Ordering::SeqCst) < 500 {
            std::thread::sleep(StdDuration::from_millis(2));
        }
        let start = std::time::Instant::now();
        let s = client::sync(&device, &link).unwrap();
        let took = start.elapsed();
        assert_eq!(s.pending, 0, "{s:?}");
        assert!(
            took < StdDuration::from_millis(250),
            "the batch waited {took:?} for the issue"
        );
        assert!(
            !done.load(Ordering::SeqCst),
            "the issue ended before the batch was answered: it waited for it"
        );
    });
}

#[test]
fn a_refused_batch_request_cannot_be_sent_again_and_an_accepted_one_spends_its_nonce_with_its_events(
) {
    let svc = Service::start(Limits::default());
    let link = svc.link();
    let sims = handover_cli::load::prepare(&svc.office, &link, 1, 2, 1).unwrap();
    let sim = &sims[0];
    // The second batch first: a gap, refused.
    let gap = sim.batch_request(&sim.batches()[1]);
    let resp = link.send(&gap).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (409, "gap"));
    // The same signed request again: its nonce was spent with the refusal.
    let resp = link.send(&gap).unwrap();
    assert_eq!(
        (resp.status, error(&resp).as_str()),
        (401, "replayed_request")
    );
    // An accepted batch, sent again under the same signature: a replay, and
    // the office holds its event once.
    let first = sim.batch_request(&sim.batches()[0]);
    assert_eq!(link.send(&first).unwrap().status, 200);
    let resp = link.send(&first).unwrap();
    assert_eq!(
        (resp.status, error(&resp).as_str()),
        (401, "replayed_request")
    );
    assert_eq!(svc.office.event_count(sim.device_id()).unwrap(), 1);
    // Revoked on the office's side after the key was kept in memory: the
    // next batch is refused.
    svc.office.revoke(sim.device_id(), Utc::now()).unwrap();
    let resp = link.send(&sim.batch_request(&sim.batches()[1])).unwrap();
    assert_eq!((resp.status, error(&resp).as_str()), (403, "revoked"));
    assert_eq!(svc.office.event_count(sim.device_id()).unwrap(), 1);
}
