//! The fetcher against real loopback servers: every hop checked, every resolved address
//! checked, and limits that hold while the bytes stream. Policies here let loopback in
//! explicitly (the servers live there) unless a test is about refusing it.

mod server;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use server::{
    Reply, Server, chunked, ok, redirect, stall_after, status, trickle, until_close, with_headers,
};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// A public address: listed beside loopback, it must not make the name acceptable.
const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14));

/// Loopback allowed, on these ports only.
fn loopback_policy(ports: &[u16]) -> FetchPolicy {
    FetchPolicy {
        allowed_ports: ports.to_vec(),
        allow_internal_addresses: true,
        ..FetchPolicy::default()
    }
}

/// Internal addresses refused, as deployed, but these ports allowed.
fn deployed_policy(ports: &[u16]) -> FetchPolicy {
    FetchPolicy {
        allowed_ports: ports.to_vec(),
        ..FetchPolicy::default()
    }
}

fn quick_limits() -> FetchLimits {
    FetchLimits {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        ..FetchLimits::default()
    }
}

/// A resolver answering from a table (anything else does not exist), and how often it ran.
fn table_lookup(table: &[(&str, &[IpAddr])]) -> (Lookup, Arc<AtomicUsize>) {
    let table: Vec<(String, Vec<IpAddr>)> = table
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.to_vec()))
        .collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let lookup: Lookup = Arc::new(move |host| {
        counted.fetch_add(1, Ordering::SeqCst);
        let found = table
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, ips)| ips.clone());
        Box::pin(async move { found.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)) })
    });
    (lookup, calls)
}

/// Fails the test instead of hanging it when a limit does not hold.
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .expect("the fetch should have ended by now")
}

/// Everything a body yields: its bytes, and its errors in order (the stream must end after
/// the first one).
async fn drain(mut body: ByteStream) -> (Vec<u8>, Vec<DomainError>) {
    let mut bytes = Vec::new();
    let mut errors = Vec::new();
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                assert!(errors.is_empty(), "bytes after an error");
                bytes.extend_from_slice(&chunk);
            }
            Err(e) => errors.push(e),
        }
    }
    (bytes, errors)
}

fn invalid_text(result: DomainResult<Fetched>) -> String {
    match result {
        Err(DomainError::Invalid(text)) => text,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn unavailable_text(result: DomainResult<Fetched>) -> String {
    match result {
        Err(e @ DomainError::Invalid(_)) => e.to_string(),
        other => panic!("expected an unreachable host, got {other:?}"),
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_fetch_streams_exactly_the_served_bytes_after_allowed_redirects() {
    let body = pattern(300_000);
    let served = body.clone();
    let server = Server::start(move |path| match path {
        "/start" => redirect("/disk.qcow2"),
        _ => ok(&served),
    })
    .await;
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), quick_limits());

    let fetched = within(fetcher.open(&server.url("/start")))
        .await
        .expect("fetch");

    assert_eq!(fetched.size, Some(300_000));
    assert_eq!(fetched.url_after_redirects, server.url("/disk.qcow2"));
    let (bytes, errors) = within(drain(fetched.body)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(bytes, body);
}

#[tokio::test]
async fn the_default_policy_refuses_this_machine_however_it_is_named() {
    let server = Server::start(|_| ok(b"secret")).await;
    let port = server.port();
    let deployed = Fetcher::new(deployed_policy(&[port]), quick_limits());
    let default = Fetcher::new(FetchPolicy::default(), quick_limits());

    let by_name = invalid_text(deployed.open(&format!("http://localhost:{port}/")).await);
    let by_address = invalid_text(deployed.open(&format!("http://127.0.0.1:{port}/")).await);
    let by_number = invalid_text(deployed.open(&format!("http://2130706433:{port}/")).await);
    let off_port = invalid_text(default.open(&format!("http://127.0.0.1:{port}/")).await);

    assert!(
        by_name.contains("the host 'localhost' is this machine"),
        "{by_name}"
    );
    assert!(
        by_address.contains("127.0.0.1 is an internal address"),
        "{by_address}"
    );
    assert!(
        by_number.contains("127.0.0.1 is an internal address"),
        "{by_number}"
    );
    assert!(
        off_port.contains(&format!("port {port} is not allowed")),
        "{off_port}"
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn a_name_with_any_internal_address_is_refused_by_the_resolver() {
    let server = Server::start(|_| ok(b"secret")).await;
    let port = server.port();
    let (lookup, _) = table_lookup(&[
        ("inside.test", &[LOOPBACK]),
        ("mixed.test", &[PUBLIC, LOOPBACK]),
        ("mixed-first.test", &[LOOPBACK, PUBLIC]),
    ]);
    let fetcher = Fetcher::with_lookup(deployed_policy(&[port]), quick_limits(), lookup);

    for name in ["inside.test", "mixed.test", "mixed-first.test"] {
        let text = invalid_text(within(fetcher.open(&format!("http://{name}:{port}/"))).await);
        assert!(
            text.contains("127.0.0.1 is an internal address"),
            "{name}: {text}"
        );
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn names_are_resolved_once_by_the_checking_resolver_and_host_lists_still_apply() {
    let server = Server::start(|_| ok(b"image")).await;
    let port = server.port();
    let (lookup, calls) =
        table_lookup(&[("mirror.test", &[LOOPBACK]), ("other.test", &[LOOPBACK])]);
    let policy = FetchPolicy {
        allowed_hosts: vec!["mirror.test".into()],
        ..loopback_policy(&[port])
    };
    let fetcher = Fetcher::with_lookup(policy, quick_limits(), lookup);

    // The system resolver knows no `.test` name: only ours can have led here.
    let fetched = within(fetcher.open(&format!("http://mirror.test:{port}/a"))).await;
    let (bytes, _) = within(drain(fetched.expect("allowed host").body)).await;
    let other = invalid_text(fetcher.open(&format!("http://other.test:{port}/a")).await);

    assert_eq!(bytes, b"image");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        other.contains("the host 'other.test' is not allowed"),
        "{other}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_redirect_to_a_refused_target_is_not_followed() {
    let target = Server::start(|_| ok(b"secret")).await;
    let tport = target.port();
    let redirector = Server::start(move |path| match path {
        "/file" => redirect("file:///etc/passwd"),
        "/gopher" => redirect(&format!("gopher://127.0.0.1:{tport}/")),
        "/blocked" => redirect(&format!("http://blocked.test:{tport}/")),
        _ => redirect(&format!("http://127.0.0.1:{tport}/")),
    })
    .await;
    let rport = redirector.port();
    let (lookup, _) = table_lookup(&[("blocked.test", &[LOOPBACK])]);
    let one_port = Fetcher::new(loopback_policy(&[rport]), quick_limits());
    let blocking = FetchPolicy {
        disallowed_hosts: vec!["blocked.test".into()],
        ..loopback_policy(&[rport, tport])
    };
    let blocking = Fetcher::with_lookup(blocking, quick_limits(), lookup.clone());
    let both_ports = Fetcher::with_lookup(loopback_policy(&[rport, tport]), quick_limits(), lookup);

    let file = invalid_text(within(one_port.open(&redirector.url("/file"))).await);
    let gopher = invalid_text(within(blocking.open(&redirector.url("/gopher"))).await);
    let port = invalid_text(within(one_port.open(&redirector.url("/port"))).await);
    let host = invalid_text(within(blocking.open(&redirector.url("/blocked"))).await);
    assert!(file.contains("the scheme 'file' is not one of"), "{file}");
    assert!(
        gopher.contains("the scheme 'gopher' is not one of"),
        "{gopher}"
    );
    assert!(
        port.contains(&format!("port {tport} is not allowed")),
        "{port}"
    );
    assert!(
        host.contains("the host 'blocked.test' is disallowed"),
        "{host}"
    );
    assert_eq!(target.hits(), 0);

    // The same hops, allowed, do reach the target: the refusals above were the policy's.
    within(both_ports.open(&redirector.url("/port")))
        .await
        .expect("allowed port");
    within(both_ports.open(&redirector.url("/blocked")))
        .await
        .expect("allowed host");
    assert_eq!(target.hits(), 2);
}

#[tokio::test]
async fn redirects_stop_after_max_redirects() {
    // `/loop/n` redirects to `/loop/n+1` for ever; `/hop/n` does until `/hop/3`.
    let server = Server::start(|path| {
        let (kind, n) = path
            .trim_start_matches('/')
            .split_once('/')
            .expect("/kind/n");
        let n: u32 = n.parse().expect("a number");
        match kind {
            "hop" if n == 3 => ok(b"arrived"),
            _ => redirect(&format!("/{kind}/{}", n + 1)),
        }
    })
    .await;
    let limits = FetchLimits {
        max_redirects: 3,
        ..quick_limits()
    };
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), limits);

    let three = within(fetcher.open(&server.url("/hop/0")))
        .await
        .expect("three hops");
    assert_eq!(three.url_after_redirects, server.url("/hop/3"));
    let before = server.hits();
    let endless = invalid_text(within(fetcher.open(&server.url("/loop/0"))).await);

    assert!(
        endless.contains("it redirects more than 3 times"),
        "{endless}"
    );
    assert_eq!(
        server.hits() - before,
        4,
        "the first request and three redirects"
    );
}

#[tokio::test]
async fn a_body_longer_than_max_bytes_fails_however_it_is_framed() {
    let body = pattern(1001);
    let served = body.clone();
    let server = Server::start(move |path| match path {
        "/length" => ok(&served),
        "/chunked" => chunked(&served, 300),
        "/until-close" => until_close(&served),
        "/exact-length" => ok(&served[..1000]),
        _ => chunked(&served[..1000], 300),
    })
    .await;
    let limits = FetchLimits {
        max_bytes: 1000,
        ..quick_limits()
    };
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), limits);

    let announced = within(fetcher.open(&server.url("/length"))).await;
    assert!(
        matches!(&announced, Err(DomainError::QuotaExceeded(m)) if m.contains("1001 bytes")),
        "{announced:?}"
    );
    for path in ["/chunked", "/until-close"] {
        let fetched = within(fetcher.open(&server.url(path))).await.expect(path);
        assert_eq!(fetched.size, None, "{path}");
        let (bytes, errors) = within(drain(fetched.body)).await;
        assert!(bytes.len() <= 1000, "{path}: {} bytes", bytes.len());
        assert_eq!(bytes, body[..bytes.len()], "{path}");
        assert!(
            matches!(errors.as_slice(), [DomainError::QuotaExceeded(m)] if m.contains("more than 1000")),
            "{path}: {errors:?}"
        );
    }
    for path in ["/exact-length", "/exact-chunked"] {
        let fetched = within(fetcher.open(&server.url(path))).await.expect(path);
        let (bytes, errors) = within(drain(fetched.body)).await;
        assert!(errors.is_empty(), "{path}: {errors:?}");
        assert_eq!(bytes, body[..1000], "{path}");
    }
}

#[tokio::test]
async fn error_statuses_name_the_status() {
    let server = Server::start(|path| match path {
        "/missing" => status("404 Not Found"),
        "/forbidden" => status("403 Forbidden"),
        _ => status("500 Internal Server Error"),
    })
    .await;
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), quick_limits());

    let missing = within(fetcher.open(&server.url("/missing"))).await;
    let forbidden = invalid_text(within(fetcher.open(&server.url("/forbidden"))).await);
    let broken = invalid_text(within(fetcher.open(&server.url("/broken"))).await);

    assert!(
        matches!(&missing, Err(DomainError::NotFound(m)) if m.contains("404 Not Found")),
        "{missing:?}"
    );
    assert!(forbidden.contains("403 Forbidden"), "{forbidden}");
    assert!(broken.contains("500 Internal Server Error"), "{broken}");
}

#[tokio::test]
async fn a_stalled_server_is_cut_off_by_the_read_timeout() {
    let server = Server::start(|path| match path {
        "/no-head" => Reply::Stall(Vec::new()),
        _ => stall_after(100, 10),
    })
    .await;
    let limits = FetchLimits {
        read_timeout: Duration::from_millis(300),
        ..quick_limits()
    };
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), limits);

    let no_head = unavailable_text(within(fetcher.open(&server.url("/no-head"))).await);
    let fetched = within(fetcher.open(&server.url("/part")))
        .await
        .expect("head");
    let (bytes, errors) = within(drain(fetched.body)).await;

    assert!(no_head.contains("timed out"), "{no_head}");
    assert_eq!(bytes.len(), 10);
    assert!(
        matches!(errors.as_slice(), [e @ DomainError::Invalid(_)] if e.to_string().contains("timed out")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_slow_but_steady_server_is_cut_off_by_the_total_timeout() {
    // One byte per 20 ms never trips the read timeout; 10,000 of them take 200 s.
    let server = Server::start(|_| trickle(10_000, Duration::from_millis(20))).await;
    let limits = FetchLimits {
        total_timeout: Some(Duration::from_millis(500)),
        ..quick_limits()
    };
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), limits);

    let fetched = within(fetcher.open(&server.url("/slow")))
        .await
        .expect("head");
    let (bytes, errors) = within(drain(fetched.body)).await;

    assert!(bytes.len() < 10_000);
    assert!(
        matches!(errors.as_slice(), [e @ DomainError::Invalid(_)] if e.to_string().contains("timed out")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn unreachable_hosts_are_reported_as_unreachable() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let (lookup, _) = table_lookup(&[]);
    let fetcher = Fetcher::with_lookup(loopback_policy(&[port]), quick_limits(), lookup);

    let refused =
        unavailable_text(within(fetcher.open(&format!("http://127.0.0.1:{port}/"))).await);
    let unknown =
        unavailable_text(within(fetcher.open(&format!("http://nowhere.test:{port}/"))).await);

    assert!(refused.contains("could not be reached"), "{refused}");
    assert!(
        unknown.contains("'nowhere.test' could not be reached"),
        "{unknown}"
    );
}

/// Where [`environment_proxies_are_ignored`] tells its child process to fetch from.
const CHILD_TARGET: &str = "CLOUD_IMAGES_FETCH_TEST_TARGET";

#[tokio::test]
async fn environment_proxies_are_ignored() {
    // A process's environment cannot change safely while it runs threads, so the fetch runs
    // in a child process started with the proxy variables set.
    let proxy = Server::start(|_| ok(b"from the proxy")).await;
    let target = Server::start(|_| ok(b"from the target")).await;
    let child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "fetcher::tests::fetch_in_a_proxied_process",
        ])
        .env("HTTP_PROXY", proxy.url(""))
        .env("http_proxy", proxy.url(""))
        .env("ALL_PROXY", proxy.url(""))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env(CHILD_TARGET, target.url("/disk.raw"))
        .output();
    let output = within(child).await.expect("child process");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_eq!(proxy.hits(), 0);
    assert_eq!(target.hits(), 1);
}

#[tokio::test]
#[ignore = "run by environment_proxies_are_ignored, with proxies in its environment"]
async fn fetch_in_a_proxied_process() {
    let Ok(uri) = std::env::var(CHILD_TARGET) else {
        return;
    };
    let port = url::Url::parse(&uri).expect("uri").port().expect("port");
    let fetcher = Fetcher::new(loopback_policy(&[port]), quick_limits());

    let fetched = within(fetcher.open(&uri)).await.expect("fetch");
    let (bytes, _) = within(drain(fetched.body)).await;

    assert_eq!(bytes, b"from the target");
}

#[tokio::test]
async fn a_fetch_names_the_version_a_later_range_may_ask_for() {
    let body = pattern(1000);
    let served = body.clone();
    let server = Server::start(move |path| match path {
        "/tagged" => with_headers(
            "200 OK",
            &[
                "ETag: \"v7\"",
                "Last-Modified: Sat, 05 Dec 2026 10:00:00 GMT",
            ],
            &served,
        ),
        "/weak" => with_headers(
            "200 OK",
            &[
                "ETag: W/\"v7\"",
                "Last-Modified: Sat, 05 Dec 2026 10:00:00 GMT",
            ],
            &served,
        ),
        _ => ok(&served),
    })
    .await;
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), quick_limits());
    let validator = |path: &'static str| {
        let fetcher = fetcher.clone();
        let url = server.url(path);
        async move { within(fetcher.open(&url)).await.expect("fetched").validator }
    };
    assert_eq!(validator("/tagged").await.as_deref(), Some("\"v7\""));
    // A weak tag may not name a range's version; the date may.
    assert_eq!(
        validator("/weak").await.as_deref(),
        Some("Sat, 05 Dec 2026 10:00:00 GMT")
    );
    assert_eq!(validator("/plain").await, None);
}

#[tokio::test]
async fn a_resumed_fetch_takes_only_the_range_it_asked_for() {
    let body = pattern(1000);
    let rest = body[600..].to_vec();
    let server = Server::start(move |path| match path {
        "/range" => with_headers(
            "206 Partial Content",
            &["Content-Range: bytes 600-999/1000"],
            &rest,
        ),
        "/unknown-total" => with_headers(
            "206 Partial Content",
            &["Content-Range: bytes 600-999/*"],
            &rest,
        ),
        "/elsewhere" => with_headers(
            "206 Partial Content",
            &["Content-Range: bytes 0-399/1000"],
            &rest,
        ),
        "/no-range" => with_headers("206 Partial Content", &[], &rest),
        "/changed" => ok(&pattern(1000)),
        "/past-the-end" => with_headers(
            "416 Range Not Satisfiable",
            &["Content-Range: bytes */1000"],
            b"",
        ),
        _ => status("404 Not Found"),
    })
    .await;
    let fetcher = Fetcher::new(loopback_policy(&[server.port()]), quick_limits());
    let resumed = |path: &'static str| {
        let fetcher = fetcher.clone();
        let url = server.url(path);
        async move { within(fetcher.open_from(&url, 600, "\"v7\"")).await }
    };
    let fetched = resumed("/range")
        .await
        .expect("fetched")
        .expect("the range");
    assert_eq!(
        fetched.size,
        Some(1000),
        "the whole size, from Content-Range"
    );
    let (bytes, errors) = drain(fetched.body).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(bytes, body[600..]);
    let fetched = resumed("/unknown-total")
        .await
        .expect("fetched")
        .expect("the range");
    assert_eq!(fetched.size, Some(1000), "offset plus what remains");
    // Anything but exactly the range asked for means: fetch it all again.
    for path in ["/elsewhere", "/no-range", "/changed", "/past-the-end"] {
        assert!(resumed(path).await.expect("fetched").is_none(), "{path}");
    }
    assert!(matches!(
        resumed("/gone").await,
        Err(DomainError::NotFound(_))
    ));
}
