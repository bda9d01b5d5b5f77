//! The Poseidon2 permutation over M31 (state width 16) used by the `poseidon2-chain` job, in
//! plain Rust: the reference the AIR is tested against.
//!
//! # The instance
//! - Field: M31 (`p = 2^31 - 1`); state width `t = 16`; S-box `x^5` (gcd(5, p - 1) = 1).
//! - Rounds: `R_F = 8` full rounds (4 before, 4 after) and `R_P = 14` partial rounds, the round
//!   numbers of the Poseidon2 paper for this field, width and degree.
//! - External layer `M_E = circ(2·M4, M4, M4, M4)` with the paper's
//!   `M4 = [[5,7,1,3],[4,6,1,1],[1,3,5,7],[1,1,4,6]]`; applied once before the first round.
//! - Internal layer `M_I = J + diag(d)` (`J` the all-ones matrix), `d_i = 2^(i+1)`, i.e.
//!   `x_i ← Σx + 2^(i+1)·x_i`; invertible over M31 (checked by a test).
//! - Round order: `x ← M_E·x`; 4 × (add 16 constants, S-box on all, `M_E`); 14 × (add a
//!   constant to `x_0`, S-box on `x_0`, `M_I`); 4 × (add 16 constants, S-box on all, `M_E`).
//!
//! This is a BitSage workload, not a standardised hash: digests are not interchangeable with
//! other Poseidon2-M31 instances (their internal diagonals and constants differ).
//!
//! # Round constants (nothing up the sleeve)
//! [`round_constants`] expands the ASCII domain string [`ROUND_CONSTANTS_DOMAIN`] with
//! [`expand_m31`]: block `c = 0, 1, 2, …` is `BLAKE2s-256(domain ‖ c as u32 little-endian)`; each
//! block is read as eight little-endian u32 words, the top bit of each word is cleared, and a
//! word equal to `p` is skipped (rejection sampling, so every element is uniform in M31). The
//! first 128 elements are the external constants (round 0 … 7, 16 each, in state order), the
//! next 14 the internal ones.
//!
//! # Seed → initial state
//! [`initial_state`] is the first 16 elements of [`expand_m31`] over the domain
//! [`SEED_DOMAIN`] followed by the seed as 8 little-endian bytes.

use std::sync::OnceLock;

use blake2::{Blake2s256, Digest};

/// The M31 modulus.
pub const P: u32 = (1 << 31) - 1;
/// State width.
pub const WIDTH: usize = 16;
/// Full rounds before and after the partial rounds (each).
pub const HALF_FULL_ROUNDS: usize = 4;
/// Partial rounds.
pub const PARTIAL_ROUNDS: usize = 14;
/// Domain string of the round constants.
pub const ROUND_CONSTANTS_DOMAIN: &str = "bitsage/poseidon2-m31-w16/round-constants/v1";
/// Domain string of the seed expansion.
pub const SEED_DOMAIN: &str = "bitsage/poseidon2-chain/seed/v1";

/// A Poseidon2 state: 16 M31 elements, each below [`P`].
pub type State = [u32; WIDTH];

/// The round constants of the permutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundConstants {
    /// Constants of the 8 full rounds (the first 4 run before the partial rounds).
    pub external: [[u32; WIDTH]; 2 * HALF_FULL_ROUNDS],
    /// Constants of the 14 partial rounds (added to `x_0`).
    pub internal: [u32; PARTIAL_ROUNDS],
}

/// Expands `domain ‖ input` into `n` uniform M31 elements (see the module docs).
pub fn expand_m31(domain: &str, input: &[u8], n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    let mut counter: u32 = 0;
    while out.len() < n {
        let mut h = Blake2s256::new();
        h.update(domain.as_bytes());
        h.update(input);
        h.update(counter.to_le_bytes());
        let block = h.finalize();
        for word in block.chunks_exact(4) {
            let v = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) & 0x7fff_ffff;
            if v != P && out.len() < n {
                out.push(v);
            }
        }
        counter = counter.wrapping_add(1);
    }
    out
}

/// The permutation's round constants (computed once).
pub fn round_constants() -> &'static RoundConstants {
    static RC: OnceLock<RoundConstants> = OnceLock::new();
    RC.get_or_init(|| {
        let n_ext = 2 * HALF_FULL_ROUNDS * WIDTH;
        let all = expand_m31(ROUND_CONSTANTS_DOMAIN, &[], n_ext + PARTIAL_ROUNDS);
        let mut external = [[0u32; WIDTH]; 2 * HALF_FULL_ROUNDS];
        for (r, round) in external.iter_mut().enumerate() {
            round.copy_from_slice(&all[r * WIDTH..(r + 1) * WIDTH]);
        }
        let mut internal = [0u32; PARTIAL_ROUNDS];
        internal.copy_from_slice(&all[n_ext..]);
        RoundConstants { external, internal }
    })
}

/// The chain's initial state for `seed`.
pub fn initial_state(seed: u64) -> State {
    let v = expand_m31(SEED_DOMAIN, &seed.to_le_bytes(), WIDTH);
    let mut s = [0u32; WIDTH];
    s.copy_from_slice(&v);
    s
}

fn add(a: u32, b: u32) -> u32 {
    ((a as u64 + b as u64) % P as u64) as u32
}

fn mul(a: u32, b: u32) -> u32 {
    ((a as u64 * b as u64) % P as u64) as u32
}

fn pow5(x: u32) -> u32 {
    let x2 = mul(x, x);
    mul(mul(x2, x2), x)
}

const M4: [[u32; 4]; 4] = [[5, 7, 1, 3], [4, 6, 1, 1], [1, 3, 5, 7], [1, 1, 4, 6]];

/// The external matrix `circ(2·M4, M4, M4, M4)`, dense.
pub fn external_matrix() -> [[u32; WIDTH]; WIDTH] {
    let mut m = [[0u32; WIDTH]; WIDTH];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let factor = if i / 4 == j / 4 { 2 } else { 1 };
            *cell = factor * M4[i % 4][j % 4];
        }
    }
    m
}

/// The internal matrix `J + diag(2^(i+1))`, dense.
pub fn internal_matrix() -> [[u32; WIDTH]; WIDTH] {
    let mut m = [[1u32; WIDTH]; WIDTH];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = 1 + (1u32 << (i + 1));
    }
    m
}

fn mat_vec(m: &[[u32; WIDTH]; WIDTH], x: &State) -> State {
    let mut out = [0u32; WIDTH];
    for (o, row) in out.iter_mut().zip(m) {
        *o = row
            .iter()
            .zip(x)
            .fold(0, |acc, (&a, &b)| add(acc, mul(a, b)));
    }
    out
}

/// Applies the permutation to `state` (elements must be below [`P`]).
pub fn permute(state: &mut State) {
    let rc = round_constants();
    let me = external_matrix();
    let mi = internal_matrix();
    *state = mat_vec(&me, state);
    let full_round = |state: &mut State, constants: &[u32; WIDTH]| {
        for (x, c) in state.iter_mut().zip(constants) {
            *x = pow5(add(*x, *c));
        }
        *state = mat_vec(&me, state);
    };
    for constants in &rc.external[..HALF_FULL_ROUNDS] {
        full_round(state, constants);
    }
    for &c in &rc.internal {
        state[0] = pow5(add(state[0], c));
        *state = mat_vec(&mi, state);
    }
    for constants in &rc.external[HALF_FULL_ROUNDS..] {
        full_round(state, constants);
    }
}

/// `P^length(initial_state(seed))`: the digest a `poseidon2-chain { seed, length }` job states.
pub fn chain_digest(seed: u64, length: u32) -> State {
    let mut s = initial_state(seed);
    for _ in 0..length {
        permute(&mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(x: u32) -> u32 {
        // Fermat: x^(p-2).
        let mut result = 1u32;
        let mut base = x;
        let mut e = P - 2;
        while e > 0 {
            if e & 1 == 1 {
                result = mul(result, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        result
    }

    #[test]
    fn internal_matrix_is_invertible() {
        // det(J + D) = prod(d) · (1 + Σ 1/d_i).
        let d: Vec<u32> = (0..WIDTH).map(|i| 1u32 << (i + 1)).collect();
        let prod = d.iter().fold(1, |a, &x| mul(a, x));
        let s = d.iter().fold(1, |a, &x| add(a, inv(x)));
        assert_ne!(mul(prod, s), 0);
    }

    #[test]
    fn constants_are_reduced_and_stable() {
        let rc = round_constants();
        assert!(rc.external.iter().flatten().all(|&c| c < P));
        assert!(rc.internal.iter().all(|&c| c < P));
        assert_eq!(rc, round_constants());
        assert_ne!(initial_state(1), initial_state(2));
        assert!(initial_state(0).iter().all(|&c| c < P));
    }

    #[test]
    fn permutation_is_not_trivial() {
        let mut s = [0u32; WIDTH];
        permute(&mut s);
        assert_ne!(s, [0u32; WIDTH]);
        assert!(s.iter().all(|&c| c < P));
        assert_eq!(chain_digest(5, 0), initial_state(5));
        let mut t = initial_state(5);
        permute(&mut t);
        permute(&mut t);
        assert_eq!(chain_digest(5, 2), t);
    }
}
