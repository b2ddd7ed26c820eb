//! Who the cluster and the HSM are: ids, model, firmware, FIPS state.

use std::fmt;

use rand::CryptoRng;

use crate::model::ModelError;

/// A cluster id, `cluster-` and 11 lower-case letters or digits, as AWS shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterId(String);

/// An HSM id, `hsm-` and 11 lower-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HsmId(String);

macro_rules! aws_id {
    ($ty:ident, $prefix:literal, $field:literal) => {
        impl $ty {
            /// A fresh random id.
            pub fn generate(rng: &mut impl CryptoRng) -> Self {
                $ty(format!("{}{}", $prefix, random_suffix(rng)))
            }

            /// Parses an id: the prefix, then 1 to 32 lower-case letters or digits.
            pub fn parse(raw: &str) -> Result<Self, ModelError> {
                let rule = concat!("must be '", $prefix, "' followed by 1 to 32 lower-case letters or digits");
                match raw.strip_prefix($prefix) {
                    Some(rest)
                        if (1..=32).contains(&rest.len())
                            && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
                    {
                        Ok($ty(raw.to_owned()))
                    }
                    _ => Err(ModelError::InvalidArgument { field: $field, rule: rule.to_owned() }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

aws_id!(ClusterId, "cluster-", "cluster_id");
aws_id!(HsmId, "hsm-", "hsm_id");

fn random_suffix(rng: &mut impl CryptoRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..11).map(|_| ALPHABET[rng.next_u32() as usize % ALPHABET.len()] as char).collect()
}

/// The HSM type of a cluster; it sets the user and key quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsmType {
    Hsm1Medium,
    Hsm2mMedium,
}

impl HsmType {
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        match raw {
            "hsm1.medium" => Ok(HsmType::Hsm1Medium),
            "hsm2m.medium" => Ok(HsmType::Hsm2mMedium),
            _ => Err(ModelError::InvalidArgument {
                field: "hsm_type",
                rule: "must be hsm1.medium or hsm2m.medium".into(),
            }),
        }
    }

    /// CloudHSM's published maximum number of users per cluster.
    pub fn max_users(self) -> usize {
        match self {
            HsmType::Hsm1Medium => 250,
            HsmType::Hsm2mMedium => 1_024,
        }
    }
}

impl fmt::Display for HsmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HsmType::Hsm1Medium => "hsm1.medium",
            HsmType::Hsm2mMedium => "hsm2m.medium",
        })
    }
}

/// Whether the cluster runs in FIPS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    Fips,
    NonFips,
}

impl fmt::Display for ClusterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterMode::Fips => "FIPS",
            ClusterMode::NonFips => "NON_FIPS",
        })
    }
}

impl ClusterMode {
    /// Parses `FIPS` or `NON_FIPS` (as CloudHSM's `CreateCluster --mode`
    /// spells them; case and `-` for `_` do not matter).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        match raw.to_ascii_uppercase().replace('-', "_").as_str() {
            "FIPS" => Ok(ClusterMode::Fips),
            "NON_FIPS" => Ok(ClusterMode::NonFips),
            _ => Err(ModelError::InvalidArgument { field, rule: format!("must be FIPS or NON_FIPS, not {raw:?}") }),
        }
    }

    /// Whether triple DES may be used: on non-FIPS clusters only (NIST
    /// disallowed it for FIPS use after 2023).
    pub fn permits_des3(self) -> bool {
        self == ClusterMode::NonFips
    }
}

/// What every HSM of a cluster shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    pub id: ClusterId,
    pub hsm_type: HsmType,
    pub mode: ClusterMode,
}

/// Whether the cluster has been activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Only the precrypto officer exists; nothing but cluster info and
    /// activation works for it.
    Uninitialized,
    Active,
}

/// One HSM's identity, as `cluster hsm-info` and CMU `getHSMInfo` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmIdentity {
    pub id: HsmId,
    pub serial_number: String,
    pub vendor: String,
    pub model: String,
    pub hardware_version: (u32, u32),
    /// Major, minor, build.
    pub firmware_version: (u32, u32, u32),
    pub firmware_id: String,
    pub fips_state: String,
    /// Where clients reach it, `host:port`.
    pub address: String,
    pub availability_zone: String,
    pub label: String,
    pub device_id: String,
}

impl HsmIdentity {
    /// A new HSM with a random id and serial number, reporting the hardware and
    /// firmware that CloudHSM's documentation shows.
    pub fn generate(rng: &mut impl CryptoRng, address: String, mode: ClusterMode) -> Self {
        let serial = format!("5.3G1941-ICM{:06}", rng.next_u32() % 1_000_000);
        let fips_state = match mode {
            ClusterMode::Fips => "2 [FIPS mode with single factor authentication]",
            ClusterMode::NonFips => "0 [non-FIPS mode]",
        };
        HsmIdentity {
            id: HsmId::generate(rng),
            serial_number: serial,
            vendor: "Marvell Semiconductors, Inc.".into(),
            model: "NITROX-III CNN35XX-NFBE".into(),
            hardware_version: (5, 3),
            firmware_version: (7, 7, 28),
            firmware_id: "CNN35XX-NFBE-FW-7.07-28".into(),
            fips_state: fips_state.into(),
            address,
            availability_zone: "local-1a".into(),
            label: "cavium".into(),
            device_id: format!("{}", rng.next_u32() % 100),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn ids_look_like_aws_ids_and_parse_back() {
        let mut rng = StdRng::seed_from_u64(9);
        let c = ClusterId::generate(&mut rng);
        assert!(c.as_str().starts_with("cluster-") && c.as_str().len() == 19, "{c}");
        assert_eq!(ClusterId::parse(c.as_str()).unwrap(), c);
        let h = HsmId::generate(&mut rng);
        assert_eq!(HsmId::parse(h.as_str()).unwrap(), h);
        for bad in ["", "cluster-", "hsm-abc", "cluster-ABC", "cluster-a b"] {
            let err = ClusterId::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid cluster_id: must be 'cluster-'"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn hsm_types_carry_cloudhsm_user_quotas() {
        assert_eq!(HsmType::parse("hsm2m.medium").unwrap().max_users(), 1_024);
        assert_eq!(HsmType::parse("hsm1.medium").unwrap().max_users(), 250);
        assert!(HsmType::parse("hsm3.huge").is_err());
    }
}
