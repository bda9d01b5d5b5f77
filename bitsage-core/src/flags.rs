//! Feature flags from the operator PRD: set in configuration, stored so every coordinator of
//! a deployment agrees, read and changed by an admin at runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::Error;

/// A feature flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Private pools (organisations' own job queues); read by the console.
    EnablePrivatePools,
    /// Show reward estimates (APY × stake, labelled as estimates) in earnings views.
    ShowRewardEstimates,
    /// Serve the aggregated network overview to anonymous visitors.
    AllowAnonymousOverview,
    /// Let the console re-check receipt signatures in the browser (WebCrypto Ed25519).
    EnableSignatureVerify,
}

impl Flag {
    /// Every flag.
    pub const ALL: [Flag; 4] = [
        Flag::EnablePrivatePools,
        Flag::ShowRewardEstimates,
        Flag::AllowAnonymousOverview,
        Flag::EnableSignatureVerify,
    ];

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Flag::EnablePrivatePools => "enable_private_pools",
            Flag::ShowRewardEstimates => "show_reward_estimates",
            Flag::AllowAnonymousOverview => "allow_anonymous_overview",
            Flag::EnableSignatureVerify => "enable_signature_verify",
        }
    }

    /// Parses [`Flag::as_str`].
    pub fn parse(s: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "flag",
                    format!(
                        "unknown flag {s:?}; one of enable_private_pools, show_reward_estimates, \
                         allow_anonymous_overview, enable_signature_verify"
                    ),
                )
            })
    }

    /// Its value when neither configuration nor an admin set it.
    pub fn default_value(&self) -> bool {
        match self {
            Flag::EnablePrivatePools => false,
            Flag::ShowRewardEstimates => true,
            Flag::AllowAnonymousOverview => true,
            Flag::EnableSignatureVerify => true,
        }
    }
}

/// A flag's value and who set it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagValue {
    /// The flag.
    pub flag: Flag,
    /// On or off.
    pub enabled: bool,
    /// Who set it (`configuration` until an admin changes it).
    pub set_by: String,
    /// When (`null`: from configuration).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub set_at: Option<Timestamp>,
}

/// Every flag's value: stored values over `configured` over the defaults.
pub fn resolve(
    configured: &BTreeMap<Flag, bool>,
    stored: &BTreeMap<Flag, FlagValue>,
) -> Vec<FlagValue> {
    Flag::ALL
        .into_iter()
        .map(|f| {
            stored.get(&f).cloned().unwrap_or_else(|| FlagValue {
                flag: f,
                enabled: configured.get(&f).copied().unwrap_or(f.default_value()),
                set_by: "configuration".into(),
                set_at: None,
            })
        })
        .collect()
}
