//! Runs the `key ...` commands against a cluster session.

use hsm_client::{
    ClientError, ClusterSession, KeyOptions, KeyPairSpec, ListKeys, Role, SetKeyAttribute, ShareKey, UnwrapKey,
    WrapKey, WrapParams,
    keys::{HashAlgorithm, KeyClass, KeyType, SymmetricKeyType, WrapMechanism as Mechanism},
};
use serde_json::Value;

use crate::{
    grammar::{
        CliRole,
        common::{HashFunction, MaskGeneration, Pair, tuples},
        key::{
            Creation, FileEncoding, GcmParams, GenerateFile, ImportFormat, ImportPem, KeyCommand, List, PairHalves,
            PairKind, SetAttribute, ShareArgs, SymmetricKind, UnwrapArgs, UnwrapKeyTypeClass, UnwrapMechanism,
            WrapKeys, WrapMechanism,
        },
    },
    input::{self, resolve},
    output, pem, quorum,
};

/// The IV that AES-GCM key wrapping puts before the ciphertext.
const GCM_IV_LEN: usize = 12;

pub(crate) async fn run(session: &ClusterSession, command: KeyCommand) -> Result<Value, String> {
    match command {
        KeyCommand::GenerateSymmetric { kind } => generate_symmetric(session, kind).await,
        KeyCommand::GenerateAsymmetricPair { kind } => generate_pair(session, kind).await,
        KeyCommand::Import { format: ImportFormat::Pem(args) } => import_pem(session, args).await,
        KeyCommand::GenerateFile(args) => generate_file(session, args).await,
        KeyCommand::List(args) => list(session, args).await,
        KeyCommand::Delete { filter } => {
            let key = resolve(session, "--filter", &filter.filter).await?;
            let deleted = session.delete_key(&key.reference).await.map_err(hsm)?;
            Ok(output::key_change(output::message("Key deleted successfully"), &deleted))
        }
        KeyCommand::Share(args) => share(session, args, true).await,
        KeyCommand::Unshare(args) => share(session, args, false).await,
        KeyCommand::SetAttribute(SetAttribute { filter, name, value, approval }) => {
            let approval = approval.as_deref().map(quorum::read_approval).transpose()?;
            let key = resolve(session, "--filter", &filter.filter).await?;
            let request = SetKeyAttribute::new(&key.reference, &name, &value);
            let changed = session
                .set_key_attribute(SetKeyAttribute { approval: approval.as_ref(), ..request })
                .await
                .map_err(hsm)?;
            Ok(output::key_change(output::message("Attribute set successfully"), &changed))
        }
        KeyCommand::Wrap { mechanism } => wrap(session, mechanism).await,
        KeyCommand::Unwrap { mechanism } => unwrap(session, mechanism).await,
    }
}

/// Checks what the flags alone decide (unsupported mechanisms, parameters
/// the HSM does not offer), before any HSM is contacted.
pub(crate) fn check(command: &KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::Wrap { mechanism } => wrap_plan(mechanism).map(drop),
        KeyCommand::Unwrap { mechanism } => unwrap_plan(mechanism).map(drop),
        KeyCommand::Share(args) | KeyCommand::Unshare(args) => share_role(args),
        _ => Ok(()),
    }
}

fn hsm(err: ClientError) -> String {
    err.to_string()
}

/// Creation options: `label` first, then the given attributes.
fn options(
    label: &str,
    flag: &str,
    attributes: &[Pair],
    creation: &Creation,
    share: bool,
) -> Result<KeyOptions, String> {
    if attributes.iter().any(|a| a.name == "label") {
        return Err(format!("{flag}: set the label with its own flag, not label=..."));
    }
    let mut all = vec![("label".to_owned(), label.to_owned())];
    all.extend(tuples(attributes));
    Ok(KeyOptions {
        attributes: all,
        session: creation.session,
        share_with: if share { creation.share_crypto_users.clone() } else { Vec::new() },
        ..KeyOptions::default()
    })
}

async fn generate_symmetric(session: &ClusterSession, kind: SymmetricKind) -> Result<Value, String> {
    let (key_type, args) = match kind {
        SymmetricKind::Aes(args) => (SymmetricKeyType::Aes, args),
        SymmetricKind::GenericSecret(args) => (SymmetricKeyType::GenericSecret, args),
    };
    let mut options = options(&args.label, "--attributes", &args.attributes, &args.creation, true)?;
    options.manage_quorum = args.quorum.manage_key_quorum_value;
    options.use_quorum = args.quorum.use_key_quorum_value;
    let key = session
        .generate_symmetric_key(key_type, args.key_length_bytes, &options)
        .await
        .map_err(|e| quorum_flag_names(e, "--manage-key-quorum-value", "--use-key-quorum-value"))?;
    Ok(output::key(&key))
}

async fn generate_pair(session: &ClusterSession, kind: PairKind) -> Result<Value, String> {
    let (spec, halves) = match kind {
        PairKind::Rsa(rsa) => (
            KeyPairSpec::Rsa { modulus_size_bits: rsa.modulus_size_bits, public_exponent: rsa.public_exponent },
            rsa.halves,
        ),
        PairKind::Ec(ec) => {
            let spec = match ec.curve.ec_name() {
                Some(curve) => KeyPairSpec::Ec { curve: curve.to_owned() },
                None => KeyPairSpec::Ed25519,
            };
            (spec, ec.halves)
        }
    };
    let PairHalves { public_label, private_label, public_attributes, private_attributes, creation, quorum } = halves;
    let public = options(&public_label, "--public-attributes", &public_attributes, &creation, false)?;
    let mut private = options(&private_label, "--private-attributes", &private_attributes, &creation, true)?;
    private.manage_quorum = quorum.manage_private_key_quorum_value;
    private.use_quorum = quorum.use_private_key_quorum_value;
    let (public, private) = session
        .generate_key_pair(&spec, &public, &private)
        .await
        .map_err(|e| quorum_flag_names(e, "--manage-private-key-quorum-value", "--use-private-key-quorum-value"))?;
    Ok(output::key_pair(&public, &private))
}

async fn import_pem(session: &ClusterSession, args: ImportPem) -> Result<Value, String> {
    let text = input::read_file("--path", &args.path)?;
    let text =
        String::from_utf8(text).map_err(|_| format!("--path {}: not a PEM file (not text)", args.path.display()))?;
    let block = pem::key_block(&text).map_err(|e| format!("--path {}: {e}", args.path.display()))?;
    let (want_type, want_class) = args.key_type_class.attributes();
    if let Some((found_type, found_class)) = block.kind()
        && (found_type, found_class) != (want_type, want_class)
    {
        return Err(format!(
            "--key-type-class {} does not match {}, which holds {} {}",
            args.key_type_class.name(),
            args.path.display(),
            pem::describe(found_type),
            found_class
        ));
    }
    let mut options = options(&args.label, "--attributes", &args.attributes, &args.creation, true)?;
    options.manage_quorum = args.quorum.manage_key_quorum_value;
    options.use_quorum = args.quorum.use_key_quorum_value;
    let key = session.import_pem(&block.text, &options).await.map_err(hsm)?;
    // The HSM decides what the PEM holds; a kind the local check could not
    // read is compared afterwards, and a mismatching copy is not kept.
    let (got_type, got_class) =
        (key.info.attribute("key-type").unwrap_or(""), key.info.attribute("class").unwrap_or(""));
    if (got_type, got_class) != (want_type, want_class) {
        let cleanup = match session.delete_key(&key.info.reference).await {
            Ok(_) => "the imported copy was deleted".to_owned(),
            Err(e) => format!("deleting the imported copy {} failed: {e}", key.info.reference),
        };
        return Err(format!(
            "--key-type-class {} does not match {}, which holds {} {} ({cleanup})",
            args.key_type_class.name(),
            args.path.display(),
            pem::describe(got_type),
            got_class
        ));
    }
    Ok(output::imported_key(&key))
}

async fn generate_file(session: &ClusterSession, args: GenerateFile) -> Result<Value, String> {
    let key = resolve(session, "--filter", &args.filter.filter).await?;
    let class = key.attribute("class").unwrap_or("");
    let (contents, private) = match args.encoding {
        FileEncoding::Pem => {
            if class != "public-key" {
                return Err(format!(
                    "--encoding pem writes public keys, and {} is a {class}; select its public key, or use \
                     --encoding reference-pem for a private key",
                    key.reference
                ));
            }
            (session.export_public_key(&key.reference).await.map_err(hsm)?, false)
        }
        FileEncoding::ReferencePem => {
            if class != "private-key" {
                return Err(format!(
                    "--encoding reference-pem writes references to private keys, and {} is a {class}; use \
                     --encoding pem for a public key",
                    key.reference
                ));
            }
            let public = session.export_public_key(&key.reference).await.map_err(hsm)?;
            (pem::reference_pem(&key, &public)?, true)
        }
    };
    input::write_file("--path", &args.path, contents.as_bytes(), private)?;
    Ok(output::message("Successfully generated key file"))
}

async fn list(session: &ClusterSession, args: List) -> Result<Value, String> {
    let filters = tuples(&args.filter);
    let request =
        ListKeys { filters: &filters, max_items: args.max_items, starting_token: args.starting_token.as_deref() };
    let page = session.list_keys(request).await.map_err(flag_names)?;
    // As in the CloudHSM CLI, `--verbose` has no effect for admins: they
    // see each key's reference and label only.
    let verbose = args.verbose && session.role() != Some(Role::Admin);
    Ok(output::key_list(&page, verbose))
}

/// The HSM names the quorum fields of its request; say the command's flags
/// (the pair's differ from the other commands').
fn quorum_flag_names(err: ClientError, manage_flag: &str, use_flag: &str) -> String {
    err.to_string().replacen("manage_key_quorum_value", manage_flag, 1).replacen("use_key_quorum_value", use_flag, 1)
}

/// The HSM names its request fields; say the flags instead.
fn flag_names(err: ClientError) -> String {
    match err {
        ClientError::InvalidArgument(m) => m
            .replacen("invalid starting_token", "invalid --starting-token", 1)
            .replacen("invalid filter", "invalid --filter", 1),
        other => other.to_string(),
    }
}

fn share_role(args: &ShareArgs) -> Result<(), String> {
    if args.role != CliRole::CryptoUser {
        return Err("--role admin: keys are shared with crypto users only (--role crypto-user)".into());
    }
    Ok(())
}

async fn share(session: &ClusterSession, args: ShareArgs, share: bool) -> Result<Value, String> {
    share_role(&args)?;
    let approval = args.approval.as_deref().map(quorum::read_approval).transpose()?;
    let key = resolve(session, "--filter", &args.filter.filter).await?;
    let request = ShareKey { approval: approval.as_ref(), ..ShareKey::new(&key.reference, &args.username) };
    let changed = if share { session.share_key(request).await } else { session.unshare_key(request).await };
    let changed = changed.map_err(hsm)?;
    let done = if share { "Key shared successfully" } else { "Key unshared successfully" };
    Ok(output::key_change(output::message(done), &changed))
}

/// [`WrapParams`] from the flags, holding the `--aad` bytes they borrow.
#[derive(Default)]
struct Params {
    hash: Option<HashAlgorithm>,
    aad: Vec<u8>,
    tag_length_bits: Option<u32>,
}

impl Params {
    fn hashed(hash: HashAlgorithm) -> Self {
        Params { hash: Some(hash), ..Params::default() }
    }

    fn borrowed(&self) -> WrapParams<'_> {
        WrapParams { hash: self.hash, aad: &self.aad, tag_length_bits: self.tag_length_bits }
    }
}

/// AES-GCM's `--aad` (hex) and `--tag-length-bits` (checked by the grammar).
fn gcm_params(gcm: &GcmParams) -> Result<Params, String> {
    let aad = gcm.aad.as_deref().map(|aad| input::hex_flag("--aad", aad)).transpose()?.unwrap_or_default();
    Ok(Params { hash: None, aad, tag_length_bits: Some(gcm.tag_length_bits) })
}

/// The HSM's RSA-OAEP uses MGF1 with the OAEP hash.
fn oaep_hash(hash: HashFunction, mgf: MaskGeneration) -> Result<HashAlgorithm, String> {
    mgf.require(hash)?;
    Ok(hash.algorithm())
}

/// How a wrap runs, from its flags alone.
struct WrapPlan<'a> {
    keys: &'a WrapKeys,
    mechanism: Mechanism,
    params: Params,
    /// `aes-gcm` prints the IV apart from the wrapped data.
    split_iv: bool,
}

fn wrap_plan(mechanism: &WrapMechanism) -> Result<WrapPlan<'_>, String> {
    let plan = |keys, mechanism, params, split_iv| WrapPlan { keys, mechanism, params, split_iv };
    let plain = Params::default;
    Ok(match mechanism {
        WrapMechanism::AesGcm(args) => plan(&args.keys, Mechanism::AesGcm, gcm_params(&args.gcm)?, true),
        WrapMechanism::CloudhsmAesGcm(args) => plan(&args.keys, Mechanism::AesGcm, gcm_params(&args.gcm)?, false),
        WrapMechanism::AesNoPad(keys) => plan(keys, Mechanism::AesKeyWrap, plain(), false),
        WrapMechanism::AesPkcs5Pad(keys) => plan(keys, Mechanism::AesKeyWrapPkcs5Pad, plain(), false),
        WrapMechanism::AesZeroPad(keys) => plan(keys, Mechanism::AesKeyWrapPad, plain(), false),
        WrapMechanism::RsaOaep(args) => {
            let params = Params::hashed(oaep_hash(args.hash_function, args.mgf)?);
            plan(&args.keys, Mechanism::RsaOaep, params, false)
        }
        WrapMechanism::RsaAes(args) => {
            let params = Params::hashed(oaep_hash(args.hash_function, args.mgf)?);
            plan(&args.keys, Mechanism::RsaAes, params, false)
        }
        WrapMechanism::RsaPkcs(keys) => plan(keys, Mechanism::RsaPkcs, plain(), false),
    })
}

async fn wrap(session: &ClusterSession, mechanism: WrapMechanism) -> Result<Value, String> {
    let WrapPlan { keys, mechanism, params, split_iv } = wrap_plan(&mechanism)?;
    let payload = resolve(session, "--payload-filter", &keys.payload_filter).await?;
    let wrapping = resolve(session, "--wrapping-filter", &keys.wrapping_filter).await?;
    let approval = keys.payload_approval.as_deref().map(quorum::read_approval).transpose()?;
    let request = WrapKey::new(&wrapping.reference, &payload.reference, mechanism).params(params.borrowed());
    let request = WrapKey { approval: approval.as_ref(), ..request };
    let wrapped = session.wrap_key(request).await.map_err(hsm)?;
    let (iv, data) = if split_iv {
        if wrapped.len() < GCM_IV_LEN {
            return Err("unexpected response from the HSM: AES-GCM wrapped data shorter than its IV".into());
        }
        let (iv, rest) = wrapped.split_at(GCM_IV_LEN);
        (Some(input::hex0x(iv)), rest)
    } else {
        (None, wrapped.as_slice())
    };
    let out = match &keys.path {
        Some(path) => {
            input::write_file("--path", path, data, true)?;
            output::Wrapped::File(path.display().to_string())
        }
        None => output::Wrapped::Data(input::base64(data)),
    };
    Ok(output::wrapped(&payload.reference, &wrapping.reference, iv.as_deref(), &out))
}

/// How an unwrap runs, from its flags alone.
struct UnwrapPlan<'a> {
    args: &'a UnwrapArgs,
    mechanism: Mechanism,
    params: Params,
    /// Put before the wrapped data (`aes-gcm`'s `--iv`).
    iv: Vec<u8>,
    key_type: KeyType,
    key_class: KeyClass,
}

fn unwrap_plan(mechanism: &UnwrapMechanism) -> Result<UnwrapPlan<'_>, String> {
    let plain = Params::default;
    let (args, mechanism, params, iv) = match mechanism {
        UnwrapMechanism::AesGcm(gcm) => {
            let params = gcm_params(&gcm.gcm)?;
            let iv = input::hex_flag("--iv", &gcm.iv)?;
            if iv.len() != GCM_IV_LEN {
                return Err(format!("--iv: must be {GCM_IV_LEN} bytes (24 hex digits), got {}", iv.len()));
            }
            (&gcm.args, Mechanism::AesGcm, params, iv)
        }
        UnwrapMechanism::CloudhsmAesGcm(gcm) => (&gcm.args, Mechanism::AesGcm, gcm_params(&gcm.gcm)?, Vec::new()),
        UnwrapMechanism::AesNoPad(args) => (args, Mechanism::AesKeyWrap, plain(), Vec::new()),
        UnwrapMechanism::AesPkcs5Pad(args) => (args, Mechanism::AesKeyWrapPkcs5Pad, plain(), Vec::new()),
        UnwrapMechanism::AesZeroPad(args) => (args, Mechanism::AesKeyWrapPad, plain(), Vec::new()),
        UnwrapMechanism::RsaOaep(rsa) => {
            let params = Params::hashed(oaep_hash(rsa.hash_function, rsa.mgf)?);
            (&rsa.args, Mechanism::RsaOaep, params, Vec::new())
        }
        UnwrapMechanism::RsaAes(rsa) => {
            let params = Params::hashed(oaep_hash(rsa.hash_function, rsa.mgf)?);
            (&rsa.args, Mechanism::RsaAes, params, Vec::new())
        }
        UnwrapMechanism::RsaPkcs(args) => (args, Mechanism::RsaPkcs, plain(), Vec::new()),
    };
    let (key_type, key_class) = unwrap_kind(args)?;
    Ok(UnwrapPlan { args, mechanism, params, iv, key_type, key_class })
}

async fn unwrap(session: &ClusterSession, mechanism: UnwrapMechanism) -> Result<Value, String> {
    let UnwrapPlan { args, mechanism, params, mut iv, key_type, key_class } = unwrap_plan(&mechanism)?;
    iv.extend(args.data.read()?);
    let wrapped = iv;
    let mut options = options(&args.label, "--attributes", &args.attributes, &args.creation, true)?;
    options.manage_quorum = args.quorum.manage_key_quorum_value;
    options.use_quorum = args.quorum.use_key_quorum_value;
    let unwrapping = resolve(session, "--filter", &args.filter).await?;
    let approval = args.approval.as_deref().map(quorum::read_approval).transpose()?;
    // No curve: an EC key's comes from the wrapped key itself.
    let request = UnwrapKey::new(&unwrapping.reference, &wrapped, mechanism, key_type, key_class)
        .params(params.borrowed())
        .options(&options);
    let request = UnwrapKey { approval: approval.as_ref(), ..request };
    let key = session.unwrap_key(request).await.map_err(hsm)?;
    Ok(output::key(&key))
}

/// What `--key-type-class` says the wrapped bytes are.
fn unwrap_kind(args: &UnwrapArgs) -> Result<(KeyType, KeyClass), String> {
    if let Some(curve) = &args.curve {
        return Err(format!(
            "--curve {curve}: key unwrap takes no curve; an EC private key's curve comes from the wrapped key"
        ));
    }
    Ok(match args.key_type_class {
        UnwrapKeyTypeClass::Aes => (KeyType::Aes, KeyClass::Secret),
        UnwrapKeyTypeClass::GenericSecret => (KeyType::GenericSecret, KeyClass::Secret),
        UnwrapKeyTypeClass::RsaPrivate => (KeyType::Rsa, KeyClass::Private),
        UnwrapKeyTypeClass::EcPrivate => (KeyType::Ec, KeyClass::Private),
        UnwrapKeyTypeClass::Ed25519Private => (KeyType::Ed25519, KeyClass::Private),
    })
}
