//! Identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::Error;

/// A node's identifier: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, chosen by the operator or
/// derived from the node key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Validates a node id.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > 64 {
            return Err(Error::invalid("node id", "must be 1 to 64 characters"));
        }
        if s == "." || s == ".." {
            return Err(Error::invalid(
                "node id",
                "\".\" and \"..\" are not node ids",
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::invalid(
                "node id",
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the hyphenated UUID form.
            pub fn parse(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| Error::invalid($what, "not a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A job's identifier.
    JobId,
    "job id"
);
uuid_id!(
    /// A receipt's identifier.
    ReceiptId,
    "receipt id"
);
uuid_id!(
    /// A lease's identifier: proves which lease a completion belongs to.
    LeaseId,
    "lease id"
);
uuid_id!(
    /// An earnings-ledger entry's identifier (its idempotency key).
    EntryId,
    "ledger entry id"
);
uuid_id!(
    /// An incident's identifier.
    IncidentId,
    "incident id"
);

uuid_id!(
    /// A user account's identifier.
    UserId,
    "user id"
);
uuid_id!(
    /// An organisation's identifier.
    OrgId,
    "organisation id"
);
