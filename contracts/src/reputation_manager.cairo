// ReputationManager: a worker's reputation score (0..1000, level 1..5), updated by authorised
// callers from job outcomes. A worker starts at 500 / level 3; level thresholds 850/700/500/300.
// Cairo 2.1 dialect (compiled by `scripts/build-contracts.sh` with starknet-compile 2.1.0).

use starknet::ContractAddress;

#[derive(Copy, Drop, Serde, PartialEq)]
enum Outcome {
    JobSucceeded: (),
    JobFailed: (),
    Dispute: (),
    Slash: (),
}

#[derive(Copy, Drop, Serde)]
struct Reputation {
    score: u32,
    level: u8,
    last_updated: u64,
    total_jobs_completed: u64,
    successful_jobs: u64,
    failed_jobs: u64,
    dispute_count: u64,
    slash_count: u64,
}

#[starknet::interface]
trait IReputationManager<TContractState> {
    fn get_reputation(self: @TContractState, worker_id: ContractAddress) -> Reputation;
    fn update_reputation(
        ref self: TContractState, worker_id: ContractAddress, outcome: Outcome, job_id: felt252
    );
    fn set_updater(ref self: TContractState, updater: ContractAddress, allowed: bool);
    fn is_updater(self: @TContractState, account: ContractAddress) -> bool;
}

#[starknet::contract]
mod ReputationManager {
    use starknet::{ContractAddress, get_caller_address, get_block_timestamp};
    use super::{Outcome, Reputation};

    const START_SCORE: u32 = 500;
    const MAX_SCORE: u32 = 1000;
    const SUCCESS_GAIN: u32 = 10;
    const FAILURE_LOSS: u32 = 25;
    const DISPUTE_LOSS: u32 = 50;
    const SLASH_LOSS: u32 = 100;

    #[derive(Copy, Drop, Serde, starknet::Store)]
    struct Record {
        initialized: bool,
        score: u32,
        last_updated: u64,
        total_jobs_completed: u64,
        successful_jobs: u64,
        failed_jobs: u64,
        dispute_count: u64,
        slash_count: u64,
    }

    #[storage]
    struct Storage {
        owner: ContractAddress,
        updaters: LegacyMap<ContractAddress, bool>,
        records: LegacyMap<ContractAddress, Record>,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        ReputationInitialized: ReputationInitialized,
        ReputationUpdated: ReputationUpdated,
    }

    #[derive(Drop, starknet::Event)]
    struct ReputationInitialized {
        #[key]
        worker_id: ContractAddress,
        score: u32,
        level: u8,
    }

    #[derive(Drop, starknet::Event)]
    struct ReputationUpdated {
        #[key]
        worker_id: ContractAddress,
        old_score: u32,
        new_score: u32,
        level: u8,
        job_id: felt252,
    }

    #[constructor]
    fn constructor(ref self: ContractState, owner: ContractAddress) {
        self.owner.write(owner);
        self.updaters.write(owner, true);
    }

    fn level_of(score: u32) -> u8 {
        if score >= 850 {
            5_u8
        } else if score >= 700 {
            4_u8
        } else if score >= 500 {
            3_u8
        } else if score >= 300 {
            2_u8
        } else {
            1_u8
        }
    }

    fn view(rec: Record) -> Reputation {
        let score = if rec.initialized {
            rec.score
        } else {
            START_SCORE
        };
        Reputation {
            score,
            level: level_of(score),
            last_updated: rec.last_updated,
            total_jobs_completed: rec.total_jobs_completed,
            successful_jobs: rec.successful_jobs,
            failed_jobs: rec.failed_jobs,
            dispute_count: rec.dispute_count,
            slash_count: rec.slash_count,
        }
    }

    fn lower(score: u32, by: u32) -> u32 {
        if score > by {
            score - by
        } else {
            0
        }
    }

    #[external(v0)]
    impl ReputationManagerImpl of super::IReputationManager<ContractState> {
        fn get_reputation(self: @ContractState, worker_id: ContractAddress) -> Reputation {
            view(self.records.read(worker_id))
        }

        fn update_reputation(
            ref self: ContractState, worker_id: ContractAddress, outcome: Outcome, job_id: felt252
        ) {
            assert(self.updaters.read(get_caller_address()), 'not an authorised updater');
            let mut rec = self.records.read(worker_id);
            if !rec.initialized {
                rec.initialized = true;
                rec.score = START_SCORE;
                self
                    .emit(
                        Event::ReputationInitialized(
                            ReputationInitialized {
                                worker_id, score: START_SCORE, level: level_of(START_SCORE)
                            }
                        )
                    );
            }
            let old_score = rec.score;
            match outcome {
                Outcome::JobSucceeded(()) => {
                    rec.total_jobs_completed = rec.total_jobs_completed + 1;
                    rec.successful_jobs = rec.successful_jobs + 1;
                    let raised = rec.score + SUCCESS_GAIN;
                    rec.score = if raised > MAX_SCORE {
                        MAX_SCORE
                    } else {
                        raised
                    };
                },
                Outcome::JobFailed(()) => {
                    rec.total_jobs_completed = rec.total_jobs_completed + 1;
                    rec.failed_jobs = rec.failed_jobs + 1;
                    rec.score = lower(rec.score, FAILURE_LOSS);
                },
                Outcome::Dispute(()) => {
                    rec.dispute_count = rec.dispute_count + 1;
                    rec.score = lower(rec.score, DISPUTE_LOSS);
                },
                Outcome::Slash(()) => {
                    rec.slash_count = rec.slash_count + 1;
                    rec.score = lower(rec.score, SLASH_LOSS);
                },
            }
            rec.last_updated = get_block_timestamp();
            self.records.write(worker_id, rec);
            self
                .emit(
                    Event::ReputationUpdated(
                        ReputationUpdated {
                            worker_id,
                            old_score,
                            new_score: rec.score,
                            level: level_of(rec.score),
                            job_id
                        }
                    )
                );
        }

        fn set_updater(ref self: ContractState, updater: ContractAddress, allowed: bool) {
            assert(get_caller_address() == self.owner.read(), 'only owner');
            self.updaters.write(updater, allowed);
        }

        fn is_updater(self: @ContractState, account: ContractAddress) -> bool {
            self.updaters.read(account)
        }
    }
}
