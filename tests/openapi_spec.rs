//! The OpenAPI document served by `edgelens query` is usable as a contract: it documents every
//! route the service answers, and the validator the end-to-end tests use with it rejects answers
//! that break it (so "matches the document" in those tests means something).

mod support;

use support::openapi::Spec;
use support::*;

fn rejects(spec: &Spec, method: &str, path: &str, status: u16, ct: &str, body: &str) -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let rejected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spec.check(method, path, status, ct, body))).is_err();
    std::panic::set_hook(hook);
    rejected
}

#[test]
fn the_document_covers_the_service_and_the_validator_bites() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = QueryService::start(&["--data-dir", tmp.path().to_str().unwrap()], &[]);
    let spec = Spec::fetch(&svc);
    // Every route answers as documented on an empty lake.
    for path in [
        "/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z&step=1m",
        "/v1/sites/a.example/rates?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z",
        "/v1/incidents",
        "/v1/incidents/a.example-20261101T000000Z",
        "/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
    ] {
        spec.get(&svc, path, None);
    }
    assert_eq!(spec.sql(&svc, "SELECT 1 AS one", "application/json").0, 200);
    // The validator refuses what the document does not allow.
    let ok_list = r#"{"from":"2026-11-01T00:00:00Z","to":"2026-11-01T01:00:00Z","total":0,"incidents":[]}"#;
    assert!(!rejects(&spec, "GET", "/v1/incidents", 200, "application/json", ok_list));
    for (method, path, status, ct, body) in [
        ("GET", "/v1/incidents", 200, "application/json", r#"{"from":"2026-11-01T00:00:00Z","incidents":[]}"#),
        ("GET", "/v1/incidents", 200, "application/json", r#"{"from":"yesterday","to":"2026-11-01T01:00:00Z","incidents":[]}"#),
        ("GET", "/v1/incidents", 200, "application/json", r#"{"from":"2026-11-01T00:00:00Z","to":"2026-11-01T01:00:00Z","incidents":[],"extra":1}"#),
        ("GET", "/v1/incidents", 200, "application/json", r#"{"from":"2026-11-01T00:00:00Z","to":"2026-11-01T01:00:00Z","incidents":[{"incident_id":"x"}]}"#),
        ("GET", "/v1/incidents?color=red", 200, "application/json", ok_list),
        ("GET", "/v1/incidents?status=paused", 200, "application/json", ok_list),
        ("GET", "/v1/incidents", 418, "application/json", r#"{"error":"x"}"#),
        ("GET", "/v1/incidents", 200, "text/xml", "<x/>"),
        ("GET", "/v1/undocumented", 200, "application/json", "{}"),
        ("DELETE", "/v1/incidents", 200, "application/json", ok_list),
        ("GET", "/v1/incidents", 400, "application/json", r#"{"message":"x"}"#),
    ] {
        assert!(rejects(&spec, method, path, status, ct, body), "accepted {method} {path} {status} {ct} {body}");
    }
}
