//! OpenAPI schemas (feature `openapi`) of the types whose JSON form is not what their Rust
//! shape suggests: exact amounts as decimal strings, addresses, keys, hashes and signatures as
//! hex, validated ids, UUID ids, timestamps. Each is a named string schema; the derived schemas
//! of the structs holding them refer to it. The HTTP crate builds the API's document from these
//! (`bitsage_http::openapi`).
//!
//! [`crate::Timestamp`] is an alias of chrono's `DateTime<Utc>`, which the derive cannot see
//! through: its fields name [`TimestampSchema`] as their `value_type`.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::crypto::{Hash32, PublicKey, SignatureBytes};
use crate::ids::{EntryId, JobId, LeaseId, NodeId, OrgId, ReceiptId, UserId};
use crate::wallet::FeltHex;
use crate::{TokenAmount, WalletAddress};

/// A string schema with a description, an optional pattern or format, and one example.
fn string(
    description: &str,
    pattern: Option<&str>,
    format: Option<KnownFormat>,
    example: &str,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
        .format(format.map(SchemaFormat::KnownFormat))
        .examples([json!(example)])
        .into()
}

/// Implements [`PartialSchema`] and [`ToSchema`] (named `$name`) for a type serialised as a
/// string.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_schema!(
    TokenAmount,
    "TokenAmount",
    string(
        "An exact token amount in base units (u256; 18 decimals for SAGE), as a decimal string \
         without sign, separators or leading zeros.",
        Some("^(0|[1-9][0-9]*)$"),
        None,
        "1234560000000000000000",
    )
);

string_schema!(
    WalletAddress,
    "WalletAddress",
    string(
        "A Starknet contract address below 2^251, never zero: `0x` and 1 to 64 hex digits in \
         requests; answers always carry the normalised form, `0x` and 64 lowercase hex digits.",
        Some("^0[xX][0-9a-fA-F]{1,64}$"),
        None,
        "0x00000000000000000000000000000000000000000000000000000000001234ab",
    )
);

string_schema!(
    NodeId,
    "NodeId",
    string(
        "A node's id: 1 to 64 characters of `A-Z a-z 0-9 . _ -` (not `.` or `..`).",
        Some("^[A-Za-z0-9._-]{1,64}$"),
        None,
        "gpu-node-1",
    )
);

string_schema!(
    Hash32,
    "Hash32",
    string(
        "A 32-byte digest (BLAKE2s-256) as 64 hex digits; answers are lowercase without prefix.",
        Some("^(0x)?[0-9a-fA-F]{64}$"),
        None,
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    )
);

string_schema!(
    SignatureBytes,
    "Signature",
    string(
        "An ed25519 signature (64 bytes) as 128 hex digits; answers are lowercase without prefix.",
        Some("^(0x)?[0-9a-fA-F]{128}$"),
        None,
        "2b8f8e4ad1c9c3a2b6e4f1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b02b8f8e4ad1c9c3a2b6e4f1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0",
    )
);

string_schema!(
    PublicKey,
    "PublicKey",
    string(
        "An ed25519 public key (32 compressed bytes, a valid curve point) as 64 hex digits; \
         answers are lowercase without prefix.",
        Some("^(0x)?[0-9a-fA-F]{64}$"),
        None,
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    )
);

string_schema!(
    FeltHex,
    "FeltHex",
    string(
        "A Starknet field element as `0x` and 1 to 64 hex digits (one element of an account \
         signature).",
        Some("^0[xX][0-9a-fA-F]{1,64}$"),
        None,
        "0x4b2a1c",
    )
);

/// The schema of a [`crate::Timestamp`] (named `Timestamp`): an RFC 3339 date-time in UTC,
/// microsecond precision. Fields of that type say `#[schema(value_type = TimestampSchema)]`
/// (`Option<TimestampSchema>` for optional ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampSchema;

string_schema!(
    TimestampSchema,
    "Timestamp",
    string(
        "A point in time, RFC 3339 in UTC (microsecond precision).",
        None,
        Some(KnownFormat::DateTime),
        "2026-11-30T12:34:56.123456Z",
    )
);

/// A UUID id's schema.
fn uuid(description: &str) -> RefOr<Schema> {
    string(
        description,
        None,
        Some(KnownFormat::Uuid),
        "3f6c1e0a-8d2b-4c5e-9a7f-1b2c3d4e5f60",
    )
}

string_schema!(JobId, "JobId", uuid("A job's id (UUID)."));
string_schema!(ReceiptId, "ReceiptId", uuid("A receipt's id (UUID)."));
string_schema!(
    LeaseId,
    "LeaseId",
    uuid("A lease's id (UUID): proves which lease a completion belongs to.")
);
string_schema!(
    EntryId,
    "EntryId",
    uuid("An earnings-ledger entry's id (UUID).")
);
string_schema!(UserId, "UserId", uuid("A user account's id (UUID)."));
string_schema!(OrgId, "OrgId", uuid("An organisation's id (UUID)."));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example is a value the type's own deserialiser accepts.
    #[test]
    fn examples_parse() {
        fn example<T: PartialSchema>() -> serde_json::Value {
            let RefOr::T(Schema::Object(o)) = T::schema() else {
                panic!("not an object schema")
            };
            o.examples.first().cloned().expect("an example")
        }
        fn check<T: PartialSchema + serde::de::DeserializeOwned>() {
            let v = example::<T>();
            serde_json::from_value::<T>(v.clone())
                .unwrap_or_else(|e| panic!("example {v} does not parse: {e}"));
        }
        check::<TokenAmount>();
        check::<WalletAddress>();
        check::<NodeId>();
        check::<Hash32>();
        check::<SignatureBytes>();
        check::<PublicKey>();
        check::<FeltHex>();
        check::<JobId>();
        check::<ReceiptId>();
        check::<LeaseId>();
        check::<EntryId>();
        check::<UserId>();
        check::<OrgId>();
    }
}
