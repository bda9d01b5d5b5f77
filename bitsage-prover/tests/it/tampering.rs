//! Tampering: flipped bytes anywhere (envelope JSON, compressed proof, serialized proof, public
//! inputs) are rejected or fail to decode with a clear error, and never panic.

use crate::common;

use bitsage_core::proof::ProofEnvelope;
use bitsage_core::{Error, JobSpec};
use bitsage_prover::{decode_envelope_json, verify_envelope};
use common::{chain_fixture, fib_fixture, raw_proof, replace_raw_proof, reseal};
use proptest::prelude::*;

fn fixture(which: bool) -> &'static (JobSpec, ProofEnvelope) {
    if which {
        chain_fixture()
    } else {
        fib_fixture()
    }
}

fn is_clear_rejection<T>(r: &bitsage_core::Result<T>) -> bool {
    matches!(r, Err(Error::ProofRejected(_)) | Err(Error::Invalid { .. }))
}

/// The envelope without its unbound metadata (timings).
fn bound_part(env: &ProofEnvelope) -> ProofEnvelope {
    let mut e = env.clone();
    e.timings = Default::default();
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flipped_envelope_json_is_rejected(which: bool, pos: prop::sample::Index, mask in 1u8..=255) {
        let (spec, env) = fixture(which);
        let mut json = serde_json::to_vec(env).expect("json");
        let i = pos.index(json.len());
        json[i] ^= mask;
        match decode_envelope_json(&json) {
            Err(e) => prop_assert!(matches!(e, Error::Invalid { .. }), "unclear error {e:?}"),
            Ok(tampered) => {
                let r = verify_envelope(spec, &tampered);
                if r.is_ok() {
                    // Only unbound metadata (timings) or an equivalent spelling (hex case) may
                    // change without rejection.
                    prop_assert_eq!(bound_part(&tampered), bound_part(env));
                } else {
                    prop_assert!(is_clear_rejection(&r), "unclear error {r:?}");
                }
            }
        }
    }

    #[test]
    fn flipped_compressed_proof_is_rejected(which: bool, pos: prop::sample::Index, mask in 1u8..=255, reseal_it: bool) {
        let (spec, env) = fixture(which);
        let mut t = env.clone();
        let i = pos.index(t.proof.len());
        t.proof[i] ^= mask;
        if reseal_it {
            reseal(&mut t);
        }
        let r = verify_envelope(spec, &t);
        prop_assert!(is_clear_rejection(&r), "not rejected: {r:?}");
    }

    #[test]
    fn flipped_serialized_proof_is_rejected(which: bool, pos: prop::sample::Index, mask in 1u8..=255) {
        // Reaches the decoder and the STARK verifier: sizes, hash and compression are redone.
        let (spec, env) = fixture(which);
        let mut raw = raw_proof(env);
        let i = pos.index(raw.len());
        raw[i] ^= mask;
        let mut t = env.clone();
        replace_raw_proof(&mut t, &raw);
        let r = verify_envelope(spec, &t);
        prop_assert!(is_clear_rejection(&r), "not rejected: {r:?}");
    }

    #[test]
    fn truncated_or_extended_proof_is_rejected(which: bool, cut: prop::sample::Index, extra in prop::collection::vec(any::<u8>(), 0..16)) {
        let (spec, env) = fixture(which);
        let mut raw = raw_proof(env);
        let n = cut.index(raw.len());
        raw.truncate(n);
        raw.extend(extra);
        let mut t = env.clone();
        replace_raw_proof(&mut t, &raw);
        let r = verify_envelope(spec, &t);
        prop_assert!(is_clear_rejection(&r), "not rejected: {r:?}");
    }

    #[test]
    fn altered_public_inputs_are_rejected(which: bool, pos: prop::sample::Index, value: u32, reseal_it: bool) {
        let (spec, env) = fixture(which);
        let mut t = env.clone();
        let i = pos.index(t.public_output.len());
        prop_assume!(t.public_output[i] != value);
        t.public_output[i] = value;
        if reseal_it {
            reseal(&mut t);
        }
        let r = verify_envelope(spec, &t);
        prop_assert!(is_clear_rejection(&r), "not rejected: {r:?}");
    }
}

#[test]
fn decompression_is_bounded() {
    let (spec, env) = chain_fixture();
    // A frame declaring a huge size (a zip bomb) is refused before decompressing.
    let bomb = vec![0u8; 200 << 20];
    let mut t = env.clone();
    t.proof = zstd::bulk::compress(&bomb, 19).expect("compress");
    t.sizes.raw_bytes = bomb.len() as u64;
    reseal(&mut t);
    let r = verify_envelope(spec, &t);
    assert!(
        matches!(r, Err(Error::ProofRejected(ref m)) if m.contains("size limit")),
        "{r:?}"
    );
    // A frame without a declared size is refused too.
    let mut t = env.clone();
    let mut c = zstd::bulk::Compressor::new(3).expect("zstd");
    c.include_contentsize(false).expect("zstd");
    t.proof = c.compress(&raw_proof(env)).expect("compress");
    reseal(&mut t);
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    // Garbage and empty input.
    for junk in [Vec::new(), b"not a proof".to_vec()] {
        let mut t = env.clone();
        t.proof = junk;
        reseal(&mut t);
        assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    }
    assert!(decode_envelope_json(b"{").is_err());
    assert!(decode_envelope_json(&vec![b' '; 300 << 20]).is_err());
}

#[test]
fn envelope_fields_are_checked() {
    let (spec, env) = chain_fixture();
    let mut t = env.clone();
    t.format_version += 1;
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    let mut t = env.clone();
    t.commitments.swap(1, 2);
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    let mut t = env.clone();
    t.sizes.raw_bytes += 1;
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    let mut t = env.clone();
    t.output.push('0');
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
    let mut t = env.clone();
    t.public_output.push(1);
    reseal(&mut t);
    assert!(is_clear_rejection(&verify_envelope(spec, &t)));
}
