//! The server: admission (signature, timestamp, nonce, rate limit, allowed actions), dispatch, HTTP.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kmskit_core::{Caller, Clock, ErrorCode, KeyProvider, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actions;
use crate::auth::{AccessKey, NonceCache, NonceOutcome, RateLimiter};
use crate::wire::{self, ApiError, Format, HttpRequest};

/// The default allowed clock skew (spec §2: ±15 minutes).
pub const DEFAULT_MAX_SKEW_SECS: u64 = 15 * 60;
/// The default cap on a request body.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;
/// The default number of nonces remembered.
pub const DEFAULT_NONCE_CAPACITY: usize = 20_000_000;
/// How long graceful shutdown waits for in-flight requests.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A finished HTTP answer, transport-independent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The content type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// The request id (also in the body and the `x-acs-request-id` header).
    pub request_id: String,
    /// The error code, when the answer is an error.
    pub code: Option<String>,
}

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The TCP peer address.
    pub addr: IpAddr,
    /// Whether the connection is TLS.
    pub secure: bool,
}

/// Builds a [`Server`].
pub struct ServerBuilder {
    provider: Option<Arc<dyn KeyProvider>>,
    keys: Vec<AccessKey>,
    host_id: String,
    max_skew_secs: u64,
    max_body: usize,
    nonce_capacity: usize,
    rate_limit: Option<(f64, f64)>,
    proxy_header: Option<(String, Vec<IpAddr>)>,
    clock: Arc<dyn Clock>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown_grace: Duration,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("provider", &self.provider)
            .field("keys", &self.keys)
            .field("host_id", &self.host_id)
            .field("max_skew_secs", &self.max_skew_secs)
            .field("max_body", &self.max_body)
            .field("rate_limit", &self.rate_limit)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The provider every request is served by (required).
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Adds an access key.
    #[must_use]
    pub fn access_key(mut self, key: AccessKey) -> Self {
        self.keys.push(key);
        self
    }

    /// The `HostId` in error bodies (default `kms.kmskit.local`).
    #[must_use]
    pub fn host_id(mut self, host_id: impl Into<String>) -> Self {
        self.host_id = host_id.into();
        self
    }

    /// The allowed clock skew in seconds (default 900).
    #[must_use]
    pub fn max_skew_secs(mut self, secs: u64) -> Self {
        self.max_skew_secs = secs;
        self
    }

    /// The largest request body accepted (default 256 KiB).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How many signature nonces are remembered at most (default 20 million, about 1 GiB).
    #[must_use]
    pub fn nonce_capacity(mut self, n: usize) -> Self {
        self.nonce_capacity = n;
        self
    }

    /// A per-principal rate limit: `rate` requests a second, bursts of `burst` (`Throttling` beyond).
    #[must_use]
    pub fn rate_limit(mut self, rate: f64, burst: f64) -> Self {
        self.rate_limit = Some((rate, burst));
        self
    }

    /// Takes the client address from `header` (e.g. `x-forwarded-for`, its last entry) when the TCP peer
    /// is one of `trusted_proxies`.
    #[must_use]
    pub fn trusted_proxy(mut self, header: impl Into<String>, trusted_proxies: Vec<IpAddr>) -> Self {
        self.proxy_header = Some((header.into().to_ascii_lowercase(), trusted_proxies));
        self
    }

    /// The clock for timestamp checks (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves TLS with this rustls configuration.
    #[must_use]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// How long graceful shutdown waits for in-flight requests (default 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Builds the server.
    ///
    /// # Errors
    /// `MissingParameter` when no provider was given; `InvalidParameter` for a repeated access key id.
    pub fn build(self) -> Result<Server, kmskit_core::Error> {
        let provider = self
            .provider
            .ok_or(kmskit_core::Error::MissingParameter("provider"))?;
        let mut keys = HashMap::new();
        for k in self.keys {
            let id = k.id.clone();
            if keys.insert(id.clone(), k).is_some() {
                return Err(kmskit_core::Error::invalid(
                    "AccessKeyId",
                    format!("access key {id} is configured twice"),
                ));
            }
        }
        let mut prefix = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut prefix);
        Ok(Server {
            inner: Arc::new(Inner {
                provider,
                keys,
                host_id: self.host_id,
                max_skew_secs: self.max_skew_secs,
                max_body: self.max_body,
                nonces: NonceCache::new(self.max_skew_secs, self.nonce_capacity),
                limiter: self.rate_limit.map(|(r, b)| RateLimiter::new(r, b)),
                proxy_header: self.proxy_header,
                clock: self.clock,
                tls: self.tls,
                shutdown_grace: self.shutdown_grace,
                request_prefix: u64::from_be_bytes(prefix),
                request_counter: AtomicU64::new(0),
            }),
        })
    }
}

struct Inner {
    provider: Arc<dyn KeyProvider>,
    keys: HashMap<String, AccessKey>,
    host_id: String,
    max_skew_secs: u64,
    max_body: usize,
    nonces: NonceCache,
    limiter: Option<RateLimiter>,
    proxy_header: Option<(String, Vec<IpAddr>)>,
    clock: Arc<dyn Clock>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown_grace: Duration,
    request_prefix: u64,
    request_counter: AtomicU64,
}

/// The KMS server over one provider. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("provider", &self.inner.provider)
            .field("access_keys", &self.inner.keys.len())
            .field("host_id", &self.inner.host_id)
            .field("tls", &self.inner.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Which request a reply answered, for the access log.
struct Outcome {
    action: String,
    principal: String,
}

impl Server {
    /// A builder with the defaults: 15-minute skew, 256 KiB bodies, no rate limit, system clock.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            provider: None,
            keys: Vec::new(),
            host_id: "kms.kmskit.local".to_owned(),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            max_body: DEFAULT_MAX_BODY,
            nonce_capacity: DEFAULT_NONCE_CAPACITY,
            rate_limit: None,
            proxy_header: None,
            clock: Arc::new(SystemClock),
            tls: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    fn next_request_id(&self) -> String {
        let n = self.inner.request_counter.fetch_add(1, Ordering::Relaxed);
        let p = self.inner.request_prefix;
        // UUID-shaped: 8-4-4-4-12 hex digits, unique per process run.
        format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            (p >> 32) as u32,
            (p >> 16) as u16,
            p as u16,
            (n >> 48) as u16,
            n & 0xFFFF_FFFF_FFFF
        )
    }

    fn source_ip(&self, req: &HttpRequest<'_>, peer: IpAddr) -> IpAddr {
        if let Some((header, trusted)) = &self.inner.proxy_header {
            if trusted.contains(&peer) {
                if let Some(ip) = req
                    .header_values(header)
                    .last()
                    .and_then(|v| v.rsplit(',').next())
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
                {
                    return ip;
                }
            }
        }
        peer
    }

    /// Answers one request. This is the whole protocol without the transport; the HTTP front calls it,
    /// and so can tests and fuzzers.
    pub async fn handle(&self, req: &HttpRequest<'_>, peer: Peer) -> Reply {
        let started = Instant::now();
        let request_id = self.next_request_id();
        let mut format = Format::Json;
        let mut outcome = None;
        let result = self
            .handle_inner(req, peer, &request_id, &mut format, &mut outcome)
            .await;
        let reply = match result {
            Ok((action, value)) => Reply {
                status: 200,
                content_type: wire::content_type(format),
                body: wire::render_success(format, &action, &request_id, value),
                request_id,
                code: None,
            },
            Err(e) => Reply {
                status: e.status(),
                content_type: wire::content_type(format),
                body: wire::render_error(format, &request_id, &self.inner.host_id, &e),
                request_id,
                code: Some(e.code().to_owned()),
            },
        };
        let (action, principal) = outcome.as_ref().map_or(("-", "-"), |o: &Outcome| {
            (o.action.as_str(), o.principal.as_str())
        });
        tracing::info!(
            target: "kmskit_server::access",
            request_id = %reply.request_id,
            peer = %self.source_ip(req, peer.addr),
            method = req.method,
            action,
            principal,
            status = reply.status,
            code = reply.code.as_deref().unwrap_or("-"),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        reply
    }

    async fn handle_inner(
        &self,
        req: &HttpRequest<'_>,
        peer: Peer,
        request_id: &str,
        format: &mut Format,
        outcome: &mut Option<Outcome>,
    ) -> Result<(String, serde_json::Value), ApiError> {
        if req.path != "/" {
            return Err(ApiError::unknown_action());
        }
        let rpc = wire::parse_request(req)?;
        *format = rpc.format;
        let auth = &rpc.auth;
        // Until the signature is checked, the log names the claimed access key, not a principal.
        *outcome = Some(Outcome {
            action: rpc.action.clone(),
            principal: format!("unauthenticated:{}", auth.access_key_id()),
        });
        let key = self.inner.keys.get(auth.access_key_id()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidAccessKeyIdNotFound,
                "Specified access key is not found.",
            )
        })?;
        let now = self.inner.clock.now().unix();
        if now.abs_diff(auth.timestamp()) > self.inner.max_skew_secs {
            return Err(ApiError::new(
                ErrorCode::TimestampExpired,
                "Specified time stamp or date value is expired.",
            ));
        }
        auth.verify(&key.secret)?;
        if !key.enabled {
            return Err(ApiError::new(
                ErrorCode::ForbiddenAccessKey,
                "The AccessKey is disabled.",
            ));
        }
        *outcome = Some(Outcome {
            action: rpc.action.clone(),
            principal: key.principal.clone(),
        });
        match self
            .inner
            .nonces
            .check_and_insert(auth.access_key_id(), auth.nonce(), auth.timestamp(), now)
        {
            NonceOutcome::Fresh => {}
            NonceOutcome::Replayed => {
                return Err(ApiError::new(
                    ErrorCode::SignatureNonceUsed,
                    "Specified signature nonce was used already.",
                ));
            }
            NonceOutcome::Full => {
                return Err(ApiError::new(
                    ErrorCode::Throttling,
                    "Request was denied due to request throttling (nonce cache full).",
                ));
            }
        }
        if let Some(l) = &self.inner.limiter {
            if !l.allow(&key.principal) {
                return Err(ApiError::new(
                    ErrorCode::Throttling,
                    "Request was denied due to request throttling.",
                ));
            }
        }
        if !actions::is_supported(&rpc.action) {
            return Err(ApiError::unknown_action());
        }
        if !key.allows(&rpc.action) {
            return Err(ApiError::new(
                ErrorCode::NoPermission,
                format!(
                    "This operation for {} is forbidden by permission system.",
                    rpc.action
                ),
            ));
        }
        let caller = Caller::new(key.principal.clone())
            .with_source_ip(self.source_ip(req, peer.addr))
            .with_request_id(request_id)
            .with_secure_transport(peer.secure);
        let value = actions::dispatch(self.inner.provider.as_ref(), &caller, &rpc.action, &rpc.params).await;
        if let Err(e) = &value {
            if e.status() >= 500 {
                tracing::warn!(request_id, action = %rpc.action, error = %e, "provider failure");
            }
        }
        Ok((rpc.action, value?))
    }

    async fn serve_http(&self, req: hyper::Request<Incoming>, peer: Peer) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        if parts.uri.path() == "/healthz" && parts.method == hyper::Method::GET {
            return hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json;charset=utf-8")
                .body(Full::new(Bytes::from_static(b"{\"Status\":\"OK\"}")))
                .unwrap_or_default();
        }
        let body = match Limited::new(body, self.inner.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let too_big = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                let err = if too_big {
                    ApiError::invalid(
                        "Body",
                        format!("the request body exceeds {} bytes", self.inner.max_body),
                    )
                } else {
                    ApiError::unparsable("the request body could not be read")
                };
                let rid = self.next_request_id();
                tracing::info!(target: "kmskit_server::access", request_id = %rid, peer = %peer.addr,
                    method = parts.method.as_str(), action = "-", principal = "-", status = err.status(),
                    code = err.code(), micros = 0u64, "request");
                return to_response(Reply {
                    status: err.status(),
                    content_type: wire::content_type(Format::Json),
                    body: wire::render_error(Format::Json, &rid, &self.inner.host_id, &err),
                    request_id: rid,
                    code: Some(err.code().to_owned()),
                });
            }
        };
        let headers: Vec<(&str, &[u8])> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let req = HttpRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        to_response(self.handle(&req, peer).await)
    }

    /// Binds `addr` and starts serving in the background on the current tokio runtime.
    ///
    /// # Errors
    /// The bind failure.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.serve(listener))
    }

    /// Serves on an already bound listener in the background.
    pub fn serve(self, listener: TcpListener) -> RunningServer {
        let local_addr = listener.local_addr().ok();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(self.accept_loop(listener, rx));
        RunningServer {
            local_addr,
            shutdown: tx,
            task,
        }
    }

    async fn accept_loop(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let acceptor = self.inner.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        // Every connection task holds a sender; when all are gone, every connection has finished.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        loop {
            let (stream, addr) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let peer = Peer {
                addr: addr.ip(),
                secure: acceptor.is_some(),
            };
            let server = self.clone();
            let stop = stop.clone();
            let done = done_tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => server.serve_connection(stream, peer, stop).await,
                    Some(acc) => {
                        match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                            Ok(Ok(tls)) => server.serve_connection(tls, peer, stop).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
                drop(done);
            });
        }
        drop(listener);
        drop(done_tx);
        tracing::info!("shutting down: finishing in-flight requests");
        if tokio::time::timeout(self.inner.shutdown_grace, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("graceful shutdown timed out; dropping remaining connections");
        }
        tracing::info!("shut down");
    }

    async fn serve_connection<I>(&self, io: I, peer: Peer, mut stop: watch::Receiver<bool>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        let service = service_fn(move |req| {
            let server = server.clone();
            async move { Ok::<_, std::convert::Infallible>(server.serve_http(req, peer).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        if *stop.borrow_and_update() {
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection error");
                }
                return;
            }
            _ = stop.changed() => {}
        }
        // Shutdown: finish the request in flight (if any), then close.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

fn to_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .header("x-acs-request-id", reply.request_id)
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

/// A server serving in the background. Dropping it does not stop it; call [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// A handle that triggers shutdown from elsewhere (for example a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Waits until the server has stopped (after a [`ShutdownHandle::shutdown`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Triggers a graceful shutdown of a [`RunningServer`].
#[derive(Clone, Debug)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmskit_memory::MemoryKmsExt;

    fn server(proxy: Option<(&str, Vec<IpAddr>)>) -> Server {
        let provider: Arc<dyn KeyProvider> = Arc::new(kmskit_memory::MemoryKms::new_memory());
        let mut b = Server::builder().provider(provider);
        if let Some((h, t)) = proxy {
            b = b.trusted_proxy(h, t);
        }
        b.build().unwrap()
    }

    fn req<'a>(headers: &'a [(&'a str, &'a [u8])]) -> HttpRequest<'a> {
        HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"",
        }
    }

    #[test]
    fn source_ip_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let h: &[(&str, &[u8])] = &[("x-forwarded-for", b"198.51.100.1, 192.0.2.7")];
        // No proxy configured: the header is ignored.
        assert_eq!(server(None).source_ip(&req(h), proxy), proxy);
        let s = server(Some(("X-Forwarded-For", vec![proxy])));
        // From the trusted proxy: its last entry (the address the proxy saw).
        assert_eq!(s.source_ip(&req(h), proxy), client);
        // From anyone else: the peer.
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(s.source_ip(&req(h), other), other);
        // Garbage in the header: the peer.
        let bad: &[(&str, &[u8])] = &[("x-forwarded-for", b"not-an-ip")];
        assert_eq!(s.source_ip(&req(bad), proxy), proxy);
    }

    #[test]
    fn request_ids_are_unique_and_uuid_shaped() {
        let s = server(None);
        let a = s.next_request_id();
        let b = s.next_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn builder_refuses_duplicate_keys_and_no_provider() {
        use crate::sign::AccessKeySecret;
        assert!(Server::builder().build().is_err());
        let provider: Arc<dyn KeyProvider> = Arc::new(kmskit_memory::MemoryKms::new_memory());
        let err = Server::builder()
            .provider(provider)
            .access_key(AccessKey::new("a", AccessKeySecret::new("x"), "p"))
            .access_key(AccessKey::new("a", AccessKeySecret::new("y"), "q"))
            .build()
            .unwrap_err();
        assert_eq!(err.code().as_str(), "InvalidParameter");
    }
}
