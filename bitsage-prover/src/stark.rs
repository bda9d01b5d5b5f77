//! Proving and verifying the job AIRs with stwo (SIMD backend, BLAKE2s Merkle channel).
//!
//! Transcript (same on both sides): the statement ([`mix_statement`]: a domain tag, the
//! configuration, the job id, kind and parameters, the public output), then the preprocessed
//! tree (empty: the AIRs have no preprocessed columns), the main trace, the LogUp interaction
//! elements, the interaction trace, then stwo's own protocol.

use std::time::Instant;

use bitsage_core::job::{JobKind, JobSpec};
use bitsage_core::proof::SecurityConfig;
use bitsage_core::{Error, Result};
use stwo::core::air::Component;
use stwo::core::channel::{Blake2sChannel, Channel};
use stwo::core::fields::m31::BaseField;
use stwo::core::fields::qm31::SecureField;
use stwo::core::pcs::{CommitmentSchemeVerifier, PcsConfig, TreeVec};
use stwo::core::poly::circle::CanonicCoset;
use stwo::core::proof::StarkProof;
use stwo::core::vcs_lifted::blake2_merkle::{Blake2sMerkleChannel, Blake2sMerkleHasher};
use stwo::prover::backend::simd::SimdBackend;
use stwo::prover::poly::circle::{CircleEvaluation, PolyOps};
use stwo::prover::poly::BitReversedOrder;
use stwo::prover::CommitmentSchemeProver;
use stwo_constraint_framework::{FrameworkComponent, FrameworkEval, TraceLocationAllocator};

use crate::chain_air::{self, ChainEval, ChainState};
use crate::fib_air::{self, FibEval, FibPair};
use crate::policy::pcs_config;

/// The stwo proof type BitSage uses.
pub type Proof = StarkProof<Blake2sMerkleHasher>;

/// Domain tag mixed first into every transcript.
const TRANSCRIPT_DOMAIN: &[u8] = b"bitsage/stark/v1";

/// Largest trace, in cells (columns × rows), this prover accepts: 5 × 2^26 ≈ 335 M cells, just
/// above the longest chain a job may ask for (302 × 2^20). Peak memory is about 22 bytes per
/// cell (measured: 2^16-hash chain 0.44 GB, 2^18 1.7 GB), so the limit is ≈ 7.5 GB.
pub const MAX_TRACE_CELLS: u64 = bitsage_core::job::MAX_TRACE_CELLS;

/// A proof straight from stwo, with its statement and timings: what the bare benchmark
/// baseline measures, before any envelope work.
#[derive(Debug)]
pub struct RawProof {
    /// The stwo proof.
    pub proof: Proof,
    /// The public output (M31 elements).
    pub public_output: Vec<u32>,
    /// Trace generation (main and interaction), milliseconds.
    pub trace_ms: f64,
    /// stwo commitments and proving, milliseconds.
    pub prove_ms: f64,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::backend("stwo", e.to_string())
}

fn bytes_to_u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// Mixes the statement into the channel: domain tag, configuration, job id, kind, parameters
/// and public output (each group length-prefixed).
pub(crate) fn mix_statement(
    channel: &mut Blake2sChannel,
    pcs: &PcsConfig,
    spec: &JobSpec,
    public_output: &[u32],
) {
    let mut words = bytes_to_u32s(TRANSCRIPT_DOMAIN);
    words.extend(bytes_to_u32s(spec.id.0.as_bytes()));
    match spec.kind {
        JobKind::Poseidon2Chain { seed, length } => {
            words.extend([1, seed as u32, (seed >> 32) as u32, length]);
        }
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a,
            b,
        } => words.extend([2, columns, log_rows, a, b]),
    }
    words.push(public_output.len() as u32);
    words.extend_from_slice(public_output);
    channel.mix_u32s(&words);
    pcs.mix_into(channel);
}

/// The shape of a job's AIR.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) log_rows: u32,
    pub(crate) log_expand: u32,
    pub(crate) n_columns: usize,
    pub(crate) output_len: usize,
}

impl Shape {
    /// The split composition polynomial's commitment domain (the largest of the proof).
    pub(crate) fn lifting_log_size(&self, config: &SecurityConfig) -> u32 {
        self.log_rows + self.log_expand - 1 + config.log_blowup_factor
    }
}

pub(crate) fn shape(kind: &JobKind) -> Result<Shape> {
    kind.validate()?;
    let shape = match *kind {
        JobKind::Poseidon2Chain { length, .. } => Shape {
            log_rows: chain_air::log_rows(length),
            log_expand: chain_air::LOG_EXPAND,
            n_columns: chain_air::N_COLUMNS,
            output_len: crate::poseidon2::WIDTH,
        },
        JobKind::WideFibonacci {
            columns, log_rows, ..
        } => Shape {
            log_rows,
            log_expand: fib_air::LOG_EXPAND,
            n_columns: columns as usize + 1,
            output_len: 2,
        },
    };
    let cells = (shape.n_columns as u64) << shape.log_rows;
    if cells > MAX_TRACE_CELLS {
        return Err(Error::invalid(
            "job parameters",
            format!("trace of {cells} cells exceeds this prover's limit of {MAX_TRACE_CELLS}"),
        ));
    }
    Ok(shape)
}

enum Trace {
    Chain(chain_air::ChainTrace),
    Fib(fib_air::FibTrace),
}

enum AnyComponent {
    Chain(Box<FrameworkComponent<ChainEval>>),
    Fib(Box<FrameworkComponent<FibEval>>),
}

impl AnyComponent {
    fn as_component(&self) -> &dyn Component {
        match self {
            AnyComponent::Chain(c) => c.as_ref(),
            AnyComponent::Fib(c) => c.as_ref(),
        }
    }
}

enum Relations {
    Chain(Box<ChainState>),
    Fib(Box<FibPair>),
}

impl Relations {
    fn draw(kind: &JobKind, channel: &mut Blake2sChannel) -> Self {
        match kind {
            JobKind::Poseidon2Chain { .. } => Relations::Chain(Box::new(ChainState::draw(channel))),
            JobKind::WideFibonacci { .. } => Relations::Fib(Box::new(FibPair::draw(channel))),
        }
    }

    /// The component the verifier (and the prover) build from the job spec and the public
    /// output; the claimed sum comes from the public values, never from the proof.
    fn component(self, kind: &JobKind, public_output: &[u32]) -> Result<AnyComponent> {
        let alloc = &mut TraceLocationAllocator::default();
        match (self, kind.clone()) {
            (Relations::Chain(relation), JobKind::Poseidon2Chain { seed, length }) => {
                let digest: crate::poseidon2::State = public_output
                    .try_into()
                    .map_err(|_| Error::ProofRejected("digest must have 16 elements".into()))?;
                let sum = chain_air::claimed_sum(&relation, seed, length, &digest);
                let eval = ChainEval {
                    log_rows: chain_air::log_rows(length),
                    relation: *relation,
                };
                Ok(AnyComponent::Chain(Box::new(FrameworkComponent::new(
                    alloc, eval, sum,
                ))))
            }
            (
                Relations::Fib(relation),
                JobKind::WideFibonacci {
                    columns,
                    log_rows,
                    a,
                    b,
                },
            ) => {
                let last: [u32; 2] = public_output
                    .try_into()
                    .map_err(|_| Error::ProofRejected("final pair must have 2 elements".into()))?;
                let sum = fib_air::claimed_sum(&relation, log_rows, a, b, last);
                let eval = FibEval {
                    log_rows,
                    columns: columns as usize,
                    relation: *relation,
                };
                Ok(AnyComponent::Fib(Box::new(FrameworkComponent::new(
                    alloc, eval, sum,
                ))))
            }
            _ => Err(Error::invalid(
                "job",
                "relation does not match the job kind",
            )),
        }
    }
}

type Evals = Vec<CircleEvaluation<SimdBackend, BaseField, BitReversedOrder>>;

/// Proves `spec` with `config` and returns stwo's proof (no envelope). `config` is the
/// prover's choice; only [`crate::policy::SECURITY_POLICY`] verifies.
pub fn prove_raw(spec: &JobSpec, config: &SecurityConfig) -> Result<RawProof> {
    let shape = shape(&spec.kind)?;
    let pcs = pcs_config(config, Some(shape.lifting_log_size(config)))
        .ok_or_else(|| Error::invalid("security config", "not usable by stwo"))?;
    let t0 = Instant::now();

    let (trace, columns, public_output) = match spec.kind {
        JobKind::Poseidon2Chain { seed, length } => {
            let mut t = chain_air::generate_trace(seed, length);
            let evals = chain_air::into_evaluations(t.take_columns(), t.log_rows);
            let out = t.digest.to_vec();
            (Trace::Chain(t), evals, out)
        }
        JobKind::WideFibonacci {
            columns,
            log_rows,
            a,
            b,
        } => {
            let mut t = fib_air::generate_trace(columns as usize, log_rows, a, b);
            let evals = chain_air::into_evaluations(t.take_columns(), t.log_rows);
            let out = t.last_pair.to_vec();
            (Trace::Fib(t), evals, out)
        }
    };
    let mut trace_ms = t0.elapsed().as_secs_f64() * 1e3;

    let t1 = Instant::now();
    let twiddles = SimdBackend::precompute_twiddles(
        CanonicCoset::new(shape.log_rows + shape.log_expand + config.log_blowup_factor)
            .circle_domain()
            .half_coset,
    );
    let channel = &mut Blake2sChannel::default();
    mix_statement(channel, &pcs, spec, &public_output);
    let mut scheme =
        CommitmentSchemeProver::<SimdBackend, Blake2sMerkleChannel>::new(pcs, &twiddles);

    // Preprocessed tree: empty.
    scheme.tree_builder().commit(channel);
    let mut builder = scheme.tree_builder();
    builder.extend_evals(columns);
    builder.commit(channel);

    let relations = Relations::draw(&spec.kind, channel);
    let t2 = Instant::now();
    let (interaction, sum): (Evals, SecureField) = match (&trace, &relations) {
        (Trace::Chain(t), Relations::Chain(r)) => chain_air::generate_interaction(t, r),
        (Trace::Fib(t), Relations::Fib(r)) => fib_air::generate_interaction(t, r),
        _ => {
            return Err(Error::invalid(
                "job",
                "relation does not match the job kind",
            ))
        }
    };
    let interaction_ms = t2.elapsed().as_secs_f64() * 1e3;
    trace_ms += interaction_ms;
    drop(trace);
    let mut builder = scheme.tree_builder();
    builder.extend_evals(interaction);
    builder.commit(channel);

    let component = relations.component(&spec.kind, &public_output)?;
    let expected = match &component {
        AnyComponent::Chain(c) => c.claimed_sum(),
        AnyComponent::Fib(c) => c.claimed_sum(),
    };
    if expected != sum {
        return Err(backend("trace does not telescope to the public statement"));
    }
    let proof = match &component {
        AnyComponent::Chain(c) => {
            stwo::prover::prove::<SimdBackend, Blake2sMerkleChannel>(&[c.as_ref()], channel, scheme)
        }
        AnyComponent::Fib(c) => {
            stwo::prover::prove::<SimdBackend, Blake2sMerkleChannel>(&[c.as_ref()], channel, scheme)
        }
    }
    .map_err(backend)?;
    let prove_ms = t1.elapsed().as_secs_f64() * 1e3 - interaction_ms;
    Ok(RawProof {
        proof,
        public_output,
        trace_ms,
        prove_ms,
    })
}

fn reject(msg: impl Into<String>) -> Error {
    Error::ProofRejected(msg.into())
}

/// Checks the proof's shape against the AIR the verifier built, so stwo's verifier (which
/// asserts on malformed input) only ever sees well-formed proofs.
fn check_shape(proof: &Proof, component: &dyn Component, pcs: &PcsConfig) -> Result<()> {
    let p = &proof.0;
    if p.config != *pcs {
        return Err(reject(
            "proof was made with a configuration other than the policy",
        ));
    }
    let bounds = component.trace_log_degree_bounds();
    // Trees: preprocessed, main, interaction, composition (8 columns).
    let mut n_cols: Vec<usize> = bounds.iter().map(|t| t.len()).collect();
    n_cols.resize(3, 0);
    n_cols.push(8);
    if p.commitments.len() != 4 || p.decommitments.len() != 4 {
        return Err(reject("wrong number of commitment trees"));
    }
    if p.sampled_values.len() != 4 || p.queried_values.len() != 4 {
        return Err(reject("wrong number of sampled or queried trees"));
    }
    let n_queries = pcs.fri_config.n_queries;
    for (tree, &n) in n_cols.iter().enumerate() {
        if p.sampled_values[tree].len() != n || p.queried_values[tree].len() != n {
            return Err(reject(format!("tree {tree}: wrong number of columns")));
        }
        if p.queried_values[tree]
            .iter()
            .any(|c| c.len() > 2 * n_queries)
        {
            return Err(reject(format!("tree {tree}: too many queried values")));
        }
    }
    let sample_points = component.mask_points(
        stwo::core::circle::CirclePoint::zero(),
        bounds.iter().flatten().copied().max().unwrap_or(0),
    );
    for (tree, points) in sample_points.iter().enumerate() {
        for (col, pts) in points.iter().enumerate() {
            if p.sampled_values[tree][col].len() != pts.len() {
                return Err(reject(format!(
                    "tree {tree} column {col}: wrong sample count"
                )));
            }
        }
    }
    if p.sampled_values[3].iter().any(|c| c.len() != 1) {
        return Err(reject("composition: wrong sample count"));
    }
    // Every field element must be reduced.
    let m31_ok = |m: &BaseField| m.0 < crate::poseidon2::P;
    let qm31_ok = |q: &SecureField| q.to_m31_array().iter().all(m31_ok);
    let fri = &p.fri_proof;
    let all_ok = p.sampled_values.iter().flatten().flatten().all(qm31_ok)
        && p.queried_values.iter().flatten().flatten().all(m31_ok)
        && fri.first_layer.fri_witness.iter().all(qm31_ok)
        && fri
            .inner_layers
            .iter()
            .all(|l| l.fri_witness.iter().all(qm31_ok))
        && fri.last_layer_poly.iter().all(qm31_ok);
    if !all_ok {
        return Err(reject("unreduced field element"));
    }
    let last = fri.last_layer_poly.clone();
    let coeffs = last.clone().into_ordered_coefficients_checked();
    match coeffs {
        Some(c) if c.len() == 1 << pcs.fri_config.log_last_layer_degree_bound => {}
        _ => return Err(reject("malformed FRI last layer")),
    }
    Ok(())
}

trait LinePolyCheck {
    fn into_ordered_coefficients_checked(self) -> Option<Vec<SecureField>>;
}

impl LinePolyCheck for stwo::core::poly::line::LinePoly {
    /// The coefficients, if the stored size agrees with the stored coefficients.
    fn into_ordered_coefficients_checked(self) -> Option<Vec<SecureField>> {
        let n = self.iter().count();
        if !n.is_power_of_two() {
            return None;
        }
        let rebuilt = stwo::core::poly::line::LinePoly::new(self.to_vec());
        if rebuilt != self {
            return None;
        }
        Some(rebuilt.into_ordered_coefficients())
    }
}

/// Verifies `proof` of `spec` with public output `public_output` under the policy `config`.
/// Builds everything from the spec; returns [`Error::ProofRejected`] for any invalid proof and
/// never panics (stwo's verifier runs under `catch_unwind` as a last resort).
pub(crate) fn verify_raw(
    spec: &JobSpec,
    public_output: &[u32],
    proof: Proof,
    config: &SecurityConfig,
) -> Result<()> {
    let shape = shape(&spec.kind)?;
    let pcs = pcs_config(config, Some(shape.lifting_log_size(config)))
        .ok_or_else(|| reject("unusable verifier policy"))?;
    if public_output.len() != shape.output_len
        || public_output.iter().any(|&e| e >= crate::poseidon2::P)
    {
        return Err(reject("public output is malformed"));
    }
    let spec = spec.clone();
    let public_output = public_output.to_vec();
    let run = move || -> Result<()> {
        let channel = &mut Blake2sChannel::default();
        mix_statement(channel, &pcs, &spec, &public_output);
        let scheme = &mut CommitmentSchemeVerifier::<Blake2sMerkleChannel>::new(pcs);
        if proof.0.commitments.len() != 4 {
            return Err(reject("wrong number of commitment trees"));
        }
        // Build the component with dummy elements to read the column layout, then again with
        // the drawn ones (the layout does not depend on them).
        let probe = match spec.kind {
            JobKind::Poseidon2Chain { .. } => Relations::Chain(Box::new(ChainState::dummy())),
            JobKind::WideFibonacci { .. } => Relations::Fib(Box::new(FibPair::dummy())),
        }
        .component(&spec.kind, &public_output)?;
        check_shape(&proof, probe.as_component(), &pcs)?;
        let sizes = probe.as_component().trace_log_degree_bounds();
        let sizes: TreeVec<Vec<u32>> = sizes;
        let empty: Vec<u32> = Vec::new();
        scheme.commit(
            proof.0.commitments[0],
            sizes.first().unwrap_or(&empty),
            channel,
        );
        // The preprocessed tree is empty: stwo's prover builds it with height 0 whatever the
        // lifting size, so the verifier must too.
        if let Some(tree) = scheme.trees.first_mut() {
            tree.height = 0;
        }
        scheme.commit(
            proof.0.commitments[1],
            sizes.get(1).unwrap_or(&empty),
            channel,
        );
        let relations = Relations::draw(&spec.kind, channel);
        scheme.commit(
            proof.0.commitments[2],
            sizes.get(2).unwrap_or(&empty),
            channel,
        );
        let component = relations.component(&spec.kind, &public_output)?;
        stwo::core::verifier::verify(&[component.as_component()], channel, scheme, proof)
            .map_err(|e| reject(format!("stark verification failed: {e}")))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => Err(reject("malformed proof (verifier panicked)")),
    }
}

/// The trace's Merkle roots (the commitments) of a proof.
pub(crate) fn commitments(proof: &Proof) -> Vec<[u8; 32]> {
    proof.0.commitments.iter().map(|h| h.0).collect()
}

#[allow(dead_code)]
fn _assert_eval_sync() {
    fn is_sync<T: Sync + FrameworkEval>() {}
    is_sync::<ChainEval>();
    is_sync::<FibEval>();
}
