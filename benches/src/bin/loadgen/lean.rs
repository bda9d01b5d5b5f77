//! The load generator's HTTP client for pre-serialised requests: either a lean hyper client
//! (`hyper_util`'s legacy `Client`, HTTP/1.1, keep-alive pool, `TCP_NODELAY`) or reqwest
//! (the agent's stack: the same hyper pool underneath plus reqwest's request building, header
//! map and body handling), so what the client costs can be measured beside what it sends.
//!
//! Bodies are sent as they are (already signed and serialised elsewhere); answers come back
//! as status + bytes, parsed by the caller.

use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// Which HTTP client the load is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClientKind {
    /// `hyper_util::client::legacy::Client` over HTTP/1.1 with a keep-alive pool.
    Hyper,
    /// `reqwest::Client` (what the agent's `CoordinatorClient` is built on).
    Reqwest,
}

/// The lean client and its settings.
#[derive(Debug)]
pub(crate) struct LeanHyper {
    /// The pooled client.
    client: Client<HttpConnector, Full<Bytes>>,
    /// Headers added to every request.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Per-request timeout.
    timeout: Duration,
}

/// An HTTP client sending prepared requests (cheap to clone: one shared pool).
#[derive(Debug, Clone)]
pub(crate) enum HttpClient {
    /// The lean one.
    Hyper(std::sync::Arc<LeanHyper>),
    /// reqwest (its timeout and default headers are in the client).
    Reqwest(reqwest::Client),
}

/// A request that did not get an answer (connect, I/O, timeout).
#[derive(Debug)]
pub(crate) struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The chain of an error's sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl HttpClient {
    /// A client of `kind` keeping up to `pool` idle connections per host, sending `headers`
    /// with every request, giving up on a request after `timeout`.
    pub(crate) fn new(
        kind: ClientKind,
        pool: usize,
        timeout: Duration,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Ok(match kind {
            ClientKind::Hyper => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(Duration::from_secs(10)));
                let client = Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(pool.max(1))
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector);
                let headers = headers
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            HeaderName::from_bytes(k.as_bytes()).context("header name")?,
                            HeaderValue::from_str(v).context("header value")?,
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?;
                HttpClient::Hyper(std::sync::Arc::new(LeanHyper {
                    client,
                    headers,
                    timeout,
                }))
            }
            ClientKind::Reqwest => {
                let mut map = reqwest::header::HeaderMap::new();
                for (k, v) in headers {
                    map.insert(
                        reqwest::header::HeaderName::from_bytes(k.as_bytes())
                            .context("header name")?,
                        v.parse().context("header value")?,
                    );
                }
                HttpClient::Reqwest(
                    reqwest::Client::builder()
                        .default_headers(map)
                        .pool_max_idle_per_host(pool.max(1))
                        .tcp_nodelay(true)
                        .connect_timeout(Duration::from_secs(10))
                        .timeout(timeout)
                        .build()
                        .context("building the reqwest client")?,
                )
            }
        })
    }

    /// `POST uri` with a JSON `body`; the answer's status and body.
    pub(crate) async fn post_json(
        &self,
        uri: &Uri,
        body: Bytes,
    ) -> Result<(u16, Bytes), TransportError> {
        self.send(Method::POST, uri, Some(body)).await
    }

    /// `GET uri`; the answer's status and body.
    pub(crate) async fn get(&self, uri: &Uri) -> Result<(u16, Bytes), TransportError> {
        self.send(Method::GET, uri, None).await
    }

    async fn send(
        &self,
        method: Method,
        uri: &Uri,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), TransportError> {
        match self {
            HttpClient::Hyper(lean) => {
                let LeanHyper {
                    client,
                    headers,
                    timeout,
                } = lean.as_ref();
                let mut req = Request::builder().method(method).uri(uri.clone());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                if body.is_some() {
                    req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                let req = req
                    .body(Full::new(body.unwrap_or_default()))
                    .map_err(|e| TransportError(format!("building the request: {e}")))?;
                let exchange = async {
                    let resp = client
                        .request(req)
                        .await
                        .map_err(|e| TransportError(chain(&e)))?;
                    let status = resp.status().as_u16();
                    let bytes = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| TransportError(chain(&e)))?
                        .to_bytes();
                    Ok((status, bytes))
                };
                match tokio::time::timeout(*timeout, exchange).await {
                    Ok(r) => r,
                    Err(_) => Err(TransportError(format!("timed out after {timeout:?}"))),
                }
            }
            HttpClient::Reqwest(client) => {
                let url = uri.to_string();
                let mut req = client.request(
                    reqwest::Method::from_bytes(method.as_str().as_bytes())
                        .map_err(|e| TransportError(e.to_string()))?,
                    url,
                );
                if let Some(b) = body {
                    req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
                    req = req.body(b);
                }
                let resp = req.send().await.map_err(|e| TransportError(chain(&e)))?;
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.map_err(|e| TransportError(chain(&e)))?;
                Ok((status, bytes))
            }
        }
    }
}
