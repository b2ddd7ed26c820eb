//! The permission table against the seed, and against docs/permissions.md.

use super::*;

/// The seed's table written out independently of `allowed`, row by row,
/// in the column order CO, CU, AU, unauthenticated, PRECO, and AU before
/// activation (cluster info, user list and session upkeep only).
const EXPECTED: &[(Operation, [bool; 6])] = &[
    (Operation::GetClusterInfo, [true, true, true, true, true, true]),
    (Operation::GetSyncStatus, [true, true, true, false, false, false]),
    (Operation::ExtractMaskedObject, [true, true, true, false, false, false]),
    (Operation::InsertMaskedObject, [true, true, true, false, false, false]),
    (Operation::ChangeOwnPassword, [true, true, true, false, false, false]),
    (Operation::ChangeAnyPassword, [true, false, false, false, false, false]),
    (Operation::CreateUser, [true, false, false, false, false, false]),
    (Operation::DeleteUser, [true, false, false, false, false, false]),
    (Operation::ActivateCluster, [false, false, false, false, true, false]),
    (Operation::Login, [true, true, true, true, true, true]),
    (Operation::Logout, [true, true, true, false, true, true]),
    (Operation::Ping, [true, true, true, false, true, true]),
    (Operation::ListUsers, [true, true, true, false, true, true]),
    (Operation::GenerateSymmetricKey, [false, true, false, false, false, false]),
    (Operation::GenerateKeyPair, [false, true, false, false, false, false]),
    (Operation::ImportKey, [false, true, false, false, false, false]),
    (Operation::ExportPublicKey, [false, true, false, false, false, false]),
    (Operation::WrapKey, [false, true, false, false, false, false]),
    (Operation::UnwrapKey, [false, true, false, false, false, false]),
    (Operation::DeleteKey, [false, true, false, false, false, false]),
    (Operation::ShareKey, [false, true, false, false, false, false]),
    (Operation::UnshareKey, [false, true, false, false, false, false]),
    (Operation::SetKeyAttribute, [true, true, false, false, false, false]),
    (Operation::ListKeys, [true, true, false, false, false, false]),
    (Operation::Encrypt, [false, true, false, false, false, false]),
    (Operation::Decrypt, [false, true, false, false, false, false]),
    (Operation::Sign, [false, true, false, false, false, false]),
    (Operation::Verify, [false, true, false, false, false, false]),
    (Operation::Digest, [false, true, false, false, false, false]),
    (Operation::GenerateRandom, [false, true, false, false, false, false]),
    (Operation::ReadAuditLog, [true, false, false, false, false, false]),
    (Operation::RegisterTrustAnchor, [true, false, false, false, false, false]),
    (Operation::DeregisterTrustAnchor, [true, false, false, false, false, false]),
    (Operation::ListTrustAnchors, [true, true, true, false, false, false]),
    (Operation::SetMtlsEnforcement, [true, false, false, false, false, false]),
    (Operation::GetMtlsEnforcement, [true, true, true, false, false, false]),
    (Operation::GenerateQuorumToken, [true, true, false, false, false, false]),
    (Operation::ListQuorumTokens, [true, true, false, false, false, false]),
    (Operation::DeleteQuorumTokens, [true, true, false, false, false, false]),
    (Operation::SetQuorumValue, [true, false, false, false, false, false]),
    (Operation::ListQuorumValues, [true, true, true, false, false, false]),
    (Operation::RegisterQuorumKey, [true, true, false, false, false, false]),
    (Operation::ChangeMfa, [true, true, false, false, false, false]),
];
const COLUMNS: [Identity; 6] = [
    Identity::CryptoOfficer,
    Identity::CryptoUser,
    Identity::ApplianceUser,
    Identity::Unauthenticated,
    Identity::PrecryptoOfficer,
    Identity::UnactivatedAppliance,
];

#[test]
fn table_matches_the_seed_for_every_operation_and_identity() {
    assert_eq!(EXPECTED.len(), Operation::ALL.len(), "every operation has an expected row");
    for (operation, row) in EXPECTED {
        for (identity, want) in COLUMNS.iter().zip(row) {
            let got = authorize(*operation, *identity).is_ok();
            assert_eq!(got, *want, "{operation} as {identity}");
        }
    }
}

#[test]
fn refusals_name_the_operation_and_the_role() {
    let err = authorize(Operation::CreateUser, Identity::CryptoUser).unwrap_err();
    assert_eq!(err.to_string(), "user create is not permitted for role crypto-user (CU)");
    let err = authorize(Operation::ListUsers, Identity::Unauthenticated).unwrap_err();
    assert!(matches!(err, ModelError::NotLoggedIn { .. }));
    assert!(err.to_string().contains("user list"), "{err}");
    assert!(err.to_string().contains("unauthenticated"), "{err}");
    for before in [Identity::PrecryptoOfficer, Identity::UnactivatedAppliance] {
        let err = authorize(Operation::GetSyncStatus, before).unwrap_err();
        assert_eq!(err, ModelError::NotActivated { operation: Operation::GetSyncStatus, identity: before });
        assert!(err.to_string().contains("cluster sync-status"), "{err}");
        assert!(err.to_string().contains("while the cluster is not activated"), "{err}");
    }
}

/// The sub-operation rows, written out independently of `Action::allowed`,
/// in the column order of `EXPECTED`. Before activation and without a
/// session nobody may do any of them (the operations around them are
/// refused first).
const EXPECTED_ACTIONS: &[(Action, [bool; 6])] = &[
    (Action::SetTrustedAttribute, [true, false, false, false, false, false]),
    (Action::SetKeyAttribute, [false, true, false, false, false, false]),
    (Action::SeeEveryKey, [true, false, false, false, false, false]),
    (Action::UseKeys, [false, true, false, false, false, false]),
    (Action::CopyAnyKey, [true, false, true, false, false, false]),
    (Action::CopyUsers, [true, false, true, false, false, false]),
    (Action::ReplaceMtlsPolicy, [false, false, true, false, false, false]),
    (Action::SetMtlsEnforcement, [true, false, false, false, false, false]),
    (Action::AdminServiceToken, [true, false, false, false, false, false]),
    (Action::KeyServiceToken, [false, true, false, false, false, false]),
    (Action::RegistrationToken, [true, true, false, false, false, false]),
    (Action::DeleteEveryonesQuorumTokens, [true, false, false, false, false, false]),
    (Action::ApproveAdminServices, [true, false, false, false, false, false]),
    (Action::ChangeAnyonesMfa, [true, false, false, false, false, false]),
];

fn username(raw: &str) -> Username {
    Username::parse("username", raw).unwrap()
}

#[test]
fn sub_operations_match_their_rows_for_every_identity() {
    assert_eq!(EXPECTED_ACTIONS.len(), Action::ALL.len(), "every action has an expected row");
    let admin = username(crate::model::ADMIN_USERNAME);
    for (action, row) in EXPECTED_ACTIONS {
        for (identity, want) in COLUMNS.iter().zip(row) {
            assert_eq!(action.allowed().admits(*identity, Some(&admin)), *want, "{action:?} as {identity}");
        }
    }
}

#[test]
fn only_the_user_named_admin_sets_the_mtls_enforcement_level() {
    let who = Action::SetMtlsEnforcement.allowed();
    assert!(who.admits(Identity::CryptoOfficer, Some(&username("admin"))));
    assert!(!who.admits(Identity::CryptoOfficer, Some(&username("second_admin"))));
    assert!(!who.admits(Identity::CryptoOfficer, None));
    assert!(!who.admits(Identity::CryptoUser, Some(&username("admin"))));
    // Every other action holds for any user of its identities.
    for action in Action::ALL.iter().filter(|a| **a != Action::SetMtlsEnforcement) {
        assert_eq!(action.allowed().only_user, None, "{action:?}");
    }
}

#[test]
fn each_quorum_service_has_its_token_row() {
    for service in [QuorumService::User, QuorumService::Quorum, QuorumService::Cluster] {
        assert_eq!(Action::quorum_token(service), Action::AdminServiceToken);
    }
    for service in [QuorumService::KeyManagement, QuorumService::KeyUsage] {
        assert_eq!(Action::quorum_token(service), Action::KeyServiceToken);
    }
    assert_eq!(Action::quorum_token(QuorumService::Registration), Action::RegistrationToken);
}

/// What a cell of docs/permissions.md must say for `who` and `identity`.
fn cell(allowed: bool, only_user: Option<&str>) -> String {
    match (allowed, only_user) {
        (false, _) => "no".to_owned(),
        (true, None) => "yes".to_owned(),
        (true, Some(name)) => format!("only `{name}`"),
    }
}

/// A row of the docs' table names operations and actions as
/// `Operation::Name` and `Action::Name` in its last column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Operation(Operation),
    Action(Action),
}

impl Entry {
    fn all() -> Vec<Entry> {
        let operations = Operation::ALL.iter().map(|o| Entry::Operation(*o));
        operations.chain(Action::ALL.iter().map(|a| Entry::Action(*a))).collect()
    }

    fn name(self) -> String {
        match self {
            Entry::Operation(o) => format!("Operation::{o:?}"),
            Entry::Action(a) => format!("Action::{a:?}"),
        }
    }

    fn cell(self, identity: Identity) -> String {
        match self {
            Entry::Operation(o) => cell(allowed(o).contains(&identity), None),
            Entry::Action(a) => {
                let who = a.allowed();
                cell(who.identities.contains(&identity), who.only_user)
            }
        }
    }
}

/// The docs' column headings, to identities.
fn column(heading: &str) -> Option<Identity> {
    Some(match heading {
        "admin (CO)" => Identity::CryptoOfficer,
        "crypto-user (CU)" => Identity::CryptoUser,
        "appliance (AU)" => Identity::ApplianceUser,
        "unauthenticated" => Identity::Unauthenticated,
        "unactivated-admin (PRECO)" => Identity::PrecryptoOfficer,
        "appliance before activation" => Identity::UnactivatedAppliance,
        _ => return None,
    })
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// Every difference between the markdown table in `doc` and the code's
/// table, each naming the row and the column.
fn differences(doc: &str) -> Vec<String> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let Some(header) = lines.next() else { return vec!["no table".to_owned()] };
    let header = cells(header);
    let mut problems = Vec::new();
    let columns: Vec<Option<Identity>> = header[1..header.len() - 1].iter().map(|h| column(h)).collect();
    for (heading, identity) in header[1..].iter().zip(&columns) {
        if identity.is_none() {
            problems.push(format!("column '{heading}' names no identity"));
        }
    }
    for identity in Identity::ALL {
        if !columns.contains(&Some(*identity)) {
            problems.push(format!("no column for {identity}"));
        }
    }
    let by_name: Vec<(String, Entry)> = Entry::all().into_iter().map(|e| (e.name(), e)).collect();
    let mut seen: Vec<Entry> = Vec::new();
    for line in lines.skip(1) {
        let row = cells(line);
        let label = &row[0];
        if row.len() != header.len() {
            problems.push(format!("row '{label}' has {} cells, the heading {}", row.len(), header.len()));
            continue;
        }
        let names = row[row.len() - 1].split(',').map(|n| n.trim().trim_matches('`'));
        let entries: Vec<Entry> = names
            .filter_map(|name| match by_name.iter().find(|(n, _)| n == name) {
                Some((_, entry)) => Some(*entry),
                None => {
                    problems.push(format!("row '{label}' names '{name}', which permissions.rs lacks"));
                    None
                }
            })
            .collect();
        for entry in entries {
            if seen.contains(&entry) {
                problems.push(format!("{} has a second row, '{label}'", entry.name()));
            }
            seen.push(entry);
            for ((heading, identity), doc_cell) in header[1..].iter().zip(&columns).zip(&row[1..row.len() - 1]) {
                let Some(identity) = identity else { continue };
                let code = entry.cell(*identity);
                if *doc_cell != code {
                    problems.push(format!(
                        "row '{label}', column '{heading}': the docs say '{doc_cell}', {} says '{code}'",
                        entry.name()
                    ));
                }
            }
        }
    }
    for entry in Entry::all() {
        if !seen.contains(&entry) {
            problems.push(format!("{} has no row in docs/permissions.md", entry.name()));
        }
    }
    problems
}

fn docs() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/permissions.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn docs_permissions_md_shows_the_table_cell_for_cell() {
    let problems = differences(&docs());
    assert!(problems.is_empty(), "docs/permissions.md differs from permissions.rs:\n{}", problems.join("\n"));
}

#[test]
fn a_flipped_cell_in_the_docs_is_named_by_row_and_column() {
    let flipped =
        docs().replacen("| `cluster activate` (Activate) | no |", "| `cluster activate` (Activate) | yes |", 1);
    assert_eq!(
        differences(&flipped),
        ["row '`cluster activate` (Activate)', column 'admin (CO)': the docs say 'yes', \
          Operation::ActivateCluster says 'no'"]
    );
    let missing = docs().replace(", `Action::CopyUsers`", "").replace(" `Action::CopyUsers` |", " |");
    assert!(differences(&missing).contains(&"Action::CopyUsers has no row in docs/permissions.md".to_owned()));
}

#[test]
fn who_reads_as_the_identities_in_words() {
    assert_eq!(Action::AdminServiceToken.allowed().to_string(), "admin (CO)");
    assert_eq!(Action::RegistrationToken.allowed().to_string(), "admin (CO) or crypto-user (CU)");
    assert_eq!(Action::SetMtlsEnforcement.allowed().to_string(), "the user named 'admin' (admin (CO))");
}
