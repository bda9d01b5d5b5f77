//! The [`WalletVerifier`] conformance suite. The caller provides a wallet whose account it can
//! sign for (`sign` signs a claim's SNIP-12 hash on the verifier's chain the way that account
//! expects), another wallet, and an address with no account behind it.

use std::future::Future;

use ed25519_dalek::SigningKey;

use crate::attestation::AttestationChallenge;
use crate::crypto::PublicKey;
use crate::wallet::{FeltHex, WalletCheck, WalletClaim, WalletVerifier};
use crate::WalletAddress;

/// What the suite needs besides the verifier.
#[derive(Debug, Clone)]
pub struct WalletFixture {
    /// A wallet `sign` signs for.
    pub wallet: WalletAddress,
    /// Another wallet with an account (its key is not `sign`'s).
    pub other_wallet: WalletAddress,
    /// An address with no account contract.
    pub no_account: WalletAddress,
}

fn claim(wallet: WalletAddress, node: u8, nonce: u8, network: &str) -> WalletClaim {
    let deployment = SigningKey::from_bytes(&[200; 32]);
    let node_key = PublicKey::of(&SigningKey::from_bytes(&[node; 32]));
    let challenge = AttestationChallenge::signed(
        &deployment,
        node_key,
        [nonce; 32],
        crate::time::now() + chrono::Duration::minutes(5),
    );
    WalletClaim::new(wallet, &challenge, network).expect("claim")
}

fn refused(check: WalletCheck, what: &str) {
    match check {
        WalletCheck::Refused(reason) => assert!(!reason.is_empty(), "{what}: empty reason"),
        WalletCheck::Valid => panic!("{what}: accepted"),
    }
}

/// Runs every check: the account's own signature is valid; a signature over another node
/// key, nonce or network, another account's signature, a tampered or malformed signature
/// and an address without an account are refused (never an error, never a panic).
pub async fn run_all<F, Fut>(verifier: &dyn WalletVerifier, fx: &WalletFixture, sign: F)
where
    F: Fn(WalletClaim, String) -> Fut,
    Fut: Future<Output = Vec<FeltHex>>,
{
    let chain_id = verifier.chain_id().await.expect("chain id");
    assert!(!chain_id.is_empty(), "a chain id");
    assert_eq!(
        verifier.chain_id().await.expect("chain id"),
        chain_id,
        "stable"
    );

    let good = claim(fx.wallet, 1, 1, "conformance");
    let sig = sign(good.clone(), chain_id.clone()).await;
    assert_eq!(
        verifier.check(&good, &sig).await.expect("check"),
        WalletCheck::Valid,
        "the account's own signature"
    );
    // The same signature presented for other statements.
    for (what, other) in [
        ("another node key", claim(fx.wallet, 2, 1, "conformance")),
        ("another nonce", claim(fx.wallet, 1, 2, "conformance")),
        ("another network", claim(fx.wallet, 1, 1, "elsewhere")),
        (
            "another wallet",
            claim(fx.other_wallet, 1, 1, "conformance"),
        ),
        (
            "an address without an account",
            claim(fx.no_account, 1, 1, "conformance"),
        ),
    ] {
        refused(verifier.check(&other, &sig).await.expect(what), what);
    }
    // Tampered and malformed signatures.
    let mut tampered = sig.clone();
    let last = tampered.len() - 1;
    let mut bytes = tampered[last].to_be_bytes();
    bytes[31] ^= 1;
    tampered[last] = FeltHex::from_be_bytes(&bytes);
    refused(
        verifier.check(&good, &tampered).await.expect("tampered"),
        "a tampered signature",
    );
    let above_modulus = FeltHex::parse(&format!("0x{}", "f".repeat(64))).expect("hex");
    refused(
        verifier
            .check(&good, &[above_modulus.clone(), above_modulus])
            .await
            .expect("out of field"),
        "elements above the field modulus",
    );
    refused(
        verifier
            .check(&good, &sig[..1])
            .await
            .expect("short signature"),
        "a short signature",
    );
}
