//! A minimal signing client over one HTTP/1.1 keep-alive connection, for tests, benchmarks and
//! smoke checks against a kmskit-server (or any endpoint of the API). The full remote provider is
//! kmskit-remote's `AliyunKms`; this one only signs, sends and returns the JSON answer.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::sign::{self, AccessKeySecret};

/// Which signature a [`Client`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// V2: HMAC-SHA1, every parameter in the query (as the legacy SDK sends).
    V2,
    /// V3: ACS3-HMAC-SHA256, business parameters in the query (as the Tea SDK sends).
    V3,
}

/// An answer: HTTP status and the parsed JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (JSON; `Null` when it was not JSON).
    pub body: serde_json::Value,
}

impl Answer {
    /// The error `Code`, if the answer is an error.
    pub fn code(&self) -> Option<&str> {
        self.body.get("Code").and_then(|c| c.as_str())
    }

    /// A string field of the body.
    pub fn str(&self, field: &str) -> &str {
        self.body.get(field).and_then(|c| c.as_str()).unwrap_or("")
    }
}

/// A client error: the connection failed.
#[derive(Debug, thiserror::Error)]
#[error("kmskit-server client: {0}")]
pub struct ClientError(String);

/// A signing client on one connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    access_key_id: String,
    secret: AccessKeySecret,
    version: SignatureVersion,
    /// Added to the system time for `Timestamp` / `x-acs-date` (tests of the skew window).
    pub clock_offset_secs: i64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("access_key_id", &self.access_key_id)
            .field("secret", &self.secret)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` (plain HTTP).
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn connect(
        addr: SocketAddr,
        access_key_id: &str,
        secret: AccessKeySecret,
        version: SignatureVersion,
    ) -> Result<Self, ClientError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError(format!("connect {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
            access_key_id: access_key_id.to_owned(),
            secret,
            version,
            clock_offset_secs: 0,
        })
    }

    fn now(&self) -> String {
        let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).unix();
        sign::format_timestamp(now.saturating_add_signed(self.clock_offset_secs))
    }

    /// Signs `action` with `params` (fresh nonce) and returns the ready request.
    ///
    /// # Errors
    /// When the request cannot be built.
    pub fn build(
        &self,
        action: &str,
        params: &[(&str, &str)],
        nonce: &str,
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let date = self.now();
        let err = |e: hyper::http::Error| ClientError(e.to_string());
        match self.version {
            SignatureVersion::V2 => {
                sign::sign_v2(
                    "POST",
                    action,
                    &mut pairs,
                    &self.access_key_id,
                    &self.secret,
                    nonce,
                    &date,
                );
                let q = sign::encode_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                hyper::Request::post(format!("/?{q}"))
                    .header("host", &self.host)
                    .body(Full::new(Bytes::new()))
                    .map_err(err)
            }
            SignatureVersion::V3 => {
                let headers = sign::sign_v3(
                    "POST",
                    &self.host,
                    action,
                    &pairs,
                    b"",
                    &self.access_key_id,
                    &self.secret,
                    nonce,
                    &date,
                );
                let q = sign::encode_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let mut b = hyper::Request::post(format!("/?{q}"));
                for (k, v) in &headers {
                    b = b.header(k.as_str(), v.as_str());
                }
                b.body(Full::new(Bytes::new())).map_err(err)
            }
        }
    }

    /// Sends a request as built by [`Client::build`].
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn send(&mut self, req: hyper::Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        self.sender
            .ready()
            .await
            .map_err(|e| ClientError(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| ClientError(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        })
    }

    /// Signs and sends `action` with `params`.
    ///
    /// # Errors
    /// When the connection fails (API errors are answers).
    pub async fn call(&mut self, action: &str, params: &[(&str, &str)]) -> Result<Answer, ClientError> {
        let req = self.build(action, params, &sign::new_nonce())?;
        self.send(req).await
    }
}
