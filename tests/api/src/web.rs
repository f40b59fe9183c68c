//! A loopback HTTP server for web-download imports to fetch from: fixed bodies by path,
//! redirects, chosen statuses, 404 for anything else, a count of requests per path, and
//! the `Range` each request asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Served {
    /// 200 with these bytes and their `Content-Length`.
    Bytes(Vec<u8>),
    /// 302 to this location.
    Redirect(String),
    /// This status with an empty body.
    Status(u16),
    /// 200 with these bytes, sent in 64 KiB pieces this far apart (a slow server).
    Slowly(Vec<u8>, std::time::Duration),
    /// These bytes with a strong `ETag`; the first request stalls for good after
    /// `stall_at` bytes (a worker fetching it can only be killed), later ones do not. A ranged request
    /// (`Range: bytes=N-`) whose `If-Range` names the `ETag` gets 206 and the rest, unless
    /// `changed` (the data changed since: 200 and all of it, as RFC 9110 says).
    StallsOnce {
        /// The data.
        data: Vec<u8>,
        /// Where the first whole answer stops sending.
        stall_at: usize,
        /// Whether a ranged request finds another version.
        changed: bool,
    },
}

/// Every request's path and `Range` header, in order.
type RangeLog = Mutex<Vec<(String, Option<String>)>>;

/// The `ETag` of [`Served::StallsOnce`] data.
const ETAG: &str = "\"v1\"";

/// The running server; it stops when dropped.
pub struct WebServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    ranges: Arc<RangeLog>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl WebServer {
    /// Serves `routes` on a free loopback port.
    pub async fn start(routes: Vec<(&str, Served)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<HashMap<String, Served>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, served)| (path.to_owned(), served))
                .collect(),
        );
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let (counted, noted) = (hits.clone(), ranges.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (routes, hits, ranges) = (routes.clone(), counted.clone(), noted.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &routes, &hits, &ranges).await;
                });
            }
        });
        Self {
            port,
            hits,
            ranges,
            accept,
        }
    }

    /// The `Range` header of every request for `path`, in order (`None`: whole).
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.ranges
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, range)| range.clone())
            .collect()
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn answer(
    mut stream: TcpStream,
    routes: &HashMap<String, Served>,
    hits: &Mutex<HashMap<String, usize>>,
    ranges: &RangeLog,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let request = String::from_utf8_lossy(&head);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let hit = {
        let mut hits = hits.lock().unwrap();
        let count = hits.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    let range = header(&request, "range");
    ranges.lock().unwrap().push((path.clone(), range.clone()));
    if let Some(Served::StallsOnce {
        data,
        stall_at,
        changed,
    }) = routes.get(&path)
    {
        let from = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|_| !changed && header(&request, "if-range").as_deref() == Some(ETAG));
        return match from {
            Some(from) => send_rest(&mut stream, data, from).await,
            None if hit == 1 => send_whole(&mut stream, data, Some(*stall_at)).await,
            None => send_whole(&mut stream, data, None).await,
        };
    }
    let mut pause = None;
    let (status, extra, body): (u16, String, &[u8]) = match routes.get(&path) {
        Some(Served::Bytes(bytes)) => (200, String::new(), bytes),
        Some(Served::Slowly(bytes, gap)) => {
            pause = Some(*gap);
            (200, String::new(), bytes)
        }
        Some(Served::Redirect(to)) => (302, format!("Location: {to}\r\n"), b""),
        Some(Served::Status(code)) => (*code, String::new(), b""),
        Some(Served::StallsOnce { .. }) | None => (404, String::new(), b""),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(64 * 1024) {
        stream.write_all(chunk).await?;
        if let Some(gap) = pause {
            tokio::time::sleep(gap).await;
        }
    }
    stream.shutdown().await
}

/// The value of header `name` (lowercase) in a request head.
fn header(request: &str, name: &str) -> Option<String> {
    request.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// 200 with `data` and its `ETag`, stalling for good after `stall_at` bytes when given.
async fn send_whole(
    stream: &mut TcpStream,
    data: &[u8],
    stall_at: Option<usize>,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {ETAG}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let sent = stall_at.unwrap_or(data.len()).min(data.len());
    stream.write_all(&data[..sent]).await?;
    if sent < data.len() {
        std::future::pending::<()>().await;
    }
    stream.shutdown().await
}

/// 206 with `data` from byte `from` on.
async fn send_rest(stream: &mut TcpStream, data: &[u8], from: usize) -> std::io::Result<()> {
    if from >= data.len() {
        let head = format!(
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            data.len()
        );
        stream.write_all(head.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nETag: {ETAG}\r\nConnection: close\r\n\r\n",
        data.len() - from,
        data.len() - 1,
        data.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&data[from..]).await?;
    stream.shutdown().await
}
