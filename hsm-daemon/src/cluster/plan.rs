//! Where a new cluster's HSMs listen, how their peers and clients reach
//! them, and where they keep their state: `hsm-daemon init`'s `--listen`,
//! `--advertise`, `--client-endpoints`, `--data-dir` and `--mounted-at`,
//! checked before anything is written, and turned into one
//! [`HsmPlacement`] per HSM.
//!
//! By default every HSM runs on this machine, on a free 127.0.0.1 port of
//! its own, with its state beside the material. Containers and other hosts
//! bind one address each (`--listen 0.0.0.0:2225`) and are told apart by
//! how they are reached (`--advertise hsm-1:2225,...`).
//!
//! The errors name the flags, as `init` reports them: a control plane that
//! asks for a placement the flags could not express gets the same reasons.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use super::{ClusterError, material::HsmPlacement};
use crate::settings::split_host_port;

/// How a new cluster's HSMs are placed; every field may be left out.
#[derive(Debug, Clone, Default)]
pub struct Addressing {
    /// What every HSM listens on (default: a free 127.0.0.1 port each).
    /// With more than one HSM, `advertise` must say how each is reached.
    pub listen: Option<SocketAddr>,
    /// How the HSMs reach each other, one `host:port` per HSM: their peers,
    /// and a name in each certificate (default: where each listens).
    pub advertise: Option<Vec<String>>,
    /// How clients reach the HSMs, one `host:port` per HSM: `client.env`,
    /// and a name in each certificate (default: `advertise`).
    pub client_endpoints: Option<Vec<String>>,
    /// Every HSM's data directory as it sees it, absolute (default:
    /// `D/hsm-K-data`, made beside the material).
    pub data_dir: Option<PathBuf>,
    /// Where the HSMs find the material directory, absolute, when it is
    /// mounted elsewhere (a Kubernetes Secret at `/etc/hsm`); their config
    /// files point there (default: where it is written).
    pub mounted_at: Option<PathBuf>,
}

/// The checked placement of `count` HSMs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where each HSM listens and keeps its state, in order.
    pub placements: Vec<HsmPlacement>,
    /// How the HSMs reach each other, in order: their peers.
    pub peers: Vec<String>,
    /// How clients reach the HSMs, in order: `client.env`.
    pub clients: Vec<String>,
}

impl Addressing {
    /// Places `count` HSMs, or says which flag cannot be honoured and why.
    pub fn plan(&self, count: usize) -> Result<Plan, ClusterError> {
        for (flag, path) in [("--data-dir", &self.data_dir), ("--mounted-at", &self.mounted_at)] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return Err(ClusterError::refused(format!(
                    "{flag} {}: must be an absolute path (as the HSMs see it)",
                    path.display()
                )));
            }
        }
        let advertise = address_list("--advertise", self.advertise.as_deref(), count)?;
        let clients = self.clients(count)?;
        let listens = match self.listen {
            Some(listen) if count > 1 && advertise.is_none() => {
                return Err(ClusterError::refused(format!(
                    "--listen {listen}: every HSM binds it, so with --hsms {count} each runs on its own host; say \
                     how each is reached with --advertise (one host:port per HSM)"
                )));
            }
            Some(listen) => vec![listen; count],
            None => (0..count).map(|_| free_local_port()).collect::<Result<_, _>>()?,
        };
        let peers = advertise.unwrap_or_else(|| listens.iter().map(|l| reachable(*l)).collect());
        let clients = clients.unwrap_or_else(|| peers.clone());
        let placements = listens
            .iter()
            .zip(peers.iter().zip(&clients))
            .map(|(listen, (peer, client))| HsmPlacement {
                listen: *listen,
                hosts: [peer, client].iter().map(|a| host_of(a)).collect(),
                data_dir: self.data_dir.clone(),
            })
            .collect();
        Ok(Plan { placements, peers, clients })
    }

    /// How clients reach `count` HSMs, if the fields say: the client
    /// endpoints, else the advertised addresses.
    pub fn clients(&self, count: usize) -> Result<Option<Vec<String>>, ClusterError> {
        match address_list("--client-endpoints", self.client_endpoints.as_deref(), count)? {
            Some(clients) => Ok(Some(clients)),
            None => address_list("--advertise", self.advertise.as_deref(), count),
        }
    }
}

/// Where a process on this machine reaches a listen address: the loopback
/// address of its family when it binds every address.
pub fn reachable(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port()).to_string()
}

/// A port on 127.0.0.1 that was free a moment ago: an HSM of this machine
/// that is not running yet (its config file names it).
pub(crate) fn free_local_port() -> Result<SocketAddr, ClusterError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(ClusterError::step("finding a free port"))
}

/// A list of one host:port per HSM, checked; `flag` names it in errors.
fn address_list(flag: &str, list: Option<&[String]>, count: usize) -> Result<Option<Vec<String>>, ClusterError> {
    let Some(list) = list else { return Ok(None) };
    if list.len() != count {
        return Err(ClusterError::refused(format!(
            "{flag}: {} address(es) for --hsms {count}; give one host:port per HSM, in order",
            list.len()
        )));
    }
    let mut checked = Vec::new();
    for raw in list {
        let raw = raw.trim();
        if split_host_port(raw).is_none() {
            return Err(ClusterError::refused(format!(
                "{flag}: {raw:?} must be host:port (a host name or address, and a port from 1 to 65535)"
            )));
        }
        checked.push(raw.to_owned());
    }
    Ok(Some(checked))
}

/// The host of a checked host:port, without IPv6 brackets.
fn host_of(address: &str) -> String {
    let host = split_host_port(address).map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsms_on_this_machine_take_free_ports_and_are_reached_there() {
        let plan = Addressing::default().plan(2).unwrap();
        assert_eq!(plan.placements.len(), 2);
        assert_ne!(plan.placements[0].listen, plan.placements[1].listen);
        assert_eq!(plan.peers, plan.clients);
        assert_eq!(plan.peers[0], plan.placements[0].listen.to_string());
        assert_eq!(plan.placements[0].hosts, ["127.0.0.1", "127.0.0.1"]);
    }

    #[test]
    fn containers_bind_one_address_and_are_told_apart_by_how_they_are_reached() {
        let addressing = Addressing {
            listen: Some("0.0.0.0:2225".parse().unwrap()),
            advertise: Some(vec!["hsm-1:2225".into(), "[::1]:2225".into()]),
            client_endpoints: Some(vec!["127.0.0.1:2231".into(), " 127.0.0.1:2232 ".into()]),
            data_dir: Some("/data".into()),
            mounted_at: None,
        };
        let plan = addressing.plan(2).unwrap();
        assert_eq!(plan.peers, ["hsm-1:2225", "[::1]:2225"]);
        assert_eq!(plan.clients, ["127.0.0.1:2231", "127.0.0.1:2232"]);
        assert_eq!(plan.placements[1].hosts, ["::1", "127.0.0.1"]);
        assert_eq!(plan.placements[1].listen, "0.0.0.0:2225".parse().unwrap());
        assert_eq!(reachable(plan.placements[0].listen), "127.0.0.1:2225");
    }

    #[test]
    fn placements_that_cannot_work_are_refused_naming_the_flag() {
        let refused = |addressing: Addressing, count| addressing.plan(count).unwrap_err().to_string();
        let listen = Some("0.0.0.0:2225".parse().unwrap());
        let e = refused(Addressing { listen, ..Addressing::default() }, 2);
        assert!(e.starts_with("--listen 0.0.0.0:2225: every HSM binds it"), "{e}");
        let e = refused(Addressing { advertise: Some(vec!["hsm-1:2225".into()]), ..Addressing::default() }, 2);
        assert!(e.starts_with("--advertise: 1 address(es) for --hsms 2"), "{e}");
        let e = refused(Addressing { client_endpoints: Some(vec!["hsm-1".into()]), ..Addressing::default() }, 1);
        assert!(e.starts_with("--client-endpoints: \"hsm-1\" must be host:port"), "{e}");
        let e = refused(Addressing { data_dir: Some("data".into()), ..Addressing::default() }, 1);
        assert_eq!(e, "--data-dir data: must be an absolute path (as the HSMs see it)");
        let e = refused(Addressing { mounted_at: Some("etc/hsm".into()), ..Addressing::default() }, 1);
        assert_eq!(e, "--mounted-at etc/hsm: must be an absolute path (as the HSMs see it)");
    }
}
