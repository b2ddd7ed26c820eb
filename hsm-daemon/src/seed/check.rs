//! The checks: the raw TOML shapes into a [`Seed`] of model types, with
//! the rules the API applies and the ones that tie entries together, each
//! refusal naming its line and column.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use toml::Spanned;

use super::{
    Location, NUMBER, Seed, SeedError, SeedKey, SeedMaterial, SeedUser,
    raw::{RawCluster, RawKey, RawKeyType, RawRole, RawSeed, RawUser},
};
use crate::{
    cluster::MAX_HSMS,
    crypto::{CryptoError, KeyClass, KeyKind, KeyMaterial, KeySpec},
    model::{
        ADMIN_USERNAME, APPLIANCE_USERNAME, ClusterId, ClusterMode, HsmType, Password, Role, Template, Username,
        keys::{MAX_SHARED_USERS, parse_curve},
    },
};

/// The most keys one `[[keys]]` entry declares with `count` (a pair counts
/// once): enough to measure an HSM holding millions of keys.
const MAX_COUNT: i64 = 10_000_000;

/// Turns the raw shapes into a [`Seed`], naming the place of each refusal.
pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) file: Option<&'a Path>,
    /// What a relative `pem_file` is read from.
    pub(super) base: PathBuf,
}

impl Checker<'_> {
    pub(super) fn seed(&self) -> Result<Seed, SeedError> {
        let raw: RawSeed = toml::from_str(self.text).map_err(|e| self.err(e.span().unwrap_or(0..0), e.message()))?;
        let mut seed = Seed {
            cluster_id: None,
            hsms: None,
            hsm_type: None,
            mode: None,
            quotas_off: false,
            admin_password: None,
            users: Vec::new(),
            keys: Vec::new(),
            file: self.file.map(Path::to_owned),
        };
        if let Some(cluster) = &raw.cluster {
            self.cluster(&mut seed, cluster.get_ref())?;
        }
        let max_users = seed.hsm_type.unwrap_or(HsmType::Hsm2mMedium).max_users();
        let mut lines = HashMap::new();
        for user in &raw.users {
            let checked = self.user(user)?;
            if let Some(line) = lines.insert(checked.username.clone(), checked.at.line) {
                return Err(self.err(
                    user.get_ref().username.span(),
                    format!("user '{}' is already declared on line {line}", checked.username),
                ));
            }
            // admin and app_user count too.
            if seed.users.len() + 3 > max_users {
                return Err(self.err(user.span(), format!("more users than an HSM holds ({max_users})")));
            }
            seed.users.push(checked);
        }
        if seed.admin_password.is_none()
            && let Some(span) = raw.users.first().map(Spanned::span).or_else(|| raw.keys.first().map(Spanned::span))
        {
            return Err(self.err(
                span,
                "users and keys need an activated cluster: set admin_password in [cluster] (the cluster starts \
                 activated with it)",
            ));
        }
        let mut labels = HashMap::new();
        for key in &raw.keys {
            let checked = self.key(&seed.users, key)?;
            let entry = key.get_ref();
            for label in std::iter::once(&entry.label).chain(&entry.public_label) {
                let line = self.at(label.span()).line;
                for n in 1..=checked.count {
                    let text = if checked.count > 1 {
                        label.get_ref().replace(NUMBER, &n.to_string())
                    } else {
                        label.get_ref().clone()
                    };
                    if let Some(first) = labels.insert(text, line) {
                        let text = label.get_ref().replace(NUMBER, &n.to_string());
                        return Err(self.err(
                            label.span(),
                            format!("label '{text}' is already used on line {first}; labels name seeded keys"),
                        ));
                    }
                }
            }
            seed.keys.push(checked);
        }
        Ok(seed)
    }

    fn cluster(&self, seed: &mut Seed, raw: &RawCluster) -> Result<(), SeedError> {
        if let Some(id) = &raw.id {
            seed.cluster_id = Some(ClusterId::parse(id.get_ref()).map_err(|e| self.err(id.span(), e))?);
        }
        if let Some(hsms) = &raw.hsms {
            let count = u8::try_from(*hsms.get_ref())
                .ok()
                .filter(|n| (1..=MAX_HSMS).contains(n))
                .ok_or_else(|| self.err(hsms.span(), format!("hsms must be 1 to {MAX_HSMS}")))?;
            seed.hsms = Some(count);
        }
        if let Some(hsm_type) = &raw.hsm_type {
            seed.hsm_type = Some(HsmType::parse(hsm_type.get_ref()).map_err(|e| self.err(hsm_type.span(), e))?);
        }
        if let Some(mode) = &raw.mode {
            seed.mode = Some(ClusterMode::parse("mode", mode.get_ref()).map_err(|e| self.err(mode.span(), e))?);
        }
        if let Some(quota) = &raw.key_quota {
            seed.quotas_off = match quota.get_ref().as_str() {
                "hsm-type" => false,
                "off" => true,
                other => {
                    return Err(
                        self.err(quota.span(), format!("key_quota must be \"hsm-type\" or \"off\", not {other:?}"))
                    );
                }
            };
        }
        if let Some(password) = &raw.admin_password {
            let parsed =
                Password::parse("admin_password", password.get_ref()).map_err(|e| self.err(password.span(), e))?;
            seed.admin_password = Some((parsed, self.at(password.span())));
        }
        Ok(())
    }

    fn user(&self, user: &Spanned<RawUser>) -> Result<SeedUser, SeedError> {
        let raw = user.get_ref();
        let username =
            Username::parse("username", raw.username.get_ref()).map_err(|e| self.err(raw.username.span(), e))?;
        if [ADMIN_USERNAME, APPLIANCE_USERNAME].contains(&username.as_str()) {
            return Err(self.err(
                raw.username.span(),
                format!(
                    "'{username}' comes with every cluster and cannot be declared; set the admin's password with \
                     admin_password in [cluster]"
                ),
            ));
        }
        let role = match raw.role.get_ref() {
            RawRole::Admin => Role::Admin,
            RawRole::CryptoUser => Role::CryptoUser,
        };
        let password =
            Password::parse("password", raw.password.get_ref()).map_err(|e| self.err(raw.password.span(), e))?;
        Ok(SeedUser { username, role, password, at: self.at(user.span()) })
    }

    fn key(&self, users: &[SeedUser], key: &Spanned<RawKey>) -> Result<SeedKey, SeedError> {
        let raw = key.get_ref();
        let owner = Username::parse("owner", raw.owner.get_ref()).map_err(|e| self.err(raw.owner.span(), e))?;
        let crypto_user = |name: &Username| users.iter().any(|u| &u.username == name && u.role == Role::CryptoUser);
        if !crypto_user(&owner) {
            return Err(self.err(
                raw.owner.span(),
                format!(
                    "owner '{owner}' is not a crypto user of this seed; keys are owned by users declared with role = \
                     \"crypto-user\""
                ),
            ));
        }
        let kind = *raw.kind.get_ref();
        let material = self.material(raw, kind)?;
        let pair = matches!(material, SeedMaterial::Generate(KeySpec::Rsa { .. } | KeySpec::Ec(_) | KeySpec::Ed25519));
        match (&raw.public_label, pair) {
            (None, true) => {
                return Err(self.err(
                    key.span(),
                    format!("a generated {} key is a pair: name its public key with public_label", kind.name()),
                ));
            }
            (Some(label), false) => {
                return Err(self.err(label.span(), "public_label names the public key of a generated pair only"));
            }
            _ => {}
        }
        if !pair && let Some((_, value)) = raw.public_attributes.iter().next() {
            return Err(self.err(value.span(), "public_attributes apply to the public key of a generated pair only"));
        }
        let count = self.count(raw)?;
        let template = self.template(&raw.label, &raw.attributes, count)?;
        let public_template = match &raw.public_label {
            Some(label) => Some(self.template(label, &raw.public_attributes, count)?),
            None => None,
        };
        let public_only = matches!(&material, SeedMaterial::Fixed(m) if m.class() == KeyClass::Public);
        let mut share_with: Vec<Username> = Vec::new();
        for user in &raw.share_with {
            let name = Username::parse("share_with", user.get_ref()).map_err(|e| self.err(user.span(), e))?;
            let refusal = if public_only {
                Some("a public key is not shared: every crypto user can already use it".to_owned())
            } else if name == owner {
                Some(format!("'{name}' owns the key"))
            } else if !crypto_user(&name) {
                Some(format!("'{name}' is not a crypto user of this seed; keys are shared only with crypto users"))
            } else if share_with.contains(&name) {
                Some(format!("'{name}' is named twice"))
            } else if share_with.len() >= MAX_SHARED_USERS {
                Some(format!("a key is shared with at most {MAX_SHARED_USERS} users"))
            } else {
                None
            };
            if let Some(reason) = refusal {
                return Err(self.err(user.span(), format!("share_with: {reason}")));
            }
            share_with.push(name);
        }
        Ok(SeedKey { owner, material, template, public_template, share_with, count, at: self.at(key.span()) })
    }

    /// `count`: 1 to [`MAX_COUNT`] keys alike, whose labels (and public
    /// labels) hold `{n}` so that each key has its own.
    fn count(&self, raw: &RawKey) -> Result<usize, SeedError> {
        let Some(count) = &raw.count else { return Ok(1) };
        let n = Some(*count.get_ref())
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(count.span(), format!("count must be 1 to {MAX_COUNT}")))?;
        if n > 1 {
            for label in std::iter::once(&raw.label).chain(&raw.public_label) {
                if !label.get_ref().contains(NUMBER) {
                    return Err(self.err(
                        label.span(),
                        format!(
                            "with count = {n}, the label must hold {NUMBER} (the key's number, 1 to {n}), so that \
                             every key has its own"
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }

    /// The key's material: fixed (PEM or hex) or to generate, checked
    /// against its type and parameters.
    fn material(&self, raw: &RawKey, kind: RawKeyType) -> Result<SeedMaterial, SeedError> {
        let mut fixed: Vec<(&str, &Spanned<String>)> =
            [("pem", &raw.pem), ("pem_file", &raw.pem_file), ("hex", &raw.hex)]
                .into_iter()
                .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
                .collect();
        // In the order of the text, so that the second one is refused.
        fixed.sort_by_key(|(_, value)| value.span().start);
        if let [_, (second, value), ..] = fixed.as_slice() {
            return Err(self.err(
                value.span(),
                format!("{second}: give the material once, as pem, pem_file or hex (or none to generate the key)"),
            ));
        }
        let parameters = [
            ("key_length_bytes", raw.key_length_bytes.as_ref().map(Spanned::span)),
            ("modulus_size_bits", raw.modulus_size_bits.as_ref().map(Spanned::span)),
            ("public_exponent", raw.public_exponent.as_ref().map(Spanned::span)),
            ("curve", raw.curve.as_ref().map(Spanned::span)),
        ];
        // What each way of making the key takes.
        let takes: &[&str] = match (fixed.first(), kind) {
            (Some(_), RawKeyType::Ec) => &["curve"],
            (Some(_), _) => &[],
            (None, RawKeyType::Aes | RawKeyType::GenericSecret) => &["key_length_bytes"],
            (None, RawKeyType::Rsa) => &["modulus_size_bits", "public_exponent"],
            (None, RawKeyType::Ec) => &["curve"],
            (None, RawKeyType::Ed25519) => &[],
        };
        for (name, span) in parameters {
            if let Some(span) = span
                && !takes.contains(&name)
            {
                let how = if fixed.is_empty() { "generated {} keys" } else { "{} keys given as pem or hex" };
                let what = how.replace("{}", kind.name());
                return Err(self.err(span, format!("{name} does not apply to {what}")));
            }
        }
        let curve = match &raw.curve {
            Some(curve) => Some(parse_curve("curve", curve.get_ref()).map_err(|e| {
                let hint = if curve.get_ref() == "ed25519" { " (an Ed25519 key is type = \"ed25519\")" } else { "" };
                self.err(curve.span(), format!("{e}{hint}"))
            })?),
            None => None,
        };
        match fixed.first() {
            Some((source, value)) => self.fixed(source, value, kind, curve).map(SeedMaterial::Fixed),
            None => {
                let required = |field: &Option<Spanned<u32>>, name: &str| {
                    field.as_ref().map(|v| *v.get_ref()).ok_or_else(|| {
                        self.err(raw.label.span(), format!("a generated {} key needs {name}", kind.name()))
                    })
                };
                let spec = match kind {
                    RawKeyType::Aes => {
                        KeySpec::Aes { bits: required(&raw.key_length_bytes, "key_length_bytes")?.saturating_mul(8) }
                    }
                    RawKeyType::GenericSecret => {
                        KeySpec::GenericSecret { len: required(&raw.key_length_bytes, "key_length_bytes")? as usize }
                    }
                    RawKeyType::Rsa => KeySpec::Rsa {
                        modulus_bits: required(&raw.modulus_size_bits, "modulus_size_bits")?,
                        public_exponent: raw.public_exponent.as_ref().map_or(65_537, |e| *e.get_ref()),
                    },
                    RawKeyType::Ec => {
                        KeySpec::Ec(curve.ok_or_else(|| self.err(raw.label.span(), "a generated ec key needs curve"))?)
                    }
                    RawKeyType::Ed25519 => KeySpec::Ed25519,
                };
                spec.check().map_err(|e| {
                    // Point at the parameter the rule is about.
                    let span = match &e {
                        CryptoError::InvalidArgument { field: "public_exponent", .. } => {
                            raw.public_exponent.as_ref().map(Spanned::span)
                        }
                        CryptoError::InvalidArgument { field: "modulus_bits", .. } => {
                            raw.modulus_size_bits.as_ref().map(Spanned::span)
                        }
                        CryptoError::InvalidArgument { .. }
                        | CryptoError::WrongKeyType { .. }
                        | CryptoError::Authentication(_)
                        | CryptoError::InvalidKey(_) => raw.key_length_bytes.as_ref().map(Spanned::span),
                    };
                    self.err(span.unwrap_or_else(|| raw.kind.span()), e)
                })?;
                Ok(SeedMaterial::Generate(spec))
            }
        }
    }

    /// Material given in the seed: PEM (inline or in a file) for asymmetric
    /// keys, hex for symmetric ones.
    fn fixed(
        &self,
        source: &str,
        value: &Spanned<String>,
        kind: RawKeyType,
        curve: Option<crate::crypto::Curve>,
    ) -> Result<Arc<KeyMaterial>, SeedError> {
        let at = self.at(value.span());
        let material = match source {
            "hex" => {
                let key_kind = match kind {
                    RawKeyType::Aes => KeyKind::Aes,
                    RawKeyType::GenericSecret => KeyKind::GenericSecret,
                    other => {
                        return Err(self.err_at(
                            at,
                            format!(
                                "hex gives the bytes of an aes or generic-secret key; give an {} key as pem",
                                other.name()
                            ),
                        ));
                    }
                };
                let digits: zeroize::Zeroizing<String> =
                    zeroize::Zeroizing::new(value.get_ref().chars().filter(|c| !c.is_whitespace()).collect());
                let digits = digits.strip_prefix("0x").unwrap_or(&digits);
                // The message never quotes the digits: they are the key.
                let bytes = zeroize::Zeroizing::new(
                    hex::decode(digits)
                        .map_err(|_| self.err_at(at, "hex must be an even number of hex digits (0-9, a-f)"))?,
                );
                KeyMaterial::from_raw_secret(key_kind, &bytes).map_err(|e| self.err_at(at, e))?
            }
            _ => {
                if kind.symmetric() {
                    return Err(self.err_at(
                        at,
                        format!("{source} gives an rsa, ec or ed25519 key; {} keys are given as hex", kind.name()),
                    ));
                }
                let pem = if source == "pem_file" {
                    let path = self.base.join(value.get_ref());
                    zeroize::Zeroizing::new(
                        std::fs::read_to_string(&path)
                            .map_err(|e| self.err_at(at, format!("pem_file {}: {e}", path.display())))?,
                    )
                } else {
                    zeroize::Zeroizing::new(value.get_ref().clone())
                };
                let material = KeyMaterial::from_pem(&pem).map_err(|e| self.err_at(at, format!("{source}: {e}")))?;
                let found = material.kind();
                let matches = match kind {
                    RawKeyType::Rsa => found == KeyKind::Rsa,
                    RawKeyType::Ed25519 => found == KeyKind::Ed25519,
                    RawKeyType::Ec => matches!(found, KeyKind::Ec(c) if curve.is_none_or(|want| want == c)),
                    // Refused above: symmetric keys are given as hex.
                    RawKeyType::Aes | RawKeyType::GenericSecret => false,
                };
                if !matches {
                    let what = match found {
                        KeyKind::Ec(c) => format!("an ec {} key", crate::model::keys::curve_name(c)),
                        other => format!("a {} key", crate::model::keys::kind_name(other)),
                    };
                    let want = match curve {
                        Some(c) => format!("ec {}", crate::model::keys::curve_name(c)),
                        None => kind.name().to_owned(),
                    };
                    return Err(self.err_at(at, format!("{source} holds {what}, not {want}")));
                }
                material
            }
        };
        Ok(Arc::new(material))
    }

    /// A key's attributes, label included; each value is checked on its own
    /// line.
    fn template(
        &self,
        label: &Spanned<String>,
        attributes: &BTreeMap<String, Spanned<toml::Value>>,
        count: usize,
    ) -> Result<Template, SeedError> {
        if label.get_ref().is_empty() {
            return Err(self.err(label.span(), "a seeded key's label must not be empty"));
        }
        let mut pairs = vec![("label".to_owned(), label.get_ref().clone())];
        Template::parse(&pairs).map_err(|e| self.err(label.span(), e))?;
        if count > 1 {
            // The longest label a counted entry makes must pass too.
            let longest = label.get_ref().replace(NUMBER, &count.to_string());
            Template::parse(&[("label".to_owned(), longest)]).map_err(|e| self.err(label.span(), e))?;
        }
        for (name, value) in attributes {
            if name == "label" {
                return Err(self.err(
                    value.span(),
                    "set the label with label = \"...\" (public_label for a pair's public key), not in attributes",
                ));
            }
            let text = match value.get_ref() {
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(self.err(
                        value.span(),
                        format!("attribute {name}: give true, false or a string, not a {}", other.type_str()),
                    ));
                }
            };
            let pair = [(name.clone(), text)];
            Template::parse(&pair).and_then(|t| t.check()).map_err(|e| self.err(value.span(), e))?;
            let [pair] = pair;
            pairs.push(pair);
        }
        Template::parse(&pairs).map_err(|e| self.err(label.span(), e))
    }

    fn at(&self, span: Range<usize>) -> Location {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location { line, column }
    }

    fn err(&self, span: Range<usize>, reason: impl fmt::Display) -> SeedError {
        self.err_at(self.at(span), reason)
    }

    fn err_at(&self, at: Location, reason: impl fmt::Display) -> SeedError {
        SeedError::Invalid {
            file: self.file.map(Path::to_owned),
            line: at.line,
            column: at.column,
            reason: reason.to_string(),
        }
    }
}
