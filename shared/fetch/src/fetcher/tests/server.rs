//! A loopback HTTP/1.1 server that answers each request the way its test says, and counts
//! the requests it gets: a hop the fetcher must refuse shows up as a count above zero.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does once it has read a request.
pub(super) enum Reply {
    /// Writes these bytes and closes the connection.
    Raw(Vec<u8>),
    /// Writes these bytes and then nothing, keeping the connection open.
    Stall(Vec<u8>),
    /// Writes this head, then one byte of body per interval, without end.
    Trickle(Vec<u8>, Duration),
}

type Answer = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A running server; it stops with its test's runtime.
pub(super) struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    /// Starts a server answering each request's path with `answer`.
    pub(super) async fn start(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let hits = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept(listener, Arc::new(answer), hits.clone()));
        Self { addr, hits }
    }

    pub(super) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received so far.
    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn accept(listener: TcpListener, answer: Answer, hits: Arc<AtomicUsize>) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(respond(socket, answer.clone(), hits.clone()));
    }
}

async fn respond(mut socket: TcpStream, answer: Answer, hits: Arc<AtomicUsize>) {
    let Some(path) = read_request(&mut socket).await else {
        return;
    };
    hits.fetch_add(1, Ordering::SeqCst);
    // Write errors mean the client gave up, which some tests make it do.
    match answer(&path) {
        Reply::Raw(bytes) => {
            let _ = socket.write_all(&bytes).await;
            let _ = socket.shutdown().await;
        }
        Reply::Stall(bytes) => {
            let _ = socket.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Reply::Trickle(head, every) => {
            let _ = socket.write_all(&head).await;
            while socket.write_all(b"x").await.is_ok() {
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// Reads a request's head and returns its path.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace().nth(1).map(str::to_owned)
}

fn head(status: &str, headers: &[String]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// 200 with a `Content-Length`.
pub(super) fn ok(body: &[u8]) -> Reply {
    let mut out = head("200 OK", &[format!("Content-Length: {}", body.len())]);
    out.extend_from_slice(body);
    Reply::Raw(out)
}

/// `status` with these extra headers, a `Content-Length` and the body.
pub(super) fn with_headers(status: &str, headers: &[&str], body: &[u8]) -> Reply {
    let mut all: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    all.push(format!("Content-Length: {}", body.len()));
    let mut out = head(status, &all);
    out.extend_from_slice(body);
    Reply::Raw(out)
}

/// 200 with a chunked body, in chunks of `chunk` bytes.
pub(super) fn chunked(body: &[u8], chunk: usize) -> Reply {
    let mut out = head("200 OK", &["Transfer-Encoding: chunked".into()]);
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Reply::Raw(out)
}

/// 200 with neither length nor chunks: the body ends when the connection does.
pub(super) fn until_close(body: &[u8]) -> Reply {
    let mut out = head("200 OK", &[]);
    out.extend_from_slice(body);
    Reply::Raw(out)
}

/// 302 to `location`.
pub(super) fn redirect(location: &str) -> Reply {
    let headers = [format!("Location: {location}"), "Content-Length: 0".into()];
    Reply::Raw(head("302 Found", &headers))
}

/// `status` with an empty body.
pub(super) fn status(status: &str) -> Reply {
    Reply::Raw(head(status, &["Content-Length: 0".into()]))
}

/// A 200 head announcing `length` bytes, then only `sent` of them, then silence.
pub(super) fn stall_after(length: usize, sent: usize) -> Reply {
    let mut out = head("200 OK", &[format!("Content-Length: {length}")]);
    out.extend(std::iter::repeat_n(b'x', sent));
    Reply::Stall(out)
}

/// A 200 head announcing `length` bytes, then one byte per `every`.
pub(super) fn trickle(length: usize, every: Duration) -> Reply {
    Reply::Trickle(
        head("200 OK", &[format!("Content-Length: {length}")]),
        every,
    )
}
