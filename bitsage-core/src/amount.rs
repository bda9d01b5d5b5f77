//! Exact token amounts (u256 base units).

use std::fmt;
use std::str::FromStr;

use primitive_types::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Decimals of the SAGE token (ERC20, 18 decimals).
pub const SAGE_DECIMALS: u8 = 18;
/// The SAGE token's symbol.
pub const SAGE_SYMBOL: &str = "SAGE";

/// An exact token amount in base units (u256, as on chain).
///
/// Serialised as a decimal string of base units (`"1234560000000000000000"`): JSON numbers
/// cannot carry 256-bit integers exactly. [`TokenAmount::format_units`] renders it for people
/// (`1,234.56 SAGE`). Arithmetic is checked; nothing wraps or saturates silently.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(U256);

impl TokenAmount {
    /// Zero.
    pub const ZERO: TokenAmount = TokenAmount(U256::zero());

    /// From a u256.
    pub fn from_u256(v: U256) -> Self {
        Self(v)
    }

    /// From a u128 (e.g. a low limb).
    pub const fn from_u128(v: u128) -> Self {
        Self(U256([v as u64, (v >> 64) as u64, 0, 0]))
    }

    /// From the two 128-bit limbs of a Cairo `u256` (`low`, `high`).
    pub fn from_limbs(low: u128, high: u128) -> Self {
        Self((U256::from(high) << 128) | U256::from(low))
    }

    /// The two 128-bit limbs (`low`, `high`), as a Cairo `u256` encodes them.
    pub fn to_limbs(&self) -> (u128, u128) {
        let low = self.0.low_u128();
        let high = (self.0 >> 128).low_u128();
        (low, high)
    }

    /// The underlying u256.
    pub fn as_u256(&self) -> U256 {
        self.0
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Parses a decimal string of base units: digits only, no sign, no separators.
    pub fn from_base_units(s: &str) -> Result<Self, Error> {
        let invalid = |r: &str| Error::invalid("token amount", r.to_string());
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("base units must be a decimal string of digits"));
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(invalid("leading zeros are not allowed"));
        }
        U256::from_dec_str(s)
            .map(Self)
            .map_err(|_| invalid("does not fit in 256 bits"))
    }

    /// Parses a human amount such as `1,234.56` or `0.5` with `decimals` fractional digits.
    /// Thousands separators are optional, but when present must group by three.
    pub fn parse_units(s: &str, decimals: u8) -> Result<Self, Error> {
        let invalid = |r: String| Error::invalid("token amount", r);
        let (int_part, frac_part) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int_part.is_empty() {
            return Err(invalid("missing integer part".into()));
        }
        if s.contains('.') && frac_part.is_empty() {
            return Err(invalid("missing digits after the decimal point".into()));
        }
        let int_digits: String = if int_part.contains(',') {
            let groups: Vec<&str> = int_part.split(',').collect();
            let first_ok = (1..=3).contains(&groups[0].len());
            let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
            if !first_ok || !rest_ok {
                return Err(invalid(
                    "thousands separators must group digits by three".into(),
                ));
            }
            groups.concat()
        } else {
            int_part.to_string()
        };
        if !int_digits.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid(format!("{s:?} is not a decimal number")));
        }
        if frac_part.len() > decimals as usize {
            return Err(invalid(format!("more than {decimals} fractional digits")));
        }
        let scale = U256::from(10u8)
            .checked_pow(U256::from(decimals))
            .ok_or_else(|| invalid("too many decimals".into()))?;
        let too_big = || invalid("does not fit in 256 bits".into());
        let int = U256::from_dec_str(&int_digits).map_err(|_| too_big())?;
        let frac = if frac_part.is_empty() {
            U256::zero()
        } else {
            let padded = format!("{frac_part:0<width$}", width = decimals as usize);
            U256::from_dec_str(&padded).map_err(|_| too_big())?
        };
        int.checked_mul(scale)
            .and_then(|v| v.checked_add(frac))
            .map(Self)
            .ok_or_else(too_big)
    }

    /// Renders with `decimals` fractional digits, thousands separators and no trailing zeros:
    /// `1,234.56`, `0.000000000000000001`, `1,000`.
    pub fn format_units(&self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let d = decimals as usize;
        let (int, frac) = if digits.len() > d {
            let (i, f) = digits.split_at(digits.len() - d);
            (i.to_string(), f.to_string())
        } else {
            ("0".to_string(), format!("{digits:0>d$}"))
        };
        let mut grouped = String::with_capacity(int.len() + int.len() / 3);
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            grouped
        } else {
            format!("{grouped}.{frac}")
        }
    }

    /// Renders as SAGE: `1,234.56 SAGE`.
    pub fn format_sage(&self) -> String {
        format!("{} {SAGE_SYMBOL}", self.format_units(SAGE_DECIMALS))
    }

    /// Checked addition.
    pub fn checked_add(self, other: Self) -> Result<Self, Error> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or(Error::Overflow("token amount addition"))
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: Self) -> Result<Self, Error> {
        self.0
            .checked_sub(other.0)
            .map(Self)
            .ok_or(Error::Overflow("token amount subtraction below zero"))
    }

    /// `self × bps / 10 000`, rounded down (a fee in basis points).
    pub fn mul_bps(self, bps: u16) -> Result<Self, Error> {
        self.0
            .checked_mul(U256::from(bps))
            .map(|v| Self(v / U256::from(10_000u32)))
            .ok_or(Error::Overflow("token amount fee"))
    }

    /// Exact sum of many amounts.
    pub fn checked_sum<I: IntoIterator<Item = TokenAmount>>(iter: I) -> Result<Self, Error> {
        iter.into_iter()
            .try_fold(Self::ZERO, |acc, v| acc.checked_add(v))
    }
}

impl fmt::Display for TokenAmount {
    /// Base units, decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenAmount({})", self.0)
    }
}

impl FromStr for TokenAmount {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_base_units(s)
    }
}

impl From<u64> for TokenAmount {
    fn from(v: u64) -> Self {
        Self(U256::from(v))
    }
}

impl Serialize for TokenAmount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_base_units(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_with_separators_and_symbol() {
        let a = TokenAmount::parse_units("1234.56", 18).unwrap();
        assert_eq!(a.to_string(), "1234560000000000000000");
        assert_eq!(a.format_sage(), "1,234.56 SAGE");
        assert_eq!(
            TokenAmount::from(1u64).format_units(18),
            "0.000000000000000001"
        );
        assert_eq!(TokenAmount::from(1_000_000u64).format_units(0), "1,000,000");
        assert_eq!(TokenAmount::ZERO.format_sage(), "0 SAGE");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "-1",
            "1.2.3",
            "1,23",
            "12,345,67",
            "1.",
            ".5",
            "1e18",
            "0x10",
            " 1",
        ] {
            assert!(TokenAmount::parse_units(bad, 18).is_err(), "{bad:?}");
        }
        assert!(TokenAmount::parse_units("0.1234", 3).is_err());
        for bad in ["", "01", "-1", "1.0", "1,000", &"9".repeat(79)] {
            assert!(TokenAmount::from_base_units(bad).is_err(), "{bad:?}");
        }
        // u256::MAX parses; one more does not.
        let max = U256::MAX.to_string();
        assert!(TokenAmount::from_base_units(&max).is_ok());
        assert!(TokenAmount::from_base_units(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936"
        )
        .is_err());
    }

    #[test]
    fn limbs_round_trip() {
        let a = TokenAmount::from_limbs(5, 7);
        assert_eq!(a.to_limbs(), (5, 7));
        assert!(a > TokenAmount::from_u128(u128::MAX));
    }

    #[test]
    fn arithmetic_is_checked() {
        let max = TokenAmount::from_u256(U256::MAX);
        assert!(max.checked_add(TokenAmount::from(1u64)).is_err());
        assert!(TokenAmount::ZERO
            .checked_sub(TokenAmount::from(1u64))
            .is_err());
        assert_eq!(
            TokenAmount::from(10_000u64).mul_bps(250).unwrap(),
            TokenAmount::from(250u64)
        );
    }

    fn any_amount() -> impl Strategy<Value = TokenAmount> {
        any::<[u64; 4]>().prop_map(|limbs| TokenAmount(U256(limbs)))
    }

    proptest! {
        #[test]
        fn base_units_round_trip(a in any_amount()) {
            prop_assert_eq!(TokenAmount::from_base_units(&a.to_string()).unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<TokenAmount>(&json).unwrap(), a);
        }

        #[test]
        fn formatted_units_round_trip(a in any_amount(), decimals in 0u8..=30) {
            let shown = a.format_units(decimals);
            prop_assert_eq!(TokenAmount::parse_units(&shown, decimals).unwrap(), a);
            // Parsing without separators gives the same value.
            prop_assert_eq!(TokenAmount::parse_units(&shown.replace(',', ""), decimals).unwrap(), a);
        }

        #[test]
        fn canonical_text_round_trip(int in 0u64..10_000_000_000, frac in 0u32..1_000_000) {
            let text = format!("{int}.{frac:06}");
            let a = TokenAmount::parse_units(&text, 6).unwrap();
            let shown = a.format_units(6).replace(',', "");
            let expected = if frac == 0 { int.to_string() } else {
                format!("{int}.{}", format!("{frac:06}").trim_end_matches('0'))
            };
            prop_assert_eq!(shown, expected);
        }
    }
}
