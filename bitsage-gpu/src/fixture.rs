//! [`FixtureGpuSource`]: replays recorded [`GpuReport`]s. For tests and demos only (feature
//! `test-utils`); a fixture is never a stand-in for missing hardware.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bitsage_core::gpu::{GpuInventory, GpuSample, HostInfo};
use bitsage_core::time::now;
use bitsage_core::{Error, GpuSource, Result};

use crate::report::{GpuReport, GpuStatus};

const FIXTURE: &str = "fixture";

/// The shipped synthetic fixture: two H100 SXM5 80GB, one of them lacking several metrics.
pub const SYNTHETIC_2XH100: &str = include_str!("../fixtures/synthetic-2xh100.json");

/// Replays recorded reports (the `bitsage-agent gpu --json` format), frame after frame.
///
/// - `sample()` returns the next frame's samples (cycling), stamped with the current time so
///   ages stay meaningful; every other value is replayed as recorded, `null`s included.
/// - `inventory()` and `host()` return the frame last sampled (the first before any sample).
/// - A frame with `status: "unavailable"` replays as [`Error::Unavailable`] with its reason.
#[derive(Debug)]
pub struct FixtureGpuSource {
    frames: Vec<GpuReport>,
    next: AtomicUsize,
}

impl FixtureGpuSource {
    /// From reports; [`Error::Invalid`] when empty or when a sample names a GPU its frame
    /// does not list.
    pub fn from_reports(frames: Vec<GpuReport>) -> Result<Self> {
        if frames.is_empty() {
            return Err(Error::invalid("gpu fixture", "no reports"));
        }
        for (i, f) in frames.iter().enumerate() {
            if let Some(s) = f
                .samples
                .iter()
                .find(|s| !f.gpus.iter().any(|d| d.uuid == s.uuid))
            {
                return Err(Error::invalid(
                    "gpu fixture",
                    format!("report {i}: sample for {} which is not in its gpus", s.uuid),
                ));
            }
        }
        Ok(Self {
            frames,
            next: AtomicUsize::new(0),
        })
    }

    /// From JSON text: one report (as `gpu --json` prints it), an array of reports, or one
    /// report per line.
    pub fn from_json(text: &str) -> Result<Self> {
        let invalid = |e: serde_json::Error| Error::invalid("gpu fixture", e.to_string());
        let trimmed = text.trim_start();
        let frames = if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<GpuReport>>(text).map_err(invalid)?
        } else {
            match serde_json::from_str::<GpuReport>(text) {
                Ok(one) => vec![one],
                Err(first_err) => {
                    let lines: std::result::Result<Vec<GpuReport>, _> = text
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(serde_json::from_str)
                        .collect();
                    lines.map_err(|_| invalid(first_err))?
                }
            }
        };
        Self::from_reports(frames)
    }

    /// From a JSON file (see [`FixtureGpuSource::from_json`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "gpu fixture",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Self::from_json(&text)
    }

    /// The shipped synthetic two-H100 fixture ([`SYNTHETIC_2XH100`]).
    pub fn synthetic_2xh100() -> Result<Self> {
        Self::from_json(SYNTHETIC_2XH100)
    }

    /// The frames, in replay order.
    pub fn frames(&self) -> &[GpuReport] {
        &self.frames
    }

    fn current(&self) -> &GpuReport {
        let n = self.next.load(Ordering::Relaxed);
        &self.frames[n.saturating_sub(1) % self.frames.len()]
    }

    fn gpu_data(frame: &GpuReport) -> Result<()> {
        match frame.status {
            GpuStatus::Ok => Ok(()),
            GpuStatus::Unavailable => Err(Error::Unavailable {
                source_name: FIXTURE.into(),
                reason: frame
                    .reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "recorded as unavailable".into()),
            }),
        }
    }
}

#[async_trait]
impl GpuSource for FixtureGpuSource {
    fn name(&self) -> &'static str {
        FIXTURE
    }

    async fn inventory(&self) -> Result<GpuInventory> {
        let frame = self.current();
        Self::gpu_data(frame)?;
        Ok(frame.inventory())
    }

    async fn sample(&self) -> Result<Vec<GpuSample>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let frame = &self.frames[n % self.frames.len()];
        Self::gpu_data(frame)?;
        let at = now();
        Ok(frame
            .samples
            .iter()
            .map(|s| GpuSample { at, ..s.clone() })
            .collect())
    }

    async fn host(&self) -> Result<HostInfo> {
        let frame = self.current();
        frame.host.clone().ok_or_else(|| Error::Unavailable {
            source_name: "host".into(),
            reason: frame
                .host_unavailable_reason
                .clone()
                .unwrap_or_else(|| "not recorded".into()),
        })
    }
}
