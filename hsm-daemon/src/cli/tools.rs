//! `hsm-daemon backup`, `restore`, `health` and `audit verify`: the
//! operator's tools around an HSM, one function each.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hsm_daemon::{
    audit,
    cluster::{CONTROL_SOCKET, plan::reachable},
    service::control::request_backup,
    settings::Settings,
    store::{Opened, STORE_FILE, Store, restore_backup, restore_backup_as_clone},
};
use rand::{SeedableRng as _, rngs::StdRng};

use super::{BackupArgs, HealthArgs, RestoreArgs};

/// `hsm-daemon health`.
pub(crate) async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let file = args.config.as_deref().map(Settings::from_file).transpose()?.unwrap_or_default();
    let endpoint = match (&args.endpoint, file.listen) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(listen)) => reachable(listen),
        (None, None) => bail!("--endpoint is not set, and no --config with a listen address was given"),
    };
    if file.insecure_plaintext_no_tls.unwrap_or(false) {
        bail!("the HSM serves plaintext (insecure_plaintext_no_tls); `health` checks HSMs that serve TLS");
    }
    let ca =
        args.ca_cert.as_ref().or(file.ca_cert.as_ref()).context("--ca-cert is not set, nor ca_cert in --config")?;
    let mut config = hsm_client::ClientConfig::from_parts(&endpoint, ca)?;
    if args.endpoint.is_none() {
        // The loopback address may not be in the certificate; "localhost" is.
        config = config.with_server_name("localhost".into());
    }
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    let check = async {
        let client = hsm_client::HsmClient::connect(&config.with_connect_timeout(timeout)).await?;
        client.health(&args.service).await
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(true)) => {
            println!("SERVING");
            Ok(())
        }
        Ok(Ok(false)) => bail!("{endpoint}: NOT_SERVING"),
        Ok(Err(e)) => bail!("{endpoint}: {e}"),
        Err(_) => bail!("{endpoint}: no answer within {} ms", args.timeout_ms),
    }
}

pub(crate) async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let out = std::path::absolute(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let data_dir = settings.data_dir.clone().context("data_dir is not set (--data-dir)")?;
    match request_backup(&data_dir.join(CONTROL_SOCKET), &out).await.map_err(|e| anyhow::anyhow!(e))? {
        Some(()) => println!("backup written by the running daemon: {}", out.display()),
        None => {
            if !data_dir.join(STORE_FILE).exists() {
                bail!("{}: no HSM state to back up", data_dir.display());
            }
            let config = settings.resolve(settings.listen_addr(), None, &mut StdRng::from_os_rng())?;
            let store = match Store::open(
                &config.storage.backing,
                &config.storage.master_key,
                config.cluster.id.as_str(),
                config.hsm.id.as_str(),
            )? {
                Opened::Existing(opening, ..) => opening.wait()?,
                Opened::New(_) => bail!("{}: no HSM state to back up", data_dir.display()),
            };
            store.write_backup(&settings.cluster_key()?, config.cluster.id.as_str(), config.hsm.id.as_str(), &out)?;
            println!("backup written from the store: {}", out.display());
        }
    }
    Ok(())
}

pub(crate) fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let config = settings.resolve(settings.listen_addr(), None, &mut StdRng::from_os_rng())?;
    let restore = if args.clone { restore_backup_as_clone } else { restore_backup };
    restore(
        &args.from,
        &settings.cluster_key()?,
        &config.storage.backing,
        &config.storage.master_key,
        &config.cluster,
        &config.hsm,
    )?;
    println!("{} of {} restored from {}", config.hsm.id, config.cluster.id, args.from.display());
    Ok(())
}

/// `audit verify`: checks every audit log in or under `dir`, reporting each.
pub(crate) fn verify_audit(dir: &Path) -> anyhow::Result<()> {
    let logs = audit::verify::logs_in(dir).with_context(|| format!("reading {}", dir.display()))?;
    if logs.is_empty() {
        bail!("{}: no {} in it or in its subdirectories", dir.display(), audit::AUDIT_FILE);
    }
    let mut broken = 0;
    for log in &logs {
        match audit::verify::verify_file(log) {
            Ok(verified) => println!("{verified}"),
            Err(why) => {
                println!("chain BROKEN: {why}");
                broken += 1;
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} audit logs failed verification", logs.len());
    }
    Ok(())
}

/// Flags and environment over the config file, if any.
pub(super) fn settings(config: Option<&PathBuf>, flags: Settings) -> anyhow::Result<Settings> {
    let file = match config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    Ok(flags.over(file))
}
