//! # bitsage-agent
//!
//! The BitSage worker agent as a library, so that the `bitsage-agent` binary, the
//! coordinator's in-process `dev` mode and tests all run the same code:
//!
//! - [`agent`]: [`Agent`] joins a coordinator (register, heartbeat) and works for it (lease →
//!   prove → complete) until shut down, surviving coordinator restarts; [`AgentHandle`]
//!   exposes its counters.
//! - [`key`]: the node's ed25519 key in a `0600` file ([`NodeKey`]).
//! - [`receipt_check`]: offline verification of a receipt (and of the proof it names).
//! - [`hardware`]: the hardware report an agent registers with.
//! - [`wallet`]: proving the node's wallet (SNIP-12 signature of the wallet account).
//! - [`config_file`]: `agent.yaml`, the configuration file, and how flags override it.
//! - [`enrolment`]: the enrolment token tying a node to its operator's organisation.
//!
//! The service definitions that run the agent (`bitsage-agent service`) come from
//! [`bitsage_http::onboarding::ServiceSpec`], the same source as the operator console's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bitsage_agent::{Agent, AgentConfig, NodeKey};
//! use bitsage_core::WalletAddress;
//!
//! let wallet = WalletAddress::parse("0x1234")?;
//! let config = AgentConfig::new("http://127.0.0.1:8080", wallet, NodeKey::generate());
//! let gpu = bitsage_gpu::LocalGpu::detect().await.source();
//! let agent = Agent::new(config, Arc::new(bitsage_prover::StwoProver::new()), gpu)?;
//! let (stop, shutdown) = tokio::sync::watch::channel(false);
//! let (handle, task) = agent.spawn(shutdown);
//! // ... later:
//! println!("{:?}", handle.snapshot());
//! stop.send_replace(true);
//! let report = task.await??;
//! # let _ = report; Ok(()) }
//! ```

pub mod agent;
pub mod backoff;
pub mod config_file;
pub mod enrolment;
pub mod hardware;
pub mod key;
pub mod receipt_check;
pub mod stats;
pub mod wallet;

pub use agent::{
    Agent, AgentConfig, AgentError, AgentReport, KeySource, AGENT_VERSION, SHUTDOWN_REASON,
};
pub use config_file::{AgentFile, ConfigError, RunSettings};
pub use enrolment::EnrolmentToken;
pub use key::{default_key_path, KeyError, NodeKey};
pub use stats::{AgentHandle, AgentSnapshot, AgentStats};
pub use wallet::WalletSigner;
