//! `StarknetSettlement` passes the `Settlement` conformance suite against our `JobEscrow`,
//! `ProverStaking` and `ReputationManager` on a real `starknet-devnet` (one multicall per
//! epoch; a seen epoch id refused), and `EscrowFunding` reads spendable escrow. Skipped with a
//! printed reason when the binary is missing, failed under `CI=true`.

use crate::support;

use std::time::Duration;

use bitsage_chain::escrow::{EscrowFunding, EscrowReader, SettlementContracts, StarknetSettlement};
use bitsage_core::funding::{FundingLimit, FundingSource};
use bitsage_core::settlement::{EpochBatch, SlashItem};
use bitsage_core::{JobId, NodeId};
use support::{deployed_or_skip, sage, SERIAL};

#[tokio::test]
async fn starknet_settlement_conforms_and_pays_exactly() {
    let _serial = SERIAL.lock().await;
    let Some((devnet, dep)) =
        deployed_or_skip("starknet_settlement_conforms_and_pays_exactly").await
    else {
        return;
    };
    let (worker, payer) = (dep.accounts[1].clone(), dep.accounts[2].clone());
    dep.mint_sage(payer.address, sage(10)).await.expect("mint");
    dep.deposit(&payer, sage(10)).await.expect("deposit");
    let escrow = dep.escrow_address().expect("escrow");
    let reader = EscrowReader::new(devnet.rpc_url().as_str(), &escrow, Duration::from_secs(10))
        .expect("reader");
    assert_eq!(
        EscrowFunding::new(reader.clone())
            .limit(&payer.wallet)
            .await
            .expect("limit"),
        FundingLimit::Escrow {
            spendable: sage(10)
        }
    );
    let contracts = SettlementContracts {
        escrow,
        staking: dep.contract_addresses().staking,
        reputation: dep.contract_addresses().reputation,
    };
    let settlement = StarknetSettlement::connect(
        devnet.rpc_url().as_str(),
        &dep.owner.wallet,
        dep.owner.private_key,
        contracts,
        Duration::from_secs(10),
    )
    .await
    .expect("settler");
    let fee = sage(1).mul_bps(250).unwrap();
    let net = sage(1).checked_sub(fee).unwrap();
    let batch = EpochBatch {
        epoch_id: 1,
        receipts_root: bitsage_core::crypto::Hash32([1; 32]),
        jobs: 1,
        debits: vec![(payer.wallet, sage(1))],
        payouts: vec![(worker.wallet, net)],
        fee,
        successes: vec![(worker.wallet, JobId::new())],
        slashes: vec![SlashItem {
            node_id: NodeId::parse("node-x").unwrap(),
            worker: worker.wallet,
            job_id: JobId::new(),
            reason: "invalid proof".into(),
            at: bitsage_core::time::now(),
        }],
    };
    let before = dep.sage_balance(worker.address).await.expect("balance");
    bitsage_core::conformance::settlement::run_all(&settlement, &batch).await;
    let after = dep.sage_balance(worker.address).await.expect("balance");
    assert_eq!(after.checked_sub(before).unwrap(), net, "paid once");
    let account = reader.account(&payer.wallet).await.expect("account");
    assert_eq!(account.balance, sage(9));
    let anchored = reader.epoch(1).await.expect("epoch").expect("settled");
    assert_eq!(anchored.receipts_root, batch.receipts_root);
    assert_eq!(reader.epoch(2).await.expect("epoch"), None);
}
