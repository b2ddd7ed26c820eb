//! The rules of each operation over the state: what it checks (the
//! documented errors) and what it changes. The machine's part (HSMs,
//! files) is [`crate::control::plane`]'s.

use std::collections::BTreeMap;

use rand::{CryptoRng, Rng as _};
use serde_json::{Value, json};

use super::{
    Backup, BackupState, Certificates, Cluster, ClusterState, Filters, Hsm, HsmState, Millis, PENDING_DELETION, State,
    Tag, page, tags_json,
};
use crate::control::api::ApiError;

/// The HSM types CloudHSM offers today.
const HSM_TYPES: [&str; 2] = ["hsm1.medium", "hsm2m.medium"];
/// Tags a resource holds at most (AWS's limit).
const MAX_TAGS: usize = 50;
/// Backup retention, in days, that `BackupRetentionPolicy` accepts (AWS:
/// 7 to 379; 90 by default).
const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 7..=379;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// A `create-cluster` request, checked.
#[derive(Debug, Clone)]
pub struct NewCluster {
    pub hsm_type: String,
    pub mode: String,
    pub subnets: Vec<String>,
    pub retention_days: u32,
    pub network_type: String,
    pub source_backup_id: Option<String>,
    pub tags: Vec<Tag>,
}

impl NewCluster {
    pub fn parse(input: &Value) -> Result<Self, ApiError> {
        let hsm_type = str_member(input, "HsmType").unwrap_or_default();
        if !HSM_TYPES.contains(&hsm_type.as_str()) {
            return Err(invalid(format!("HsmType: '{hsm_type}' is not offered; use one of {}", HSM_TYPES.join(", "))));
        }
        let mode = str_member(input, "Mode").unwrap_or_else(|| "FIPS".to_owned());
        if hsm_type == "hsm1.medium" && mode == "NON_FIPS" {
            return Err(invalid("Mode: NON_FIPS clusters need HsmType hsm2m.medium".to_owned()));
        }
        let subnets: Vec<String> = input
            .get("SubnetIds")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut seen = subnets.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != subnets.len() {
            return Err(invalid("SubnetIds: a subnet is named twice; give each once".to_owned()));
        }
        let source_backup_id = str_member(input, "SourceBackupId").map(|id| match id.rsplit_once('/') {
            Some((_, id)) => id.to_owned(),
            None => id,
        });
        Ok(NewCluster {
            hsm_type,
            mode,
            subnets,
            retention_days: retention(input)?.unwrap_or(DEFAULT_RETENTION_DAYS),
            network_type: str_member(input, "NetworkType").unwrap_or_else(|| "IPV4".to_owned()),
            source_backup_id,
            tags: parse_tags(input.get("TagList"))?,
        })
    }
}

impl State {
    /// `create-cluster`: a new cluster in `CREATE_IN_PROGRESS`, its subnets
    /// in zones a, b, c... of the region. From a backup, the backup must be
    /// `READY` in the region; the cluster takes its mode.
    pub fn create_cluster(
        &mut self,
        region: &str,
        mut new: NewCluster,
        now: Millis,
        settles_at: Millis,
        rng: &mut impl CryptoRng,
    ) -> Result<&Cluster, ApiError> {
        if let Some(id) = &new.source_backup_id {
            let backup = self.backup(region, id)?;
            if backup.state != BackupState::Ready {
                return Err(invalid(format!(
                    "SourceBackupId: backup {id} is {}; a cluster is made only from a READY backup",
                    backup.state.as_str()
                )));
            }
            new.mode.clone_from(&backup.mode);
        }
        let id = loop {
            let id = aws_id("cluster-", rng);
            if !self.clusters.contains_key(&id) {
                break id;
            }
        };
        let subnets: BTreeMap<String, String> = (b'a'..)
            .zip(&new.subnets)
            .map(|(zone, subnet)| (format!("{region}{}", zone as char), subnet.clone()))
            .collect();
        let cluster = Cluster {
            id: id.clone(),
            region: region.to_owned(),
            hsm_type: new.hsm_type,
            mode: new.mode,
            state: ClusterState::CreateInProgress,
            state_message: None,
            created: now,
            settles_at: Some(settles_at),
            backup_retention_days: new.retention_days,
            security_group: format!("sg-{}", hex_id(rng)),
            vpc_id: format!("vpc-{}", hex_id(rng)),
            subnets,
            network_type: new.network_type,
            source_backup_id: new.source_backup_id,
            hsms: Vec::new(),
            tags: new.tags,
            certificates: Certificates::default(),
            next_backup_at: None,
        };
        Ok(self.clusters.entry(id).or_insert(cluster))
    }

    /// `delete-cluster`: only once its HSMs are deleted.
    pub fn delete_cluster(&mut self, region: &str, id: &str, settles_at: Millis) -> Result<Value, ApiError> {
        let cluster = self.cluster_mut(region, id)?;
        if matches!(cluster.state, ClusterState::DeleteInProgress | ClusterState::Deleted) {
            return Err(invalid(format!("ClusterId: cluster {id} is already {}", cluster.state.as_str())));
        }
        if cluster.live_hsms().next().is_some() {
            return Err(invalid(format!(
                "ClusterId: cluster {id} still has {} HSM(s); delete them (delete-hsm) first",
                cluster.live_hsms().count()
            )));
        }
        cluster.state = ClusterState::DeleteInProgress;
        cluster.settles_at = Some(settles_at);
        Ok(cluster.to_api())
    }

    /// `modify-cluster`: the backup retention policy. Changing the HSM type
    /// (migrating hsm1.medium to hsm2m.medium) is not emulated and refused
    /// unless it names the type the cluster has.
    pub fn modify_cluster(&mut self, region: &str, input: &Value) -> Result<Value, ApiError> {
        let id = str_member(input, "ClusterId").unwrap_or_default();
        let days = retention(input)?;
        let cluster = self.cluster_mut(region, &id)?;
        if matches!(cluster.state, ClusterState::DeleteInProgress | ClusterState::Deleted) {
            return Err(invalid(format!("ClusterId: cluster {id} is {}", cluster.state.as_str())));
        }
        if let Some(hsm_type) = str_member(input, "HsmType")
            && hsm_type != cluster.hsm_type
        {
            return Err(invalid(format!(
                "HsmType: changing a cluster's HSM type ({} to {hsm_type}) is not emulated",
                cluster.hsm_type
            )));
        }
        if days.is_none() && input.get("HsmType").is_none() {
            return Err(invalid("give BackupRetentionPolicy (or HsmType) to modify".to_owned()));
        }
        if let Some(days) = days {
            cluster.backup_retention_days = days;
        }
        Ok(cluster.to_api())
    }

    /// `describe-clusters`: the region's clusters, oldest first, filtered
    /// by `clusterIds`, `states` and `vpcIds`.
    pub fn describe_clusters(&self, region: &str, input: &Value) -> Result<Value, ApiError> {
        let filters = Filters::parse(input, &["clusterIds", "states", "vpcIds"])?;
        let mut clusters: Vec<&Cluster> = self
            .clusters
            .values()
            .filter(|c| c.region == region)
            .filter(|c| filters.admits("clusterIds", &c.id))
            .filter(|c| filters.admits_any_case("states", c.state.as_str()))
            .filter(|c| filters.admits("vpcIds", &c.vpc_id))
            .collect();
        clusters.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let (clusters, next) = page(clusters, input, 25)?;
        let mut out = json!({"Clusters": clusters.iter().map(|c| c.to_api()).collect::<Vec<_>>()});
        if let Some(next) = next {
            out["NextToken"] = json!(next);
        }
        Ok(out)
    }

    /// `describe-backups`: the region's backups (those pending deletion
    /// too), oldest first unless `SortAscending` is false, filtered by
    /// `backupIds`, `sourceBackupIds`, `clusterIds`, `states` and
    /// `neverExpires`. `Shared` (backups other accounts share): this
    /// emulator has one account, so there are none.
    pub fn describe_backups(&self, region: &str, account: &str, input: &Value) -> Result<Value, ApiError> {
        let filters = Filters::parse(input, &["backupIds", "sourceBackupIds", "clusterIds", "states", "neverExpires"])?;
        let shared = input.get("Shared").and_then(Value::as_bool).unwrap_or(false);
        let mut backups: Vec<&Backup> = self
            .backups
            .values()
            .filter(|b| !shared && b.region == region && b.state != BackupState::Deleted)
            .filter(|b| filters.admits("backupIds", &b.id))
            .filter(|b| filters.admits("sourceBackupIds", b.source_backup.as_deref().unwrap_or("")))
            .filter(|b| filters.admits("clusterIds", &b.cluster_id))
            .filter(|b| filters.admits_any_case("states", b.state.as_str()))
            .filter(|b| filters.admits_any_case("neverExpires", if b.never_expires { "true" } else { "false" }))
            .collect();
        backups.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        if input.get("SortAscending").and_then(Value::as_bool) == Some(false) {
            backups.reverse();
        }
        let (backups, next) = page(backups, input, 50)?;
        let mut out = json!({"Backups": backups.iter().map(|b| b.to_api(account)).collect::<Vec<_>>()});
        if let Some(next) = next {
            out["NextToken"] = json!(next);
        }
        Ok(out)
    }

    /// A new backup of `cluster_id`, `CREATE_IN_PROGRESS` until `settles_at`
    /// (its file is the caller's to write first).
    pub fn add_backup(
        &mut self,
        cluster_id: &str,
        now: Millis,
        settles_at: Millis,
        rng: &mut impl CryptoRng,
    ) -> Result<&Backup, ApiError> {
        let cluster = self.clusters.get(cluster_id).ok_or_else(|| super::not_found("cluster", cluster_id, "any"))?;
        let backup = Backup {
            id: self.new_backup_id(rng),
            region: cluster.region.clone(),
            cluster_id: cluster.id.clone(),
            state: BackupState::CreateInProgress,
            created: now,
            settles_at: Some(settles_at),
            delete_at: None,
            never_expires: false,
            source_region: None,
            source_backup: None,
            source_cluster: None,
            copied: None,
            tags: Vec::new(),
            hsm_type: cluster.hsm_type.clone(),
            mode: cluster.mode.clone(),
            initialized: !matches!(
                cluster.state,
                ClusterState::CreateInProgress | ClusterState::Uninitialized | ClusterState::InitializeInProgress
            ),
            policy: None,
        };
        let id = backup.id.clone();
        Ok(self.backups.entry(id).or_insert(backup))
    }

    fn new_backup_id(&self, rng: &mut impl CryptoRng) -> String {
        loop {
            let id = aws_id("backup-", rng);
            if !self.backups.contains_key(&id) {
                return id;
            }
        }
    }

    /// `copy-backup-to-region`: a copy of a `READY` backup in another
    /// region, which shows where it came from. The copy's id.
    pub fn copy_backup(
        &mut self,
        region: &str,
        input: &Value,
        now: Millis,
        settles_at: Millis,
        rng: &mut impl CryptoRng,
    ) -> Result<(String, Value), ApiError> {
        let id = str_member(input, "BackupId").unwrap_or_default();
        let destination = str_member(input, "DestinationRegion").unwrap_or_default();
        let tags = parse_tags(input.get("TagList"))?;
        let source = self.backup(region, &id)?;
        if destination == region {
            return Err(invalid(format!("DestinationRegion: {destination} is the backup's own region")));
        }
        if source.state != BackupState::Ready {
            return Err(invalid(format!(
                "BackupId: backup {id} is {}; only a READY backup is copied",
                source.state.as_str()
            )));
        }
        let copy = Backup {
            id: self.new_backup_id(rng),
            region: destination,
            state: BackupState::CreateInProgress,
            created: now,
            settles_at: Some(settles_at),
            delete_at: None,
            never_expires: false,
            source_region: Some(region.to_owned()),
            source_backup: Some(source.id.clone()),
            source_cluster: Some(source.cluster_id.clone()),
            copied: Some(now),
            tags,
            policy: None,
            ..source.clone()
        };
        let shown = json!({
            "DestinationBackup": {
                "CreateTimestamp": super::seconds(now),
                "SourceRegion": region,
                "SourceBackup": source.id,
                "SourceCluster": source.cluster_id,
            }
        });
        let copy_id = copy.id.clone();
        self.backups.insert(copy_id.clone(), copy);
        Ok((copy_id, shown))
    }

    /// `delete-backup`: `PENDING_DELETION` for seven days.
    pub fn delete_backup(&mut self, region: &str, id: &str, now: Millis, account: &str) -> Result<Value, ApiError> {
        let backup = self.backup_mut(region, id)?;
        if backup.state != BackupState::Ready {
            return Err(invalid(format!(
                "BackupId: backup {id} is {}; only a READY backup is deleted",
                backup.state.as_str()
            )));
        }
        backup.state = BackupState::PendingDeletion;
        backup.delete_at = Some(now + PENDING_DELETION);
        Ok(json!({"Backup": backup.to_api(account)}))
    }

    /// `restore-backup`: a backup pending deletion is `READY` again.
    pub fn restore_backup(&mut self, region: &str, id: &str, account: &str) -> Result<Value, ApiError> {
        let backup = self.backup_mut(region, id)?;
        if backup.state != BackupState::PendingDeletion {
            return Err(invalid(format!(
                "BackupId: backup {id} is {}; only a backup PENDING_DELETION is restored",
                backup.state.as_str()
            )));
        }
        backup.state = BackupState::Ready;
        backup.delete_at = None;
        Ok(json!({"Backup": backup.to_api(account)}))
    }

    /// `modify-backup-attributes --never-expires`.
    pub fn modify_backup(&mut self, region: &str, input: &Value, account: &str) -> Result<Value, ApiError> {
        let id = str_member(input, "BackupId").unwrap_or_default();
        let never = input.get("NeverExpires").and_then(Value::as_bool).unwrap_or(false);
        let backup = self.backup_mut(region, &id)?;
        backup.never_expires = never;
        Ok(json!({"Backup": backup.to_api(account)}))
    }

    /// The tags of cluster or backup `resource` (its id), for changing.
    fn tags_mut(&mut self, region: &str, resource: &str) -> Result<&mut Vec<Tag>, ApiError> {
        if resource.starts_with("cluster-") {
            Ok(&mut self.cluster_mut(region, resource)?.tags)
        } else {
            Ok(&mut self.backup_mut(region, resource)?.tags)
        }
    }

    /// `tag-resource`: adds or replaces; `aws:` keys are AWS's own.
    pub fn tag(&mut self, region: &str, input: &Value) -> Result<Value, ApiError> {
        let resource = str_member(input, "ResourceId").unwrap_or_default();
        let new = parse_tags(input.get("TagList"))?;
        let tags = self.tags_mut(region, &resource)?;
        let mut merged = tags.clone();
        for tag in new {
            match merged.iter_mut().find(|t| t.key == tag.key) {
                Some(old) => old.value = tag.value,
                None => merged.push(tag),
            }
        }
        if merged.len() > MAX_TAGS {
            return Err(ApiError::ResourceLimitExceeded(format!(
                "TagList: {resource} would hold {} tags; a resource holds at most {MAX_TAGS}",
                merged.len()
            )));
        }
        *tags = merged;
        Ok(json!({}))
    }

    /// `untag-resource`: keys it does not hold are ignored.
    pub fn untag(&mut self, region: &str, input: &Value) -> Result<Value, ApiError> {
        let resource = str_member(input, "ResourceId").unwrap_or_default();
        let keys: Vec<String> = input
            .get("TagKeyList")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(key) = keys.iter().find(|k| k.starts_with("aws:")) {
            return Err(ApiError::Tag(format!("TagKeyList: '{key}': keys beginning with aws: are reserved")));
        }
        self.tags_mut(region, &resource)?.retain(|t| !keys.contains(&t.key));
        Ok(json!({}))
    }

    /// `list-tags`, in pages.
    pub fn list_tags(&mut self, region: &str, input: &Value) -> Result<Value, ApiError> {
        let resource = str_member(input, "ResourceId").unwrap_or_default();
        let tags = self.tags_mut(region, &resource)?.clone();
        let (tags, next) = page(tags, input, 100)?;
        let mut out = json!({"TagList": tags_json(&tags)});
        if let Some(next) = next {
            out["NextToken"] = json!(next);
        }
        Ok(out)
    }

    /// The backup a resource policy is on: only backups take them, by ARN
    /// of this region; a backup of another account is not this caller's
    /// to read or change.
    fn policy_backup(&mut self, region: &str, account: &str, input: &Value) -> Result<&mut Backup, ApiError> {
        let arn = str_member(input, "ResourceArn")
            .ok_or_else(|| invalid("ResourceArn: required; name the backup's ARN".to_owned()))?;
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [_, _, _, arn_region, arn_account, resource] = parts[..] else {
            return Err(invalid(format!("ResourceArn: '{arn}' is not an ARN")));
        };
        let Some(id) = resource.strip_prefix("backup/") else {
            return Err(invalid(format!("ResourceArn: '{arn}': resource policies are on backups only")));
        };
        if arn_account != account {
            return Err(ApiError::AccessDenied(format!(
                "ResourceArn: backup {id} belongs to account {arn_account}, not to this caller's ({account})"
            )));
        }
        if arn_region != region {
            return Err(super::not_found("backup", id, region));
        }
        self.backup_mut(region, id)
    }

    /// `put-resource-policy`: the policy must be a JSON policy document.
    pub fn put_policy(&mut self, region: &str, account: &str, input: &Value) -> Result<Value, ApiError> {
        let policy = str_member(input, "Policy").ok_or_else(|| invalid("Policy: required".to_owned()))?;
        let document: Value =
            serde_json::from_str(&policy).map_err(|e| invalid(format!("Policy: not a JSON policy document ({e})")))?;
        if document.get("Statement").is_none() {
            return Err(invalid("Policy: a policy document needs a Statement".to_owned()));
        }
        let backup = self.policy_backup(region, account, input)?;
        if backup.state != BackupState::Ready {
            return Err(invalid(format!("ResourceArn: backup {} is {}", backup.id, backup.state.as_str())));
        }
        backup.policy = Some(policy.clone());
        Ok(json!({"ResourceArn": str_member(input, "ResourceArn"), "Policy": policy}))
    }

    pub fn get_policy(&mut self, region: &str, account: &str, input: &Value) -> Result<Value, ApiError> {
        let backup = self.policy_backup(region, account, input)?;
        Ok(match &backup.policy {
            Some(policy) => json!({"Policy": policy}),
            None => json!({}),
        })
    }

    pub fn delete_policy(&mut self, region: &str, account: &str, input: &Value) -> Result<Value, ApiError> {
        let backup = self.policy_backup(region, account, input)?;
        let mut out = json!({"ResourceArn": str_member(input, "ResourceArn")});
        if let Some(policy) = backup.policy.take() {
            out["Policy"] = json!(policy);
        }
        Ok(out)
    }

    /// Checks `create-hsm` against cluster `id`: its state, the zone, the
    /// limit of HSMs, and one HSM at most before it is initialized.
    pub fn check_new_hsm(&self, region: &str, id: &str, zone: &str, limit: usize) -> Result<String, ApiError> {
        let cluster = self.cluster(region, id)?;
        match cluster.state {
            ClusterState::Uninitialized | ClusterState::Initialized | ClusterState::Active | ClusterState::Degraded => {
            }
            other => {
                return Err(invalid(format!(
                    "ClusterId: cluster {id} is {}; HSMs are added to a cluster that is UNINITIALIZED, \
                     INITIALIZED or ACTIVE",
                    other.as_str()
                )));
            }
        }
        let subnet = cluster.subnets.get(zone).cloned().ok_or_else(|| {
            invalid(format!(
                "AvailabilityZone: cluster {id} has no subnet in {zone}; its zones are {}",
                cluster.subnets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let live = cluster.live_hsms().count();
        if cluster.state == ClusterState::Uninitialized && live > 0 {
            return Err(invalid(format!(
                "ClusterId: cluster {id} is UNINITIALIZED and has an HSM; initialize it (initialize-cluster) \
                 before adding more"
            )));
        }
        if cluster.state == ClusterState::Initialized && live > 0 {
            // New HSMs copy users and keys from a running one as the
            // appliance user, which an unactivated cluster does not allow.
            return Err(invalid(format!(
                "ClusterId: cluster {id} is INITIALIZED but not yet activated; activate it (hsm-cli cluster \
                 activate) before adding HSMs"
            )));
        }
        if live >= limit {
            return Err(invalid(format!("ClusterId: cluster {id} has {live} HSMs, the most a cluster holds")));
        }
        Ok(subnet)
    }

    /// The HSM of cluster `id` that `delete-hsm` names by `HsmId`, `EniId`
    /// or `EniIp` (one is required).
    pub fn hsm_to_delete(&self, region: &str, input: &Value) -> Result<Hsm, ApiError> {
        let id = str_member(input, "ClusterId").unwrap_or_default();
        let cluster = self.cluster(region, &id)?;
        let (by, value) = ["HsmId", "EniId", "EniIp"]
            .into_iter()
            .find_map(|member| str_member(input, member).map(|v| (member, v)))
            .ok_or_else(|| invalid("delete-hsm needs one of HsmId, EniId or EniIp".to_owned()))?;
        cluster
            .live_hsms()
            .find(|h| match by {
                "HsmId" => h.id == value,
                "EniId" => h.eni_id == value,
                _ => h.eni_ip == value,
            })
            .cloned()
            .ok_or_else(|| ApiError::ResourceNotFound(format!("{by} {value}: no such HSM in cluster {id}")))
    }
}

/// A new HSM's record (its id and index come from the HSM itself).
pub fn new_hsm(
    (id, index): (String, usize),
    zone: &str,
    subnet: String,
    (ip, port): (String, u16),
    settles_at: Millis,
    rng: &mut impl CryptoRng,
) -> Hsm {
    Hsm {
        id,
        index,
        availability_zone: zone.to_owned(),
        subnet_id: subnet,
        eni_id: format!("eni-{}", hex_id(rng)),
        eni_ip: ip,
        port,
        state: HsmState::CreateInProgress,
        settles_at: Some(settles_at),
        problem: None,
    }
}

/// `TagList`, checked: `aws:` keys are AWS's own; each key once.
pub fn parse_tags(list: Option<&Value>) -> Result<Vec<Tag>, ApiError> {
    let mut tags: Vec<Tag> = Vec::new();
    for tag in list.and_then(Value::as_array).into_iter().flatten() {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default().to_owned();
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default().to_owned();
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::Tag(format!("TagList: '{key}': keys beginning with aws: are reserved")));
        }
        if tags.iter().any(|t| t.key == key) {
            return Err(ApiError::Tag(format!("TagList: key '{key}' is given twice")));
        }
        tags.push(Tag { key, value });
    }
    Ok(tags)
}

/// `BackupRetentionPolicy`, checked: `DAYS`, 7 to 379.
fn retention(input: &Value) -> Result<Option<u32>, ApiError> {
    let Some(policy) = input.get("BackupRetentionPolicy") else { return Ok(None) };
    let raw = policy.get("Value").and_then(Value::as_str).unwrap_or_default();
    let days: u32 =
        raw.parse().map_err(|_| invalid(format!("BackupRetentionPolicy.Value: '{raw}' is not a number of days")))?;
    if !RETENTION_DAYS.contains(&days) {
        return Err(invalid(format!(
            "BackupRetentionPolicy.Value: {days} days; retention is {} to {} days",
            RETENTION_DAYS.start(),
            RETENTION_DAYS.end()
        )));
    }
    Ok(Some(days))
}

pub fn str_member(input: &Value, member: &str) -> Option<String> {
    input.get(member).and_then(Value::as_str).map(str::to_owned)
}

pub fn invalid(message: String) -> ApiError {
    ApiError::InvalidRequest(message)
}

/// `prefix` and 11 characters of AWS's id alphabet (lower-case letters
/// and 2 to 7).
pub fn aws_id(prefix: &str, rng: &mut impl CryptoRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let suffix: String = (0..11).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{suffix}")
}

/// 17 hexadecimal digits, as EC2 ids (`eni-`, `sg-`, `vpc-`) have.
fn hex_id(rng: &mut impl CryptoRng) -> String {
    (0..17).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}
