// JobEscrow: clients deposit SAGE to pay for jobs; the deployment's settler pays workers and
// the network fee out of it, one epoch at a time, each epoch exactly once, anchoring the
// Merkle root of the epoch's receipt hashes. Withdrawals wait `withdraw_delay_secs`, so money
// a coordinator reserved for accepted jobs cannot leave before the jobs settle. The
// deployment's receipt-signing key (ed25519, as a u256) is published here, so anyone can pin
// it from the chain. Cairo 2.1 dialect (compiled by `scripts/build-contracts.sh`).

use starknet::ContractAddress;

#[derive(Copy, Drop, Serde)]
struct Debit {
    payer: ContractAddress,
    amount: u256,
}

#[derive(Copy, Drop, Serde)]
struct Payout {
    worker: ContractAddress,
    amount: u256,
}

#[derive(Copy, Drop, Serde)]
struct EscrowAccount {
    // Deposited, less withdrawn and settled.
    balance: u256,
    // Requested for withdrawal (still in `balance`, no longer spendable for new jobs).
    pending_withdrawal: u256,
    withdraw_at: u64,
    // Paid out for this account's jobs so far.
    settled: u256,
}

#[derive(Copy, Drop, Serde)]
struct EpochView {
    receipts_root: felt252,
    jobs: u32,
    paid: u256,
    fee: u256,
    settled_at: u64,
    block: u64,
}

#[starknet::interface]
trait IERC20<TContractState> {
    fn transfer(ref self: TContractState, recipient: ContractAddress, amount: u256) -> bool;
    fn transfer_from(
        ref self: TContractState, sender: ContractAddress, recipient: ContractAddress, amount: u256
    ) -> bool;
}

#[starknet::interface]
trait IJobEscrow<TContractState> {
    fn deposit(ref self: TContractState, amount: u256);
    fn request_withdrawal(ref self: TContractState, amount: u256);
    fn withdraw(ref self: TContractState);
    fn settle_epoch(
        ref self: TContractState,
        epoch_id: u64,
        receipts_root: felt252,
        jobs: u32,
        debits: Array<Debit>,
        payouts: Array<Payout>,
        fee: u256
    );
    fn get_account(self: @TContractState, account: ContractAddress) -> EscrowAccount;
    fn get_epoch(self: @TContractState, epoch_id: u64) -> EpochView;
    fn is_settled(self: @TContractState, epoch_id: u64) -> bool;
    fn deployment_key(self: @TContractState) -> u256;
    fn set_deployment_key(ref self: TContractState, key: u256);
    fn settler(self: @TContractState) -> ContractAddress;
    fn set_settler(ref self: TContractState, settler: ContractAddress);
    fn withdraw_delay_secs(self: @TContractState) -> u64;
}

#[starknet::contract]
mod JobEscrow {
    use starknet::{
        ContractAddress, get_caller_address, get_block_timestamp, get_contract_address,
        get_block_info
    };
    use box::BoxTrait;
    use array::ArrayTrait;
    use super::{
        Debit, Payout, EscrowAccount, EpochView, IERC20Dispatcher, IERC20DispatcherTrait
    };

    #[derive(Copy, Drop, Serde, starknet::Store)]
    struct AccountRecord {
        balance: u256,
        pending_withdrawal: u256,
        withdraw_at: u64,
        settled: u256,
    }

    #[derive(Copy, Drop, Serde, starknet::Store)]
    struct EpochRecord {
        receipts_root: felt252,
        jobs: u32,
        paid: u256,
        fee: u256,
        settled_at: u64,
        block: u64,
        seen: bool,
    }

    #[storage]
    struct Storage {
        owner: ContractAddress,
        settler: ContractAddress,
        token: ContractAddress,
        fee_recipient: ContractAddress,
        withdraw_delay: u64,
        deployment_key: u256,
        accounts: LegacyMap<ContractAddress, AccountRecord>,
        epochs: LegacyMap<u64, EpochRecord>,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        Deposited: Deposited,
        WithdrawalRequested: WithdrawalRequested,
        Withdrawn: Withdrawn,
        EpochSettled: EpochSettled,
        WorkerPaid: WorkerPaid,
        DeploymentKeySet: DeploymentKeySet,
    }

    #[derive(Drop, starknet::Event)]
    struct Deposited {
        #[key]
        account: ContractAddress,
        amount: u256,
        balance: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct WithdrawalRequested {
        #[key]
        account: ContractAddress,
        amount: u256,
        withdraw_at: u64,
    }

    #[derive(Drop, starknet::Event)]
    struct Withdrawn {
        #[key]
        account: ContractAddress,
        amount: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct EpochSettled {
        #[key]
        epoch_id: u64,
        receipts_root: felt252,
        jobs: u32,
        paid: u256,
        fee: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct WorkerPaid {
        #[key]
        worker: ContractAddress,
        epoch_id: u64,
        amount: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct DeploymentKeySet {
        key: u256,
    }

    #[constructor]
    fn constructor(
        ref self: ContractState,
        owner: ContractAddress,
        settler: ContractAddress,
        token: ContractAddress,
        fee_recipient: ContractAddress,
        withdraw_delay_secs: u64,
        deployment_key: u256,
    ) {
        self.owner.write(owner);
        self.settler.write(settler);
        self.token.write(token);
        self.fee_recipient.write(fee_recipient);
        self.withdraw_delay.write(withdraw_delay_secs);
        self.deployment_key.write(deployment_key);
    }

    fn only_owner(self: @ContractState) {
        assert(get_caller_address() == self.owner.read(), 'only owner');
    }

    fn pay(self: @ContractState, to: ContractAddress, amount: u256) {
        if amount > 0 {
            let ok = IERC20Dispatcher { contract_address: self.token.read() }.transfer(to, amount);
            assert(ok, 'token transfer failed');
        }
    }

    #[external(v0)]
    impl JobEscrowImpl of super::IJobEscrow<ContractState> {
        fn deposit(ref self: ContractState, amount: u256) {
            assert(amount > 0, 'amount is zero');
            let account = get_caller_address();
            let ok = IERC20Dispatcher { contract_address: self.token.read() }
                .transfer_from(account, get_contract_address(), amount);
            assert(ok, 'token transfer failed');
            let mut rec = self.accounts.read(account);
            rec.balance = rec.balance + amount;
            self.accounts.write(account, rec);
            self.emit(Event::Deposited(Deposited { account, amount, balance: rec.balance }));
        }

        fn request_withdrawal(ref self: ContractState, amount: u256) {
            let account = get_caller_address();
            let mut rec = self.accounts.read(account);
            assert(amount > 0, 'amount is zero');
            assert(rec.balance >= rec.pending_withdrawal + amount, 'not enough balance');
            rec.pending_withdrawal = rec.pending_withdrawal + amount;
            rec.withdraw_at = get_block_timestamp() + self.withdraw_delay.read();
            self.accounts.write(account, rec);
            self
                .emit(
                    Event::WithdrawalRequested(
                        WithdrawalRequested { account, amount, withdraw_at: rec.withdraw_at }
                    )
                );
        }

        fn withdraw(ref self: ContractState) {
            let account = get_caller_address();
            let mut rec = self.accounts.read(account);
            assert(rec.pending_withdrawal > 0, 'nothing to withdraw');
            assert(get_block_timestamp() >= rec.withdraw_at, 'withdrawal still delayed');
            // Settlements since the request may have spent part of it.
            let amount = if rec.pending_withdrawal > rec.balance {
                rec.balance
            } else {
                rec.pending_withdrawal
            };
            rec.balance = rec.balance - amount;
            rec.pending_withdrawal = 0;
            self.accounts.write(account, rec);
            pay(@self, account, amount);
            self.emit(Event::Withdrawn(Withdrawn { account, amount }));
        }

        fn settle_epoch(
            ref self: ContractState,
            epoch_id: u64,
            receipts_root: felt252,
            jobs: u32,
            debits: Array<Debit>,
            payouts: Array<Payout>,
            fee: u256
        ) {
            assert(get_caller_address() == self.settler.read(), 'only settler');
            let mut epoch = self.epochs.read(epoch_id);
            assert(!epoch.seen, 'epoch already settled');
            let mut debited: u256 = 0;
            let mut debits = debits;
            loop {
                match debits.pop_front() {
                    Option::Some(d) => {
                        let mut rec = self.accounts.read(d.payer);
                        assert(rec.balance >= d.amount, 'payer escrow too low');
                        rec.balance = rec.balance - d.amount;
                        rec.settled = rec.settled + d.amount;
                        self.accounts.write(d.payer, rec);
                        debited = debited + d.amount;
                    },
                    Option::None => {
                        break;
                    },
                };
            };
            let mut paid: u256 = 0;
            let mut payouts = payouts;
            loop {
                match payouts.pop_front() {
                    Option::Some(p) => {
                        pay(@self, p.worker, p.amount);
                        paid = paid + p.amount;
                        self
                            .emit(
                                Event::WorkerPaid(
                                    WorkerPaid { worker: p.worker, epoch_id, amount: p.amount }
                                )
                            );
                    },
                    Option::None => {
                        break;
                    },
                };
            };
            assert(debited == paid + fee, 'debits != payouts + fee');
            pay(@self, self.fee_recipient.read(), fee);
            epoch.receipts_root = receipts_root;
            epoch.jobs = jobs;
            epoch.paid = paid;
            epoch.fee = fee;
            epoch.settled_at = get_block_timestamp();
            epoch.block = get_block_info().unbox().block_number;
            epoch.seen = true;
            self.epochs.write(epoch_id, epoch);
            self
                .emit(
                    Event::EpochSettled(EpochSettled { epoch_id, receipts_root, jobs, paid, fee })
                );
        }

        fn get_account(self: @ContractState, account: ContractAddress) -> EscrowAccount {
            let rec = self.accounts.read(account);
            EscrowAccount {
                balance: rec.balance,
                pending_withdrawal: rec.pending_withdrawal,
                withdraw_at: rec.withdraw_at,
                settled: rec.settled,
            }
        }

        fn get_epoch(self: @ContractState, epoch_id: u64) -> EpochView {
            let e = self.epochs.read(epoch_id);
            EpochView {
                receipts_root: e.receipts_root,
                jobs: e.jobs,
                paid: e.paid,
                fee: e.fee,
                settled_at: e.settled_at,
                block: e.block,
            }
        }

        fn is_settled(self: @ContractState, epoch_id: u64) -> bool {
            self.epochs.read(epoch_id).seen
        }

        fn deployment_key(self: @ContractState) -> u256 {
            self.deployment_key.read()
        }

        fn set_deployment_key(ref self: ContractState, key: u256) {
            only_owner(@self);
            self.deployment_key.write(key);
            self.emit(Event::DeploymentKeySet(DeploymentKeySet { key }));
        }

        fn settler(self: @ContractState) -> ContractAddress {
            self.settler.read()
        }

        fn set_settler(ref self: ContractState, settler: ContractAddress) {
            only_owner(@self);
            self.settler.write(settler);
        }

        fn withdraw_delay_secs(self: @ContractState) -> u64 {
            self.withdraw_delay.read()
        }
    }
}
