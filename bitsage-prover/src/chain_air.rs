//! The `poseidon2-chain` AIR: one Poseidon2 permutation per row, rows linked by a LogUp relation
//! that telescopes from the seed state to the digest.
//!
//! # Columns (302 per row)
//! `is_active`, `step`, the 16 input elements, then two columns per S-box: `sq = v^2` and
//! `out = sq^2 · v`, where `v` is the S-box input (a linear form of earlier columns): 4 × 16
//! (first full rounds), 14 (partial rounds, element 0), 4 × 16 (last full rounds). The linear
//! layers are evaluated inside the constraints and the output state is a linear form of the last
//! 16 S-box outputs. Constraints have degree ≤ 3: stwo 2.3.0 commits the composition polynomial
//! at twice the trace size, so a component may not exceed `max_constraint_log_degree_bound =
//! log_rows + 1` (a single degree-5 `out = v^5` would need `+ 2`).
//!
//! # Binding the statement
//! Relation `ChainState(step, x_0..x_15)`. Each row adds `is_active / D(step, input)` and
//! subtracts `is_active / D(step + 1, output)`. Rows `0 .. length` are active with
//! `step = row`, so the sum telescopes to `1/D(0, s_0) − 1/D(length, digest)`, which the
//! verifier computes itself from `(seed, length, digest)` and passes as the claimed sum. Since
//! every active row advances `step` by exactly one and applies exactly one permutation, any
//! trace meeting that sum links `(0, s_0)` to `(length, digest)` through `length`
//! permutations. `is_active` is constrained boolean; padding rows (up to the next power of two,
//! at least 16) hold further permutations but contribute nothing.

use std::array;

use stwo::core::fields::m31::{BaseField, M31};
use stwo::core::fields::qm31::SecureField;
use stwo::core::fields::FieldExpOps;
use stwo::core::poly::circle::CanonicCoset;
use stwo::prover::backend::simd::column::BaseColumn;
use stwo::prover::backend::simd::m31::{PackedM31, LOG_N_LANES};
use stwo::prover::backend::simd::qm31::PackedSecureField;
use stwo::prover::backend::simd::SimdBackend;
use stwo::prover::backend::Column;
use stwo::prover::poly::circle::CircleEvaluation;
use stwo::prover::poly::BitReversedOrder;
use stwo_constraint_framework::{
    relation, EvalAtRow, FrameworkEval, LogupTraceGenerator, Relation, RelationEntry,
};

use crate::poseidon2::{self, State, HALF_FULL_ROUNDS, PARTIAL_ROUNDS, WIDTH};

/// Trace columns per row.
pub(crate) const N_COLUMNS: usize = 2 + WIDTH + 2 * (2 * HALF_FULL_ROUNDS * WIDTH + PARTIAL_ROUNDS);
/// Smallest trace (SIMD lanes).
pub(crate) const MIN_LOG_ROWS: u32 = LOG_N_LANES;
/// `max_constraint_log_degree_bound - log_rows` (constraints have degree ≤ 3).
pub(crate) const LOG_EXPAND: u32 = 1;

relation!(ChainState, 17);

/// log2 of the rows needed for a chain of `length` permutations.
pub(crate) fn log_rows(length: u32) -> u32 {
    let n = length.max(1).next_power_of_two();
    n.ilog2().max(MIN_LOG_ROWS)
}

/// The constraints of a chain of `2^log_rows` rows.
#[derive(Debug, Clone)]
pub(crate) struct ChainEval {
    /// log2 of the number of rows.
    pub log_rows: u32,
    /// The relation's interaction elements.
    pub relation: ChainState,
}

fn m4<F: Clone + std::ops::Add<Output = F>>(x: [F; 4]) -> [F; 4] {
    let [x0, x1, x2, x3] = x;
    let t0 = x0.clone() + x1.clone();
    let t1 = x2.clone() + x3.clone();
    let t2 = x1.clone() + x1 + t1.clone();
    let t3 = x3.clone() + x3 + t0.clone();
    let t1_2 = t1.clone() + t1;
    let t4 = t1_2.clone() + t1_2 + t3.clone();
    let t0_2 = t0.clone() + t0;
    let t5 = t0_2.clone() + t0_2 + t2.clone();
    let t6 = t3 + t5.clone();
    let t7 = t2 + t4.clone();
    [t6, t5, t7, t4]
}

/// `x ← circ(2·M4, M4, M4, M4)·x`, as additions.
fn external_layer<F: Clone + std::ops::Add<Output = F>>(x: &mut [F; WIDTH]) {
    let chunks: [[F; 4]; 4] = array::from_fn(|c| m4(array::from_fn(|j| x[4 * c + j].clone())));
    for j in 0..4 {
        let sum = chunks[0][j].clone()
            + chunks[1][j].clone()
            + chunks[2][j].clone()
            + chunks[3][j].clone();
        for c in 0..4 {
            x[4 * c + j] = chunks[c][j].clone() + sum.clone();
        }
    }
}

/// `x ← (J + diag(2^(i+1)))·x`.
fn internal_layer<F>(x: &mut [F; WIDTH])
where
    F: Clone + std::ops::Add<Output = F> + std::ops::Mul<BaseField, Output = F>,
{
    let mut sum = x[0].clone();
    for v in &x[1..] {
        sum = sum + v.clone();
    }
    for (i, v) in x.iter_mut().enumerate() {
        *v = v.clone() * M31::from_u32_unchecked(1 << (i + 1)) + sum.clone();
    }
}

/// The S-box as two degree-≤3 constraints over two fresh columns; returns the output column.
fn sbox<E: EvalAtRow>(eval: &mut E, v: E::F) -> E::F {
    let sq = eval.next_trace_mask();
    let out = eval.next_trace_mask();
    eval.add_constraint(sq.clone() - v.clone() * v.clone());
    eval.add_constraint(out.clone() - sq.clone() * sq * v);
    out
}

impl FrameworkEval for ChainEval {
    fn log_size(&self) -> u32 {
        self.log_rows
    }

    fn max_constraint_log_degree_bound(&self) -> u32 {
        self.log_rows + LOG_EXPAND
    }

    fn evaluate<E: EvalAtRow>(&self, mut eval: E) -> E {
        let rc = poseidon2::round_constants();
        let is_active = eval.next_trace_mask();
        let step = eval.next_trace_mask();
        let input: [E::F; WIDTH] = array::from_fn(|_| eval.next_trace_mask());
        eval.add_constraint(is_active.clone() * is_active.clone() - is_active.clone());

        let mut state = input.clone();
        external_layer(&mut state);
        let full_round = |eval: &mut E, state: &mut [E::F; WIDTH], constants: &[u32; WIDTH]| {
            for (x, &c) in state.iter_mut().zip(constants) {
                let mut v = x.clone();
                v += M31::from_u32_unchecked(c);
                *x = sbox(eval, v);
            }
            external_layer(state);
        };
        for constants in &rc.external[..HALF_FULL_ROUNDS] {
            full_round(&mut eval, &mut state, constants);
        }
        for &c in &rc.internal {
            let mut v = state[0].clone();
            v += M31::from_u32_unchecked(c);
            state[0] = sbox(&mut eval, v);
            internal_layer(&mut state);
        }
        for constants in &rc.external[HALF_FULL_ROUNDS..] {
            full_round(&mut eval, &mut state, constants);
        }

        let mut consumed = Vec::with_capacity(WIDTH + 1);
        consumed.push(step.clone());
        consumed.extend(input);
        let mut produced = Vec::with_capacity(WIDTH + 1);
        produced.push(step + E::F::from(M31::from_u32_unchecked(1)));
        produced.extend(state);
        eval.add_to_relation(RelationEntry::new(
            &self.relation,
            E::EF::from(is_active.clone()),
            &consumed,
        ));
        eval.add_to_relation(RelationEntry::new(
            &self.relation,
            -E::EF::from(is_active),
            &produced,
        ));
        eval.finalize_logup_in_pairs();
        eval
    }
}

/// The main trace plus what the interaction trace needs.
pub(crate) struct ChainTrace {
    /// The committed columns ([`N_COLUMNS`]).
    pub columns: Vec<BaseColumn>,
    /// Each row's output state (not committed; used for the LogUp fractions).
    pub outputs: Vec<BaseColumn>,
    /// `P^length(seed state)`.
    pub digest: State,
    /// log2 of the rows.
    pub log_rows: u32,
}

/// The S-box on a value, recording `(v^2, v^5)`.
fn sbox_recording(v: M31, rec: &mut Vec<M31>) -> M31 {
    let sq = v * v;
    let out = sq * sq * v;
    rec.push(sq);
    rec.push(out);
    out
}

/// One permutation on M31 values, recording the S-box columns (the row's columns after the
/// input) — the same arithmetic as the constraints.
fn permute_recording(input: &[M31; WIDTH], record: &mut Vec<M31>) -> [M31; WIDTH] {
    let rc = poseidon2::round_constants();
    let mut state = *input;
    external_layer(&mut state);
    let full_round = |state: &mut [M31; WIDTH], constants: &[u32; WIDTH], rec: &mut Vec<M31>| {
        for (x, &c) in state.iter_mut().zip(constants) {
            *x = sbox_recording(*x + M31::from_u32_unchecked(c), rec);
        }
        external_layer(state);
    };
    for constants in &rc.external[..HALF_FULL_ROUNDS] {
        full_round(&mut state, constants, record);
    }
    for &c in &rc.internal {
        state[0] = sbox_recording(state[0] + M31::from_u32_unchecked(c), record);
        internal_layer(&mut state);
    }
    for constants in &rc.external[HALF_FULL_ROUNDS..] {
        full_round(&mut state, constants, record);
    }
    state
}

/// Runs the chain and lays out its trace (`length ≥ 1`).
///
/// The chain itself is sequential: one pass computes every row's input state; the columns are
/// then filled in parallel (one permutation per row again, recording the S-box values), 16 rows
/// (one SIMD vector) at a time.
pub(crate) fn generate_trace(seed: u64, length: u32) -> ChainTrace {
    let log_rows = log_rows(length);
    let n_rows = 1usize << log_rows;
    let n_vec_rows = n_rows >> LOG_N_LANES;
    let mut states: Vec<[M31; WIDTH]> = Vec::with_capacity(n_rows + 1);
    let mut state = poseidon2::initial_state(seed).map(M31::from_u32_unchecked);
    let mut scratch = Vec::with_capacity(N_COLUMNS);
    states.push(state);
    for _ in 0..n_rows {
        scratch.clear();
        state = permute_recording(&state, &mut scratch);
        states.push(state);
    }
    let digest = states[length as usize].map(|m| m.0);

    let mut columns: Vec<BaseColumn> = (0..N_COLUMNS).map(|_| BaseColumn::zeros(n_rows)).collect();
    let mut outputs: Vec<BaseColumn> = (0..WIDTH).map(|_| BaseColumn::zeros(n_rows)).collect();
    let n_threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, n_vec_rows);
    let chunk = n_vec_rows.div_ceil(n_threads);
    // Per thread: its slice of every committed column and of every output column.
    type Slices<'a> = Vec<&'a mut [PackedM31]>;
    let mut jobs: Vec<(Slices<'_>, Slices<'_>)> =
        (0..n_threads).map(|_| (Vec::new(), Vec::new())).collect();
    for col in columns.iter_mut() {
        for (t, part) in col.data.chunks_mut(chunk).enumerate() {
            jobs[t].0.push(part);
        }
    }
    for col in outputs.iter_mut() {
        for (t, part) in col.data.chunks_mut(chunk).enumerate() {
            jobs[t].1.push(part);
        }
    }
    let states = &states;
    std::thread::scope(|scope| {
        for (t, (mut cols, mut outs)) in jobs.into_iter().enumerate() {
            scope.spawn(move || {
                let mut rows: Vec<Vec<M31>> = (0..1 << LOG_N_LANES)
                    .map(|_| Vec::with_capacity(N_COLUMNS))
                    .collect();
                let local_vec_rows = cols.first().map_or(0, |c| c.len());
                for v in 0..local_vec_rows {
                    let first_row = (t * chunk + v) << LOG_N_LANES;
                    for (lane, record) in rows.iter_mut().enumerate() {
                        let row = first_row + lane;
                        record.clear();
                        record.push(M31::from_u32_unchecked(u32::from(row < length as usize)));
                        record.push(M31::from_u32_unchecked(row as u32));
                        record.extend_from_slice(&states[row]);
                        permute_recording(&states[row], record);
                    }
                    for (c, col) in cols.iter_mut().enumerate() {
                        col[v] = PackedM31::from_array(array::from_fn(|lane| rows[lane][c]));
                    }
                    for (i, col) in outs.iter_mut().enumerate() {
                        col[v] = PackedM31::from_array(array::from_fn(|lane| {
                            states[first_row + lane + 1][i]
                        }));
                    }
                }
            });
        }
    });
    ChainTrace {
        columns,
        outputs,
        digest,
        log_rows,
    }
}

/// Columns as circle evaluations, ready to commit.
pub(crate) fn into_evaluations(
    columns: Vec<BaseColumn>,
    log_rows: u32,
) -> Vec<CircleEvaluation<SimdBackend, BaseField, BitReversedOrder>> {
    let domain = CanonicCoset::new(log_rows).circle_domain();
    columns
        .into_iter()
        .map(|c| CircleEvaluation::new(domain, c))
        .collect()
}

impl ChainTrace {
    /// Moves the committed columns out, keeping only those the interaction trace reads
    /// (`is_active`, `step`, the inputs).
    pub(crate) fn take_columns(&mut self) -> Vec<BaseColumn> {
        let keep = self.columns[..2 + WIDTH].to_vec();
        std::mem::replace(&mut self.columns, keep)
    }
}

/// The LogUp interaction trace and its total sum.
pub(crate) fn generate_interaction(
    trace: &ChainTrace,
    relation: &ChainState,
) -> (
    Vec<CircleEvaluation<SimdBackend, BaseField, BitReversedOrder>>,
    SecureField,
) {
    let mut gen = LogupTraceGenerator::new(trace.log_rows);
    let mut col = gen.new_col();
    let n_vec_rows = 1usize << (trace.log_rows - LOG_N_LANES);
    let one = PackedM31::broadcast(M31::from_u32_unchecked(1));
    for vec_row in 0..n_vec_rows {
        let is_active: PackedM31 = trace.columns[0].data[vec_row];
        let step: PackedM31 = trace.columns[1].data[vec_row];
        let mut consumed = Vec::with_capacity(WIDTH + 1);
        consumed.push(step);
        consumed.extend(trace.columns[2..2 + WIDTH].iter().map(|c| c.data[vec_row]));
        let mut produced = Vec::with_capacity(WIDTH + 1);
        produced.push(step + one);
        produced.extend(trace.outputs.iter().map(|c| c.data[vec_row]));
        let d_in: PackedSecureField = relation.combine(&consumed);
        let d_out: PackedSecureField = relation.combine(&produced);
        let mult = PackedSecureField::from(is_active);
        // is_active/d_in − is_active/d_out as one fraction.
        col.write_frac(vec_row, mult * (d_out - d_in), d_in * d_out);
    }
    col.finalize_col();
    gen.finalize_last()
}

/// The LogUp sum a valid trace has: `1/D(0, s_0) − 1/D(length, digest)`.
pub(crate) fn claimed_sum(
    relation: &ChainState,
    seed: u64,
    length: u32,
    digest: &State,
) -> SecureField {
    let mut start = vec![M31::from_u32_unchecked(0)];
    start.extend(poseidon2::initial_state(seed).map(M31::from_u32_unchecked));
    let mut end = vec![M31::from_u32_unchecked(length)];
    end.extend(digest.map(M31::from_u32_unchecked));
    let d_start: SecureField = relation.combine(&start);
    let d_end: SecureField = relation.combine(&end);
    d_start.inverse() - d_end.inverse()
}

#[cfg(test)]
mod tests {
    use stwo::core::pcs::TreeVec;
    use stwo_constraint_framework::assert_constraints_on_trace;

    use super::*;

    #[test]
    fn trace_satisfies_constraints() {
        let mut t = generate_trace(3, 20);
        let relation = ChainState::dummy();
        let (inter, sum) = {
            let cols = t.columns.clone();
            let r = generate_interaction(&t, &relation);
            t.columns = cols;
            r
        };
        let main: Vec<Vec<M31>> = t.columns.iter().map(|c| c.to_cpu()).collect();
        let inter: Vec<Vec<M31>> = inter.iter().map(|c| c.values.to_cpu()).collect();
        let evals = TreeVec::new(vec![vec![], main.iter().collect(), inter.iter().collect()]);
        let eval = ChainEval {
            log_rows: t.log_rows,
            relation,
        };
        assert_constraints_on_trace(
            &evals,
            t.log_rows,
            |e| {
                eval.evaluate(e);
            },
            sum,
        );
    }
}
