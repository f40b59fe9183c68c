//! The refusals a web-download URI must meet, from the classes of server-side request
//! forgery in public advisories: internal addresses in every spelling, metadata endpoints,
//! other schemes and ports, credentials, and hosts the operator lists.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

fn refused_by_default(uri: &str) -> bool {
    FetchPolicy::default().check_uri(uri).is_err()
}

#[test]
fn internal_addresses_are_refused_however_they_are_written() {
    let refused = [
        // Loopback, in the spellings HTTP clients accept.
        "http://127.0.0.1/disk.qcow2",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://0177.1/",
        "http://017700000001/",
        "http://127.000.000.001/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://images.localhost/",
        // Instance, task and Lambda metadata.
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://2852039166/",
        "http://[::ffff:169.254.169.254]/",
        // Private, shared, unspecified, multicast, broadcast, reserved, documentation.
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://172.31.255.255/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://192.0.2.10/",
        "http://198.18.0.1/",
        "http://[fe80::1]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        "http://[2001::1]/",
        "http://[2001:db8::1]/",
    ];
    for uri in refused {
        assert!(refused_by_default(uri), "{uri} was let through");
    }
}

#[test]
fn other_schemes_ports_and_credentials_are_refused() {
    for uri in [
        "file:///etc/passwd",
        "ftp://images.example.com/disk.qcow2",
        "gopher://images.example.com:70/",
        "dict://images.example.com:2628/",
        "jar:http://images.example.com!/",
        "https://images.example.com:22/",
        "http://images.example.com:6379/",
        "http://images.example.com:8080/",
        "http://user:secret@images.example.com/",
        "http://images.example.com@127.0.0.1/",
        "not a uri",
        "http://",
        "",
    ] {
        assert!(refused_by_default(uri), "{uri} was let through");
    }
    let long = format!("https://images.example.com/{}", "a".repeat(MAX_URI_LEN));
    assert!(refused_by_default(&long));
}

#[test]
fn public_hosts_on_the_standard_ports_are_allowed() {
    let policy = FetchPolicy::default();
    let target = policy
        .check_uri("https://Images.Example.com./releases/disk.qcow2?x=1")
        .expect("a public host");
    assert_eq!(
        (target.host.as_str(), target.port, target.address),
        ("images.example.com", 443, None)
    );
    let target = policy
        .check_uri("http://93.184.216.34/disk.raw")
        .expect("a public address");
    assert_eq!(
        target.address,
        Some(IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)))
    );
    for uri in [
        "http://[2606:2800:220:1:248:1893:25c8:1946]/",
        "http://[::ffff:93.184.216.34]/",
        "https://images.example.com:443/",
    ] {
        assert!(policy.check_uri(uri).is_ok(), "{uri}");
    }
}

#[test]
fn operators_lists_decide_hosts_and_tests_may_allow_loopback() {
    let only_mirror = FetchPolicy {
        allowed_hosts: vec!["mirror.example.com".into()],
        ..FetchPolicy::default()
    };
    assert!(
        only_mirror
            .check_uri("https://mirror.example.com/a")
            .is_ok()
    );
    assert!(
        only_mirror
            .check_uri("https://images.example.com/a")
            .is_err()
    );
    let denied = FetchPolicy {
        disallowed_hosts: vec!["images.example.com".into()],
        ..FetchPolicy::default()
    };
    assert!(denied.check_uri("https://IMAGES.example.com/a").is_err());
    let loopback_test_server = FetchPolicy {
        allowed_ports: vec![8080],
        allow_internal_addresses: true,
        ..FetchPolicy::default()
    };
    assert!(
        loopback_test_server
            .check_uri("http://127.0.0.1:8080/disk.qcow2")
            .is_ok()
    );
}

#[test]
fn resolved_addresses_are_checked_like_literal_ones() {
    let policy = FetchPolicy::default();
    for internal in [
        "127.0.0.53",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "fd00:ec2::254",
    ] {
        let ip: IpAddr = internal.parse().expect("an address");
        assert!(policy.check_address(ip).is_err(), "{internal}");
    }
    let public: IpAddr = "93.184.216.34".parse().expect("an address");
    assert!(policy.check_address(public).is_ok());
}

/// An address inside one of the internal IPv4 ranges.
fn internal_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop::sample::select(INTERNAL_V4.to_vec()).prop_flat_map(|(net, len)| {
        (0u32..(1u32 << (32 - len)).max(1)).prop_map(move |host| Ipv4Addr::from(net | host))
    })
}

proptest! {
    /// Every spelling of an internal IPv4 address that a URL parser reads as that address is
    /// refused: dotted, one decimal number, hex, octal, and inside IPv6.
    #[test]
    fn every_spelling_of_an_internal_ipv4_address_is_refused(ip in internal_v4()) {
        let bits = u32::from(ip);
        let [a, b, c, d] = ip.octets();
        let spellings = [
            format!("http://{ip}/"),
            format!("http://{bits}/"),
            format!("http://{bits:#x}/"),
            format!("http://0{bits:o}/"),
            format!("http://{a:#x}.{b:#x}.{c:#x}.{d:#x}/"),
            format!("http://0{a:o}.0{b:o}.0{c:o}.0{d:o}/"),
            format!("http://{a}.{}/", (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)),
            format!("http://[::ffff:{ip}]/"),
            format!("http://[64:ff9b::{ip}]/"),
        ];
        for uri in spellings {
            prop_assert!(refused_by_default(&uri), "{} was let through", uri);
        }
    }

    /// Whatever the text, checking it answers (no panic), and what passes names an allowed
    /// scheme and port and no internal literal address.
    #[test]
    fn any_text_is_answered_and_what_passes_is_public(raw in ".{0,80}") {
        if let Ok(target) = FetchPolicy::default().check_uri(&raw) {
            prop_assert!(matches!(target.url.scheme(), "http" | "https"));
            prop_assert!(target.port == 80 || target.port == 443);
            prop_assert!(target.address.is_none_or(|ip| !is_internal(ip)));
        }
    }
}
