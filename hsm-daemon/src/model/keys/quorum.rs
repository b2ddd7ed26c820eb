//! A key's own quorum values (`manage-key-quorum-value`,
//! `use-key-quorum-value`) and the users who approve for it.

use super::{Actor, KeyRef, KeyView, Keys, view};
use crate::model::{ModelError, QuorumService, Username, quorum::MAX_QUORUM};

/// A key's quorum values (CloudHSM's `manage-key-quorum-value` and
/// `use-key-quorum-value`): how many of its owner and shared users must
/// approve its management (wrap, unwrap, share, unshare, set-attribute) and
/// its use (sign). 0 or 1: no approval needed (CloudHSM shows 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyQuorum {
    pub manage: u8,
    pub usage: u8,
}

impl KeyQuorum {
    /// Checks the values against the users the key is associated with
    /// (its owner and `shared` users): a value cannot exceed their number.
    pub fn parse(manage: u32, usage: u32, associated: usize) -> Result<Self, ModelError> {
        let value = |field: &'static str, raw: u32| {
            let v = u8::try_from(raw)
                .ok()
                .filter(|v| *v <= MAX_QUORUM)
                .ok_or_else(|| ModelError::InvalidArgument { field, rule: format!("must be 0 to {}", MAX_QUORUM) })?;
            if usize::from(v) > associated.max(1) {
                return Err(ModelError::InvalidArgument {
                    field,
                    rule: format!(
                        "{v} is more than the {associated} user(s) the key is associated with (its owner and the \
                         users it is shared with)"
                    ),
                });
            }
            Ok(v)
        };
        Ok(KeyQuorum {
            manage: value("manage_key_quorum_value", manage)?,
            usage: value("use_key_quorum_value", usage)?,
        })
    }

    /// The approvals `service` needs (key-management or key-usage).
    pub fn required(self, service: QuorumService) -> u8 {
        match service {
            QuorumService::KeyManagement => self.manage,
            QuorumService::KeyUsage => self.usage,
            QuorumService::User | QuorumService::Quorum | QuorumService::Cluster | QuorumService::Registration => 0,
        }
    }

    pub fn is_set(self) -> bool {
        self.manage > 1 || self.usage > 1
    }
}

impl Keys {
    /// Gives a key made just now its quorum values (its version stays 1).
    pub fn set_quorum_at_creation(&mut self, reference: KeyRef, quorum: KeyQuorum) -> Result<KeyView, ModelError> {
        let key = self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })?;
        key.quorum = quorum;
        key.digest = key.compute_digest(reference);
        if key.session.is_none() {
            self.dirty.insert(reference);
        }
        Ok(view(reference, key))
    }

    /// A key's quorum values (none for an unknown key).
    pub fn quorum(&self, reference: KeyRef) -> KeyQuorum {
        self.keys.get(&reference).map(|k| k.quorum).unwrap_or_default()
    }

    /// A key's quorum values and the users who may approve for it (its
    /// owner and shared users), if `actor` can see it.
    pub fn approvers(&self, actor: Actor<'_>, reference: KeyRef) -> Result<(KeyQuorum, Vec<Username>), ModelError> {
        let key = self.visible(actor, reference)?;
        Ok((key.quorum, std::iter::once(&key.owner).chain(&key.shared).cloned().collect()))
    }
}
