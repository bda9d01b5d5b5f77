//! SNIP-12 (revision 1) typed data of the messages a Starknet account signs for BitSage
//! ([`AccountMessage`]): the wallet claim a node registers with ([`WalletClaim`]) and the
//! payment claim of a job submission ([`PaymentClaim`]). Both sides build it here — the
//! signer (or an external wallet, from the typed data's JSON) signs its hash, the
//! coordinator's verifier asks the account contract whether the signature is valid for it.

use bitsage_core::funding::PaymentClaim;
use bitsage_core::message::SubmitJobRequest;
use bitsage_core::wallet::{AccountMessage, FeltHex, WalletClaim};
use bitsage_core::{Error, JobKind, TokenAmount, WalletAddress};
use serde_json::{json, Value};
use starknet::core::types::{Felt, TypedData};
use starknet::signers::SigningKey;

/// SNIP-12 domain name of every BitSage message.
pub const DOMAIN_NAME: &str = "BitSage";
/// SNIP-12 domain version.
pub const DOMAIN_VERSION: &str = "1";
/// The primary type of a node's wallet claim.
pub const NODE_WALLET_TYPE: &str = "BitSageNodeWallet";
/// The primary type of a job submission's payment claim.
pub const JOB_PAYMENT_TYPE: &str = "BitSageJobPayment";

fn domain(chain_id: &str) -> Value {
    json!({
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "revision": "1"
    })
}

fn domain_type() -> Value {
    json!([
        { "name": "name", "type": "shortstring" },
        { "name": "version", "type": "shortstring" },
        { "name": "chainId", "type": "shortstring" },
        { "name": "revision", "type": "shortstring" }
    ])
}

/// The SNIP-12 typed data (JSON) of a payment claim on chain `chain_id`. `sent_at` is bound
/// to the microsecond (`sent_at_micros`), so one signature names exactly one submission.
pub fn payment_typed_data(claim: &PaymentClaim, chain_id: &str) -> Result<Value, Error> {
    check_chain_id(chain_id)?;
    let micros = u64::try_from(claim.sent_at.timestamp_micros())
        .map_err(|_| Error::invalid("sent_at", "before 1970"))?;
    Ok(json!({
        "types": {
            "StarknetDomain": domain_type(),
            JOB_PAYMENT_TYPE: [
                { "name": "network", "type": "string" },
                { "name": "job", "type": "u256" },
                { "name": "payment", "type": "u256" },
                { "name": "max_attempts", "type": "u128" },
                { "name": "nonce", "type": "u128" },
                { "name": "sent_at_micros", "type": "u128" }
            ]
        },
        "primaryType": JOB_PAYMENT_TYPE,
        "domain": domain(chain_id),
        "message": {
            "network": claim.network,
            "job": u256_value(&claim.job_digest.0),
            "payment": u256_value(&amount_bytes(claim.payment)),
            "max_attempts": claim.max_attempts.to_string(),
            "nonce": claim.nonce.to_string(),
            "sent_at_micros": micros.to_string(),
        }
    }))
}

fn amount_bytes(a: TokenAmount) -> [u8; 32] {
    let (low, high) = a.to_limbs();
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&high.to_be_bytes());
    out[16..].copy_from_slice(&low.to_be_bytes());
    out
}

/// The typed data of any [`AccountMessage`].
pub fn typed_data(message: &AccountMessage, chain_id: &str) -> Result<Value, Error> {
    match message {
        AccountMessage::NodeWallet(c) => node_wallet_typed_data(c, chain_id),
        AccountMessage::JobPayment(c) => payment_typed_data(c, chain_id),
    }
}

/// The SNIP-12 message hash of `message` for its account on chain `chain_id`.
pub fn message_hash(message: &AccountMessage, chain_id: &str) -> Result<Felt, Error> {
    let doc = typed_data(message, chain_id)?;
    let typed: TypedData = serde_json::from_value(doc)
        .map_err(|e| Error::invalid("signed message", format!("not SNIP-12 typed data: {e}")))?;
    typed
        .message_hash(felt_of_address(&message.account()))
        .map_err(|e| Error::invalid("signed message", format!("cannot hash: {e}")))
}

/// Signs `message` with a Stark private key (a standard account's owner key): `[r, s]`.
pub fn sign(
    private_key: &Felt,
    message: &AccountMessage,
    chain_id: &str,
) -> Result<Vec<FeltHex>, Error> {
    let hash = message_hash(message, chain_id)?;
    let sig = SigningKey::from_secret_scalar(*private_key)
        .sign(&hash)
        .map_err(|e| Error::invalid("private key", format!("cannot sign: {e}")))?;
    Ok(vec![hex_of_felt(&sig.r), hex_of_felt(&sig.s)])
}

/// A job submission paid by `payer`, signed with its owner key for `network` on `chain_id`
/// (a fresh random nonce, sent now).
#[allow(clippy::too_many_arguments)]
pub fn signed_submission(
    private_key: &Felt,
    payer: WalletAddress,
    job: JobKind,
    payment: TokenAmount,
    max_attempts: Option<u32>,
    network: &str,
    chain_id: &str,
) -> Result<SubmitJobRequest, Error> {
    let mut req = SubmitJobRequest {
        job,
        payment,
        max_attempts,
        payer,
        nonce: rand_nonce(),
        sent_at: bitsage_core::time::now(),
        signature: Vec::new(),
    };
    let attempts = max_attempts.unwrap_or(bitsage_core::service::jobs::DEFAULT_MAX_ATTEMPTS);
    let claim = PaymentClaim::of(&req, network, attempts);
    req.signature = sign(private_key, &AccountMessage::JobPayment(claim), chain_id)?;
    Ok(req)
}

fn rand_nonce() -> u64 {
    use std::hash::BuildHasher;
    // Not secret, only distinct: a replayed submission is refused by the replay log anyway.
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

fn u256_value(bytes: &[u8; 32]) -> Value {
    json!({
        "low": format!("0x{}", hex::encode(&bytes[16..])),
        "high": format!("0x{}", hex::encode(&bytes[..16])),
    })
}

/// Checks a chain id can be a SNIP-12 `shortstring` (1 to 31 printable ASCII characters).
fn check_chain_id(chain_id: &str) -> Result<(), Error> {
    if chain_id.is_empty() || chain_id.len() > 31 || !chain_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::invalid(
            "chain id",
            "must be 1 to 31 printable ASCII characters",
        ));
    }
    Ok(())
}

/// The SNIP-12 typed data (JSON, as wallets take it) of `claim` on chain `chain_id`.
pub fn node_wallet_typed_data(claim: &WalletClaim, chain_id: &str) -> Result<Value, Error> {
    check_chain_id(chain_id)?;
    Ok(json!({
        "types": {
            "StarknetDomain": domain_type(),
            NODE_WALLET_TYPE: [
                { "name": "node_key", "type": "u256" },
                { "name": "network", "type": "string" },
                { "name": "nonce", "type": "u256" },
                { "name": "expires_at", "type": "timestamp" }
            ]
        },
        "primaryType": NODE_WALLET_TYPE,
        "domain": domain(chain_id),
        "message": {
            "node_key": u256_value(&claim.node_key.to_bytes()),
            "network": claim.network,
            "nonce": u256_value(&claim.nonce),
            "expires_at": claim.expires_at.timestamp().max(0),
        }
    }))
}

/// The message hash of `claim` (what the wallet account signs and `is_valid_signature` is
/// asked about).
pub fn node_wallet_hash(claim: &WalletClaim, chain_id: &str) -> Result<Felt, Error> {
    message_hash(&AccountMessage::NodeWallet(claim.clone()), chain_id)
}

/// The field element of an address.
pub fn felt_of_address(address: &WalletAddress) -> Felt {
    Felt::from_bytes_be(address.as_bytes())
}

/// A field element from its hex form; `Invalid` when it is not below the field's modulus
/// (silently reducing it would check another value than the one sent).
pub fn felt_of_hex(f: &FeltHex) -> Result<Felt, Error> {
    let bytes = f.to_be_bytes();
    let felt = Felt::from_bytes_be(&bytes);
    if felt.to_bytes_be() != bytes {
        return Err(Error::invalid(
            "signature element",
            "is not below the Stark field's modulus",
        ));
    }
    Ok(felt)
}

/// The hex form of a field element.
pub fn hex_of_felt(f: &Felt) -> FeltHex {
    FeltHex::from_be_bytes(&f.to_bytes_be())
}

/// Signs `claim` with a Stark private key (a standard account's owner key): `[r, s]`.
pub fn sign_node_wallet(
    private_key: &Felt,
    claim: &WalletClaim,
    chain_id: &str,
) -> Result<Vec<FeltHex>, Error> {
    sign(
        private_key,
        &AccountMessage::NodeWallet(claim.clone()),
        chain_id,
    )
}

/// Reads a Stark private key: `0x` and up to 64 hex digits, surrounding whitespace ignored,
/// not zero and below the field's modulus.
pub fn parse_private_key(text: &str) -> Result<Felt, Error> {
    let f = FeltHex::parse(text.trim())
        .map_err(|_| Error::invalid("wallet private key", "must be 0x and 1 to 64 hex digits"))?;
    let felt = felt_of_hex(&f)
        .map_err(|_| Error::invalid("wallet private key", "not below the field's modulus"))?;
    if felt == Felt::ZERO {
        return Err(Error::invalid("wallet private key", "must not be zero"));
    }
    Ok(felt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitsage_core::attestation::AttestationChallenge;
    use bitsage_core::crypto::PublicKey;
    use ed25519_dalek::SigningKey as NodeKey;

    fn claim(nonce: u8) -> WalletClaim {
        let deployment = NodeKey::from_bytes(&[1; 32]);
        let node = PublicKey::of(&NodeKey::from_bytes(&[2; 32]));
        let challenge =
            AttestationChallenge::signed(&deployment, node, [nonce; 32], bitsage_core::time::now());
        WalletClaim::new(
            WalletAddress::parse("0x1234").expect("address"),
            &challenge,
            "bitsage-dev",
        )
        .expect("claim")
    }

    #[test]
    fn the_hash_binds_every_field_and_a_signature_verifies() {
        let a = node_wallet_hash(&claim(1), "SN_SEPOLIA").expect("hash");
        assert_eq!(a, node_wallet_hash(&claim(1), "SN_SEPOLIA").expect("hash"));
        assert_ne!(a, node_wallet_hash(&claim(2), "SN_SEPOLIA").expect("hash"));
        assert_ne!(a, node_wallet_hash(&claim(1), "SN_MAIN").expect("hash"));
        let mut other_network = claim(1);
        other_network.network = "other".into();
        assert_ne!(
            a,
            node_wallet_hash(&other_network, "SN_SEPOLIA").expect("hash")
        );
        let mut other_wallet = claim(1);
        other_wallet.wallet = WalletAddress::parse("0x5678").expect("address");
        assert_ne!(
            a,
            node_wallet_hash(&other_wallet, "SN_SEPOLIA").expect("hash")
        );

        let key = parse_private_key("0x1234abcd").expect("key");
        let sig = sign_node_wallet(&key, &claim(1), "SN_SEPOLIA").expect("sign");
        let public = SigningKey::from_secret_scalar(key).verifying_key();
        let s = starknet::core::crypto::Signature {
            r: felt_of_hex(&sig[0]).expect("r"),
            s: felt_of_hex(&sig[1]).expect("s"),
        };
        assert!(public.verify(&a, &s).expect("verify"));
        assert!(node_wallet_hash(&claim(1), "").is_err());
        assert!(parse_private_key("0x0").is_err());
        assert!(
            felt_of_hex(&FeltHex::parse(&format!("0x{}", "f".repeat(64))).expect("hex")).is_err()
        );
    }
}
