//! What the control plane keeps of each resource, as it persists it, and
//! how each shows in the API (the service model's `Cluster`, `Hsm` and
//! `Backup` shapes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Milliseconds since the Unix epoch: the clock's unit here; the API shows
/// seconds.
pub type Millis = i64;

/// A cluster as the API knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub region: String,
    pub hsm_type: String,
    pub mode: String,
    pub state: ClusterState,
    pub state_message: Option<String>,
    pub created: Millis,
    /// When the state in progress completes (`CREATE_IN_PROGRESS`, ...).
    pub settles_at: Option<Millis>,
    pub backup_retention_days: u32,
    pub security_group: String,
    pub vpc_id: String,
    /// Availability zone to subnet, as `create-cluster --subnet-ids` gave
    /// them (the first subnet in zone `a` of the region, and so on).
    pub subnets: BTreeMap<String, String>,
    pub network_type: String,
    pub source_backup_id: Option<String>,
    pub hsms: Vec<Hsm>,
    pub tags: Vec<Tag>,
    pub certificates: Certificates,
    /// When its next scheduled backup is due (once it is initialized).
    #[serde(default)]
    pub next_backup_at: Option<Millis>,
}

/// One HSM of a cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hsm {
    pub id: String,
    /// Its index in the cluster's directory (`hsm-K.toml`).
    pub index: usize,
    pub availability_zone: String,
    pub subnet_id: String,
    pub eni_id: String,
    pub eni_ip: String,
    /// The port it serves on (CloudHSM's 2223 where the address is its
    /// own).
    pub port: u16,
    pub state: HsmState,
    pub settles_at: Option<Millis>,
    /// Why it is `DEGRADED` (it did not start again after a restart).
    #[serde(default)]
    pub problem: Option<String>,
}

/// A backup of a cluster, or a copy of one from another region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub region: String,
    pub cluster_id: String,
    pub state: BackupState,
    pub created: Millis,
    pub settles_at: Option<Millis>,
    /// When a backup pending deletion is deleted for good.
    pub delete_at: Option<Millis>,
    pub never_expires: bool,
    pub source_region: Option<String>,
    pub source_backup: Option<String>,
    pub source_cluster: Option<String>,
    pub copied: Option<Millis>,
    pub tags: Vec<Tag>,
    pub hsm_type: String,
    pub mode: String,
    /// Whether the cluster it was taken of had been initialized: a cluster
    /// made from it is, with the same certificates.
    pub initialized: bool,
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The certificates `describe-clusters` shows (PEM).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Certificates {
    pub cluster_csr: Option<String>,
    pub hsm_certificate: Option<String>,
    pub aws_hardware_certificate: Option<String>,
    pub manufacturer_hardware_certificate: Option<String>,
    pub cluster_certificate: Option<String>,
}

macro_rules! api_enum {
    ($name:ident { $($variant:ident => $text:literal,)* }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $($variant,)* }

        impl $name {
            /// As the API spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

api_enum!(ClusterState {
    CreateInProgress => "CREATE_IN_PROGRESS",
    Uninitialized => "UNINITIALIZED",
    InitializeInProgress => "INITIALIZE_IN_PROGRESS",
    Initialized => "INITIALIZED",
    Active => "ACTIVE",
    DeleteInProgress => "DELETE_IN_PROGRESS",
    Deleted => "DELETED",
    Degraded => "DEGRADED",
});

api_enum!(HsmState {
    CreateInProgress => "CREATE_IN_PROGRESS",
    Active => "ACTIVE",
    Degraded => "DEGRADED",
    DeleteInProgress => "DELETE_IN_PROGRESS",
    Deleted => "DELETED",
});

api_enum!(BackupState {
    CreateInProgress => "CREATE_IN_PROGRESS",
    Ready => "READY",
    Deleted => "DELETED",
    PendingDeletion => "PENDING_DELETION",
});

/// Epoch seconds, as the protocol layer takes timestamps.
pub fn seconds(at: Millis) -> Value {
    #[expect(clippy::cast_precision_loss, reason = "milliseconds since 1970 fit a double's 53 bits exactly")]
    let s = at as f64 / 1000.0;
    json!(s)
}

pub fn arn(region: &str, account: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:cloudhsm:{region}:{account}:{kind}/{id}")
}

pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect())
}

/// Puts `value` under `key` unless it is `None` (the API leaves absent
/// members out).
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value);
    }
}

impl Cluster {
    pub fn to_api(&self) -> Value {
        let mut m = Map::new();
        put(&mut m, "BackupPolicy", Some(json!("DEFAULT")));
        put(
            &mut m,
            "BackupRetentionPolicy",
            Some(json!({"Type": "DAYS", "Value": self.backup_retention_days.to_string()})),
        );
        put(&mut m, "ClusterId", Some(json!(self.id)));
        put(&mut m, "CreateTimestamp", Some(seconds(self.created)));
        put(&mut m, "Hsms", Some(Value::Array(self.hsms.iter().map(|h| h.to_api(self)).collect())));
        put(&mut m, "HsmType", Some(json!(self.hsm_type)));
        put(&mut m, "SecurityGroup", Some(json!(self.security_group)));
        put(&mut m, "SourceBackupId", self.source_backup_id.as_ref().map(|b| json!(b)));
        put(&mut m, "State", Some(json!(self.state.as_str())));
        put(&mut m, "StateMessage", self.state_message.as_ref().map(|s| json!(s)));
        put(&mut m, "SubnetMapping", Some(json!(self.subnets)));
        put(&mut m, "VpcId", Some(json!(self.vpc_id)));
        put(&mut m, "NetworkType", Some(json!(self.network_type)));
        let c = &self.certificates;
        let mut certs = Map::new();
        put(&mut certs, "ClusterCsr", c.cluster_csr.as_ref().map(|s| json!(s)));
        put(&mut certs, "HsmCertificate", c.hsm_certificate.as_ref().map(|s| json!(s)));
        put(&mut certs, "AwsHardwareCertificate", c.aws_hardware_certificate.as_ref().map(|s| json!(s)));
        put(
            &mut certs,
            "ManufacturerHardwareCertificate",
            c.manufacturer_hardware_certificate.as_ref().map(|s| json!(s)),
        );
        put(&mut certs, "ClusterCertificate", c.cluster_certificate.as_ref().map(|s| json!(s)));
        put(&mut m, "Certificates", Some(Value::Object(certs)));
        if !self.tags.is_empty() {
            put(&mut m, "TagList", Some(tags_json(&self.tags)));
        }
        put(&mut m, "Mode", Some(json!(self.mode)));
        Value::Object(m)
    }

    /// The HSMs that are (or are becoming) part of it.
    pub fn live_hsms(&self) -> impl Iterator<Item = &Hsm> {
        self.hsms
            .iter()
            .filter(|h| matches!(h.state, HsmState::CreateInProgress | HsmState::Active | HsmState::Degraded))
    }
}

impl Hsm {
    pub fn to_api(&self, cluster: &Cluster) -> Value {
        let mut m = Map::new();
        put(&mut m, "AvailabilityZone", Some(json!(self.availability_zone)));
        put(&mut m, "ClusterId", Some(json!(cluster.id)));
        put(&mut m, "SubnetId", Some(json!(self.subnet_id)));
        put(&mut m, "EniId", Some(json!(self.eni_id)));
        put(&mut m, "EniIp", Some(json!(self.eni_ip)));
        put(&mut m, "HsmId", Some(json!(self.id)));
        put(&mut m, "HsmType", Some(json!(cluster.hsm_type)));
        put(&mut m, "State", Some(json!(self.state.as_str())));
        let message = match self.state {
            HsmState::CreateInProgress => "HSM is being created.",
            HsmState::Active => "HSM created.",
            HsmState::Degraded => self.problem.as_deref().unwrap_or("HSM is degraded."),
            HsmState::DeleteInProgress => "HSM is being deleted.",
            HsmState::Deleted => "HSM deleted.",
        };
        put(&mut m, "StateMessage", Some(json!(message)));
        Value::Object(m)
    }
}

impl Backup {
    pub fn to_api(&self, account: &str) -> Value {
        let mut m = Map::new();
        put(&mut m, "BackupId", Some(json!(self.id)));
        put(&mut m, "BackupArn", Some(json!(arn(&self.region, account, "backup", &self.id))));
        put(&mut m, "BackupState", Some(json!(self.state.as_str())));
        put(&mut m, "ClusterId", Some(json!(self.cluster_id)));
        put(&mut m, "CreateTimestamp", Some(seconds(self.created)));
        put(&mut m, "CopyTimestamp", self.copied.map(seconds));
        put(&mut m, "NeverExpires", Some(json!(self.never_expires)));
        put(&mut m, "SourceRegion", self.source_region.as_ref().map(|s| json!(s)));
        put(&mut m, "SourceBackup", self.source_backup.as_ref().map(|s| json!(s)));
        put(&mut m, "SourceCluster", self.source_cluster.as_ref().map(|s| json!(s)));
        put(&mut m, "DeleteTimestamp", self.delete_at.map(seconds));
        if !self.tags.is_empty() {
            put(&mut m, "TagList", Some(tags_json(&self.tags)));
        }
        put(&mut m, "HsmType", Some(json!(self.hsm_type)));
        put(&mut m, "Mode", Some(json!(self.mode)));
        Value::Object(m)
    }
}
