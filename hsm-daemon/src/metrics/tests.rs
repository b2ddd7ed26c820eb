use std::{sync::Arc, time::Duration};

use hsm_proto::v1::Rpc;
use tonic::Code;

use super::*;

#[derive(Debug, Default)]
struct Fake {
    stats: Arc<Stats>,
    observation: Observation,
}

impl Source for Fake {
    fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn observe(&self) -> Observation {
        self.observation.clone()
    }
}

fn fake(hsm: &str) -> Arc<Fake> {
    let observation = Observation {
        hsm: hsm.into(),
        cluster: "cluster-abc".into(),
        sessions: 3,
        users_locked: 1,
        keys: BTreeMap::from([(("ec", "private-key"), 2), (("aes", "secret-key"), 5)]),
        faults: None,
    };
    Arc::new(Fake { stats: Arc::default(), observation })
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn a_scrape_shows_every_series_of_every_registered_hsm() {
    let metrics = Metrics::new();
    let one = fake("hsm-one");
    let two = fake("hsm-two");
    let _one = metrics.register(Arc::clone(&one) as Arc<dyn Source>);
    let _two = metrics.register(Arc::clone(&two) as Arc<dyn Source>);
    one.stats.rpc.record(Rpc::Login as usize, Code::Unauthenticated, Duration::from_millis(2));
    one.stats.count_failed_login();
    one.stats.add_peer("127.0.0.1:2");
    two.stats.sync_round("127.0.0.1:1", Round::Ok);
    two.stats.sync_round("127.0.0.1:1", Round::Failed);

    let text = metrics.encode();
    let lines = lines(&text);
    for expected in [
        r#"hsm_info{hsm="hsm-one",cluster="cluster-abc",version="0.1.0"} 1"#,
        r#"hsm_rpc_requests_total{hsm="hsm-one",rpc="Login",code="Unauthenticated"} 1"#,
        r#"hsm_rpc_duration_seconds_bucket{hsm="hsm-one",rpc="Login",le="0.001"} 0"#,
        r#"hsm_rpc_duration_seconds_bucket{hsm="hsm-one",rpc="Login",le="0.0025"} 1"#,
        r#"hsm_rpc_duration_seconds_bucket{hsm="hsm-one",rpc="Login",le="+Inf"} 1"#,
        r#"hsm_rpc_duration_seconds_count{hsm="hsm-one",rpc="Login"} 1"#,
        r#"hsm_logins_failed_total{hsm="hsm-one"} 1"#,
        r#"hsm_logins_failed_total{hsm="hsm-two"} 0"#,
        r#"hsm_users_locked{hsm="hsm-two"} 1"#,
        r#"hsm_sessions_active{hsm="hsm-one"} 3"#,
        r#"hsm_keys{hsm="hsm-one",type="aes",class="secret-key"} 5"#,
        r#"hsm_keys{hsm="hsm-two",type="ec",class="private-key"} 2"#,
        r#"hsm_sync_peer_up{hsm="hsm-one",peer="127.0.0.1:2"} 0"#,
        r#"hsm_sync_peer_up{hsm="hsm-two",peer="127.0.0.1:1"} 0"#,
        r#"hsm_sync_rounds_total{hsm="hsm-two",peer="127.0.0.1:1",result="ok"} 1"#,
        r#"hsm_sync_rounds_total{hsm="hsm-two",peer="127.0.0.1:1",result="failed"} 1"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected} in\n{text}");
    }
    assert!(text.contains("# TYPE hsm_rpc_duration_seconds histogram"), "{text}");
    assert!(
        text.contains(r#"hsm_sync_last_success_timestamp_seconds{hsm="hsm-two",peer="127.0.0.1:1"}"#),
        "a peer reached once has a last success: {text}"
    );
    assert!(!text.contains(r#"hsm_sync_last_success_timestamp_seconds{hsm="hsm-one""#), "never reached: {text}");
    assert!(!text.contains(r#"code="OK""#), "only codes seen are shown: {text}");
    assert!(!text.contains("hsm_faults_injected_total"), "no fault injection, no series: {text}");
}

#[test]
fn an_hsm_leaves_the_page_when_its_registration_drops() {
    let metrics = Metrics::new();
    let registration = metrics.register(fake("hsm-gone") as Arc<dyn Source>);
    assert!(metrics.encode().contains("hsm-gone"));
    drop(registration);
    assert!(!metrics.encode().contains("hsm-gone"));
}

#[test]
fn the_endpoint_answers_get_metrics_and_nothing_else() {
    let metrics = Metrics::new();
    let _hsm = metrics.register(fake("hsm-http") as Arc<dyn Source>);
    let ok = endpoint::respond(&metrics, &http::Method::GET, "/metrics");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
    assert_eq!(endpoint::respond(&metrics, &http::Method::GET, "/").status(), 404);
    let post = endpoint::respond(&metrics, &http::Method::POST, "/metrics");
    assert_eq!((post.status().as_u16(), post.headers()[http::header::ALLOW].to_str().unwrap()), (405, "GET"));
}
