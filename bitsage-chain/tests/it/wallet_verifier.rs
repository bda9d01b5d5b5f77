//! Both wallet verifiers pass the `WalletVerifier` conformance suite: pinned Stark keys
//! in-process, and account contracts (`is_valid_signature`) on a real `starknet-devnet` with
//! its predeployed accounts (skipped with a printed reason when the binary is missing, failed
//! under `CI=true`).

use crate::support;

use std::time::Duration;

use bitsage_chain::devnet::Devnet;
use bitsage_chain::snip12::{sign, sign_node_wallet};
use bitsage_chain::{PinnedKeyWalletVerifier, StarknetWalletVerifier, StoredKeyVerifier};
use bitsage_core::conformance::wallet::{run_all, WalletFixture};
use bitsage_core::wallet::{WalletCheck, WalletVerifier};
use bitsage_core::WalletAddress;
use starknet::core::types::Felt;
use starknet::signers::SigningKey;
use support::SERIAL;

fn wallet(s: &str) -> WalletAddress {
    WalletAddress::parse(s).expect("wallet")
}

#[tokio::test]
async fn pinned_key_verifier_conforms() {
    let (k1, k2) = (Felt::from(0x1111u64), Felt::from(0x2222u64));
    let (w1, w2) = (wallet("0xa11ce"), wallet("0xb0b"));
    let verifier = PinnedKeyWalletVerifier::new("SN_TEST")
        .with_key(
            w1,
            SigningKey::from_secret_scalar(k1).verifying_key().scalar(),
        )
        .with_key(
            w2,
            SigningKey::from_secret_scalar(k2).verifying_key().scalar(),
        );
    let fx = WalletFixture {
        wallet: w1,
        other_wallet: w2,
        no_account: wallet("0xdead"),
    };
    run_all(&verifier, &fx, |msg, chain| async move {
        sign(&k1, &msg, &chain).expect("sign")
    })
    .await;
}

#[tokio::test]
async fn stored_key_verifier_checks_payments_and_proves_no_wallet() {
    use bitsage_core::PayerLedger;
    let store = std::sync::Arc::new(bitsage_store::InMemoryStore::new());
    let key = Felt::from(0x3333u64);
    let public = SigningKey::from_secret_scalar(key).verifying_key().scalar();
    let payer = wallet("0xfee");
    store
        .set_payer(
            &payer,
            Some(&bitsage_chain::snip12::hex_of_felt(&public)),
            bitsage_core::TokenAmount::from(1u64),
            bitsage_core::time::now(),
        )
        .await
        .expect("payer");
    let verifier = StoredKeyVerifier::new(store);
    let fx = WalletFixture {
        wallet: payer,
        other_wallet: wallet("0xb0b"),
        no_account: wallet("0xdead"),
    };
    let sign_with = |msg, chain: String| async move { sign(&key, &msg, &chain).expect("sign") };
    bitsage_core::conformance::wallet::run_job_payment(&verifier, &fx, &sign_with).await;
    // Without a chain no wallet is proven, whatever the signature.
    let ch = bitsage_core::attestation::AttestationChallenge::signed(
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        bitsage_core::crypto::PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[2; 32])),
        [3; 32],
        bitsage_core::time::now(),
    );
    let claim = bitsage_core::wallet::AccountMessage::NodeWallet(
        bitsage_core::wallet::WalletClaim::new(payer, &ch, "x").expect("claim"),
    );
    let sig = sign(&key, &claim, bitsage_chain::LOCAL_CHAIN_ID).expect("sign");
    assert!(matches!(
        verifier.check(&claim, &sig).await.expect("check"),
        WalletCheck::Refused(_)
    ));
}

#[tokio::test]
async fn account_contracts_check_wallet_claims_on_devnet() {
    let _serial = SERIAL.lock().await;
    if !Devnet::available_or_skip("account_contracts_check_wallet_claims_on_devnet") {
        return;
    }
    let devnet = Devnet::start().await.expect("start starknet-devnet");
    let accounts = devnet.predeployed_accounts().await.expect("accounts");
    let (owner, other) = (accounts[0].clone(), accounts[1].clone());
    let verifier = StarknetWalletVerifier::new(devnet.rpc_url().as_str(), Duration::from_secs(5))
        .expect("verifier");
    assert_eq!(verifier.chain_id().await.expect("chain id"), "SN_SEPOLIA");
    let fx = WalletFixture {
        wallet: owner.wallet,
        other_wallet: other.wallet,
        no_account: wallet("0x0badc0ffee"),
    };
    let key = owner.private_key;
    run_all(&verifier, &fx, |msg, chain| async move {
        sign(&key, &msg, &chain).expect("sign")
    })
    .await;

    // The chain down: unavailable, never refused or proven.
    let mut devnet = devnet;
    let claim = {
        let deployment = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let node =
            bitsage_core::crypto::PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
        let ch = bitsage_core::attestation::AttestationChallenge::signed(
            &deployment,
            node,
            [1; 32],
            bitsage_core::time::now(),
        );
        bitsage_core::wallet::WalletClaim::new(owner.wallet, &ch, "x").expect("claim")
    };
    let sig = sign_node_wallet(&key, &claim, "SN_SEPOLIA").expect("sign");
    let claim = bitsage_core::wallet::AccountMessage::NodeWallet(claim);
    assert_eq!(
        verifier.check(&claim, &sig).await.expect("check"),
        WalletCheck::Valid
    );
    devnet.kill().await;
    match verifier.check(&claim, &sig).await {
        Err(bitsage_core::Error::Unavailable { .. }) => {}
        other => panic!("chain down: expected Unavailable, got {other:?}"),
    }
}
