//! Logs and traces of the coordinator process: log lines as text (colour only on a terminal)
//! or JSON, filtered by `RUST_LOG`; and, when an OTLP endpoint is configured, an
//! OpenTelemetry span per request (the `request` span with its request id, method and path)
//! and per store and chain call beneath it (`store.*` with `db.system`, `chain.*` with
//! `rpc.system`), exported over OTLP/HTTP in batches.
//!
//! The OpenTelemetry layer has its own filter (our crates at `debug`, where the store and
//! chain spans live), so the log filter does not decide what is traced and tracing costs
//! nothing when no endpoint is set.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line with the current span's fields (request id, path).
    Json,
}

/// The default log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tower_http=warn,stwo=warn";

/// What the OpenTelemetry layer records: our crates' spans down to `debug` (store and chain
/// calls), everything else at `info`.
pub const TRACE_FILTER: &str =
    "info,bitsage_store=debug,bitsage_chain=debug,bitsage_http=debug,bitsage_core=debug";

/// The process's tracing; [`Telemetry::shutdown`] flushes spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter (a no-op without one).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: flushing traces failed: {e}");
            }
        }
    }
}

/// An OpenTelemetry layer sending the spans of `provider` (filtered by [`TRACE_FILTER`]).
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bitsage-coordinator"))
        .with_filter(EnvFilter::new(TRACE_FILTER))
}

/// A provider exporting to `endpoint` (OTLP over HTTP, protobuf; e.g.
/// `http://collector:4318/v1/traces`) in batches, naming the service `bitsage-coordinator`.
pub fn otlp_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("bitsage-coordinator")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the process's subscriber: log lines in `format` (filter `RUST_LOG`, default
/// [`DEFAULT_LOG_FILTER`]) and, with `otlp_endpoint`, OpenTelemetry export.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        // Colour codes only for a terminal: logs sent to a file or a collector stay plain.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let provider = otlp_endpoint.map(otlp_provider).transpose()?;
    let registry = tracing_subscriber::registry().with(logs);
    match &provider {
        Some(p) => registry.with(otel_layer(p)).try_init()?,
        None => registry.try_init()?,
    }
    Ok(Telemetry { provider })
}
