//! The [`WalletVerifier`] conformance suite. The caller provides a wallet whose account it can
//! sign for (`sign` signs a claim's SNIP-12 hash on the verifier's chain the way that account
//! expects), another wallet, and an address with no account behind it.

use std::future::Future;

use ed25519_dalek::SigningKey;

use crate::attestation::AttestationChallenge;
use crate::crypto::PublicKey;
use crate::funding::{job_digest, PaymentClaim};
use crate::wallet::{AccountMessage, FeltHex, WalletCheck, WalletClaim, WalletVerifier};
use crate::{JobKind, TokenAmount, WalletAddress};

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

fn claim(wallet: WalletAddress, node: u8, nonce: u8, network: &str) -> AccountMessage {
    let deployment = SigningKey::from_bytes(&[200; 32]);
    let node_key = PublicKey::of(&SigningKey::from_bytes(&[node; 32]));
    let challenge = AttestationChallenge::signed(
        &deployment,
        node_key,
        [nonce; 32],
        crate::time::now() + chrono::Duration::minutes(5),
    );
    AccountMessage::NodeWallet(WalletClaim::new(wallet, &challenge, network).expect("claim"))
}

fn payment(payer: WalletAddress, seed: u64, payment: u64, nonce: u64) -> AccountMessage {
    AccountMessage::JobPayment(PaymentClaim {
        payer,
        network: "conformance".into(),
        job_digest: job_digest(&JobKind::Poseidon2Chain { seed, length: 64 }),
        payment: TokenAmount::from(payment),
        max_attempts: 3,
        nonce,
        sent_at: crate::time::now(),
    })
}

fn refused(check: WalletCheck, what: &str) {
    match check {
        WalletCheck::Refused(reason) => assert!(!reason.is_empty(), "{what}: empty reason"),
        WalletCheck::Valid => panic!("{what}: accepted"),
    }
}

/// Runs both message kinds' checks ([`run_node_wallet`], [`run_job_payment`]).
pub async fn run_all<F, Fut>(verifier: &dyn WalletVerifier, fx: &WalletFixture, sign: F)
where
    F: Fn(AccountMessage, String) -> Fut,
    Fut: Future<Output = Vec<FeltHex>>,
{
    run_node_wallet(verifier, fx, &sign).await;
    run_job_payment(verifier, fx, &sign).await;
}

/// Payment claims: the payer's own signature is valid; the same signature for another job,
/// payment, nonce or payer, or presented as a node wallet claim, is refused.
pub async fn run_job_payment<F, Fut>(verifier: &dyn WalletVerifier, fx: &WalletFixture, sign: &F)
where
    F: Fn(AccountMessage, String) -> Fut,
    Fut: Future<Output = Vec<FeltHex>>,
{
    let chain_id = verifier.chain_id().await.expect("chain id");
    let good = payment(fx.wallet, 1, 100, 1);
    let sig = sign(good.clone(), chain_id).await;
    assert_eq!(
        verifier.check(&good, &sig).await.expect("check"),
        WalletCheck::Valid,
        "the payer's own signature"
    );
    let AccountMessage::JobPayment(base) = good else {
        unreachable!()
    };
    let mut at_other_time = base.clone();
    at_other_time.sent_at = base.sent_at + chrono::Duration::seconds(1);
    for (what, other) in [
        ("another job", payment(fx.wallet, 2, 100, 1)),
        ("another payment", payment(fx.wallet, 1, 101, 1)),
        ("another nonce", payment(fx.wallet, 1, 100, 2)),
        ("another payer", payment(fx.other_wallet, 1, 100, 1)),
        ("another time", AccountMessage::JobPayment(at_other_time)),
        ("a node wallet claim", claim(fx.wallet, 1, 1, "conformance")),
    ] {
        refused(verifier.check(&other, &sig).await.expect(what), what);
    }
}

/// Node wallet claims: the account's own signature is valid; a signature over another node
/// key, nonce or network, another account's signature, a tampered or malformed signature
/// and an address without an account are refused (never an error, never a panic).
pub async fn run_node_wallet<F, Fut>(verifier: &dyn WalletVerifier, fx: &WalletFixture, sign: &F)
where
    F: Fn(AccountMessage, String) -> Fut,
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
