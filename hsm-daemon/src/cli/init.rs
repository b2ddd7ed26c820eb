//! `hsm-daemon init`: a cluster's files for HSMs that run as processes or
//! containers (`deploy/compose.yaml` runs it in a container, `deploy/k8s`
//! on the operator's machine), and `init --add`. The cluster itself is
//! `hsm_daemon::cluster`'s; this reads the flags and says what was written.

use anyhow::{Context as _, bail};
use hsm_daemon::{
    cluster::{Addressing, ClusterMaterial, LocalCluster},
    model::{ClusterId, ClusterMode, HsmType},
};

use super::InitArgs;

/// `hsm-daemon init`.
pub(crate) fn init(args: &InitArgs) -> anyhow::Result<()> {
    if let Some(count) = args.add {
        return add(args, count);
    }
    let owner = args.owner.as_deref().map(parse_owner).transpose()?;
    if args.if_absent && LocalCluster::holds_cluster(&args.dir) {
        let cluster = LocalCluster::open(&args.dir)?;
        let material = cluster.material();
        println!("{} already holds cluster {}: nothing was changed", material.dir.display(), material.cluster_id);
        let clients = match addressing(args).clients(usize::from(args.hsms))? {
            Some(clients) => clients,
            None => cluster.configured_endpoints()?,
        };
        return write_client_out(args, material, &clients);
    }
    let cluster_id = args
        .cluster_id
        .as_deref()
        .map(ClusterId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--cluster-id: {e}"))?;
    let hsm_type = HsmType::parse(&args.hsm_type).map_err(|e| anyhow::anyhow!("--hsm-type: {e}"))?;
    let mode = args
        .mode
        .as_deref()
        .map(|flag| ClusterMode::parse("mode", flag))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let (cluster, plan) = LocalCluster::builder()
        .hsms(args.hsms)
        .cluster_id(cluster_id)
        .hsm_type(hsm_type)
        .mode(mode)
        .clone_of(args.clone_of.clone())
        .addressing(addressing(args))
        .create(&args.dir)?;
    let material = cluster.material();
    for index in 1..=cluster.hsm_count() {
        println!("HSM {index}: {}", cluster.config_path(index).display());
    }
    let env = material.write_client_env(&plan.clients).context("writing client.env")?;
    write_client_out(args, material, &plan.clients)?;
    if let Some((uid, gid)) = owner {
        material.give_to(uid, gid).with_context(|| format!("--owner {uid}:{gid}"))?;
    }
    println!("cluster {} prepared in {}", material.cluster_id, material.dir.display());
    println!("  start HSM K with: hsm-daemon run --config {}/hsm-K.toml", material.served_dir.display());
    println!("  clients: {}", env.display());
    Ok(())
}

/// `init --add`: new HSMs for the cluster in DIR, cloning from HSM 1.
fn add(args: &InitArgs, count: u8) -> anyhow::Result<()> {
    let dir = &args.dir;
    if !LocalCluster::holds_cluster(dir) {
        bail!("{} holds no cluster (no hsm-1.toml); prepare one with `hsm-daemon init --dir`", dir.display());
    }
    let mut cluster = LocalCluster::open(dir)?;
    let added = cluster.add_hsms(count)?;
    for index in added {
        println!("HSM {index}: {}", cluster.config_path(index).display());
    }
    let endpoints = cluster.configured_endpoints()?;
    let material = cluster.material();
    let env = material.write_client_env(&endpoints).context("writing client.env")?;
    println!("cluster {} now has {} HSMs", material.cluster_id, endpoints.len());
    println!("  start each new HSM with: hsm-daemon run --config {}/hsm-K.toml", material.dir.display());
    println!("  (it copies users and keys from HSM 1 first); restart the others to sync with it too");
    println!("  clients: {}", env.display());
    Ok(())
}

/// Where the HSMs go, from the placement flags.
fn addressing(args: &InitArgs) -> Addressing {
    Addressing {
        listen: args.listen,
        advertise: args.advertise.clone(),
        client_endpoints: args.client_endpoints.clone(),
        data_dir: args.data_dir.clone(),
        mounted_at: args.mounted_at.clone(),
    }
}

/// `--client-out`: the CA and a client.env for clients elsewhere.
fn write_client_out(args: &InitArgs, material: &ClusterMaterial, clients: &[String]) -> anyhow::Result<()> {
    if let Some(out) = &args.client_out {
        let env = material
            .write_client_files(out, clients, args.client_ca_cert.as_deref())
            .context("writing --client-out")?;
        println!("  clients elsewhere: {}", env.display());
    }
    Ok(())
}

/// `--owner UID[:GID]`.
fn parse_owner(raw: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = raw.split_once(':').unwrap_or((raw, raw));
    match (uid.parse(), gid.parse()) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        _ => bail!("--owner {raw:?}: must be UID or UID:GID, in numbers (e.g. 10001:10001)"),
    }
}
