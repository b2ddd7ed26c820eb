//! Key references: the 64-bit handles keys are known by, and the range of
//! them each HSM of a cluster hands out.

use std::fmt;

use super::truncate;
use crate::model::ModelError;

/// A key reference: a 64-bit handle shown as `0x` and 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRef(pub(super) u64);

impl KeyRef {
    pub fn new(value: u64) -> Self {
        KeyRef(value)
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Parses `0x...` (1 to 16 hex digits), naming `field` in the error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        let invalid = || ModelError::InvalidArgument {
            field,
            rule: format!("must be a key reference: 0x and 1 to 16 hex digits (got {:?})", truncate(raw)),
        };
        let digits = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")).ok_or_else(invalid)?;
        if digits.is_empty() || digits.len() > 16 {
            return Err(invalid());
        }
        u64::from_str_radix(digits, 16).map(KeyRef).map_err(|_| invalid())
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// The references one HSM hands out: HSM `index` of a cluster allocates from
/// its own range, so that keys made on different HSMs at the same time never
/// share a reference when they are copied to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// The range's number: the HSM's index minus one.
    slot: u64,
}

impl KeyRange {
    /// Bits below the range number: 2^40 references per HSM.
    const SHIFT: u32 = 40;
    /// CloudHSM's references are small numbers shown padded; each range
    /// starts above its base so that 0x0 never names a key.
    const FIRST: u64 = 0x0010_0001;
    /// HSM indexes a cluster may use (CloudHSM allows 28 HSMs; clones that
    /// replace HSMs take new indexes).
    pub const MAX_INDEX: u32 = 255;

    /// The range of HSM `index` (1-based).
    pub fn for_index(index: u32) -> Result<Self, ModelError> {
        if !(1..=Self::MAX_INDEX).contains(&index) {
            return Err(ModelError::InvalidArgument {
                field: "hsm_index",
                rule: format!("must be 1 to {} (got {index})", Self::MAX_INDEX),
            });
        }
        Ok(KeyRange { slot: u64::from(index - 1) })
    }

    pub(super) fn first(self) -> u64 {
        (self.slot << Self::SHIFT) | Self::FIRST
    }

    pub(super) fn contains(self, value: u64) -> bool {
        value >> Self::SHIFT == self.slot
    }
}
