//! Nodes (`/nodes`): server-side filters (status, region, runtime, reputation range, own
//! nodes), 25 rows a page, and the node drawer (`/nodes/{id}`: Metrics, Receipts, Hardware,
//! Earnings tabs; the eligibility checklist; actions by role). The list and the drawer come
//! from the API's own functions with the viewer as caller, so an operator sees their
//! organisation's nodes only.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use bitsage_core::node::Runtime;
use bitsage_core::NodeStatus;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    ago, api_error_page, chip, encode, given, ms, na, page, page_number, pct, query_string, short,
    utc, viewer, Section, Viewer,
};
use crate::api::{NodeListQuery, NodeView};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::service;
use crate::AppState;

/// Rows per page.
const PAGE: u32 = 25;

/// The list's filters as a form sends them (empty fields are "any").
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NodesQuery {
    status: Option<String>,
    region: Option<String>,
    runtime: Option<String>,
    reputation_min: Option<String>,
    reputation_max: Option<String>,
    mine: Option<String>,
    page: Option<String>,
    tab: Option<String>,
}

impl NodesQuery {
    /// The API query of these filters, or the field that is wrong.
    fn api(&self) -> Result<(NodeListQuery, u64), ApiError> {
        let status = given(&self.status)
            .map(|s| {
                NodeStatus::parse(s)
                    .map_err(|_| ApiError::invalid(format!("status: unknown status `{s}`")))
            })
            .transpose()?;
        let runtime = given(&self.runtime)
            .map(|s| Runtime::parse(s).map_err(|e| ApiError::invalid(format!("runtime: {e}"))))
            .transpose()?;
        let number = |name: &str, v: &Option<String>| -> Result<Option<u32>, ApiError> {
            given(v)
                .map(|s| {
                    s.parse::<u32>().ok().filter(|n| *n <= 100).ok_or_else(|| {
                        ApiError::invalid(format!("{name} must be a whole number 0 ..= 100"))
                    })
                })
                .transpose()
        };
        let page = page_number(&self.page)?;
        Ok((
            NodeListQuery {
                status,
                wallet: None,
                region: given(&self.region).map(str::to_string),
                runtime,
                label: None,
                energy_tag: None,
                reputation_min: number("reputation_min", &self.reputation_min)?,
                reputation_max: number("reputation_max", &self.reputation_max)?,
                limit: Some(PAGE),
                offset: Some((page - 1) * u64::from(PAGE)),
            },
            page,
        ))
    }

    /// The filters as a query string (without the page and the tab).
    fn filters(&self) -> String {
        query_string(&[
            ("status", &self.status),
            ("region", &self.region),
            ("runtime", &self.runtime),
            ("reputation_min", &self.reputation_min),
            ("reputation_max", &self.reputation_max),
            ("mine", &self.mine),
        ])
    }

    fn mine(&self) -> bool {
        given(&self.mine).is_some()
    }
}

/// `GET /nodes`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    q: Result<ApiQuery<NodesQuery>, ApiError>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    let table = table(&state, &v, &q).await;
    page(&state, &v, Section::Nodes, "Nodes", Some("workers"), table).await
}

/// `GET /nodes/{id}`: the list with the node's drawer open.
pub(crate) async fn drawer(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    ApiPath(id): ApiPath<String>,
    q: Result<ApiQuery<NodesQuery>, ApiError>,
) -> Response {
    let v = viewer(&caller, &uri);
    if let Some(r) = v.refusal() {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    let node = match service::parse_node_id(&id) {
        Ok(id) => auth::visible_node(&state, &caller, &id).await,
        Err(e) => Err(e),
    };
    let node = match node {
        Ok(n) => n,
        Err(e) => return api_error_page(&v, e),
    };
    let drawer = match drawer_view(&state, &v, &q, node).await {
        Ok(d) => d,
        Err(e) => return api_error_page(&v, e),
    };
    let body = html! {
        (table(&state, &v, &q).await)
        (drawer)
    };
    page(
        &state,
        &v,
        Section::Nodes,
        "Node",
        Some("workers,receipts"),
        body,
    )
    .await
}

async fn table(state: &AppState, v: &Viewer, q: &NodesQuery) -> Markup {
    let caller = v.caller();
    let listed = async {
        let (api_q, page) = q.api()?;
        let wallets = if q.mine() {
            let p = caller.required()?;
            Some(state.accounts.own_wallets(p).await?)
        } else {
            auth::visible_wallets(state, &caller).await?
        };
        Ok::<_, ApiError>((service::list_nodes(state, api_q, wallets).await?, page))
    }
    .await;
    let filters = q.filters();
    html! {
        h1 { "Nodes" }
        (filter_form(v, q))
        div #nodes-table data-live-region {
            @match listed {
                Err(e) => p.error role="alert" { (e.message) },
                Ok((list, page)) => {
                    p.muted.small #nodes-count { (list.total) " nodes match" }
                    @if list.items.is_empty() {
                        p.panel { "No node matches these filters." @if filters.is_empty() { " Add one on " a href="/run-node" { "Run a Node" } "." } }
                    } @else {
                        div.table-wrap {
                            table {
                                caption.sr-only { "Nodes, page " (page) }
                                thead { tr {
                                    th scope="col" { "Node" }
                                    th scope="col" { "Status" }
                                    th scope="col" { "Region" }
                                    th scope="col" { "Runtime" }
                                    th scope="col" { "GPUs" }
                                    th scope="col" .num { "Reputation" }
                                    th scope="col" { "Wallet" }
                                    th scope="col" { "Since" }
                                } }
                                tbody {
                                    @for n in &list.items { (row(n, &filters)) }
                                }
                            }
                        }
                        nav.pager aria-label="Pages" {
                            @if page > 1 {
                                a.btn href={ "/nodes?" (filters) "&page=" (page - 1) } rel="prev" { "← Previous" }
                            }
                            span.muted { "Page " (page) " of " (list.total.div_ceil(u64::from(PAGE)).max(1)) }
                            @if list.next_offset.is_some() {
                                a.btn href={ "/nodes?" (filters) "&page=" (page + 1) } rel="next" { "Next →" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(v: &Viewer, q: &NodesQuery) -> Markup {
    let sel = |a: &Option<String>, b: &str| given(a) == Some(b);
    html! {
        form.filters method="get" action="/nodes" aria-label="Filter nodes" {
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in NodeStatus::ALL.map(|s| s.as_str()) {
                        option value=(s) selected[sel(&q.status, s)] { (s) }
                    }
                }
            }
            div.field {
                label for="f-region" { "Region" }
                input #f-region name="region" value=[given(&q.region)] placeholder="e.g. eu-west" maxlength="64";
            }
            div.field {
                label for="f-runtime" { "Runtime" }
                select #f-runtime name="runtime" {
                    option value="" { "Any" }
                    @for s in Runtime::ALL.map(|r| r.as_str()) {
                        option value=(s) selected[sel(&q.runtime, s)] { (s) }
                    }
                }
            }
            div.field {
                label for="f-rmin" { "Reputation from" }
                input #f-rmin name="reputation_min" type="number" min="0" max="100" value=[given(&q.reputation_min)];
            }
            div.field {
                label for="f-rmax" { "to" }
                input #f-rmax name="reputation_max" type="number" min="0" max="100" value=[given(&q.reputation_max)];
            }
            @if v.is_admin() {
                div.field {
                    label.check for="f-mine" {
                        input #f-mine type="checkbox" name="mine" value="1" checked[q.mine()];
                        "Own organisation's nodes"
                    }
                }
            }
            button.btn.primary type="submit" { "Filter" }
            a.btn.ghost href="/nodes" { "Reset" }
        }
    }
}

fn row(n: &NodeView, filters: &str) -> Markup {
    let gpus = &n.hardware.gpus;
    html! {
        tr data-node-id=(n.id.as_str()) {
            td { a.node-link href={ "/nodes/" (n.id.as_str()) "?" (filters) } { (n.id.as_str()) } }
            td { (chip(n.status.as_str())) @if n.drain.is_some() { " " span.chip.chip-stale { "draining" } } }
            td { @match &n.profile.region { Some(r) => (r), None => span.muted { "unassigned" } } }
            td { (n.profile.runtime.as_str()) }
            td {
                @if gpus.is_empty() { span.muted { "CPU only" } }
                @else { (gpus.len()) " × " (gpus[0].name) }
            }
            td.num { @match n.reputation.as_ref().and_then(|r| r.score) { Some(s) => (s), None => (na()) } }
            td.mono title=(n.wallet.to_string()) { (short(&n.wallet.to_string())) }
            td { (ago(n.status_changed_at)) }
        }
    }
}

const TABS: [(&str, &str); 4] = [
    ("metrics", "Metrics"),
    ("receipts", "Receipts"),
    ("hardware", "Hardware"),
    ("earnings", "Earnings"),
];

async fn drawer_view(
    state: &AppState,
    v: &Viewer,
    q: &NodesQuery,
    node: bitsage_core::node::NodeRecord,
) -> Result<Markup, ApiError> {
    let tab = given(&q.tab)
        .filter(|t| TABS.iter().any(|(k, _)| k == t))
        .unwrap_or("metrics");
    let now = bitsage_core::time::now();
    let eligibility = state.coordinator.eligibility(&node, now).await?;
    let id = node.id.clone();
    let detail = service::node_detail(state, node).await?;
    let n = &detail.node;
    let filters = q.filters();
    let base = format!("/nodes/{}?{}", id.as_str(), filters);
    let content = match tab {
        "receipts" => receipts_tab(state, &id).await,
        "hardware" => hardware_tab(n),
        "earnings" => earnings_tab(state, v, &id).await,
        _ => metrics_tab(&detail),
    };
    Ok(html! {
        aside.drawer aria-labelledby="drawer-title" #drawer data-live-region {
            header {
                h2 #drawer-title tabindex="-1" { (id.as_str()) }
                a.btn.ghost data-close href={ "/nodes?" (filters) } aria-label="Close the node drawer" { "Close ✕" }
            }
            p { (chip(n.status.as_str())) " " span.muted.small { (n.status_reason) " · " (ago(n.status_changed_at)) } }
            @if let Some(d) = &n.drain {
                p.banner.sev-warn { "Draining until " (utc(d.until)) " — " (d.reason) " (by " (d.by) ")" }
            }
            nav aria-label="Node sections" {
                ul.tabs {
                    @for (key, label) in TABS {
                        li { a href={ (base) "&tab=" (key) } aria-current=[(key == tab).then_some("true")] { (label) } }
                    }
                }
            }
            section aria-label=(format!("{tab} of {}", id.as_str())) { (content) }
            section aria-labelledby="elig-title" {
                h3 #elig-title { "Eligibility for work: " @if eligibility.eligible { span.ok { "eligible" } } @else { span.error { "not eligible" } } }
                ul.checklist {
                    @for item in &eligibility.items {
                        li data-check=(item.check) data-ok=(item.ok) {
                            @if item.ok { span.mark.yes aria-hidden="true" { "✓" } } @else { span.mark.no aria-hidden="true" { "✗" } }
                            span { span.sr-only { @if item.ok { "passed: " } @else { "failed: " } } (item.check.replace('_', " ")) " — " span.muted { (item.reason) } }
                        }
                    }
                }
            }
            (actions(v, n))
        }
    })
}

fn actions(v: &Viewer, n: &NodeView) -> Markup {
    let id = n.id.as_str();
    html! {
        section aria-labelledby="actions-title" {
            h3 #actions-title { "Actions" }
            @if v.is_admin() {
                form.actions data-api={ "POST /api/nodes/" (id) "/quarantine" } data-fields="reason" data-done="Quarantined." {
                    div { label for="q-reason" { "Reason" } input #q-reason name="reason" required maxlength="500" placeholder="why"; }
                    button.btn.danger type="submit" { "Quarantine" }
                }
                @if n.status == NodeStatus::Quarantined {
                    form.actions data-api={ "POST /api/nodes/" (id) "/clear" } data-fields="reason" data-done="Cleared: the node will be probed again." {
                        div { label for="c-reason" { "Reason" } input #c-reason name="reason" required maxlength="500" placeholder="why it is fine now"; }
                        button.btn.primary type="submit" { "Clear quarantine" }
                    }
                }
            }
            @if n.drain.is_none() {
                form.actions data-api={ "POST /api/nodes/" (id) "/drain" } data-fields="reason,duration_secs" data-done="Draining: no new work." {
                    div { label for="d-reason" { "Maintenance reason" } input #d-reason name="reason" required maxlength="500"; }
                    div { label for="d-secs" { "For (seconds)" } input #d-secs name="duration_secs" type="number" min="60" max="86400" value="3600" required; }
                    button.btn type="submit" { "Drain" }
                }
            } @else {
                form.actions data-api={ "DELETE /api/nodes/" (id) "/drain" } data-done="Back in service." {
                    button.btn type="submit" { "End drain" }
                }
            }
            p {
                a.btn href={ "/run-node?wallet=" (encode(&n.wallet.to_string())) (n.profile.region.as_ref().map(|r| format!("&region={}", encode(r))).unwrap_or_default()) "&runtime=" (n.profile.runtime.as_str()) "#agent-config" } {
                    "Agent config for this node's wallet"
                }
            }
        }
    }
}

fn metrics_tab(d: &crate::api::NodeDetail) -> Markup {
    let ops = &d.operations;
    let lat = &ops.latency_24h;
    html! {
        h3 { "Latency, last 24 h" }
        table {
            thead { tr { th scope="col" { span.sr-only { "Measure" } } th.num scope="col" { "p50" } th.num scope="col" { "p95" } th.num scope="col" { "p99" } th.num scope="col" { "jobs" } } }
            tbody {
                @for (label, p) in [("Run", &lat.run), ("Queue wait", &lat.queue_wait), ("Verification", &lat.verify)] {
                    tr { th scope="row" { (label) } td.num { (ms(p.p50_ms)) } td.num { (ms(p.p95_ms)) } td.num { (ms(p.p99_ms)) } td.num { (p.count) } }
                }
            }
        }
        h3 { "Uptime (from registration)" }
        dl.kv {
            @for (label, u) in [("24 h", &ops.uptime_24h), ("7 days", &ops.uptime_7d), ("30 days", &ops.uptime_30d)] {
                dt { (label) }
                dd { (pct(u.ratio)) span.muted.small { " · " (u.minutes_up) " of " (u.minutes_counted.saturating_sub(u.minutes_excused)) " minutes, " (u.heartbeats) " heartbeats" } }
            }
            dt { "Last heartbeat" }
            dd { @match d.last_seen { Some(t) => (ago(t)), None => (na()) } }
            dt { "GPU collector" }
            dd { @match &d.gpu_collector { Some(c) => { "reported " (ago(c.at)) }, None => (na()) } }
        }
        h3 { "Status history" }
        ul.small {
            @for h in d.history.iter().rev().take(8) {
                li { (utc(h.at)) " → " (chip(h.to.as_str())) " " span.muted { (h.reason) } }
            }
        }
    }
}

async fn receipts_tab(state: &AppState, id: &bitsage_core::NodeId) -> Markup {
    let filter = bitsage_core::receipt::ReceiptFilter {
        node: Some(id.clone()),
        newest_first: true,
        ..Default::default()
    };
    let page = bitsage_core::page::PageRequest {
        limit: 10,
        offset: 0,
    };
    match service::receipts_page(state, &filter, page).await {
        Err(e) => html! { p.error { (e.message) } },
        Ok(p) if p.items.is_empty() => html! { p.muted { "No receipt yet." } },
        Ok(p) => html! {
            h3 { "Last 10 receipts" }
            table {
                thead { tr { th scope="col" { "Receipt" } th scope="col" { "Kind" } th.num scope="col" { "Net" } th scope="col" { "Completed" } } }
                tbody {
                    @for r in &p.items {
                        tr {
                            td.mono { a href={ "/receipts/" (r.receipt.body.id) } { (short(&r.receipt.body.id.to_string())) } }
                            td { (r.receipt.body.kind) }
                            td.num { (r.net_formatted) }
                            td { (ago(r.receipt.body.completed_at)) }
                        }
                    }
                }
            }
            p { a href={ "/receipts?node=" (id.as_str()) } { "All receipts of this node" } }
        },
    }
}

fn hardware_tab(n: &NodeView) -> Markup {
    let hw = &n.hardware;
    html! {
        dl.kv {
            dt { "GPUs" } dd { @if hw.gpus.is_empty() { "none" @if let Some(r) = &hw.gpu_unavailable_reason { span.muted { " (" (r) ")" } } } @else { (hw.gpus.len()) } }
            dt { "Driver" } dd { @match &hw.driver_version { Some(d) => (d), None => (na()) } }
            dt { "CUDA" } dd { @match &hw.cuda_version { Some(d) => (d), None => (na()) } }
            dt { "Attestation" } dd { (n.attestation.status) @if let Some(r) = &n.attestation.reason { span.muted { " — " (r) } } }
            dt { "Energy tag" } dd { @match &n.profile.energy_tag { Some(e) => (e), None => (na()) } }
            dt { "Agent" } dd { (n.agent_version) }
            dt { "Node key" } dd.mono { (short(&n.public_key.to_string())) }
            dt { "Registered" } dd { (utc(n.registered_at)) }
        }
        @if !hw.gpus.is_empty() {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Model" } th.num scope="col" { "Memory" } th scope="col" { "Tier" } th scope="col" { "CC" } } }
                tbody {
                    @for g in &hw.gpus {
                        tr {
                            td { (g.index) }
                            td { (g.name) }
                            td.num { @match g.memory_total_bytes { Some(b) => (format!("{:.0} GiB", b as f64 / 1_073_741_824.0)), None => (na()) } }
                            td { @match &g.tier { Some(t) => (format!("{t:?}")), None => (na()) } }
                            td { @match g.confidential_compute { Some(true) => "on", Some(false) => "off", None => (na()) } }
                        }
                    }
                }
            }
        }
        @if !n.profile.labels.is_empty() {
            h3 { "Labels" }
            ul { @for (k, val) in &n.profile.labels { li.mono { (k) "=" (val) } } }
        }
    }
}

async fn earnings_tab(state: &AppState, v: &Viewer, id: &bitsage_core::NodeId) -> Markup {
    let e = service::earnings(state, id, &crate::api::EarningsQuery::default()).await;
    match e {
        Err(e) => html! { p.error { (e.message) } },
        Ok(e) => html! {
            dl.kv {
                dt { "Net (all time)" } dd { (e.total.net_formatted) }
                dt { "Settled" } dd { (e.settlement.settled_net_formatted) }
                dt { "Pending settlement" } dd { (e.settlement.pending_net_formatted) " (" (e.settlement.pending_receipts) " receipts)" }
            }
            @if !e.payouts.is_empty() {
                h3 { "Payout periods" }
                table {
                    thead { tr { th scope="col" { "Month" } th.num scope="col" { "Net" } th scope="col" { "State" } th scope="col" { span.sr-only { "Action" } } } }
                    tbody {
                        @for p in &e.payouts {
                            tr {
                                td { (p.period) }
                                td.num { (p.net.format_sage()) }
                                td { (chip(p.state.as_str())) }
                                td {
                                    @if v.is_admin() && p.state == bitsage_core::payout::PayoutState::Eligible {
                                        form data-api={ "POST /api/earnings/" (id.as_str()) "/payouts/" (p.period) "/ready" } data-done="Marked payout-ready." {
                                            button.btn.primary type="submit" { "Mark payout-ready" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { a href={ "/earnings?node=" (id.as_str()) } { "Earnings page of this node" } }
        },
    }
}
