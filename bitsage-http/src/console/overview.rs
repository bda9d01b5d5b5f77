//! Overview (`/`): the network's KPIs with their change against the 24 h before, p95 by
//! region (each bar filters Nodes), the 24-hour trends, workers by status and the settlement
//! backlog — all from `GET /api/summary`'s service.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use bitsage_core::service::fleet::Kpi;
use maud::{html, Markup};

use super::{bars, encode, ms, na, page, sparkline, unavailable, viewer, Section};
use crate::auth::Caller;
use crate::dashboard::Section as Part;
use crate::AppState;

/// `GET /`.
pub(crate) async fn page_handler(state: &AppState, caller: &Caller, uri: &Uri) -> Response {
    let v = viewer(caller, uri);
    if v.principal.is_none()
        && !state
            .coordinator
            .flag(bitsage_core::flags::Flag::AllowAnonymousOverview)
            .await
    {
        return super::to_login(&v.here);
    }
    let s = state.overview.get(state).await;
    let s = &*s;
    let body = html! {
        div #overview data-live-region {
            h1 { "Network overview" }
            p.muted.small { "As of " (super::utc(s.generated_at)) " · store " (format!("{:?}", s.store.status).to_lowercase()) }
            @match &s.operations {
                Part::Ok(ops) => {
                    section aria-labelledby="kpis" {
                        h2 #kpis.sr-only { "Key figures, last 24 h" }
                        div.grid {
                            (card("Active nodes", "active_nodes", Some(ops.active_nodes as f64), None, "", "now"))
                            (kpi("Nodes up (24 h)", "nodes_up", &ops.nodes_up, ""))
                            (kpi("p95 run time (24 h)", "p95", &ops.p95_ms, "ms"))
                            (kpi("Job kinds served (24 h)", "job_kinds", &ops.job_kinds_served, ""))
                            (kpi("Jobs completed (24 h)", "jobs", &ops.jobs, ""))
                        }
                        @if ops.sampled {
                            p.muted.small { "Percentiles are computed from a sample of the window's jobs." }
                        }
                    }
                    div.grid-2 {
                        section.panel aria-labelledby="by-region" {
                            h2 #by-region { "p95 run time by region" }
                            @if ops.by_region.is_empty() {
                                p.muted { "No job completed in the last 24 h." }
                            } @else {
                                @let items: Vec<_> = ops.by_region.iter().map(|r| (
                                    r.region.clone(),
                                    r.run.p95_ms,
                                    Some(format!("/nodes?region={}", encode(&r.region))),
                                )).collect();
                                (bars("p95 run time by region, ms; each links to the region's nodes", &items, "ms"))
                            }
                        }
                        section.panel aria-labelledby="trend" {
                            h2 #trend { "Last 24 hours" }
                            @let jobs: Vec<_> = ops.trend.iter().map(|p| (p.from.format("%H:00").to_string(), Some(p.jobs as f64))).collect();
                            @let p95: Vec<_> = ops.trend.iter().map(|p| (p.from.format("%H:00").to_string(), p.p95_ms)).collect();
                            @let up: Vec<_> = ops.trend.iter().map(|p| (p.from.format("%H:00").to_string(), Some(p.nodes_up as f64))).collect();
                            h3 { "Jobs completed per hour" }
                            (sparkline("Jobs completed per hour", &jobs, "jobs"))
                            h3 { "p95 run time per hour" }
                            (sparkline("p95 run time per hour", &p95, "ms"))
                            h3 { "Nodes up per hour" }
                            (sparkline("Nodes up per hour", &up, "nodes"))
                        }
                    }
                }
                Part::Unavailable { reason } => {
                    p.panel { "Key figures: " (unavailable(reason)) }
                }
            }
            div.grid-2 {
                section.panel aria-labelledby="workers" {
                    h2 #workers { "Workers by status" }
                    @match &s.network {
                        Part::Ok(n) => {
                            @if n.workers_by_status.is_empty() {
                                p.muted { "No node has registered yet." }
                            } @else {
                                ul.bars {
                                    @for (status, count) in &n.workers_by_status {
                                        li { a.bar-row href={ "/nodes?status=" (status) } {
                                            span.bar-label { (super::chip(status)) }
                                            span {}
                                            span.bar-value { (count) }
                                        } }
                                    }
                                }
                            }
                            p.muted.small { (n.jobs.total) " jobs in total" @if let Some(r) = n.jobs.success_rate { ", " (format!("{:.1}", r * 100.0)) " % completed" } }
                        }
                        Part::Unavailable { reason } => (unavailable(reason))
                    }
                }
                section.panel aria-labelledby="settlement" {
                    h2 #settlement { "Settlement" }
                    @match &s.settlement {
                        Part::Ok(b) => {
                            dl.kv {
                                dt { "Receipts waiting for an epoch" } dd { (b.pending_receipts) }
                                dt { "Slashes waiting" } dd { (b.pending_slashes) }
                                dt { "Oldest waiting" } dd { @match b.oldest_pending_at { Some(t) => (super::ago(t)), None => "none" } }
                            }
                        }
                        Part::Unavailable { reason } => (unavailable(reason))
                    }
                    h3 { "Chain" }
                    @match &s.chain {
                        Part::Ok(c) => {
                            dl.kv {
                                dt { "Total staked" } dd { (c.value.total_staked_formatted) }
                                dt { "Read at block" } dd { (c.block_number) " (" (c.age_secs) " s ago)" }
                            }
                        }
                        Part::Unavailable { reason } => (unavailable(reason))
                    }
                }
            }
        }
    };
    page(
        state,
        &v,
        Section::Overview,
        "Overview",
        Some("workers,jobs,receipts,incidents"),
        body,
    )
    .await
}

/// `GET /` (the handler).
pub(crate) async fn index(State(state): State<AppState>, caller: Caller, uri: Uri) -> Response {
    page_handler(&state, &caller, &uri).await
}

fn kpi(label: &str, key: &str, k: &Kpi, unit: &str) -> Markup {
    card(label, key, k.value, k.change, unit, "vs the 24 h before")
}

fn card(
    label: &str,
    key: &str,
    value: Option<f64>,
    change: Option<f64>,
    unit: &str,
    note: &str,
) -> Markup {
    let fmt = |v: f64| {
        if unit == "ms" {
            ms(Some(v))
        } else {
            html! { (format!("{v:.0}")) }
        }
    };
    html! {
        div.card.kpi data-kpi=(key) {
            div.label { (label) }
            div.value { @match value { Some(v) => (fmt(v)), None => (na()) } }
            div.change {
                @match change {
                    Some(c) if c > 0.0 => { "▲ +" (fmt(c)) " " (note) }
                    Some(c) if c < 0.0 => { "▼ −" (fmt(-c)) " " (note) }
                    Some(_) => { "no change " (note) }
                    None if note == "now" => { "right now" }
                    None => { "change: " (na()) }
                }
            }
        }
    }
}
