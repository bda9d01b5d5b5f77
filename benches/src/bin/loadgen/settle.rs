//! `loadgen settle`: what settling an epoch costs on a real `starknet-devnet` with our
//! contracts — one transaction per epoch (escrow payouts and fee, `record_success` and a
//! reputation update per job, the receipts root), for epochs of several sizes: the fee (FRI)
//! and L2 gas of the transaction, per job, and the time from sending to acceptance.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bitsage_chain::devnet::{deploy_contracts, Devnet};
use bitsage_chain::escrow::{SettlementContracts, StarknetSettlement};
use bitsage_core::settlement::{EpochBatch, Settlement, TxStatus};
use bitsage_core::{JobId, TokenAmount};
use serde::Serialize;
use starknet::core::types::{Felt, TransactionReceipt};
use starknet::providers::Provider;

use crate::measure::Environment;

/// Arguments of `loadgen settle`.
#[derive(Debug, clap::Args)]
pub(crate) struct SettleArgs {
    /// Epoch sizes (receipts per epoch), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    sizes: Vec<u32>,
}

/// One epoch's cost.
#[derive(Debug, Serialize)]
pub(crate) struct EpochCost {
    jobs: u32,
    transactions: u32,
    calls: usize,
    /// The transaction's fee, FRI (decimal string); `null` when it was refused.
    fee_fri: Option<String>,
    fee_fri_per_job: Option<String>,
    l2_gas: Option<u64>,
    l2_gas_per_job: Option<u64>,
    /// From sending to the receipt showing it accepted.
    seconds_to_accepted: Option<f64>,
    jobs_per_sec: Option<f64>,
    error: Option<String>,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub(crate) struct SettleReport {
    scenario: &'static str,
    environment: Environment,
    epochs: Vec<EpochCost>,
}

impl SettleReport {
    /// A summary for people.
    pub(crate) fn human(&self) -> String {
        let mut s =
            String::from("settlement cost per epoch (starknet-devnet 0.10.1, our contracts)\n");
        for e in &self.epochs {
            match (&e.fee_fri, &e.error) {
                (Some(fee), _) => s.push_str(&format!(
                    "  {:>5} jobs: 1 tx, {} calls, fee {} FRI ({} per job), L2 gas {} ({} per job), accepted in {:.2} s ({:.0} jobs/s)\n",
                    e.jobs,
                    e.calls,
                    fee,
                    e.fee_fri_per_job.as_deref().unwrap_or("-"),
                    e.l2_gas.unwrap_or(0),
                    e.l2_gas_per_job.unwrap_or(0),
                    e.seconds_to_accepted.unwrap_or(0.0),
                    e.jobs_per_sec.unwrap_or(0.0)
                )),
                (None, Some(err)) => s.push_str(&format!("  {:>5} jobs: refused: {err}\n", e.jobs)),
                _ => {}
            }
        }
        s
    }
}

fn sage(n: u128) -> TokenAmount {
    TokenAmount::from_u128(n * 1_000_000_000_000_000_000)
}

/// Runs the scenario on `rt`.
pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    args: &SettleArgs,
    environment: Environment,
) -> anyhow::Result<SettleReport> {
    rt.block_on(async {
        let devnet = Devnet::start().await.context("starting starknet-devnet")?;
        let dep = deploy_contracts(&devnet).await.context("deploying")?;
        let (worker, payer) = (dep.accounts[1].clone(), dep.accounts[2].clone());
        let total: u128 = args.sizes.iter().map(|n| u128::from(*n)).sum();
        dep.mint_sage(payer.address, sage(total)).await?;
        dep.deposit(&payer, sage(total)).await?;
        let a = dep.contract_addresses();
        let settlement = StarknetSettlement::connect(
            devnet.rpc_url().as_str(),
            &dep.owner.wallet,
            dep.owner.private_key,
            SettlementContracts {
                escrow: dep.escrow_address()?,
                staking: a.staking,
                reputation: a.reputation,
            },
            Duration::from_secs(120),
        )
        .await?;
        let provider = devnet.provider();
        let mut epochs = Vec::new();
        for (i, &n) in args.sizes.iter().enumerate() {
            let payment = sage(1);
            let fee = payment.mul_bps(250)?;
            let net = payment.checked_sub(fee)?;
            let times = |a: TokenAmount| -> anyhow::Result<TokenAmount> {
                Ok(TokenAmount::checked_sum(std::iter::repeat_n(
                    a, n as usize,
                ))?)
            };
            let batch = EpochBatch {
                epoch_id: i as u64 + 1,
                receipts_root: bitsage_core::crypto::Hash32([1; 32]),
                jobs: n,
                debits: vec![(payer.wallet, times(payment)?)],
                payouts: vec![(worker.wallet, times(net)?)],
                fee: times(fee)?,
                successes: (0..n).map(|_| (worker.wallet, JobId::new())).collect(),
                slashes: vec![],
            };
            let calls = settlement.calls(&batch)?.len();
            let start = Instant::now();
            let sent = settlement.send(&batch).await;
            let mut cost = EpochCost {
                jobs: n,
                transactions: 1,
                calls,
                fee_fri: None,
                fee_fri_per_job: None,
                l2_gas: None,
                l2_gas_per_job: None,
                seconds_to_accepted: None,
                jobs_per_sec: None,
                error: None,
            };
            let tx = match sent {
                Ok(tx) => tx,
                Err(e) => {
                    cost.error = Some(e.to_string());
                    epochs.push(cost);
                    continue;
                }
            };
            loop {
                match settlement.status(&tx).await? {
                    TxStatus::Pending => tokio::time::sleep(Duration::from_millis(20)).await,
                    TxStatus::Accepted { .. } => break,
                    TxStatus::Reverted { reason } => {
                        cost.error = Some(reason);
                        break;
                    }
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let receipt = provider
                .get_transaction_receipt(Felt::from_hex(&tx)?)
                .await
                .context("the settlement receipt")?;
            if let TransactionReceipt::Invoke(r) = &receipt.receipt {
                let b = r.actual_fee.amount.to_bytes_be();
                let mut low = [0u8; 16];
                low.copy_from_slice(&b[16..]);
                // A devnet fee is far below 2^128 FRI.
                let fee_low = u128::from_be_bytes(low);
                let fee = TokenAmount::from_u128(fee_low);
                let per_job = TokenAmount::from_u128(fee_low / u128::from(n.max(1)));
                cost.fee_fri = Some(fee.to_string());
                cost.fee_fri_per_job = Some(per_job.to_string());
                cost.l2_gas = Some(r.execution_resources.l2_gas);
                cost.l2_gas_per_job = Some(r.execution_resources.l2_gas / u64::from(n.max(1)));
            }
            cost.seconds_to_accepted = Some(secs);
            cost.jobs_per_sec = Some(f64::from(n) / secs);
            epochs.push(cost);
        }
        Ok(SettleReport {
            scenario: "settle",
            environment,
            epochs,
        })
    })
}
