//! `trusted_proxies`: the peers whose forwarding headers are believed.
//!
//! One list, read through [`TrustedProxies::trusts`]: decision mode believes the original
//! method, host and URI only from these peers, and proxy mode will use the same list before
//! believing `X-Forwarded-For`/`-Proto` or `Forwarded` (RFC 7239 § 8.3: "proxies … may
//! insert false information").

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `::1/128`, or a bare address (a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a block was refused, for the configuration's error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an IPv4 or IPv6 address before the `/`.
    #[error("is not an IP address or address/prefix block")]
    Address,
    /// A prefix longer than the address (32 bits for IPv4, 128 for IPv6), or not a number.
    #[error("has a prefix length that is not 0..=32 (IPv4) or 0..=128 (IPv6)")]
    Prefix,
    /// Bits set past the prefix (`10.1.0.0/8`): probably a typo for another block.
    #[error("has address bits set past its prefix length")]
    HostBits,
}

impl Cidr {
    /// Whether `ip` is inside the block. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, as a
    /// dual-stack listener reports IPv4 clients) is judged as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), self.prefix, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), self.prefix, 128) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` (an address `width` bits wide) with everything past `prefix` cleared.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    let host_bits = u32::from(width - prefix.min(width));
    bits.checked_shr(host_bits)
        .and_then(|b| b.checked_shl(host_bits))
        .unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            // Digits only: `u8::from_str` would take a `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= width).ok_or(CidrError::Prefix)?
            }
            Some(_) => return Err(CidrError::Prefix),
        };
        let bits = match network {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        if masked(bits, prefix, width) != bits {
            return Err(CidrError::HostBits);
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The peers allowed to tell the gateway about the request they forward. Defaults to none:
/// nobody's forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// The list of `blocks`.
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    /// Whether the connection's peer `ip` is one of them.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether the list is empty (nobody is trusted).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, block) in self.0.iter().enumerate() {
            write!(f, "{}{block}", if i == 0 { "" } else { ", " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn trusted(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| cidr(b)).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn blocks_contain_their_addresses_and_no_others() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1", "fd00::/8", "192.168.1.0/24"]);
        assert!(t.trusts(ip("10.255.0.1")));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("192.168.1.77")));
        assert!(!t.trusts(ip("192.168.2.1")));
        assert!(!t.trusts(ip("11.0.0.1")));
        assert!(t.trusts(ip("fd12::1")));
        assert!(!t.trusts(ip("fe80::1")));
        // A dual-stack listener's view of an IPv4 peer.
        assert!(t.trusts(ip("::ffff:10.1.2.3")));
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
        assert!(trusted(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
        assert!(!trusted(&["0.0.0.0/0"]).trusts(ip("2001:db8::1")));
        assert!(trusted(&["::/0"]).trusts(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_blocks_are_refused_with_their_reason() {
        assert_eq!("10.0.0/8".parse::<Cidr>(), Err(CidrError::Address));
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::Prefix));
        assert_eq!("10.0.0.0/+8".parse::<Cidr>(), Err(CidrError::Prefix));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(CidrError::Prefix));
        assert_eq!("::1/129".parse::<Cidr>(), Err(CidrError::Prefix));
        assert_eq!("10.1.0.0/8".parse::<Cidr>(), Err(CidrError::HostBits));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(trusted(&["10.0.0.0/8", "::1"]).to_string(), "10.0.0.0/8, ::1/128");
    }
}
