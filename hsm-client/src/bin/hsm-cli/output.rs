//! The CloudHSM CLI's JSON output: `{"error_code": 0, "data": ...}` on
//! success, `{"error_code": 1, "data": "<message>"}` on failure.

use hsm_client::{ClusterInfo, HsmInfo, Role, User};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct Envelope<'a> {
    error_code: u8,
    data: &'a Value,
}

/// The JSON text for a command's outcome.
pub(crate) fn render(outcome: &Result<Value, String>) -> String {
    let (error_code, data) = match outcome {
        Ok(data) => (0, data.clone()),
        Err(message) => (1, Value::String(message.clone())),
    };
    // Serialising a `Value` cannot fail; fall back to compact output if it
    // ever did.
    serde_json::to_string_pretty(&Envelope { error_code, data: &data })
        .unwrap_or_else(|_| format!("{{\"error_code\":{error_code},\"data\":{data}}}"))
}

/// `{"username": ..., "role": ...}`, as login and the user commands print.
pub(crate) fn user_ref(username: &str, role: Role) -> Value {
    #[derive(Serialize)]
    struct UserRef<'a> {
        username: &'a str,
        role: String,
    }
    to_value(UserRef { username, role: role.to_string() })
}

/// `user list`'s data.
pub(crate) fn users(users: &[User]) -> Value {
    #[derive(Serialize)]
    struct Row<'a> {
        username: &'a str,
        role: String,
        locked: &'static str,
        mfa: [(); 0],
        quorum: [(); 0],
        #[serde(rename = "cluster-coverage")]
        cluster_coverage: &'static str,
    }
    #[derive(Serialize)]
    struct Users<'a> {
        users: Vec<Row<'a>>,
    }
    let rows = users
        .iter()
        .map(|u| Row {
            username: &u.username,
            role: u.role.to_string(),
            locked: if u.locked { "true" } else { "false" },
            mfa: [],
            quorum: [],
            cluster_coverage: "full",
        })
        .collect();
    to_value(Users { users: rows })
}

/// `cluster hsm-info`'s data: the fields the CloudHSM CLI prints, as strings.
pub(crate) fn hsm_info(info: &ClusterInfo) -> Value {
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Hsm<'a> {
        vendor: &'a str,
        model: &'a str,
        serial_number: &'a str,
        hardware_version_major: String,
        hardware_version_minor: String,
        firmware_version_major: String,
        firmware_version_minor: String,
        firmware_build_number: String,
        firmware_id: &'a str,
        fips_state: &'a str,
    }
    #[derive(Serialize)]
    struct Hsms<'a> {
        hsms: Vec<Hsm<'a>>,
    }
    fn row(h: &HsmInfo) -> Hsm<'_> {
        Hsm {
            vendor: &h.vendor,
            model: &h.model,
            serial_number: &h.serial_number,
            hardware_version_major: h.hardware_version_major.to_string(),
            hardware_version_minor: h.hardware_version_minor.to_string(),
            firmware_version_major: h.firmware_version_major.to_string(),
            firmware_version_minor: h.firmware_version_minor.to_string(),
            firmware_build_number: h.firmware_build_number.to_string(),
            firmware_id: &h.firmware_id,
            fips_state: &h.fips_state,
        }
    }
    to_value(Hsms { hsms: info.hsms.iter().map(row).collect() })
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
