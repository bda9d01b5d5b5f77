#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
//! GPU sampling cost: CPU time per sample on the fixture path and on the host source, and the
//! pieces around it (sampler step, Prometheus rendering).
//!
//! Two kinds of figures:
//! - `gpu_wall/*`: criterion's usual wall-clock time per call;
//! - `gpu_cpu/*`: CPU time of the calling thread per call (criterion `iter_custom` fed with
//!   the thread's on-CPU nanoseconds from `/proc/thread-self/schedstat`, which is what
//!   `getrusage(RUSAGE_THREAD)` reports, at ns resolution; `unsafe_code` is forbidden here, so
//!   no libc call). Work moved to other threads (spawn_blocking) is not in these figures;
//!   the paths measured here are single-threaded (current-thread runtime).
//!
//! The goal is ≤ 0.5 % of one core at 1 Hz, i.e. ≤ 5 ms of CPU per sample. The NVML cases
//! (`nvml_sample_<n>gpu`) run only where NVML loads; elsewhere they are skipped with the reason.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bitsage_core::GpuSource;
use bitsage_gpu::prometheus::{render, NodeGpuMetrics};
use bitsage_gpu::{
    FixtureGpuSource, GpuReport, GpuSampler, HostOnlySource, HostSource, NvmlGpuSource,
    SamplerConfig,
};
use criterion::{criterion_group, criterion_main, Criterion};

/// On-CPU time of the calling thread, from the scheduler's accounting (Linux).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

fn fixture() -> Arc<FixtureGpuSource> {
    match FixtureGpuSource::synthetic_2xh100() {
        Ok(f) => Arc::new(f),
        Err(e) => panic!("fixture: {e}"),
    }
}

/// Measures `f` `iters` times; returns CPU time of this thread (wall time if schedstat is
/// unavailable, which the report would then say).
fn cpu_iters(iters: u64, mut f: impl FnMut()) -> Duration {
    let (start_cpu, start_wall) = (thread_cpu(), std::time::Instant::now());
    for _ in 0..iters {
        f();
    }
    match (start_cpu, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => start_wall.elapsed(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let fixture = fixture();
    let host = HostSource::new();
    let host_only = HostOnlySource::new("nvml", "benchmark: no NVML");
    let sampler = GpuSampler::idle(fixture.clone(), SamplerConfig::default());
    rt.block_on(sampler.refresh());
    let snapshot = sampler.snapshot();
    let inventory = rt.block_on(fixture.inventory()).ok();
    let samples = rt.block_on(fixture.sample()).unwrap_or_default();

    for (group, cpu) in [("gpu_wall", false), ("gpu_cpu", true)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));

        let mut run = |name: &str, f: &mut dyn FnMut()| {
            if cpu {
                g.bench_function(name, |b| b.iter_custom(|iters| cpu_iters(iters, &mut *f)));
            } else {
                g.bench_function(name, |b| b.iter(&mut *f));
            }
        };

        run("fixture_sample_2gpu", &mut || {
            black_box(rt.block_on(fixture.sample()).ok());
        });
        run("fixture_inventory_2gpu", &mut || {
            black_box(rt.block_on(fixture.inventory()).ok());
        });
        run("host_read", &mut || {
            black_box(host.read().ok());
        });
        run("host_only_sample_unavailable", &mut || {
            black_box(rt.block_on(host_only.sample()).is_err());
        });
        run("sampler_refresh_fixture_2gpu", &mut || {
            rt.block_on(sampler.refresh());
        });
        run("report_collect_fixture_2gpu", &mut || {
            black_box(rt.block_on(GpuReport::collect(fixture.as_ref())));
        });
        run("prometheus_render_2gpu", &mut || {
            black_box(render(&[NodeGpuMetrics {
                node: "node-1",
                inventory: inventory.as_ref(),
                samples: &samples,
                collector: Some(snapshot.collector_status()),
            }]));
        });
        g.finish();
    }

    nvml_cases(c);

    // The host source through the port: the read runs on a spawn_blocking thread, so report
    // wall time only (the calling thread's CPU would miss the work).
    c.bench_function("gpu_wall/host_port_spawn_blocking", |b| {
        b.iter(|| black_box(rt.block_on(host.read_async()).ok()))
    });
}

/// NVML on the calling thread (`NvmlGpuSource::sample_blocking`): wall and CPU time per
/// sample of every device of this host. Skipped, with NVML's reason, where it does not load
/// (CI, GPU-less hosts): nothing is reported for it there.
fn nvml_cases(c: &mut Criterion) {
    let nvml = match NvmlGpuSource::new() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("gpu bench: NVML cases skipped: {e}");
            return;
        }
    };
    let devices = nvml.sample_blocking().map(|s| s.len()).unwrap_or(0);
    eprintln!(
        "gpu bench: NVML sample covers {devices} device(s); divide by it for per-device cost"
    );
    for (group, cpu) in [("gpu_wall", false), ("gpu_cpu", true)] {
        let mut g = c.benchmark_group(group);
        // A sample takes tens of milliseconds of wall time (PCIe throughput windows).
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(10));
        let name = format!("nvml_sample_{devices}gpu");
        if cpu {
            g.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    cpu_iters(iters, || {
                        black_box(nvml.sample_blocking().ok());
                    })
                })
            });
        } else {
            g.bench_function(&name, |b| b.iter(|| black_box(nvml.sample_blocking().ok())));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
