use rand::{SeedableRng as _, rngs::StdRng};
use serde_json::{Value, json};

use super::*;
use crate::control::api::ApiError;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn new_cluster(state: &mut State, now: Millis) -> String {
    let new = NewCluster::parse(
        &json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]}),
    )
    .expect("valid");
    state.create_cluster(REGION, new, now, now, &mut rng()).expect("created").id.clone()
}

fn ready_backup(state: &mut State, cluster: &str, now: Millis) -> String {
    let id = state.add_backup(cluster, now, now, &mut StdRng::seed_from_u64(now as u64)).expect("backup").id.clone();
    state.settle(now);
    id
}

#[test]
fn a_new_cluster_is_in_progress_then_uninitialized_with_a_subnet_per_zone() {
    let mut state = State::default();
    let id = new_cluster(&mut state, 1000);
    let shown = state.describe_clusters(REGION, &json!({})).expect("describe");
    assert_eq!(shown["Clusters"][0]["State"], "CREATE_IN_PROGRESS");
    state.settle(1000);
    let shown = state.describe_clusters(REGION, &json!({})).expect("describe");
    let cluster = &shown["Clusters"][0];
    assert_eq!(cluster["ClusterId"], id.as_str());
    assert_eq!(cluster["State"], "UNINITIALIZED");
    assert_eq!(cluster["SubnetMapping"]["us-east-1a"], "subnet-0123456789abcdef0");
    assert_eq!(cluster["SubnetMapping"]["us-east-1b"], "subnet-0123456789abcdef1");
    assert_eq!(cluster["BackupRetentionPolicy"], json!({"Type": "DAYS", "Value": "90"}));
    assert!(id.starts_with("cluster-") && id.len() == 19, "{id}");
    // Another region sees none of it.
    let other = state.describe_clusters("eu-west-1", &json!({})).expect("describe");
    assert_eq!(other["Clusters"], json!([]));
    let missing = state.delete_cluster("eu-west-1", &id, 0).expect_err("not there");
    assert!(matches!(missing, ApiError::ResourceNotFound(_)), "{missing:?}");
}

#[test]
fn create_cluster_refuses_what_aws_refuses_and_changes_nothing() {
    let mut state = State::default();
    for (input, needle) in [
        (json!({"HsmType": "hsm9.huge", "SubnetIds": ["subnet-01234567"]}), "HsmType"),
        (json!({"HsmType": "hsm1.medium", "Mode": "NON_FIPS", "SubnetIds": ["subnet-01234567"]}), "Mode"),
        (json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-01234567", "subnet-01234567"]}), "SubnetIds"),
        (
            json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-01234567"], "BackupRetentionPolicy": {"Type": "DAYS", "Value": "3"}}),
            "7 to 379",
        ),
        (
            json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-01234567"], "TagList": [{"Key": "aws:x", "Value": "y"}]}),
            "reserved",
        ),
    ] {
        let refused = NewCluster::parse(&input).expect_err("refused");
        assert!(refused.to_string().contains(needle), "{refused}");
    }
    let from_missing = NewCluster::parse(
        &json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-01234567"], "SourceBackupId": "backup-aaaaaaaaaaa"}),
    )
    .expect("parses");
    let refused = state.create_cluster(REGION, from_missing, 0, 0, &mut rng()).expect_err("no such backup");
    assert!(matches!(refused, ApiError::ResourceNotFound(_)), "{refused:?}");
    assert!(state.clusters.is_empty());
}

#[test]
fn deleted_backups_wait_seven_days_and_restore_in_between() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    let backup = ready_backup(&mut state, &cluster, 10);
    let deleted = state.delete_backup(REGION, &backup, 100, ACCOUNT).expect("deleted");
    assert_eq!(deleted["Backup"]["BackupState"], "PENDING_DELETION");
    assert_eq!(deleted["Backup"]["DeleteTimestamp"], seconds(100 + PENDING_DELETION));
    let again = state.delete_backup(REGION, &backup, 200, ACCOUNT).expect_err("already pending");
    assert!(again.to_string().contains("PENDING_DELETION"), "{again}");
    let restored = state.restore_backup(REGION, &backup, ACCOUNT).expect("restored");
    assert_eq!(restored["Backup"]["BackupState"], "READY");
    assert!(restored["Backup"].get("DeleteTimestamp").is_none());
    state.delete_backup(REGION, &backup, 300, ACCOUNT).expect("deleted again");
    assert!(state.settle(300 + PENDING_DELETION - 1).deleted_backups.is_empty());
    assert_eq!(state.settle(300 + PENDING_DELETION).deleted_backups, vec![backup.clone()]);
    let gone = state.restore_backup(REGION, &backup, ACCOUNT).expect_err("gone");
    assert!(matches!(gone, ApiError::ResourceNotFound(_)), "{gone:?}");
}

#[test]
fn retention_deletes_old_backups_but_not_the_latest_nor_never_expiring_ones() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    state
        .modify_cluster(REGION, &json!({"ClusterId": cluster, "BackupRetentionPolicy": {"Type": "DAYS", "Value": "7"}}))
        .expect("modified");
    let old = ready_backup(&mut state, &cluster, 1);
    let kept = ready_backup(&mut state, &cluster, 2);
    state.modify_backup(REGION, &json!({"BackupId": kept, "NeverExpires": true}), ACCOUNT).expect("never expires");
    let latest = ready_backup(&mut state, &cluster, 3);
    let settled = state.settle(8 * DAY);
    assert_eq!(settled.deleted_backups, vec![old]);
    let listed = state.describe_backups(REGION, ACCOUNT, &json!({})).expect("listed");
    let ids: Vec<&str> =
        listed["Backups"].as_array().expect("list").iter().filter_map(|b| b["BackupId"].as_str()).collect();
    assert_eq!(ids, vec![kept.as_str(), latest.as_str()]);
    let refused = state
        .modify_cluster(
            REGION,
            &json!({"ClusterId": cluster, "BackupRetentionPolicy": {"Type": "DAYS", "Value": "380"}}),
        )
        .expect_err("too long");
    assert!(refused.to_string().contains("7 to 379"), "{refused}");
    assert_eq!(state.clusters[&cluster].backup_retention_days, 7);
}

#[test]
fn copies_go_to_another_region_and_name_their_source() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    let backup = ready_backup(&mut state, &cluster, 5);
    let same = state.copy_backup(REGION, &json!({"BackupId": backup, "DestinationRegion": REGION}), 6, 6, &mut rng());
    assert!(same.expect_err("same region").to_string().contains("own region"));
    let (copy, shown) = state
        .copy_backup(REGION, &json!({"BackupId": backup, "DestinationRegion": "us-west-2"}), 6, 6, &mut rng())
        .expect("copied");
    assert_eq!(shown["DestinationBackup"]["SourceBackup"], backup.as_str());
    state.settle(6);
    let there = state.describe_backups("us-west-2", ACCOUNT, &json!({})).expect("listed");
    let listed = &there["Backups"][0];
    assert_eq!(listed["BackupId"], copy.as_str());
    assert_eq!(listed["SourceRegion"], REGION);
    assert_eq!(listed["SourceCluster"], cluster.as_str());
    assert_eq!(listed["BackupState"], "READY");
    let filtered = state
        .describe_backups("us-west-2", ACCOUNT, &json!({"Filters": {"sourceBackupIds": [backup]}}))
        .expect("filtered");
    assert_eq!(filtered["Backups"].as_array().map(Vec::len), Some(1));
}

#[test]
fn tags_merge_respect_the_limit_and_reserved_keys() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    let tag = |k: &str, v: &str| json!({"Key": k, "Value": v});
    state
        .tag(REGION, &json!({"ResourceId": cluster, "TagList": [tag("team", "a"), tag("env", "ci")]}))
        .expect("tagged");
    state.tag(REGION, &json!({"ResourceId": cluster, "TagList": [tag("team", "b")]})).expect("retagged");
    let listed = state.list_tags(REGION, &json!({"ResourceId": cluster})).expect("listed");
    assert_eq!(listed["TagList"], json!([tag("team", "b"), tag("env", "ci")]));
    let many: Vec<Value> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
    let refused = state.tag(REGION, &json!({"ResourceId": cluster, "TagList": many})).expect_err("over 50");
    assert!(matches!(refused, ApiError::ResourceLimitExceeded(_)), "{refused:?}");
    let reserved = state.untag(REGION, &json!({"ResourceId": cluster, "TagKeyList": ["aws:cloudformation"]}));
    assert!(matches!(reserved, Err(ApiError::Tag(_))), "{reserved:?}");
    state.untag(REGION, &json!({"ResourceId": cluster, "TagKeyList": ["env", "absent"]})).expect("untagged");
    let listed = state.list_tags(REGION, &json!({"ResourceId": cluster})).expect("listed");
    assert_eq!(listed["TagList"], json!([tag("team", "b")]));
}

#[test]
fn resource_policies_are_on_backups_by_arn() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    let backup = ready_backup(&mut state, &cluster, 1);
    let cluster_arn = arn(REGION, ACCOUNT, "cluster", &cluster);
    let arn = arn(REGION, ACCOUNT, "backup", &backup);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["cloudhsm:CreateCluster","cloudhsm:DescribeBackups"],"Resource":"*"}]}"#;
    assert_eq!(state.get_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn})).expect("none"), json!({}));
    let not_json = state.put_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn, "Policy": "{nope"}));
    assert!(not_json.expect_err("bad").to_string().contains("Policy"));
    state.put_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn, "Policy": policy})).expect("put");
    assert_eq!(state.get_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn})).expect("got")["Policy"], policy);
    let refused = state.put_policy(REGION, ACCOUNT, &json!({"ResourceArn": cluster_arn, "Policy": policy}));
    assert!(refused.expect_err("clusters take none").to_string().contains("backups"));
    let elsewhere = arn.replace(ACCOUNT, "999999999999");
    let denied = state.get_policy(REGION, ACCOUNT, &json!({"ResourceArn": elsewhere}));
    assert!(matches!(denied, Err(ApiError::AccessDenied(_))), "{denied:?}");
    let deleted = state.delete_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn})).expect("deleted");
    assert_eq!(deleted["Policy"], policy);
    assert_eq!(state.get_policy(REGION, ACCOUNT, &json!({"ResourceArn": arn})).expect("none"), json!({}));
}

#[test]
fn a_cluster_with_hsms_is_not_deleted_and_hsms_need_a_zone_it_has() {
    let mut state = State::default();
    let cluster = new_cluster(&mut state, 0);
    let early = state.check_new_hsm(REGION, &cluster, "us-east-1a", 28).expect_err("still creating");
    assert!(early.to_string().contains("CREATE_IN_PROGRESS"), "{early}");
    state.settle(0);
    let zone = state.check_new_hsm(REGION, &cluster, "us-east-1c", 28).expect_err("no subnet there");
    assert!(zone.to_string().contains("us-east-1a, us-east-1b"), "{zone}");
    let subnet = state.check_new_hsm(REGION, &cluster, "us-east-1a", 28).expect("fine");
    let hsm =
        rules::new_hsm(("hsm-aaaaaaaaaaa".into(), 1), "us-east-1a", subnet, ("127.2.0.1".into(), 2223), 0, &mut rng());
    state.clusters.get_mut(&cluster).expect("there").hsms.push(hsm);
    let second = state.check_new_hsm(REGION, &cluster, "us-east-1b", 28).expect_err("uninitialized");
    assert!(second.to_string().contains("initialize it"), "{second}");
    state.clusters.get_mut(&cluster).expect("there").state = ClusterState::Initialized;
    let unactivated = state.check_new_hsm(REGION, &cluster, "us-east-1b", 28).expect_err("not activated");
    assert!(unactivated.to_string().contains("activate it"), "{unactivated}");
    state.clusters.get_mut(&cluster).expect("there").state = ClusterState::Active;
    state.check_new_hsm(REGION, &cluster, "us-east-1b", 28).expect("active: HSMs join");
    let refused = state.delete_cluster(REGION, &cluster, 0).expect_err("has an HSM");
    assert!(refused.to_string().contains("delete-hsm"), "{refused}");
    let by_ip = state.hsm_to_delete(REGION, &json!({"ClusterId": cluster, "EniIp": "127.2.0.1"})).expect("found");
    assert_eq!(by_ip.id, "hsm-aaaaaaaaaaa");
    let none = state.hsm_to_delete(REGION, &json!({"ClusterId": cluster})).expect_err("names none");
    assert!(none.to_string().contains("HsmId, EniId or EniIp"), "{none}");
}
