//! Starknet wallet (contract) addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A Starknet contract address: a field element below 2^251, never zero.
///
/// Parsed from `0x`-prefixed hex (1 to 64 digits, any case) and always displayed normalised as
/// `0x` followed by 64 lowercase hex digits, so two spellings of one address compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalletAddress([u8; 32]);

impl WalletAddress {
    /// Parses and validates an address.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::invalid("wallet address", reason.to_string());
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| invalid("must start with 0x"))?;
        if hex.is_empty() {
            return Err(invalid("no hex digits after 0x"));
        }
        if hex.len() > 64 {
            return Err(invalid("more than 64 hex digits"));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("contains a character that is not a hex digit"));
        }
        let padded = format!("{hex:0>64}");
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16)
                .map_err(|_| invalid("contains a character that is not a hex digit"))?;
        }
        Self::from_bytes(bytes)
    }

    /// Validates a big-endian 32-byte value as an address.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, Error> {
        // 2^251 = 0x08 followed by 31 zero bytes: the value is below it iff the top byte < 0x08.
        if bytes[0] >= 0x08 {
            return Err(Error::invalid(
                "wallet address",
                "not below 2^251 (outside the Starknet address range)",
            ));
        }
        if bytes.iter().all(|b| *b == 0) {
            return Err(Error::invalid(
                "wallet address",
                "the zero address is not a wallet",
            ));
        }
        Ok(Self(bytes))
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletAddress({self})")
    }
}

impl FromStr for WalletAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl Serialize for WalletAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WalletAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_padding() {
        let a = WalletAddress::parse("0xABC").unwrap();
        let b = WalletAddress::parse(
            "0x0000000000000000000000000000000000000000000000000000000000000abc",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_string(),
            "0x0000000000000000000000000000000000000000000000000000000000000abc"
        );
    }

    #[test]
    fn rejects_out_of_range_and_malformed() {
        for bad in [
            "",
            "abc",
            "0x",
            "0xg1",
            "0x0",
            "0x800000000000000000000000000000000000000000000000000000000000000",
            "0x00000000000000000000000000000000000000000000000000000000000000001",
            " 0x1",
        ] {
            assert!(WalletAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        // 2^251 - 1 is the largest accepted value.
        assert!(WalletAddress::parse(
            "0x7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        )
        .is_ok());
    }

    #[test]
    fn serde_round_trip_and_rejects_bad() {
        let a = WalletAddress::parse("0x1234").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<WalletAddress>(&json).unwrap(), a);
        assert!(serde_json::from_str::<WalletAddress>("\"0xzz\"").is_err());
    }
}
