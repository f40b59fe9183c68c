//! A loopback HTTP server for web-download imports to fetch from: fixed bodies by path,
//! redirects, chosen statuses, 404 for anything else, and a count of requests per path.

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
}

/// The running server; it stops when dropped.
pub struct WebServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
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
        let counted = hits.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (routes, hits) = (routes.clone(), counted.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &routes, &hits).await;
                });
            }
        });
        Self { port, hits, accept }
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
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let mut pause = None;
    let (status, extra, body): (u16, String, &[u8]) = match routes.get(&path) {
        Some(Served::Bytes(bytes)) => (200, String::new(), bytes),
        Some(Served::Slowly(bytes, gap)) => {
            pause = Some(*gap);
            (200, String::new(), bytes)
        }
        Some(Served::Redirect(to)) => (302, format!("Location: {to}\r\n"), b""),
        Some(Served::Status(code)) => (*code, String::new(), b""),
        None => (404, String::new(), b""),
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
