// ProverStaking: workers stake SAGE for a GPU tier, earn rewards at an APY (basis points) over
// block time, can be slashed by the owner or the verifier, and unstake after a lockup.
// Cairo 2.1 dialect (compiled by `scripts/build-contracts.sh` with starknet-compile 2.1.0).

use starknet::ContractAddress;

#[derive(Copy, Drop, Serde, PartialEq)]
enum GpuTier {
    Consumer: (),
    Workstation: (),
    DataCenter: (),
    Enterprise: (),
    Frontier: (),
}

#[derive(Copy, Drop, Serde)]
struct WorkerStake {
    amount: u256,
    locked_amount: u256,
    staked_at: u64,
    last_claim_at: u64,
    gpu_tier: GpuTier,
    is_active: bool,
    consecutive_failures: u32,
    total_slashed: u256,
    pending_rewards: u256,
}

#[starknet::interface]
trait IERC20<TContractState> {
    fn transfer(ref self: TContractState, recipient: ContractAddress, amount: u256) -> bool;
    fn transfer_from(
        ref self: TContractState, sender: ContractAddress, recipient: ContractAddress, amount: u256
    ) -> bool;
}

#[starknet::interface]
trait IProverStaking<TContractState> {
    fn stake(ref self: TContractState, amount: u256, gpu_tier: GpuTier);
    fn request_unstake(ref self: TContractState, amount: u256);
    fn complete_unstake(ref self: TContractState);
    fn claim_rewards(ref self: TContractState) -> u256;
    fn slash(ref self: TContractState, worker: ContractAddress, reason: felt252, job_id: felt252);
    fn record_success(ref self: TContractState, worker: ContractAddress, job_id: felt252);
    fn get_stake(self: @TContractState, worker: ContractAddress) -> WorkerStake;
    fn get_min_stake(self: @TContractState, tier: GpuTier) -> u256;
    fn is_eligible(self: @TContractState, worker: ContractAddress) -> bool;
    fn total_staked(self: @TContractState) -> u256;
    fn token(self: @TContractState) -> ContractAddress;
    fn apy_bps(self: @TContractState) -> u256;
    fn lockup_secs(self: @TContractState) -> u64;
}

#[starknet::contract]
mod ProverStaking {
    use starknet::{ContractAddress, get_caller_address, get_block_timestamp, get_contract_address};
    use traits::Into;
    use super::{GpuTier, WorkerStake, IERC20Dispatcher, IERC20DispatcherTrait};

    const SECONDS_PER_YEAR: u256 = 31536000;
    const BPS: u256 = 10000;
    // Share of the stake a slash takes, basis points (10 %).
    const SLASH_BPS: u256 = 1000;

    #[derive(Copy, Drop, Serde, starknet::Store)]
    struct StakeRecord {
        amount: u256,
        locked_amount: u256,
        staked_at: u64,
        last_claim_at: u64,
        last_accrual_at: u64,
        accrued: u256,
        gpu_tier: u8,
        is_active: bool,
        consecutive_failures: u32,
        total_slashed: u256,
        unlock_at: u64,
    }

    #[storage]
    struct Storage {
        owner: ContractAddress,
        verifier: ContractAddress,
        token: ContractAddress,
        apy_bps: u256,
        lockup_secs: u64,
        min_stakes: LegacyMap<u8, u256>,
        stakes: LegacyMap<ContractAddress, StakeRecord>,
        total: u256,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        Staked: Staked,
        UnstakeRequested: UnstakeRequested,
        UnstakeCompleted: UnstakeCompleted,
        Slashed: Slashed,
        RewardsClaimed: RewardsClaimed,
        SuccessRecorded: SuccessRecorded,
    }

    #[derive(Drop, starknet::Event)]
    struct Staked {
        #[key]
        worker: ContractAddress,
        amount: u256,
        gpu_tier: u8,
        total_stake: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct UnstakeRequested {
        #[key]
        worker: ContractAddress,
        amount: u256,
        unlock_at: u64,
    }

    #[derive(Drop, starknet::Event)]
    struct UnstakeCompleted {
        #[key]
        worker: ContractAddress,
        amount: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct Slashed {
        #[key]
        worker: ContractAddress,
        amount: u256,
        reason: felt252,
        job_id: felt252,
    }

    #[derive(Drop, starknet::Event)]
    struct RewardsClaimed {
        #[key]
        worker: ContractAddress,
        amount: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct SuccessRecorded {
        #[key]
        worker: ContractAddress,
        job_id: felt252,
    }

    #[constructor]
    fn constructor(
        ref self: ContractState,
        owner: ContractAddress,
        verifier: ContractAddress,
        token: ContractAddress,
        apy_bps: u256,
        lockup_secs: u64,
        min_consumer: u256,
        min_workstation: u256,
        min_data_center: u256,
        min_enterprise: u256,
        min_frontier: u256,
    ) {
        self.owner.write(owner);
        self.verifier.write(verifier);
        self.token.write(token);
        self.apy_bps.write(apy_bps);
        self.lockup_secs.write(lockup_secs);
        self.min_stakes.write(0_u8, min_consumer);
        self.min_stakes.write(1_u8, min_workstation);
        self.min_stakes.write(2_u8, min_data_center);
        self.min_stakes.write(3_u8, min_enterprise);
        self.min_stakes.write(4_u8, min_frontier);
    }

    fn tier_index(tier: GpuTier) -> u8 {
        match tier {
            GpuTier::Consumer(()) => 0_u8,
            GpuTier::Workstation(()) => 1_u8,
            GpuTier::DataCenter(()) => 2_u8,
            GpuTier::Enterprise(()) => 3_u8,
            GpuTier::Frontier(()) => 4_u8,
        }
    }

    fn tier_of(index: u8) -> GpuTier {
        if index == 0_u8 {
            GpuTier::Consumer(())
        } else if index == 1_u8 {
            GpuTier::Workstation(())
        } else if index == 2_u8 {
            GpuTier::DataCenter(())
        } else if index == 3_u8 {
            GpuTier::Enterprise(())
        } else {
            GpuTier::Frontier(())
        }
    }

    // Rewards accrued since the last accrual: amount × apy_bps × elapsed / (10 000 × year).
    fn accrued_since(self: @ContractState, rec: StakeRecord, now: u64) -> u256 {
        if now <= rec.last_accrual_at {
            return 0;
        }
        let elapsed_secs: u64 = now - rec.last_accrual_at;
        let elapsed: u256 = u256 { low: elapsed_secs.into(), high: 0 };
        rec.amount * self.apy_bps.read() * elapsed / (BPS * SECONDS_PER_YEAR)
    }

    fn accrue(ref self: ContractState, worker: ContractAddress) -> StakeRecord {
        let mut rec = self.stakes.read(worker);
        let now = get_block_timestamp();
        rec.accrued = rec.accrued + accrued_since(@self, rec, now);
        rec.last_accrual_at = now;
        rec
    }

    fn eligible(self: @ContractState, rec: StakeRecord) -> bool {
        let free = rec.amount - rec.locked_amount;
        free > 0 && free >= self.min_stakes.read(rec.gpu_tier)
    }

    fn only_owner_or_verifier(self: @ContractState) {
        let caller = get_caller_address();
        assert(
            caller == self.owner.read() || caller == self.verifier.read(), 'only owner or verifier'
        );
    }

    #[external(v0)]
    impl ProverStakingImpl of super::IProverStaking<ContractState> {
        fn stake(ref self: ContractState, amount: u256, gpu_tier: GpuTier) {
            assert(amount > 0, 'amount is zero');
            let worker = get_caller_address();
            let mut rec = accrue(ref self, worker);
            let ok = IERC20Dispatcher { contract_address: self.token.read() }
                .transfer_from(worker, get_contract_address(), amount);
            assert(ok, 'token transfer failed');
            if rec.amount == 0 {
                rec.staked_at = get_block_timestamp();
            }
            rec.amount = rec.amount + amount;
            rec.gpu_tier = tier_index(gpu_tier);
            rec.is_active = eligible(@self, rec);
            self.stakes.write(worker, rec);
            self.total.write(self.total.read() + amount);
            self
                .emit(
                    Event::Staked(
                        Staked { worker, amount, gpu_tier: rec.gpu_tier, total_stake: rec.amount }
                    )
                );
        }

        fn request_unstake(ref self: ContractState, amount: u256) {
            let worker = get_caller_address();
            let mut rec = accrue(ref self, worker);
            assert(amount > 0, 'amount is zero');
            assert(rec.amount - rec.locked_amount >= amount, 'not enough free stake');
            rec.locked_amount = rec.locked_amount + amount;
            rec.unlock_at = get_block_timestamp() + self.lockup_secs.read();
            rec.is_active = eligible(@self, rec);
            self.stakes.write(worker, rec);
            self
                .emit(
                    Event::UnstakeRequested(
                        UnstakeRequested { worker, amount, unlock_at: rec.unlock_at }
                    )
                );
        }

        fn complete_unstake(ref self: ContractState) {
            let worker = get_caller_address();
            let mut rec = accrue(ref self, worker);
            let amount = rec.locked_amount;
            assert(amount > 0, 'nothing to unstake');
            assert(get_block_timestamp() >= rec.unlock_at, 'still locked');
            rec.amount = rec.amount - amount;
            rec.locked_amount = 0;
            rec.is_active = eligible(@self, rec);
            self.stakes.write(worker, rec);
            self.total.write(self.total.read() - amount);
            let ok = IERC20Dispatcher { contract_address: self.token.read() }
                .transfer(worker, amount);
            assert(ok, 'token transfer failed');
            self.emit(Event::UnstakeCompleted(UnstakeCompleted { worker, amount }));
        }

        fn claim_rewards(ref self: ContractState) -> u256 {
            let worker = get_caller_address();
            let mut rec = accrue(ref self, worker);
            let amount = rec.accrued;
            rec.accrued = 0;
            rec.last_claim_at = get_block_timestamp();
            self.stakes.write(worker, rec);
            if amount > 0 {
                let ok = IERC20Dispatcher { contract_address: self.token.read() }
                    .transfer(worker, amount);
                assert(ok, 'token transfer failed');
            }
            self.emit(Event::RewardsClaimed(RewardsClaimed { worker, amount }));
            amount
        }

        fn slash(
            ref self: ContractState, worker: ContractAddress, reason: felt252, job_id: felt252
        ) {
            only_owner_or_verifier(@self);
            let mut rec = accrue(ref self, worker);
            let amount = rec.amount * SLASH_BPS / BPS;
            rec.amount = rec.amount - amount;
            if rec.locked_amount > rec.amount {
                rec.locked_amount = rec.amount;
            }
            rec.total_slashed = rec.total_slashed + amount;
            rec.consecutive_failures = rec.consecutive_failures + 1;
            rec.is_active = eligible(@self, rec);
            self.stakes.write(worker, rec);
            self.total.write(self.total.read() - amount);
            self.emit(Event::Slashed(Slashed { worker, amount, reason, job_id }));
        }

        fn record_success(ref self: ContractState, worker: ContractAddress, job_id: felt252) {
            only_owner_or_verifier(@self);
            let mut rec = self.stakes.read(worker);
            rec.consecutive_failures = 0;
            self.stakes.write(worker, rec);
            self.emit(Event::SuccessRecorded(SuccessRecorded { worker, job_id }));
        }

        fn get_stake(self: @ContractState, worker: ContractAddress) -> WorkerStake {
            let rec = self.stakes.read(worker);
            let pending = rec.accrued + accrued_since(self, rec, get_block_timestamp());
            WorkerStake {
                amount: rec.amount,
                locked_amount: rec.locked_amount,
                staked_at: rec.staked_at,
                last_claim_at: rec.last_claim_at,
                gpu_tier: tier_of(rec.gpu_tier),
                is_active: rec.is_active,
                consecutive_failures: rec.consecutive_failures,
                total_slashed: rec.total_slashed,
                pending_rewards: pending,
            }
        }

        fn get_min_stake(self: @ContractState, tier: GpuTier) -> u256 {
            self.min_stakes.read(tier_index(tier))
        }

        fn is_eligible(self: @ContractState, worker: ContractAddress) -> bool {
            let rec = self.stakes.read(worker);
            rec.is_active && eligible(self, rec)
        }

        fn total_staked(self: @ContractState) -> u256 {
            self.total.read()
        }

        fn token(self: @ContractState) -> ContractAddress {
            self.token.read()
        }

        fn apy_bps(self: @ContractState) -> u256 {
            self.apy_bps.read()
        }

        fn lockup_secs(self: @ContractState) -> u64 {
            self.lockup_secs.read()
        }
    }
}
