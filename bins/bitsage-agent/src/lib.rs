#![doc = include_str!("../README.md")]

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
