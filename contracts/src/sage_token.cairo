// SageToken: the SAGE ERC20 (18 decimals) used by BitSage's local deployments.
// Cairo 2.1 dialect (compiled by `scripts/build-contracts.sh` with starknet-compile 2.1.0).

use starknet::ContractAddress;

#[starknet::interface]
trait ISageToken<TContractState> {
    fn name(self: @TContractState) -> felt252;
    fn symbol(self: @TContractState) -> felt252;
    fn decimals(self: @TContractState) -> u8;
    fn total_supply(self: @TContractState) -> u256;
    fn balance_of(self: @TContractState, account: ContractAddress) -> u256;
    fn allowance(self: @TContractState, owner: ContractAddress, spender: ContractAddress) -> u256;
    fn owner(self: @TContractState) -> ContractAddress;
    fn transfer(ref self: TContractState, recipient: ContractAddress, amount: u256) -> bool;
    fn transfer_from(
        ref self: TContractState, sender: ContractAddress, recipient: ContractAddress, amount: u256
    ) -> bool;
    fn approve(ref self: TContractState, spender: ContractAddress, amount: u256) -> bool;
    fn mint(ref self: TContractState, recipient: ContractAddress, amount: u256);
}

#[starknet::contract]
mod SageToken {
    use starknet::{ContractAddress, get_caller_address};
    use zeroable::Zeroable;

    #[storage]
    struct Storage {
        owner: ContractAddress,
        supply: u256,
        balances: LegacyMap<ContractAddress, u256>,
        allowances: LegacyMap<(ContractAddress, ContractAddress), u256>,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        Transfer: Transfer,
        Approval: Approval,
    }

    #[derive(Drop, starknet::Event)]
    struct Transfer {
        #[key]
        from: ContractAddress,
        #[key]
        to: ContractAddress,
        value: u256,
    }

    #[derive(Drop, starknet::Event)]
    struct Approval {
        #[key]
        owner: ContractAddress,
        #[key]
        spender: ContractAddress,
        value: u256,
    }

    #[constructor]
    fn constructor(ref self: ContractState, owner: ContractAddress) {
        assert(!owner.is_zero(), 'owner is zero');
        self.owner.write(owner);
    }

    #[external(v0)]
    impl SageTokenImpl of super::ISageToken<ContractState> {
        fn name(self: @ContractState) -> felt252 {
            'BitSage Token'
        }

        fn symbol(self: @ContractState) -> felt252 {
            'SAGE'
        }

        fn decimals(self: @ContractState) -> u8 {
            18_u8
        }

        fn total_supply(self: @ContractState) -> u256 {
            self.supply.read()
        }

        fn balance_of(self: @ContractState, account: ContractAddress) -> u256 {
            self.balances.read(account)
        }

        fn allowance(
            self: @ContractState, owner: ContractAddress, spender: ContractAddress
        ) -> u256 {
            self.allowances.read((owner, spender))
        }

        fn owner(self: @ContractState) -> ContractAddress {
            self.owner.read()
        }

        fn transfer(ref self: ContractState, recipient: ContractAddress, amount: u256) -> bool {
            let sender = get_caller_address();
            move_tokens(ref self, sender, recipient, amount);
            true
        }

        fn transfer_from(
            ref self: ContractState,
            sender: ContractAddress,
            recipient: ContractAddress,
            amount: u256
        ) -> bool {
            let spender = get_caller_address();
            let allowed = self.allowances.read((sender, spender));
            assert(allowed >= amount, 'allowance too low');
            self.allowances.write((sender, spender), allowed - amount);
            move_tokens(ref self, sender, recipient, amount);
            true
        }

        fn approve(ref self: ContractState, spender: ContractAddress, amount: u256) -> bool {
            let owner = get_caller_address();
            assert(!spender.is_zero(), 'approve to zero');
            self.allowances.write((owner, spender), amount);
            self.emit(Event::Approval(Approval { owner, spender, value: amount }));
            true
        }

        fn mint(ref self: ContractState, recipient: ContractAddress, amount: u256) {
            assert(get_caller_address() == self.owner.read(), 'only owner');
            assert(!recipient.is_zero(), 'mint to zero');
            self.supply.write(self.supply.read() + amount);
            self.balances.write(recipient, self.balances.read(recipient) + amount);
            let zero: ContractAddress = Zeroable::zero();
            self.emit(Event::Transfer(Transfer { from: zero, to: recipient, value: amount }));
        }
    }

    fn move_tokens(
        ref self: ContractState, from: ContractAddress, to: ContractAddress, amount: u256
    ) {
        assert(!to.is_zero(), 'transfer to zero');
        let balance = self.balances.read(from);
        assert(balance >= amount, 'balance too low');
        self.balances.write(from, balance - amount);
        self.balances.write(to, self.balances.read(to) + amount);
        self.emit(Event::Transfer(Transfer { from, to, value: amount }));
    }
}
