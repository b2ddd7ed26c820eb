//! Quorum services, values and the token table.

use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng};

use super::*;
use crate::model::Username;

fn user(name: &str) -> Username {
    Username::parse("username", name).unwrap()
}

#[test]
fn services_and_values_parse_with_the_field_and_rule() {
    assert_eq!(QuorumService::parse("service", "key-usage").unwrap(), QuorumService::KeyUsage);
    assert!(QuorumService::parse("service", "users").unwrap_err().to_string().starts_with("invalid service: "));
    assert_eq!(QuorumValue::parse("value", 8).unwrap().get(), 8);
    for bad in [0, 9, 300] {
        assert_eq!(
            QuorumValue::parse("value", bad).unwrap_err().to_string(),
            "invalid value: must be 1 to 8 (1 turns quorum off)"
        );
    }
}

#[test]
fn tokens_expire_are_bound_to_their_user_and_purpose_and_are_bounded() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut tokens = Tokens::default();
    let t0 = Instant::now();
    let (alice, bob) = (user("alice"), user("bob"));
    let purpose = Purpose::Quorum(QuorumService::User);
    let issued = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
    assert_eq!(issued.token, sha256(&issued.approval_data));
    assert!(tokens.find(&issued.token, &purpose, &alice, t0).is_ok());
    assert!(matches!(tokens.find(&issued.token, &purpose, &bob, t0), Err(ModelError::QuorumTokenMismatch { .. })));
    assert!(matches!(
        tokens.find(&issued.token, &Purpose::Quorum(QuorumService::Quorum), &alice, t0),
        Err(ModelError::QuorumTokenMismatch { .. })
    ));
    let late = t0 + TOKEN_LIFETIME;
    assert_eq!(tokens.find(&issued.token, &purpose, &alice, late), Err(ModelError::QuorumTokenUnknown));

    // One admin-service token per user; key-service tokens add up to the cap.
    let a = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
    let b = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
    assert_eq!(tokens.find(&a.token, &purpose, &alice, t0), Err(ModelError::QuorumTokenUnknown));
    assert!(tokens.find(&b.token, &purpose, &alice, t0).is_ok());
    let usage = Purpose::Quorum(QuorumService::KeyUsage);
    for _ in 1..MAX_TOKENS {
        tokens.issue(usage.clone(), &bob, "hsm-a", t0, &mut rng).unwrap();
    }
    assert_eq!(
        tokens.issue(usage.clone(), &bob, "hsm-a", t0, &mut rng).unwrap_err(),
        ModelError::TooManyQuorumTokens { max: MAX_TOKENS }
    );
    // Expired ones make room.
    assert!(tokens.issue(usage, &bob, "hsm-a", late, &mut rng).is_ok());
    assert_eq!(tokens.list(late, |_| 2).len(), 1);
}
