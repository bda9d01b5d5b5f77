//! The `wide-fibonacci` calibration AIR: one long sequence `x_{n+2} = x_n^2 + x_{n+1}^2` over
//! M31 starting at `(a, b)`, laid out `columns` values per row over `2^log_rows` rows; each row
//! starts with the last two values of the previous one.
//!
//! # Columns (`columns + 1` per row)
//! `step`, then `x_0 .. x_{columns-1}` with the degree-2 constraints
//! `x_{j+2} = x_j^2 + x_{j+1}^2`. Cost is dominated by the `columns × 2^log_rows` cells, which is
//! what this job calibrates.
//!
//! # Binding the statement
//! Relation `FibPair(step, first, second)`: each row adds `1/D(step, x_0, x_1)` and subtracts
//! `1/D(step + 1, x_{c-2}, x_{c-1})`; the sum telescopes to
//! `1/D(0, a, b) − 1/D(2^log_rows, y, z)` where `(y, z)` is the public final pair (`z` is the
//! sequence's last value). The verifier computes that sum from the job's `(a, b)` and the
//! envelope's `(y, z)`.

use std::array;

use stwo::core::fields::m31::{BaseField, M31};
use stwo::core::fields::qm31::SecureField;
use stwo::core::fields::FieldExpOps;
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

/// `max_constraint_log_degree_bound - log_rows` (LogUp constraints have degree 3).
pub(crate) const LOG_EXPAND: u32 = 1;

relation!(FibPair, 3);

/// The constraints.
#[derive(Debug, Clone)]
pub(crate) struct FibEval {
    /// log2 of the number of rows.
    pub log_rows: u32,
    /// Sequence values per row (≥ 2).
    pub columns: usize,
    /// The relation's interaction elements.
    pub relation: FibPair,
}

impl FrameworkEval for FibEval {
    fn log_size(&self) -> u32 {
        self.log_rows
    }

    fn max_constraint_log_degree_bound(&self) -> u32 {
        self.log_rows + LOG_EXPAND
    }

    fn evaluate<E: EvalAtRow>(&self, mut eval: E) -> E {
        let step = eval.next_trace_mask();
        let first = eval.next_trace_mask();
        let second = eval.next_trace_mask();
        let (mut x, mut y) = (first.clone(), second.clone());
        for _ in 2..self.columns {
            let z = eval.next_trace_mask();
            eval.add_constraint(z.clone() - (x.clone() * x + y.clone() * y.clone()));
            x = y;
            y = z;
        }
        eval.add_to_relation(RelationEntry::new(
            &self.relation,
            E::EF::from(SecureField::from_u32_unchecked(1, 0, 0, 0)),
            &[step.clone(), first, second],
        ));
        eval.add_to_relation(RelationEntry::new(
            &self.relation,
            -E::EF::from(SecureField::from_u32_unchecked(1, 0, 0, 0)),
            &[step + E::F::from(M31::from_u32_unchecked(1)), x, y],
        ));
        eval.finalize_logup_in_pairs();
        eval
    }
}

/// The main trace.
pub(crate) struct FibTrace {
    /// `step` then the sequence columns.
    pub columns: Vec<BaseColumn>,
    /// The final pair `(y, z)`.
    pub last_pair: [u32; 2],
    /// log2 of the rows.
    pub log_rows: u32,
}

/// The plain-Rust reference: the final pair of the sequence.
pub fn reference_last_pair(columns: u32, log_rows: u32, a: u32, b: u32) -> [u32; 2] {
    let p = u64::from(crate::poseidon2::P);
    let (mut x, mut y) = (u64::from(a), u64::from(b));
    let steps = (u64::from(columns) - 2) << log_rows;
    for _ in 0..steps {
        let z = (x * x % p + y * y % p) % p;
        x = y;
        y = z;
    }
    [x as u32, y as u32]
}

/// Computes the sequence and lays out the trace, 16 rows (one SIMD vector) at a time.
pub(crate) fn generate_trace(columns: usize, log_rows: u32, a: u32, b: u32) -> FibTrace {
    let n_rows = 1usize << log_rows;
    let mut cols: Vec<BaseColumn> = (0..=columns).map(|_| BaseColumn::zeros(n_rows)).collect();
    let (mut x, mut y) = (M31::from_u32_unchecked(a), M31::from_u32_unchecked(b));
    let lanes = 1usize << LOG_N_LANES;
    let mut block = vec![M31::from_u32_unchecked(0); lanes * (columns + 1)];
    for vec_row in 0..n_rows / lanes {
        for lane in 0..lanes {
            let row = &mut block[lane * (columns + 1)..(lane + 1) * (columns + 1)];
            row[0] = M31::from_u32_unchecked((vec_row * lanes + lane) as u32);
            row[1] = x;
            row[2] = y;
            for cell in row.iter_mut().skip(3) {
                let z = x.square() + y.square();
                *cell = z;
                x = y;
                y = z;
            }
        }
        for (c, col) in cols.iter_mut().enumerate() {
            col.data[vec_row] =
                PackedM31::from_array(array::from_fn(|lane| block[lane * (columns + 1) + c]));
        }
    }
    FibTrace {
        columns: cols,
        last_pair: [x.0, y.0],
        log_rows,
    }
}

impl FibTrace {
    /// Moves the committed columns out, keeping only those the interaction trace reads
    /// (`step`, the first pair, the last pair).
    pub(crate) fn take_columns(&mut self) -> Vec<BaseColumn> {
        let n = self.columns.len();
        let keep = [0, 1, 2, n - 2, n - 1]
            .iter()
            .map(|&i| self.columns[i].clone())
            .collect();
        std::mem::replace(&mut self.columns, keep)
    }
}

/// The LogUp interaction trace and its total sum (after [`FibTrace::take_columns`]).
pub(crate) fn generate_interaction(
    trace: &FibTrace,
    relation: &FibPair,
) -> (
    Vec<CircleEvaluation<SimdBackend, BaseField, BitReversedOrder>>,
    SecureField,
) {
    let mut gen = LogupTraceGenerator::new(trace.log_rows);
    let mut col = gen.new_col();
    let n_vec_rows = 1usize << (trace.log_rows - LOG_N_LANES);
    let one = PackedM31::broadcast(M31::from_u32_unchecked(1));
    let n = trace.columns.len();
    for vec_row in 0..n_vec_rows {
        let step = trace.columns[0].data[vec_row];
        let consumed: [PackedM31; 3] = array::from_fn(|i| {
            if i == 0 {
                step
            } else {
                trace.columns[i].data[vec_row]
            }
        });
        let produced = [
            step + one,
            trace.columns[n - 2].data[vec_row],
            trace.columns[n - 1].data[vec_row],
        ];
        let d_in: PackedSecureField = relation.combine(&consumed);
        let d_out: PackedSecureField = relation.combine(&produced);
        col.write_frac(vec_row, d_out - d_in, d_in * d_out);
    }
    col.finalize_col();
    gen.finalize_last()
}

/// The LogUp sum a valid trace has: `1/D(0, a, b) − 1/D(2^log_rows, y, z)`.
pub(crate) fn claimed_sum(
    relation: &FibPair,
    log_rows: u32,
    a: u32,
    b: u32,
    last: [u32; 2],
) -> SecureField {
    let start = [
        M31::from_u32_unchecked(0),
        M31::from_u32_unchecked(a),
        M31::from_u32_unchecked(b),
    ];
    let end = [
        M31::from_u32_unchecked(1 << log_rows),
        M31::from_u32_unchecked(last[0]),
        M31::from_u32_unchecked(last[1]),
    ];
    let d_start: SecureField = relation.combine(&start);
    let d_end: SecureField = relation.combine(&end);
    d_start.inverse() - d_end.inverse()
}
