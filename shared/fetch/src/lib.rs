//! Server-side fetches: which URIs a `web-download` import may name, and which addresses the
//! service may then connect to.
//!
//! A fetch the service makes for a tenant must not reach what only the service can reach:
//! itself and its neighbours on loopback, the instance and task metadata endpoints
//! (169.254.169.254, 169.254.170.2, fd00:ec2::254), the Lambda runtime API, private
//! networks. The URI is read the way HTTP clients read it (WHATWG parsing, so `2130706433`,
//! `0x7f.1` and `0177.0.0.1` are all 127.0.0.1), its literal address is checked, and the
//! fetcher checks every address a host name resolves to with [`FetchPolicy::check_address`]
//! before connecting to exactly that address (and again for every redirect), so a second
//! lookup cannot swap in another one.

mod source;

pub use source::WebFetcher;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cloud_images_domain::{DomainError, DomainResult};
use url::{Host, Url};

mod fetcher;
mod webhook;

pub use fetcher::{FetchLimits, Fetched, Fetcher};
pub use webhook::{SIGNATURE_HEADER, WebhookSink, signature};

/// Longest URI accepted.
pub const MAX_URI_LEN: usize = 2048;

/// What a server-side fetch may reach. The default is Glance's `import_filtering_opts`
/// default (http and https on ports 80 and 443, no host lists) with internal addresses
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Schemes allowed (lowercase).
    pub allowed_schemes: Vec<String>,
    /// Ports allowed; a URI without a port has its scheme's.
    pub allowed_ports: Vec<u16>,
    /// When not empty, the only host names (or literal addresses) allowed.
    pub allowed_hosts: Vec<String>,
    /// Host names (or literal addresses) refused.
    pub disallowed_hosts: Vec<String>,
    /// Let fetches reach internal addresses (loopback, private, link-local, ...): only for a
    /// test's loopback server, never in a deployment.
    pub allow_internal_addresses: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allowed_schemes: vec!["http".into(), "https".into()],
            allowed_ports: vec![80, 443],
            allowed_hosts: Vec::new(),
            disallowed_hosts: Vec::new(),
            allow_internal_addresses: false,
        }
    }
}

/// A URI that passed [`FetchPolicy::check_uri`]: where to connect, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The parsed URI.
    pub url: Url,
    /// The host as the URI names it (lowercase; a literal address in its plain form).
    pub host: String,
    /// The port to connect to.
    pub port: u16,
    /// The address, when the URI names one instead of a host name.
    pub address: Option<IpAddr>,
}

/// Glance's words for a refused URI, which clients (tempest) look for, and ours for why.
fn refused(why: impl std::fmt::Display) -> DomainError {
    DomainError::Invalid(format!(
        "URI for web-download does not pass filtering: {why}"
    ))
}

impl FetchPolicy {
    /// Checks a URI before anything is fetched: length, syntax, scheme, credentials, port,
    /// the host lists, and a literal address's class.
    pub fn check_uri(&self, raw: &str) -> DomainResult<Target> {
        if raw.len() > MAX_URI_LEN {
            return Err(refused(format!("it is longer than {MAX_URI_LEN} bytes")));
        }
        let url = Url::parse(raw).map_err(|e| refused(format!("it is not a URI ({e})")))?;
        if !self.allowed_schemes.iter().any(|s| s == url.scheme()) {
            return Err(refused(format!(
                "the scheme '{}' is not one of {}",
                url.scheme(),
                self.allowed_schemes.join(", ")
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // They would be stored in the task's input, which its tenant's readers all see.
            return Err(refused("it carries credentials"));
        }
        let (host, address) = match url.host() {
            Some(Host::Domain(name)) => (name.trim_end_matches('.').to_ascii_lowercase(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err(refused("it names no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refused("it names no port"))?;
        if !self.allowed_ports.contains(&port) {
            return Err(refused(format!("port {port} is not allowed")));
        }
        self.check_host(&host)?;
        if let Some(ip) = address {
            self.check_address(ip)?;
        }
        Ok(Target {
            url,
            host,
            port,
            address,
        })
    }

    fn check_host(&self, host: &str) -> DomainResult<()> {
        let listed = |list: &[String]| list.iter().any(|h| h.eq_ignore_ascii_case(host));
        if listed(&self.disallowed_hosts) {
            return Err(refused(format!("the host '{host}' is disallowed")));
        }
        if !self.allowed_hosts.is_empty() && !listed(&self.allowed_hosts) {
            return Err(refused(format!("the host '{host}' is not allowed")));
        }
        let local_name = host == "localhost" || host.ends_with(".localhost");
        if local_name && !self.allow_internal_addresses {
            return Err(refused(format!("the host '{host}' is this machine")));
        }
        Ok(())
    }

    /// Checks an address the fetch is about to connect to: a URI's literal one, and every
    /// one its host name resolves to, at each redirect.
    pub fn check_address(&self, ip: IpAddr) -> DomainResult<()> {
        if is_internal(ip) && !self.allow_internal_addresses {
            return Err(refused(format!(
                "{ip} is an internal address (loopback, private, link-local, metadata, \
                 multicast or reserved)"
            )));
        }
        Ok(())
    }
}

/// Whether `ip` is anything but a public unicast address: what a fetch for a tenant must
/// never reach. IPv6 forms that carry an IPv4 address are judged by that address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

/// IPv4 ranges that are not public unicast (IANA special-purpose registry).
const INTERNAL_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared (carrier-grade NAT)
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link-local, instance metadata
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 documentation
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 documentation
    (0xCB00_7100, 24), // 203.0.113.0/24 documentation
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
];

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    INTERNAL_V4
        .iter()
        .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let prefix = |net: u128, len: u32| bits >> (128 - len) == net >> (128 - len);
    let embedded_v4 = || Ipv4Addr::from((bits & 0xFFFF_FFFF) as u32);
    if prefix(0, 96) {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d: nothing public lives here.
        return true;
    }
    if prefix(0xFFFF_0000_0000, 96) || prefix(0x0064_FF9B << 96, 96) {
        // IPv4-mapped ::ffff:a.b.c.d and NAT64 64:ff9b::a.b.c.d reach the IPv4 address.
        return is_internal_v4(embedded_v4());
    }
    if prefix(0x2002 << 112, 16) {
        // 6to4 2002:AABB:CCDD::/48 carries a.b.c.d in its next 32 bits.
        return is_internal_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    [
        (0x0100 << 112, 64u32),  // 100::/64 discard
        (0x2001 << 112, 32),     // 2001::/32 Teredo (an IPv4 address in disguise)
        (0x2001_0DB8 << 96, 32), // 2001:db8::/32 documentation
        (0xFC00 << 112, 7),      // fc00::/7 unique local (fd00:ec2::254 is EC2 metadata)
        (0xFE80 << 112, 10),     // fe80::/10 link-local
        (0xFEC0 << 112, 10),     // fec0::/10 site-local (deprecated)
        (0xFF00 << 112, 8),      // ff00::/8 multicast
    ]
    .iter()
    .any(|&(net, len)| prefix(net, len))
}

#[cfg(test)]
mod tests;
