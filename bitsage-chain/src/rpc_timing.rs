//! [`TimedTransport`]: the JSON-RPC transport every Starknet client of this crate uses (the
//! chain source, the wallet verifier, the escrow reader, the settler account, the indexer's
//! event source). It times each call — answered or failed — into the process-wide
//! [`bitsage_core::telemetry::chain_rpc`] timings, by JSON-RPC method (`starknet_call`,
//! `starknet_getEvents`, ...; a batch is `batch`), which the coordinator's `/metrics` exports
//! as `bitsage_chain_rpc_duration_seconds{method}`. The method names come from the
//! specification's closed list, so the label's cardinality is bounded.

use std::time::Instant;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use starknet::providers::jsonrpc::{
    HttpTransport, JsonRpcClient, JsonRpcMethod, JsonRpcResponse, JsonRpcTransport,
};
use starknet::providers::ProviderRequestData;

/// A JSON-RPC client over a timed HTTP transport.
pub type TimedClient = JsonRpcClient<TimedTransport>;

/// A transport that times every call of the transport it wraps (see the
/// [module documentation](self)); errors and answers pass through unchanged.
#[derive(Debug, Clone)]
pub struct TimedTransport<T = HttpTransport> {
    inner: T,
}

impl<T> TimedTransport<T> {
    /// Times the calls of `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

/// A client over `transport`, timed.
pub fn timed_client(transport: HttpTransport) -> TimedClient {
    JsonRpcClient::new(TimedTransport::new(transport))
}

/// The specification's name of `method` (e.g. `starknet_call`).
fn method_name(method: JsonRpcMethod) -> String {
    match serde_json::to_value(method) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_string(),
    }
}

#[async_trait]
impl<T: JsonRpcTransport + Send + Sync> JsonRpcTransport for TimedTransport<T> {
    type Error = T::Error;

    async fn send_request<P, R>(
        &self,
        method: JsonRpcMethod,
        params: P,
    ) -> Result<JsonRpcResponse<R>, Self::Error>
    where
        P: Serialize + Send + Sync,
        R: DeserializeOwned + Send,
    {
        let started = Instant::now();
        let answer = self.inner.send_request(method, params).await;
        bitsage_core::telemetry::chain_rpc().observe(&method_name(method), started.elapsed());
        answer
    }

    async fn send_requests<R>(
        &self,
        requests: R,
    ) -> Result<Vec<JsonRpcResponse<serde_json::Value>>, Self::Error>
    where
        R: AsRef<[ProviderRequestData]> + Send + Sync,
    {
        let started = Instant::now();
        let answer = self.inner.send_requests(requests).await;
        bitsage_core::telemetry::chain_rpc().observe("batch", started.elapsed());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_is_timed_even_a_failed_one() {
        use starknet::providers::Provider as _;
        // Nothing listens on port 1: the call fails at once, and is still timed.
        let url = url::Url::parse("http://127.0.0.1:1/rpc").expect("url");
        let client = timed_client(HttpTransport::new(url));
        let count = || {
            bitsage_core::telemetry::chain_rpc()
                .snapshot()
                .into_iter()
                .find(|(m, _)| m == "starknet_blockNumber")
                .map_or(0, |(_, h)| h.count)
        };
        let before = count();
        assert!(client.block_number().await.is_err());
        assert_eq!(count(), before + 1);
    }

    #[test]
    fn methods_are_named_as_the_specification_does() {
        assert_eq!(method_name(JsonRpcMethod::Call), "starknet_call");
        assert_eq!(method_name(JsonRpcMethod::GetEvents), "starknet_getEvents");
    }
}
