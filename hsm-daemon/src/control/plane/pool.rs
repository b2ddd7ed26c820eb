//! Where new HSMs listen: each its own loopback address from a pool
//! (`EniIp`), on CloudHSM's port, as each HSM of a real cluster has its own
//! network interface in a subnet.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so any
//! address of it can be bound without setup. Where only 127.0.0.1 can be
//! bound (macOS without aliases), a pool of `127.0.0.1/32` with port 0
//! puts every HSM on 127.0.0.1 with a port of its own: the `EniIp`s are
//! then all the same, and `delete-hsm --eni-ip` names the first.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use crate::control::api::ApiError;

/// A block of IPv4 addresses (`127.2.0.0/16`) and the port HSMs take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    first: Ipv4Addr,
    size: u32,
    /// CloudHSM's port (2223), or 0 for a free port each.
    pub port: u16,
}

/// CloudHSM's client port.
pub const HSM_PORT: u16 = 2223;

impl Default for AddressPool {
    fn default() -> Self {
        AddressPool { first: Ipv4Addr::new(127, 2, 0, 0), size: 1 << 16, port: HSM_PORT }
    }
}

impl AddressPool {
    /// `A.B.C.D/N` (N from 16 to 32), with the port HSMs listen on.
    pub fn parse(cidr: &str, port: u16) -> Result<Self, String> {
        let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("'{cidr}': {e}; expected A.B.C.D/N"))?;
        let bits: u32 = bits.parse().map_err(|_| format!("'{cidr}': the prefix length must be a number"))?;
        if !(16..=32).contains(&bits) {
            return Err(format!("'{cidr}': the prefix length must be 16 to 32"));
        }
        if !ip.is_loopback() {
            return Err(format!("'{cidr}': HSMs listen on loopback addresses (127.0.0.0/8) only"));
        }
        let size = 1u32 << (32 - bits);
        let first = Ipv4Addr::from(u32::from(ip) & !(size - 1));
        Ok(AddressPool { first, size, port })
    }

    /// An address for a new HSM: `wanted` if given (it must be in the pool
    /// and free), else the first free one. Free means held by no HSM in
    /// `in_use` and bindable now (another process may hold it).
    pub fn allocate(&self, wanted: Option<&str>, in_use: &[(String, u16)]) -> Result<SocketAddr, ApiError> {
        let taken = |ip: Ipv4Addr| self.port != 0 && in_use.iter().any(|(used, _)| *used == ip.to_string());
        if let Some(raw) = wanted {
            let ip: Ipv4Addr = raw
                .parse()
                .map_err(|_| ApiError::InvalidRequest(format!("IpAddress: '{raw}' is not an IPv4 address")))?;
            if !self.contains(ip) {
                return Err(ApiError::InvalidRequest(format!(
                    "IpAddress: {ip} is not in the subnet's range ({}/{})",
                    self.first,
                    32 - self.size.trailing_zeros()
                )));
            }
            if taken(ip) {
                return Err(ApiError::InvalidRequest(format!("IpAddress: {ip} is already in use by an HSM")));
            }
            return bind_check(ip, self.port).ok_or_else(|| {
                ApiError::InvalidRequest(format!("IpAddress: {ip}:{} is in use on this machine", self.port))
            });
        }
        // The network's own address is skipped, as in a subnet.
        let start = u32::from(self.first);
        (1..self.size.max(2))
            .map(|offset| Ipv4Addr::from(start + offset.min(self.size - 1)))
            .filter(|ip| !taken(*ip))
            .find_map(|ip| bind_check(ip, self.port))
            .ok_or_else(|| {
                ApiError::InternalFailure(format!(
                    "no free address is left in the HSM address pool {}/{}",
                    self.first,
                    32 - self.size.trailing_zeros()
                ))
            })
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let (ip, first) = (u32::from(ip), u32::from(self.first));
        ip >= first && ip - first < self.size
    }
}

/// `ip:port` if it can be bound now (port 0: a free port of `ip`).
fn bind_check(ip: Ipv4Addr, port: u16) -> Option<SocketAddr> {
    let listener = TcpListener::bind((ip, port)).ok()?;
    listener.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_gives_free_addresses_and_refuses_outside_or_taken_ones() {
        let pool = AddressPool::parse("127.77.0.0/24", 0).expect("pool");
        let first = pool.allocate(None, &[]).expect("free");
        assert_eq!(first.ip().to_string(), "127.77.0.1");
        let outside = pool.allocate(Some("127.78.0.1"), &[]).expect_err("outside");
        assert!(outside.to_string().contains("not in the subnet"), "{outside}");
        let pool = AddressPool::parse("127.77.0.0/24", 40_001).expect("pool");
        let taken = pool.allocate(Some("127.77.0.1"), &[("127.77.0.1".into(), 40_001)]).expect_err("taken");
        assert!(taken.to_string().contains("already in use"), "{taken}");
        let next = pool.allocate(None, &[("127.77.0.1".into(), 40_001)]).expect("next");
        assert_eq!(next.ip().to_string(), "127.77.0.2");
        assert!(AddressPool::parse("10.0.0.0/24", 2223).is_err());
        assert!(AddressPool::parse("127.0.0.0/8", 2223).is_err());
    }
}
