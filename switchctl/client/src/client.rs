//! A minimal HTTP/1.1 client for switchd's Unix socket.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The daemon refused the request: status and its message.
    #[error("Error response from daemon: {1}")]
    Daemon(u16, String),
    /// The answer was not what the API promises.
    #[error("{0}")]
    Protocol(String),
}

/// A client bound to one socket.
pub struct Client {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// A client for the socket at `socket`.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the client's runtime cannot start (no descriptors left).
    pub fn new(socket: &Path) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Connect(format!("cannot start the client: {e}")))?;
        Ok(Client {
            socket: socket.to_path_buf(),
            rt,
        })
    }

    /// Sends one request; returns the body of a 2xx answer.
    pub fn call<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<Bytes, ClientError> {
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Protocol(e.to_string()))?),
            None => Bytes::new(),
        };
        self.rt.block_on(self.send(method, path, bytes))
    }

    /// Sends a request and decodes a JSON answer.
    pub fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path, body)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("unexpected answer from switchd: {e}")))
    }

    /// A GET decoding JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json::<(), T>(Method::GET, path, None)
    }

    /// A GET whose answer streams: `each` gets the body's bytes as they arrive, until the
    /// stream ends or `each` returns false.
    pub fn stream(&self, path: &str, mut each: impl FnMut(&[u8]) -> bool) -> Result<(), ClientError> {
        self.rt.block_on(async {
            let resp = self.request(Method::GET, path, Bytes::new()).await?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            if !(200..300).contains(&status) {
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| ClientError::Protocol(format!("reading switchd's answer failed: {e}")))?
                    .to_bytes();
                return Err(daemon_error(status, &bytes));
            }
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ClientError::Protocol(format!("the stream from switchd broke: {e}")))?;
                if let Some(data) = frame.data_ref() {
                    if !each(data) {
                        break;
                    }
                }
            }
            Ok(())
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            ClientError::Connect(format!(
                "Cannot connect to switchd at {}: {e}. Is switchd running (and are you root)?",
                self.socket.display()
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Connect(format!("HTTP handshake with switchd failed: {e}")))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "switchd")
            .header("Content-Type", "application/json")
            .body(Full::new(body))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(format!("request to switchd failed: {e}")))
    }

    async fn send(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, ClientError> {
        let resp = self.request(method, path, body).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("reading switchd's answer failed: {e}")))?
            .to_bytes();
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(daemon_error(status, &bytes))
    }
}

/// The daemon's refusal: its message, or the body as text.
fn daemon_error(status: u16, bytes: &[u8]) -> ClientError {
    let msg = serde_json::from_slice::<switch_api::ErrorBody>(bytes)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned());
    ClientError::Daemon(status, msg)
}

/// A request path of percent-encoded segments.
pub fn path(parts: &[&str]) -> String {
    let mut p = String::new();
    for s in parts {
        p.push('/');
        p.push_str(&encode(s));
    }
    p
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
