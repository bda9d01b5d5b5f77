//! `prove` and `verify` subcommands: thin wrappers over `bitsage_prover`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitsage_core::{JobId, JobKind, JobSpec};
use bitsage_prover::{decode_envelope_json, encode_envelope_json, verify_envelope, StwoProver};

/// The job kinds `prove` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KindArg {
    /// `P^length(seed)` for the Poseidon2-M31 permutation.
    #[value(name = "poseidon2-chain")]
    Poseidon2Chain,
    /// The calibration AIR.
    #[value(name = "wide-fibonacci")]
    WideFibonacci,
}

/// Arguments of `bitsage-agent prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// Job kind.
    #[arg(long)]
    pub kind: KindArg,
    /// poseidon2-chain: number of permutations.
    #[arg(long, default_value_t = 1024)]
    pub length: u32,
    /// poseidon2-chain: seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// wide-fibonacci: columns per row.
    #[arg(long, default_value_t = 64)]
    pub columns: u32,
    /// wide-fibonacci: log2 of the number of rows.
    #[arg(long, default_value_t = 12)]
    pub log_rows: u32,
    /// wide-fibonacci: first element.
    #[arg(long, default_value_t = 1)]
    pub a: u32,
    /// wide-fibonacci: second element.
    #[arg(long, default_value_t = 1)]
    pub b: u32,
    /// Job id (UUID); random if absent.
    #[arg(long)]
    pub job_id: Option<String>,
    /// Where to write the proof envelope (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `bitsage-agent verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// A proof envelope file written by `prove`.
    pub file: PathBuf,
}

/// Runs `prove`.
pub(crate) fn prove(args: ProveArgs) -> anyhow::Result<ExitCode> {
    let id = match &args.job_id {
        Some(s) => JobId::parse(s)?,
        None => JobId::new(),
    };
    let kind = match args.kind {
        KindArg::Poseidon2Chain => JobKind::Poseidon2Chain {
            seed: args.seed,
            length: args.length,
        },
        KindArg::WideFibonacci => JobKind::WideFibonacci {
            columns: args.columns,
            log_rows: args.log_rows,
            a: args.a,
            b: args.b,
        },
    };
    let spec = JobSpec::new(id, kind)?;
    let envelope = StwoProver::new().prove_sync(&spec)?;
    let json = encode_envelope_json(&envelope)?;
    std::fs::write(&args.out, json).with_context(|| format!("writing {}", args.out.display()))?;
    println!("job       {}", spec.id.0);
    println!("kind      {}", spec.kind.name());
    println!("output    {}", envelope.output);
    println!("hash      {}", envelope.proof_hash);
    println!(
        "size      {} bytes raw, {} bytes compressed",
        envelope.sizes.raw_bytes, envelope.sizes.compressed_bytes
    );
    println!(
        "time      trace {:.1} ms, prove {:.1} ms, total {:.1} ms",
        envelope.timings.trace_ms, envelope.timings.prove_ms, envelope.timings.total_ms
    );
    println!("wrote     {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `verify`: exit 0 when the envelope proves the job it contains, 1 when it does not.
pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let envelope = match decode_envelope_json(&bytes) {
        Ok(e) => e,
        Err(e) => {
            println!("INVALID: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let params = serde_json::to_string(&envelope.job.kind)?;
    println!("job       {}", envelope.job.id.0);
    println!("kind      {}", envelope.job.kind.name());
    println!("params    {params}");
    println!("output    {}", envelope.output);
    match verify_envelope(&envelope.job, &envelope) {
        Ok(v) => {
            println!("security  {} bits", v.security_bits);
            println!("hash      {}", v.proof_hash);
            println!("VALID");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("INVALID: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
