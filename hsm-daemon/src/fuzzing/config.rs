//! What operators write: seed files ([`seed()`]), the daemon's config file
//! ([`settings()`]) and trust-anchor certificates ([`trust_anchor()`]).

use rand::SeedableRng as _;

use super::{expect, fixtures};
use crate::{
    model::{AnchorCert, Hsm, KdfParams, Mtls},
    seed::Seed,
    service::rig,
    settings::Settings,
};

/// Most keys a seed may declare for this target to plan it (planning
/// generates them).
const MAX_PLANNED_KEYS: usize = 64;

/// Parses a seed file; one that declares few keys and no RSA key to
/// generate is also planned and applied to a new HSM.
pub fn seed(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(seed) = Seed::parse(text) else { return false };
    if seed.cheap_to_plan(MAX_PLANNED_KEYS)
        && let Ok(plan) = seed.plan(&KdfParams::TESTING, Some(1))
    {
        let mut hsm = Hsm::new(fixtures().setup.clone());
        let _ = plan.apply(&mut hsm);
    }
    true
}

/// Parses a daemon config file and resolves it, with every file it names
/// replaced by a valid fixture (so that the fuzzer explores the settings,
/// not the disk) and the store in memory.
pub fn settings(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(mut settings) = Settings::from_toml(text) else { return false };
    let files = &fixtures().files;
    let fixture = |field: &mut Option<std::path::PathBuf>, path: &std::path::Path| {
        if field.is_some() {
            *field = Some(path.to_owned());
        }
    };
    fixture(&mut settings.appliance_password_file, &files.password);
    fixture(&mut settings.tls_cert, &files.cert);
    fixture(&mut settings.client_ca, &files.cert);
    fixture(&mut settings.ca_cert, &files.cert);
    fixture(&mut settings.tls_key, &files.key);
    fixture(&mut settings.master_key_file, &files.master_key);
    fixture(&mut settings.cluster_key_file, &files.master_key);
    fixture(&mut settings.masking_key_file, &files.master_key);
    settings.seed = None;
    settings.data_dir = None;
    settings.ephemeral = Some(true);
    let _ = settings.kdf();
    let _ = settings.metrics_addr();
    let _ = settings.cluster_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let _ = settings.resolve(settings.listen_addr(), None, &mut rng);
    true
}

/// Parses a trust anchor: the first byte's low bit picks PEM or DER.
///
/// Properties: an accepted anchor reads back from its own PEM and DER as
/// the same certificate, registers, and makes a TLS client verifier.
pub fn trust_anchor(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let parsed = if form & 1 == 0 {
        AnchorCert::from_pem("certificate", &String::from_utf8_lossy(rest))
    } else {
        AnchorCert::from_der("certificate", rest)
    };
    let Ok(cert) = parsed else { return false };
    let from_pem = expect(AnchorCert::from_pem("certificate", &cert.pem()), "an anchor's own PEM");
    assert_eq!(from_pem.der(), cert.der(), "an anchor's PEM holds another certificate");
    let mut mtls = Mtls::default();
    expect(mtls.register(cert), "registering an anchor on an HSM with none");
    let _ = rig::client_verifier(&mtls);
    true
}
