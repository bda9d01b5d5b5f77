//! Hashes, keys and signatures as they appear in records and on the wire (hex strings).

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

fn decode_fixed<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], Error> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 2 * N {
        return Err(Error::invalid(
            what,
            format!("expected {} hex digits", 2 * N),
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::invalid(what, "not hex"))?;
    Ok(out)
}

macro_rules! hex_bytes {
    ($(#[$doc:meta])* $name:ident, $n:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Parses lowercase or uppercase hex (optionally `0x`-prefixed).
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                decode_fixed::<$n>($what, s).map(Self)
            }

            /// Lowercase hex, no prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_bytes!(
    /// A 32-byte digest (BLAKE2s-256 of proofs, hardware reports, ...).
    Hash32,
    32,
    "hash"
);
hex_bytes!(
    /// An ed25519 signature.
    SignatureBytes,
    64,
    "signature"
);

/// An ed25519 public key, validated as a curve point on construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From the 32 compressed bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::invalid("public key", "not a valid ed25519 key"))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        Self::from_bytes(&decode_fixed::<32>("public key", s)?)
    }

    /// The public half of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        Self(key.verifying_key())
    }

    /// The compressed bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// Verifies `sig` over `msg` (strict: rejects malleable and small-order signatures).
    pub fn verify(&self, msg: &[u8], sig: &SignatureBytes) -> Result<(), Error> {
        let sig = Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| Error::Signature("ed25519 signature does not verify".into()))
    }
}

/// Signs `msg` with `key`.
pub fn sign(key: &SigningKey, msg: &[u8]) -> SignatureBytes {
    SignatureBytes(key.sign(msg).to_bytes())
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Length-prefixed canonical encoding used for signed records: every field is written as a
/// big-endian u32 length followed by its bytes, so no two field sequences share an encoding.
#[derive(Debug, Default)]
pub struct CanonicalWriter(Vec<u8>);

impl CanonicalWriter {
    /// Starts with a domain-separation tag.
    pub fn new(domain: &str) -> Self {
        let mut w = Self(Vec::with_capacity(256));
        w.field(domain.as_bytes());
        w
    }

    /// Appends one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        // Fields are small records; a length over u32 cannot occur for them.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
